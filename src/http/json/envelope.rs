//! The envelope scan of the REST JSON fast path: one structural pass over a large body finds each input's `data`
//! value, so that serde reads only the small rest and the data is read by the number reader.

use std::borrow::Cow;
use std::ops::Range;

use super::rope::Rope;

/// The body with every input's `data` value replaced by `[]`, and where those values were.
pub struct Envelope<T> {
    /// The request JSON without its data arrays (serde reads this).
    pub json: Vec<u8>,
    /// The inputs whose `data` was taken out.
    pub spans: Vec<DataSpan<T>>,
}

/// Where one input's `data` lies in the body, and what the early reader made of it, if it ran.
pub struct DataSpan<T> {
    /// The input's position in `inputs`.
    pub input: usize,
    pub range: Range<usize>,
    pub early: Option<T>,
}

/// What the scan saw of an input object before its `data`: the raw `datatype` string and `shape` value.
#[derive(Default)]
pub struct InputHead<'a> {
    pub datatype: Option<Cow<'a, [u8]>>,
    pub shape: Option<Cow<'a, [u8]>>,
}

/// Splits `body` into the envelope and the data spans; `None` when the scan meets anything it does not expect
/// (escaped keys, repeated keys, no data at all...): the caller then parses the body as a whole.
///
/// `read_early` is offered each `data` value where it starts, with what came before it in its input object; when
/// it reads the value (returning its result and where the value ends) the scan goes on from there instead of
/// skipping the value: one pass over large arrays instead of two. A body with more than `max_inputs` inputs is
/// left as soon as that shows (`None`), so that what the scan keeps stays bounded by the limit.
pub fn split_envelope<'a, T>(
    body: &Rope<'a>,
    max_inputs: usize,
    mut read_early: impl FnMut(&InputHead<'a>, usize) -> Option<(T, usize)>,
) -> Option<Envelope<T>> {
    let mut s = Scan { r: body, i: 0 };
    let mut spans = Vec::new();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        return None;
    }
    let mut seen_inputs = false;
    loop {
        s.ws();
        let key = s.key()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        if *key == *b"inputs" {
            if seen_inputs {
                return None;
            }
            seen_inputs = true;
            s.inputs(&mut spans, max_inputs, &mut read_early)?;
        } else {
            s.skip_value()?;
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    if spans.is_empty() {
        return None;
    }
    let taken: usize = spans.iter().map(|s| s.range.len()).sum();
    let mut json = Vec::with_capacity(body.len() - taken + 2 * spans.len());
    let mut at = 0;
    for DataSpan { range, .. } in &spans {
        body.pieces(at..range.start)
            .for_each(|p| json.extend_from_slice(p));
        json.extend_from_slice(b"[]");
        at = range.end;
    }
    body.pieces(at..body.len())
        .for_each(|p| json.extend_from_slice(p));
    Some(Envelope { json, spans })
}

struct Scan<'r, 'a> {
    r: &'r Rope<'a>,
    i: usize,
}

impl<'a> Scan<'_, 'a> {
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.r.byte(self.i)
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Skips a string starting at the quote; returns whether it held an escape.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            let at = self.r.find2(self.i, b'"', b'\\')?;
            if self.r.byte(at)? == b'"' {
                self.i = at + 1;
                return Some(escaped);
            }
            escaped = true;
            self.i = at + 2;
            if self.i > self.r.len() {
                return None;
            }
        }
    }

    /// An object key without escapes.
    fn key(&mut self) -> Option<Cow<'a, [u8]>> {
        let start = self.i + 1;
        if self.string()? {
            return None;
        }
        Some(self.r.slice(start..self.i - 1))
    }

    /// Skips one value. Brackets are balanced per kind, skipping strings; validity is left to the parsers that
    /// read the envelope (serde) and the data (the number reader, or serde again).
    fn skip_value(&mut self) -> Option<()> {
        let (open, close) = match self.peek()? {
            b'"' => return self.string().map(|_| ()),
            b'[' => (b'[', b']'),
            b'{' => (b'{', b'}'),
            _ => {
                while !matches!(
                    self.peek()?,
                    b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t'
                ) {
                    self.i += 1;
                }
                return Some(());
            }
        };
        let mut depth = 0usize;
        loop {
            let at = self.r.find3(self.i, b'"', open, close)?;
            self.i = at;
            match self.r.byte(at)? {
                b'"' => {
                    self.string()?;
                }
                c if c == open => {
                    depth += 1;
                    self.i += 1;
                }
                _ => {
                    depth -= 1;
                    self.i += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
        }
    }

    /// The `inputs` array: records the span of each input object's `data`.
    fn inputs<T>(
        &mut self,
        spans: &mut Vec<DataSpan<T>>,
        max_inputs: usize,
        read_early: &mut impl FnMut(&InputHead<'a>, usize) -> Option<(T, usize)>,
    ) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        let mut index = 0;
        loop {
            if index >= max_inputs {
                return None;
            }
            self.ws();
            self.eat(b'{')?;
            self.ws();
            if self.peek()? == b'}' {
                self.i += 1;
            } else {
                let mut head = InputHead::default();
                loop {
                    self.ws();
                    let key = self.key()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    let start = self.i;
                    match &*key {
                        b"data" => {
                            if spans.last().is_some_and(|s| s.input == index) {
                                return None;
                            }
                            let early = match read_early(&head, start) {
                                Some((value, end)) => {
                                    self.i = end;
                                    Some(value)
                                }
                                None => {
                                    self.skip_value()?;
                                    None
                                }
                            };
                            spans.push(DataSpan {
                                input: index,
                                range: start..self.i,
                                early,
                            });
                        }
                        b"datatype" if self.peek()? == b'"' => {
                            let escaped = self.string()?;
                            head.datatype = (!escaped).then(|| self.r.slice(start + 1..self.i - 1));
                        }
                        b"shape" => {
                            self.skip_value()?;
                            head.shape = Some(self.r.slice(start..self.i));
                        }
                        _ => self.skip_value()?,
                    }
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b'}' => break,
                        _ => return None,
                    }
                }
            }
            index += 1;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::rope::testing::{cut, cuts};

    #[test]
    fn more_inputs_than_allowed_leave_the_scan() {
        let body = br#"{"inputs": [{"data": [1]}, {"data": [2]}, {"data": [3]}]}"#;
        let rope = cut(body, &[]);
        let none = |_: &InputHead<'_>, _| None::<((), usize)>;
        assert_eq!(split_envelope(&rope, 3, none).unwrap().spans.len(), 3);
        assert!(split_envelope(&rope, 2, none).is_none());
    }

    #[test]
    fn envelope_takes_out_data() {
        let body = br#"{"id": "a\"]", "inputs": [{"name": "x", "data": [[1, 2], [3]], "shape": [3]},
            {"name": "y", "parameters": {"binary_data_size": 4}}, {"data": ["]", "["], "name": "z"}],
            "outputs": [{"name": "o"}]}"#;
        for c in cuts(body.len()).step_by(7) {
            let rope = cut(body, &c);
            let env = split_envelope(&rope, usize::MAX, |_, _| None::<((), usize)>).unwrap();
            let spans: Vec<(usize, Vec<u8>)> = env
                .spans
                .iter()
                .map(|s| (s.input, rope.slice(s.range.clone()).into_owned()))
                .collect();
            assert_eq!(
                spans,
                vec![
                    (0, b"[[1, 2], [3]]".to_vec()),
                    (2, br#"["]", "["]"#.to_vec())
                ]
            );
            let json: serde_json::Value = serde_json::from_slice(&env.json).unwrap();
            assert_eq!(json["inputs"][0]["data"], serde_json::json!([]));
            assert_eq!(json["id"], "a\"]");
        }
        for bad in [
            &br#"{"inputs": [{"da\u0074a": [1]}]}"#[..],
            br#"{"inputs": [{"data": [1], "data": [2]}]}"#,
            br#"{"inputs": [{"name": "x"}]}"#,
        ] {
            for c in cuts(bad.len()) {
                assert!(
                    split_envelope(&cut(bad, &c), usize::MAX, |_, _| None::<((), usize)>).is_none()
                );
            }
        }
    }

    #[test]
    fn data_after_its_head_is_offered_to_the_early_reader() {
        let body = br#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}, {"data": [3]}]}"#;
        for c in cuts(body.len()).step_by(5) {
            let rope = cut(body, &c);
            let mut offered = Vec::new();
            let env = split_envelope(&rope, usize::MAX, |head, start| {
                offered.push((
                    head.datatype.as_deref().map(<[u8]>::to_vec),
                    head.shape.as_deref().map(<[u8]>::to_vec),
                ));
                // Read the first input's data (`[1, 2]`, 6 bytes), as the reader would.
                (offered.len() == 1).then_some(("read", start + 6))
            })
            .unwrap();
            assert_eq!(
                offered,
                vec![
                    (Some(b"FP32".to_vec()), Some(b"[2]".to_vec())),
                    (None, None)
                ]
            );
            assert_eq!(env.spans[0].early, Some("read"));
            assert_eq!(&*rope.slice(env.spans[0].range.clone()), b"[1, 2]");
            assert_eq!(env.spans[1].early, None);
            assert_eq!(&*rope.slice(env.spans[1].range.clone()), b"[3]");
        }
    }
}
