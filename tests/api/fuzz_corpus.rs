//! Replays the fuzz corpus (fuzz/corpus/<target>/: seeds and the fuzzer's finds, crashes included once fixed)
//! through the fuzz checks of fuzz/src/lib.rs as an ordinary test, so that every `cargo test` runs them without
//! the coverage-guided build (scripts/fuzz.sh does that). Also the hostile inputs too large to commit, generated.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("rest_json", checks::rest_json),
    ("rest_binary", checks::rest_binary),
    ("grpc_infer", checks::grpc_infer),
    ("codecs", checks::codecs),
    ("settings", checks::settings),
];

/// Runs every file under `kind/<target>/` through its check; returns the files that failed, with the panic.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut ran = 0;
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        for path in files(&root.join(target)) {
            let data = std::fs::read(&path).expect("corpus file");
            ran += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                failed.push(format!("{}: {}", path.display(), panic_text(&panic)));
            }
        }
    }
    (ran, failed)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    text.chars().take(500).collect()
}

#[test]
fn committed_corpus_replays_clean() {
    let (ran, failed) = replay("corpus");
    assert!(ran >= 60, "only {ran} corpus files found");
    assert!(
        failed.is_empty(),
        "{} of {ran} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A JSON body of `n` one-element FP32 inputs, as in the issue's stall (150k inputs, ~9 MB).
fn tiny_inputs(n: usize) -> Vec<u8> {
    let mut body = b"{\"inputs\":[".to_vec();
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            format!("{{\"name\":\"i{i}\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}}")
                .as_bytes(),
        );
    }
    body.extend_from_slice(b"]}");
    body
}

/// 5,000 tiny inputs take the fast path and agree with serde (a small version of the issue's body).
#[test]
fn thousands_of_tiny_inputs_parse_alike() {
    checks::rest_json(&tiny_inputs(5_000));
}

/// The issue's 150k tiny inputs: must be refused (or parsed) in well under a second; it was quadratic
/// before issue 18 (tens of seconds).
#[test]
fn issue18_150k_tiny_inputs_are_quick() {
    let body = tiny_inputs(150_000);
    let started = std::time::Instant::now();
    checks::rest_json(&body);
    let took = started.elapsed();
    assert!(took.as_secs_f64() < 2.0, "150k tiny inputs took {took:?}");
}

/// The issue's 1e6-dimension shape, on REST and gRPC: the error must stay short (a 3 MB body on main).
#[test]
fn issue18_million_dimension_shape_error_is_short() {
    let dims = vec!["1"; 1_000_000].join(",");
    let body = format!(
        "{{\"inputs\":[{{\"name\":\"x\",\"shape\":[{dims}],\"datatype\":\"FP32\",\"data\":[1,2]}}]}}"
    );
    checks::rest_json(body.as_bytes());
    let shape = vec![1u8; 1_000_000]; // a million varint 1s
    let mut tensor = b"\x0a\x01x\x12\x04FP32".to_vec();
    tensor.push(0x1a);
    push_varint(&mut tensor, shape.len() as u64);
    tensor.extend_from_slice(&shape);
    let mut message = vec![0x2a];
    push_varint(&mut message, tensor.len() as u64);
    message.extend_from_slice(&tensor);
    checks::grpc_infer(&message);
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// JSON nested far deeper than serde's recursion limit, in the data and in the parameters, on both paths.
#[test]
fn very_deep_json_is_refused_not_overflowed() {
    let deep = format!(
        "{{\"inputs\":[{{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":{}1{}}}]}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    checks::rest_json(deep.as_bytes());
    let deep = format!(
        "{{\"parameters\":{}{},\"inputs\":[]}}",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    checks::rest_json(deep.as_bytes());
}
