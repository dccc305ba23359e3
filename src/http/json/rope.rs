//! A request body as the chunks it arrived in, addressed as one byte sequence, so that large JSON bodies are read
//! where they lie instead of being copied into one buffer first.

use std::borrow::Cow;
use std::ops::Range;

use memchr::{memchr2, memchr3};

/// Byte slices read in order as one sequence; positions are offsets into that sequence.
pub struct Rope<'a> {
    parts: Vec<&'a [u8]>,
    /// Where each part starts in the sequence.
    starts: Vec<usize>,
    len: usize,
}

impl<'a> Rope<'a> {
    /// The sequence of `parts` (empty parts are left out).
    pub fn new(parts: impl IntoIterator<Item = &'a [u8]>) -> Rope<'a> {
        let parts: Vec<&[u8]> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0;
        for part in &parts {
            starts.push(len);
            len += part.len();
        }
        Rope { parts, starts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index of the part holding position `at` (`at` < len).
    fn part_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at) - 1
    }

    /// The byte at `at`, if any.
    pub fn byte(&self, at: usize) -> Option<u8> {
        (at < self.len).then(|| {
            let p = self.part_of(at);
            self.parts[p][at - self.starts[p]]
        })
    }

    /// The pieces of `range`, in order (each within one part).
    pub fn pieces(&self, range: Range<usize>) -> impl Iterator<Item = &'a [u8]> + '_ {
        let first = if range.start < range.end {
            self.part_of(range.start)
        } else {
            self.parts.len()
        };
        self.parts[first..]
            .iter()
            .zip(&self.starts[first..])
            .take_while(move |(_, &s)| s < range.end)
            .map(move |(part, &s)| {
                let from = range.start.saturating_sub(s);
                let to = (range.end - s).min(part.len());
                &part[from..to]
            })
    }

    /// `range` as one slice: borrowed when it lies in one part, else copied.
    pub fn slice(&self, range: Range<usize>) -> Cow<'a, [u8]> {
        let mut pieces = self.pieces(range.clone());
        match (pieces.next(), pieces.next()) {
            (None, _) => Cow::Borrowed(&[]),
            (Some(only), None) => Cow::Borrowed(only),
            (Some(first), Some(second)) => {
                let mut out = Vec::with_capacity(range.len());
                out.extend_from_slice(first);
                out.extend_from_slice(second);
                pieces.for_each(|p| out.extend_from_slice(p));
                Cow::Owned(out)
            }
        }
    }

    /// The first position from `from` on holding `a` or `b`.
    pub fn find2(&self, from: usize, a: u8, b: u8) -> Option<usize> {
        self.find(from, |piece| memchr2(a, b, piece))
    }

    /// The first position from `from` on holding `a`, `b` or `c`.
    pub fn find3(&self, from: usize, a: u8, b: u8, c: u8) -> Option<usize> {
        self.find(from, |piece| memchr3(a, b, c, piece))
    }

    fn find(&self, from: usize, search: impl Fn(&[u8]) -> Option<usize>) -> Option<usize> {
        let mut at = from;
        for piece in self.pieces(from..self.len) {
            if let Some(i) = search(piece) {
                return Some(at + i);
            }
            at += piece.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parts_as_one_sequence() {
        let rope = Rope::new([&b"ab"[..], b"", b"cde", b"f"]);
        assert_eq!(rope.len(), 6);
        let all: Vec<u8> = (0..7).filter_map(|i| rope.byte(i)).collect();
        assert_eq!(all, b"abcdef");
        assert!(matches!(rope.slice(2..5), Cow::Borrowed(b"cde")));
        assert!(matches!(rope.slice(1..4), Cow::Owned(ref v) if v == b"bcd"));
        assert_eq!(&*rope.slice(3..3), b"");
        assert_eq!(&*rope.slice(0..6), b"abcdef");
        assert_eq!(rope.find2(0, b'd', b'x'), Some(3));
        assert_eq!(rope.find3(4, b'a', b'b', b'f'), Some(5));
        assert_eq!(rope.find2(4, b'a', b'b'), None);
        assert_eq!(Rope::new([]).find2(0, b'a', b'b'), None);
    }
}

/// Test support: bodies cut into chunks.
#[cfg(test)]
pub mod testing {
    use super::Rope;

    /// `body` as a rope cut at `cuts` (ascending positions).
    pub fn cut<'a>(body: &'a [u8], cuts: &[usize]) -> Rope<'a> {
        let mut at = 0;
        let mut parts = Vec::new();
        for &c in cuts {
            parts.push(&body[at..c]);
            at = c;
        }
        parts.push(&body[at..]);
        Rope::new(parts)
    }

    /// Every way to cut `len` bytes in up to three pieces.
    pub fn cuts(len: usize) -> impl Iterator<Item = Vec<usize>> {
        (0..=len).flat_map(move |i| (i..=len).map(move |j| vec![i, j]))
    }
}
