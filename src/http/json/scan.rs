//! The number reader of the REST JSON fast path: numeric `data` arrays read straight from the body's chunks into
//! typed values (correctly rounded f64 first, as MLServer's Python does). Anything unusual returns `None` and the
//! general path (serde) runs.

use std::ops::Range;

use memchr::{memchr3, memrchr3};

use super::rope::Rope;

/// A number element as the reader hands it over: integer literals as integers (as serde_json and Python read
/// them), others as a decimal the caller converts to its element type.
pub enum Number<'a> {
    /// A non-negative integer literal.
    U64(u64),
    /// A negative integer literal.
    I64(i64),
    /// A literal with a fraction or exponent.
    Decimal(Decimal<'a>),
    /// `null`.
    Null,
}

/// A JSON number literal with a fraction or exponent, scanned but not yet converted: its significand (up to 19
/// digits) and power of ten, and its text for the cases the quick conversions do not cover.
pub struct Decimal<'a> {
    /// The literal without its sign.
    text: &'a [u8],
    negative: bool,
    mantissa: u64,
    exponent: i64,
    /// Digits beyond the 19 that `mantissa` holds were left out (`exponent` is then not meaningful).
    truncated: bool,
}

impl Decimal<'_> {
    /// The correctly rounded f64 (as Python's `float()` reads it); `None` when it is not finite.
    pub fn to_f64(&self) -> Option<f64> {
        let value =
            if !self.truncated && self.mantissa <= 1 << 53 && self.exponent.unsigned_abs() <= 22 {
                // Clinger's fast path: both operands are exact, so one IEEE operation rounds correctly.
                let m = self.mantissa as f64;
                let p = POW10[self.exponent.unsigned_abs() as usize];
                if self.exponent < 0 {
                    m / p
                } else {
                    m * p
                }
            } else {
                // The slow path: the scanner accepted only ASCII digits, '.', 'e'/'E' and signs in `text`.
                std::str::from_utf8(self.text).ok()?.parse::<f64>().ok()?
            };
        value
            .is_finite()
            .then_some(if self.negative { -value } else { value })
    }

    /// The f32 nearest to the correctly rounded f64, as numpy's `astype(float32)` of Python's float gives; `None`
    /// when the f64 is not finite. The value is first computed with plain f64 operations (error under 4 ulp of
    /// f64) and kept unless it lies within a few f64 ulp of a point halfway between two f32s, where the exact f64
    /// decides: elsewhere the exact value, its f64 rounding and the estimate all round to the same f32.
    #[inline(always)]
    pub fn to_f32(&self) -> Option<f32> {
        if !self.truncated && self.exponent.unsigned_abs() <= 22 {
            let m = self.mantissa as f64;
            let value = if self.exponent < 0 {
                m * NEG_POW10[self.exponent.unsigned_abs() as usize]
            } else {
                m * POW10[self.exponent as usize]
            };
            // The 29 low significand bits are what f32 rounding drops; 1 << 28 is the halfway point.
            let low = value.to_bits() & ((1 << 29) - 1);
            if (f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&value)
                && low.abs_diff(1 << 28) > 16
            {
                let value = value as f32;
                return Some(if self.negative { -value } else { value });
            }
            if self.mantissa == 0 {
                return Some(if self.negative { -0.0 } else { 0.0 });
            }
        }
        self.to_f64().map(|v| v as f32)
    }
}

