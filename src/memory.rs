//! Gives the memory that loading a model freed back to the operating system.

/// Loading a model parses the file and builds the session on a worker thread: the parsed copy of the weights and
/// the scratch space are freed afterwards, but glibc keeps freed memory in its (per-thread) arenas. Trimming them
/// returns those pages, so a server's resident size is what it holds, not what it once used.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
