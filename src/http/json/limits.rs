//! The limit check of a REST JSON request before it is parsed: one pass that allocates nothing counts the
//! inputs, the requested outputs and each input's shape rank, and stops at the first over its limit, so a body of
//! 150,000 inputs or a shape of a million dimensions is refused before anything is built from it.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::Error;
use crate::tensor::limits::Limits;

/// Checks the request JSON `body` against `limits`. Only a limit is reported: a body that is not a well-formed
/// request passes (the parser that follows gives the error it always gave).
pub fn check_request_limits(body: &[u8], limits: &Limits) -> Result<(), Error> {
    let refused = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Request {
        limits,
        refused: &refused,
    }
    .deserialize(&mut de);
    match refused.into_inner() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The request's top-level keys that the check reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Inputs,
    Outputs,
    #[serde(other)]
    Other,
}

/// The keys of an input object that the check reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum InputKey {
    Name,
    Shape,
    #[serde(other)]
    Other,
}

/// Where a refusal is kept: serde's own error would carry a position, and any other error is not ours to give.
#[derive(Clone, Copy)]
struct Request<'l> {
    limits: &'l Limits,
    refused: &'l RefCell<Option<Error>>,
}

impl Request<'_> {
    fn refuse<E: de::Error>(&self, error: Error) -> E {
        *self.refused.borrow_mut() = Some(error);
        E::custom("over a limit")
    }
}

impl<'de> DeserializeSeed<'de> for Request<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Request<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inference request")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Inputs => map.next_value_seed(Inputs(self))?,
                Key::Outputs => {
                    let count = map.next_value_seed(Count)?;
                    if let Err(e) = self.limits.check_tensor_count("requested outputs", count) {
                        return Err(self.refuse(e));
                    }
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `inputs` array: counted, stopping at the first input over the limit; each input's rank checked.
struct Inputs<'l>(Request<'l>);

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of inputs")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let request = self.0;
        let mut count = 0;
        while let Some(input) = seq.next_element_seed(Input)? {
            count += 1;
            if let Err(e) = request.limits.check_tensor_count("inputs", count) {
                return Err(request.refuse(e));
            }
            let name = input.name.unwrap_or("(unnamed)");
            if let Err(e) = request.limits.check_rank(name, input.rank) {
                return Err(request.refuse(e));
            }
        }
        Ok(())
    }
}

/// What the check reads of one input: its name (when it needs no unescaping) and its shape's rank.
struct InputSeen<'de> {
    name: Option<&'de str>,
    rank: usize,
}

struct Input;

impl<'de> DeserializeSeed<'de> for Input {
    type Value = InputSeen<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Input {
    type Value = InputSeen<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = InputSeen {
            name: None,
            rank: 0,
        };
        while let Some(key) = map.next_key::<InputKey>()? {
            match key {
                InputKey::Name => seen.name = map.next_value::<BorrowedName<'de>>()?.0,
                InputKey::Shape => seen.rank = map.next_value_seed(Count)?,
                InputKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(seen)
    }
}

/// A string borrowed from the body (`None` when it has escapes, or is not a string): no allocation.
struct BorrowedName<'de>(Option<&'de str>);

impl<'de> Deserialize<'de> for BorrowedName<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedName(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BorrowedName(None))
            }
        }
        d.deserialize_str(V)
    }
}

/// The number of elements of an array (0 for `null`), each skipped unread.
struct Count;

impl<'de> DeserializeSeed<'de> for Count {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_tensors: 3,
            max_rank: 2,
            ..Limits::default()
        }
    }

    fn check(body: &str) -> Result<(), String> {
        check_request_limits(body.as_bytes(), &limits()).map_err(|e| e.to_string())
    }

    #[test]
    fn counts_inputs_and_outputs() {
        let input = r#"{"name":"x","shape":[1],"datatype":"FP32","data":[1]}"#;
        assert_eq!(
            check(&format!(r#"{{"inputs":[{input},{input},{input}]}}"#)),
            Ok(())
        );
        let e = check(&format!(
            r#"{{"inputs":[{input},{input},{input},{input}]}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("more than 3 inputs") && e.contains("max_tensors_per_request"),
            "{e}"
        );
        let outputs = r#"[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]"#;
        let e = check(&format!(r#"{{"outputs":{outputs},"inputs":[]}}"#)).unwrap_err();
        assert!(e.contains("more than 3 requested outputs"), "{e}");
        assert_eq!(check(r#"{"outputs":null,"inputs":[]}"#), Ok(()));
    }

    #[test]
    fn stops_at_the_first_input_over_the_limit() {
        // The body is cut after the fourth input: a check that read on would see the syntax error instead.
        let e = check(r#"{"inputs":[{},{},{},{}, garbage"#).unwrap_err();
        assert!(e.contains("max_tensors_per_request"), "{e}");
    }

    #[test]
    fn checks_the_rank_naming_the_input() {
        assert_eq!(check(r#"{"inputs":[{"shape":[1,2],"name":"x"}]}"#), Ok(()));
        let e = check(r#"{"inputs":[{"shape":[1,2,3],"name":"x"}]}"#).unwrap_err();
        assert!(e.contains("'x'") && e.contains("max_shape_rank"), "{e}");
        let e = check(r#"{"inputs":[{"name":"y\n","shape":[1,2,3]}]}"#).unwrap_err();
        assert!(e.contains("(unnamed)"), "{e}");
    }

    #[test]
    fn malformed_bodies_are_left_to_the_parser() {
        for body in [
            "",
            "[]",
            "{",
            r#"{"inputs":5}"#,
            r#"{"inputs":[{"shape":"x"}]}"#,
        ] {
            assert_eq!(check(body), Ok(()), "{body}");
        }
    }
}
