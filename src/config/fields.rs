//! The field names of a settings struct, as serde reads them: the one list of known names is the struct itself.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The JSON names of `T`'s fields (`#[serde(skip)]` ones left out), read from its derived `Deserialize`.
pub fn serde_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    // The probe answers every request with an error; a derived struct asks for `deserialize_struct` first,
    // naming its fields, which is all that is wanted here.
    let _ = T::deserialize(Probe(&mut fields));
    fields.unwrap_or(&[])
}

/// A deserializer that records the field names a struct asks for, then stops.
struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Example {
        a: u8,
        #[serde(rename = "bee")]
        b: String,
        #[serde(skip)]
        c: u8,
    }

    #[test]
    fn names_come_from_serde() {
        assert_eq!(serde_fields::<Example>(), ["a", "bee"]);
        assert!(serde_fields::<u8>().is_empty());
    }
}