/// The f64 nearest to each 10^-k (k <= 22): one rounding away from exact, for estimates only.
const NEG_POW10: [f64; 23] = [
    1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// Reads a JSON array of numbers (nested to any depth, flat order) calling `push` for each; `None` when the text
/// is anything else (strings, booleans, syntax errors, `-0`, integers beyond 64 bits), when there are more than
/// `limit` elements, or when `push` refuses one. Returns the element count.
pub fn read_numbers(
    text: &[u8],
    limit: usize,
    push: impl FnMut(Number<'_>) -> Option<()>,
) -> Option<usize> {
    let (count, end) = read_numbers_in(&Rope::new([text]), 0..text.len(), limit, push)?;
    text[end..]
        .iter()
        .all(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        .then_some(count)
}

/// [`read_numbers`] for the array starting (after any whitespace) at `range.start` of a body kept in chunks,
/// reading no further than `range.end`; returns the element count and the position after the array's closing
/// bracket. Each chunk is read where it lies, cut after its last delimiter (`,` `[` `]`); the few bytes of the
/// element that straddles two chunks are joined in a small buffer.
pub fn read_numbers_in(
    body: &Rope<'_>,
    range: Range<usize>,
    limit: usize,
    mut push: impl FnMut(Number<'_>) -> Option<()>,
) -> Option<(usize, usize)> {
    /// Longer straddling text (a huge literal, a long run of spaces) is left to the general decoder.
    const MAX_CARRY: usize = 4096;
    let mut reader = ArrayReader::new(limit);
    // The bytes not yet read, and where they start in the body.
    let mut carry: Vec<u8> = Vec::new();
    let mut carry_at = range.start;
    let mut at = range.start;
    for mut piece in body.pieces(range) {
        let mut piece_at = at;
        at += piece.len();
        if !carry.is_empty() {
            let Some(k) = memchr3(b',', b'[', b']', piece) else {
                carry.extend_from_slice(piece);
                if carry.len() > MAX_CARRY {
                    return None;
                }
                continue;
            };
            carry.extend_from_slice(&piece[..=k]);
            if let Some(end) = reader.feed(&carry, &mut push)? {
                return Some((reader.count, carry_at + end));
            }
            carry.clear();
            piece = &piece[k + 1..];
            piece_at += k + 1;
        }
        let cut = memrchr3(b',', b'[', b']', piece).map_or(0, |k| k + 1);
        if let Some(end) = reader.feed(&piece[..cut], &mut push)? {
            return Some((reader.count, piece_at + end));
        }
        carry.extend_from_slice(&piece[cut..]);
        carry_at = piece_at + cut;
        if carry.len() > MAX_CARRY {
            return None;
        }
    }
    let end = reader.feed(&carry, &mut push)??;
    Some((reader.count, carry_at + end))
}

/// The state of reading one array of numbers, so that it can be fed in pieces that each end between tokens.
#[derive(Clone, Copy)]
struct ArrayReader {
    opened: bool,
    depth: usize,
    need_value: bool,
    may_close: bool,
    count: usize,
    limit: usize,
}

impl ArrayReader {
    fn new(limit: usize) -> ArrayReader {
        ArrayReader {
            opened: false,
            depth: 0,
            need_value: true,
            may_close: true,
            count: 0,
            limit,
        }
    }

    /// Reads `b`, which must not end inside a token (unless it is the last piece); returns the position after the
    /// array's closing bracket once it is read, and does not read past it.
    #[inline(always)]
    fn feed(
        &mut self,
        b: &[u8],
        push: &mut impl FnMut(Number<'_>) -> Option<()>,
    ) -> Option<Option<usize>> {
        // Locals, not fields, in the loop: kept in registers.
        let ArrayReader {
            mut opened,
            mut depth,
            mut need_value,
            mut may_close,
            mut count,
            limit,
        } = *self;
        let mut i = 0;
        loop {
            while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                i += 1;
            }
            let Some(&c) = b.get(i) else { break };
            if depth == 0 {
                // Before the array: its opening bracket.
                if opened || c != b'[' {
                    return None;
                }
                opened = true;
                depth = 1;
                i += 1;
                continue;
            }
            if need_value {
                match c {
                    b'[' => {
                        depth += 1;
                        i += 1;
                        may_close = true;
                        continue;
                    }
                    b']' if may_close => {
                        depth -= 1;
                        i += 1;
                        need_value = false;
                        if depth == 0 {
                            break;
                        }
                        continue;
                    }
                    b'n' if b.get(i..i + 4) == Some(b"null") => {
                        i += 4;
                        if count >= limit {
                            return None;
                        }
                        push(Number::Null)?;
                    }
                    b'-' | b'0'..=b'9' => {
                        let (number, end) = number(b, i)?;
                        i = end;
                        if count >= limit {
                            return None;
                        }
                        push(number)?;
                    }
                    _ => return None,
                }
                count += 1;
                need_value = false;
            } else {
                match c {
                    b',' => {
                        need_value = true;
                        may_close = false;
                    }
                    b']' => depth -= 1,
                    _ => return None,
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
        }
        *self = ArrayReader {
            opened,
            depth,
            need_value,
            may_close,
            count,
            limit,
        };
        Some((opened && depth == 0).then_some(i))
    }
}

/// Exact powers of ten representable in f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Eight ASCII digits at `i` as their value (SWAR, as in fast_float), if all eight are digits.
#[inline(always)]
fn eight_digits(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    let v = u64::from_le_bytes(chunk);
    let all_digits = (v & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && (v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    let v = v - 0x3030_3030_3030_3030;
    let v = (v * 10) + (v >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let v = ((v & mask).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & mask).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(v)
}

/// Powers of ten as integers, for appending up to eight digits to a significand.
const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The run of fewer than eight ASCII digits at `i` appended to `mantissa` without a branch per digit (SWAR);
/// `None` when eight bytes do not remain, when the run is eight digits or more, or when it would take the
/// significand beyond 19 digits. Returns the new significand and the run's length.
#[inline(always)]
fn digit_tail(b: &[u8], i: usize, mantissa: u64, digits: usize) -> Option<(u64, usize)> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    let v = u64::from_le_bytes(chunk);
    // Non-zero in each byte that is not a digit (carries only reach bytes after the first such byte).
    let not_digit = ((v & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030)
        | ((v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030);
    if not_digit == 0 {
        return None;
    }
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if digits + n > 19 {
        return None;
    }
    // The n digits as the low end of an eight-digit number (the bytes before them zero).
    let d = v.wrapping_sub(0x3030_3030_3030_3030) << 1 << (63 - 8 * n);
    let d = (d * 10) + (d >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let value = ((d & mask).wrapping_mul(100 + (1_000_000 << 32))
        + ((d >> 16) & mask).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some((mantissa * POW10_U64[n] + value, n))
}

/// Reads the JSON number at `start`; returns it and the index after it.
#[inline(always)]
fn number(b: &[u8], start: usize) -> Option<(Number<'_>, usize)> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = start;
    let negative = b[i] == b'-';
    if negative {
        i += 1;
    }
    // Significand digits, accumulated while they fit (at most 19).
    let mut mantissa = 0u64;
    let mut digits = 0usize;
    let mut truncated = false;
    macro_rules! accumulate {
        ($d:expr) => {
            if digits < 19 {
                mantissa = mantissa * 10 + u64::from($d - b'0');
                digits += 1;
            } else {
                truncated = true;
            }
        };
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            while digits + 8 <= 19 {
                match eight_digits(b, i) {
                    Some(v) => {
                        mantissa = mantissa * 100_000_000 + v;
                        digits += 8;
                        i += 8;
                    }
                    None => break,
                }
            }
            while digit(i) {
                accumulate!(b[i]);
                i += 1;
            }
        }
        _ => return None,
    }
    let mut exponent: i64 = 0;
    let mut is_float = false;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return None;
        }
        if mantissa == 0 {
            // Leading zeros of the fraction only move the point.
            while b.get(i) == Some(&b'0') {
                exponent -= 1;
                i += 1;
            }
        }
        while digits + 8 <= 19 {
            match eight_digits(b, i) {
                Some(v) => {
                    mantissa = mantissa * 100_000_000 + v;
                    digits += 8;
                    exponent -= 8;
                    i += 8;
                }
                None => break,
            }
        }
        if let Some((m, n)) = digit_tail(b, i, mantissa, digits) {
            mantissa = m;
            digits += n;
            exponent -= n as i64;
            i += n;
        }
        while digit(i) {
            accumulate!(b[i]);
            if !truncated {
                exponent -= 1;
            }
            i += 1;
        }
        is_float = true;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let mut sign = 1;
        match b.get(i) {
            Some(b'-') => {
                sign = -1;
                i += 1;
            }
            Some(b'+') => i += 1,
            _ => {}
        }
        if !digit(i) {
            return None;
        }
        let mut e: i64 = 0;
        while digit(i) {
            e = (e * 10 + i64::from(b[i] - b'0')).min(1 << 20);
            i += 1;
        }
        exponent += sign * e;
        is_float = true;
    }
    if !is_float {
        if truncated {
            return None; // beyond 64 bits: the general decoder decides
        }
        return Some((
            match (negative, mantissa) {
                (false, m) => Number::U64(m),
                (true, 0) => return None, // -0: the general decoder decides
                (true, m) => Number::I64(0i64.checked_sub_unsigned(m)?),
            },
            i,
        ));
    }
    let decimal = Decimal {
        text: &b[start + usize::from(negative)..i],
        negative,
        mantissa,
        exponent,
        truncated,
    };
    Some((Number::Decimal(decimal), i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::rope::testing::{cut, cuts};

    fn floats(text: &str) -> Option<Vec<f64>> {
        let mut out = Vec::new();
        read_numbers(text.as_bytes(), usize::MAX, |n| {
            out.push(match n {
                Number::U64(v) => v as f64,
                Number::I64(v) => v as f64,
                Number::Decimal(d) => d.to_f64()?,
                Number::Null => f64::NAN,
            });
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn numbers_match_std_parsing() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut texts = vec![
            "0.1".to_string(),
            "-2.5e-3".to_string(),
            "1E22".to_string(),
            "1e23".to_string(),
            "9007199254740993.0".to_string(),
            "0.30000000000000004".to_string(),
            "123456789012345678901.5".to_string(),
            "4.9e-324".to_string(),
            "1.7976931348623157e308".to_string(),
            "0.000001234".to_string(),
        ];
        for _ in 0..20000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            texts.push(format!("{:?}", f64::from_bits(state >> 2)));
            texts.push(format!("{:?}", (state >> 40) as f32 as f64 / 16777216.0));
            texts.push(format!(
                "{:?}",
                f32::from_bits((state >> 33) as u32 & 0x7f7f_ffff)
            ));
        }
        for text in texts {
            let expected: f64 = text.parse().unwrap();
            if !expected.is_finite() {
                continue;
            }
            let got = floats(&format!("[{text}]")).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(got[0].to_bits(), expected.to_bits(), "{text}");
        }
    }

    fn f32s(text: &str) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        read_numbers(text.as_bytes(), usize::MAX, |n| {
            out.push(match n {
                Number::Decimal(d) => d.to_f32()?,
                _ => return None,
            });
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn f32_estimates_round_as_the_exact_f64_does() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut texts = vec!["0.0".to_string(), "-0.0".to_string(), "1e-50".to_string()];
        for _ in 0..50000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // f32 values as Python prints them, in and beyond [0, 1).
            let v = f32::from_bits((state >> 33) as u32 & 0x7f7f_ffff);
            texts.push(format!("{:?}", v as f64));
            texts.push(format!("{:?}", (state >> 40) as f32 as f64 / 16777216.0));
            // Points halfway between two f32s, exact and nudged by a unit in the 17th and 18th digit.
            let exponent = 100 + (state >> 58) as u32 % 40; // 2^-27 .. 2^12
            let below = f32::from_bits((exponent << 23) | ((state >> 20) as u32 & 0x7f_ffff));
            let half = (below as f64 + f32::from_bits(below.to_bits() + 1) as f64) / 2.0;
            for text in [
                format!("{half:.16e}"),
                format!("{half:.17e}"),
                format!("{half:.18e}"),
            ] {
                let (mantissa, exp) = text.split_once('e').unwrap();
                let last = mantissa.as_bytes()[mantissa.len() - 1] - b'0';
                texts.push(text.clone());
                for nudged in [last.saturating_sub(1), (last + 1).min(9)] {
                    texts.push(format!("{}{nudged}e{exp}", &mantissa[..mantissa.len() - 1]));
                }
            }
        }
        for text in texts {
            let expected = text.parse::<f64>().unwrap() as f32;
            let got = f32s(&format!("[{text}]")).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(got[0].to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn arrays_flat_nested_and_refused() {
        assert_eq!(
            floats(" [ [1, 2.5] ,[ -3,null] ] ").unwrap()[..3],
            [1.0, 2.5, -3.0]
        );
        assert_eq!(floats("[]").unwrap(), Vec::<f64>::new());
        for bad in [
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "[-]",
            "[-0]",
            "[1e400]",
            "[\"1\"]",
            "[true]",
            "[1]]",
            "[[1]",
            "1",
            "[NaN]",
            "[1] x",
            "[18446744073709551616]",
        ] {
            assert!(floats(bad).is_none(), "{bad}");
        }
        assert!(read_numbers(b"[1,2,3]", 2, |_| Some(())).is_none());
    }

    fn floats_in(rope: &Rope<'_>) -> Option<Vec<f64>> {
        let mut out = Vec::new();
        let (_, end) = read_numbers_in(rope, 0..rope.len(), usize::MAX, |n| {
            out.push(match n {
                Number::U64(v) => v as f64,
                Number::I64(v) => v as f64,
                Number::Decimal(d) => d.to_f64()?,
                Number::Null => -1.0,
            });
            Some(())
        })?;
        // What follows the array is the caller's business; here, only spaces.
        rope.slice(end..rope.len())
            .iter()
            .all(|&c| c == b' ')
            .then_some(out)
    }

    #[test]
    fn numbers_read_the_same_wherever_the_body_is_cut() {
        let text = b" [ [1, 2.5e-3] ,[ -3,null],0.26978665590286255 , 123456789012345678, 1E5,[]] ";
        let whole = floats_in(&cut(text, &[])).unwrap();
        assert_eq!(whole.len(), 7);
        for c in cuts(text.len()) {
            assert_eq!(floats_in(&cut(text, &c)).as_ref(), Some(&whole), "{c:?}");
        }
        for bad in [
            "[1,]", "[1 2]", "[1.]", "[1e]", "[-]", "[nul]", "[1]]", "[[1]", "[1] x", "x[1]",
        ] {
            for c in cuts(bad.len()) {
                assert!(floats_in(&cut(bad.as_bytes(), &c)).is_none(), "{bad} {c:?}");
            }
        }
    }
}
