//! The JSON wire format of tensor `data`: decoded straight from the request bytes into the typed buffer, flat or nested,
//! and serialised straight from the typed buffer (no serde_json::Value tree either way).

pub mod envelope;
pub mod limits;
pub mod rope;
pub mod scan;

use std::fmt;
use std::ops::Range;

use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use self::envelope::InputHead;
use self::rope::Rope;
use self::scan::{read_numbers, read_numbers_in, Decimal, Number};
use crate::error::Error;
use crate::match_number_type;
use crate::tensor::{BytesBuf, DataType, TensorData};

/// Decodes a tensor's JSON `data` (flat or nested to any depth) into a buffer of `datatype`.
/// `expected` is the shape's element count: more or fewer elements are an error naming the tensor.
pub fn decode_data(
    name: &str,
    datatype: DataType,
    expected: usize,
    raw: &RawValue,
) -> Result<TensorData, Error> {
    // Every JSON element takes at least two bytes ("1,"), so this bounds the allocation by the body size.
    let capacity = expected.min(raw.get().len() / 2 + 1);
    let wrap = |e| data_error(name, datatype, e);
    let data = match_number_type!(datatype,
        variant => variant(decode_scalars(raw, capacity, expected).map_err(wrap)?),
        DataType::Bool => TensorData::Bool(decode_scalars(raw, capacity, expected).map_err(wrap)?),
        DataType::Bytes => {
            let mut out = BytesBuf::with_capacity(capacity, raw.get().len());
            let mut de = serde_json::Deserializer::from_str(raw.get());
            Flatten {
                sink: &mut BytesSink(&mut out),
                limit: expected,
            }
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(wrap)?;
            TensorData::Bytes(out)
        }
    );
    if data.len() != expected {
        return Err(Error::InvalidInput(format!(
            "input '{name}' has {} elements in data but its shape needs {expected}",
            data.len()
        )));
    }
    Ok(data)
}

/// Decodes a tensor's `data` given as its range of the request body (found by the envelope scan,
/// [`envelope`]): numeric arrays through the fast number reader, anything else (and every error) through
/// [`decode_data`], so answers and messages are the same either way.
pub fn decode_data_text(
    name: &str,
    datatype: DataType,
    expected: usize,
    body: &Rope<'_>,
    range: Range<usize>,
) -> Result<TensorData, Error> {
    if let Some((data, _)) =
        read_fast(datatype, expected, body, range.clone()).filter(|(_, end)| *end == range.end)
    {
        return Ok(data);
    }
    let text = body.slice(range);
    let raw: &RawValue =
        serde_json::from_slice(&text).map_err(|e| data_error(name, datatype, e))?;
    decode_data(name, datatype, expected, raw)
}

/// A serde error in an input's `data`, naming the input, without serde's position in the data text.
fn data_error(name: &str, datatype: DataType, e: serde_json::Error) -> Error {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    Error::InvalidInput(format!("input '{name}' ({datatype}): {msg}"))
}

/// Reads the numeric array at `range.start` as `datatype`; `None` unless it has exactly `expected` elements and
/// ends no later than `range.end`. Returns the values and where the array ends.
fn read_fast(
    datatype: DataType,
    expected: usize,
    body: &Rope<'_>,
    range: Range<usize>,
) -> Option<(TensorData, usize)> {
    let capacity = expected.min(range.len() / 2 + 1);
    let (data, end) = match_number_type!(datatype,
        variant => read_values(body, range, capacity, expected).map(|(v, end)| (variant(v), end)),
        DataType::Bool | DataType::Bytes => None,
    )?;
    (data.len() == expected).then_some((data, end))
}

fn read_values<T: JsonScalar>(
    body: &Rope<'_>,
    range: Range<usize>,
    capacity: usize,
    limit: usize,
) -> Option<(Vec<T>, usize)> {
    let mut out = Vec::with_capacity(capacity);
    // Inlined: a call per element would pass each number through memory.
    let (_, end) = read_numbers_in(
        body,
        range,
        limit,
        #[inline(always)]
        |n| push_number(&mut out, n),
    )?;
    Some((out, end))
}

/// An input's `data` as read during the envelope scan, and the datatype it was read as.
pub struct EarlyData {
    pub datatype: DataType,
    pub data: TensorData,
}

/// Reads an input's `data` during the envelope scan, when its datatype and shape came before it (as V2 clients
/// write them): one pass over the numbers instead of a skip then a read. Returns the values (as many as the shape
/// asks, else `None`) and where the array ends. A shape of more than `max_elements` elements is not read here
/// (the limit check that follows refuses it, without the values having been read).
pub fn read_data_early(
    head: &InputHead<'_>,
    body: &Rope<'_>,
    start: usize,
    max_elements: usize,
) -> Option<(EarlyData, usize)> {
    let datatype = DataType::parse(std::str::from_utf8(head.datatype.as_deref()?).ok()?)?;
    let mut expected = 1usize;
    read_numbers(head.shape.as_deref()?, 64, |n| match n {
        Number::U64(d) => {
            expected = expected.checked_mul(usize::try_from(d).ok()?)?;
            Some(())
        }
        _ => None,
    })?;
    if expected > max_elements {
        return None;
    }
    let (data, end) = read_fast(datatype, expected, body, start..body.len())?;
    Some((EarlyData { datatype, data }, end))
}

#[inline(always)]
fn push_number<T: JsonScalar>(out: &mut Vec<T>, n: Number<'_>) -> Option<()> {
    out.push(match n {
        Number::U64(v) => T::from_u64(v)?,
        Number::I64(v) => T::from_i64(v)?,
        Number::Decimal(d) => T::from_decimal(&d)?,
        Number::Null => T::from_null()?,
    });
    Some(())
}

fn decode_scalars<T: JsonScalar>(
    raw: &RawValue,
    capacity: usize,
    limit: usize,
) -> serde_json::Result<Vec<T>> {
    let mut out = Vec::with_capacity(capacity);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Flatten {
        sink: &mut ScalarSink(&mut out),
        limit,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// A typed element that can be read from a JSON scalar.
trait JsonScalar: Sized {
    const NAME: &'static str;
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(v: i64) -> Option<Self>;
    fn from_u64(v: u64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
    /// A fraction/exponent literal from the fast reader (through the correctly rounded f64 unless overridden).
    #[inline(always)]
    fn from_decimal(d: &Decimal<'_>) -> Option<Self> {
        Self::from_f64(d.to_f64()?)
    }
    /// MLServer reads `null` as NaN for the float types.
    fn from_null() -> Option<Self> {
        None
    }
    /// A string element: the float types read the names of the non-finite values (see [`non_finite`]).
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    /// Float types refuse only numbers beyond their range; the message says so.
    const FLOAT: bool = false;
}

/// The value a string names when it is one of the non-finite floats oxinfer writes (`"NaN"`, `"Infinity"`,
/// `"-Infinity"`), or another spelling that Python's `float()` and numpy read (`nan`, `inf`, `+inf`, any case).
pub fn non_finite(text: &str) -> Option<f64> {
    let (negative, word) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if word.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("infinity") {
        f64::INFINITY
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

macro_rules! int_scalar {
    ($t:ty, $name:literal) => {
        impl JsonScalar for $t {
            const NAME: &'static str = $name;
            fn from_bool(v: bool) -> Option<Self> {
                Some(v as u8 as $t)
            }
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                // Integral floats (1.0) are accepted, as numpy's astype does; fractions are not.
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
}
int_scalar!(u8, "UINT8");
int_scalar!(u16, "UINT16");
int_scalar!(u32, "UINT32");
int_scalar!(u64, "UINT64");
int_scalar!(i8, "INT8");
int_scalar!(i16, "INT16");
int_scalar!(i32, "INT32");
int_scalar!(i64, "INT64");

// A finite number that rounds to infinity in the tensor's type (1e39 as FP32, 70000 as FP16) is refused rather
// than silently becoming infinite; infinities and NaN are written as strings (see [`non_finite`]).
macro_rules! float_scalar {
    ($t:ty, $name:literal, $conv:expr $(, $decimal:expr)?) => {
        impl JsonScalar for $t {
            const NAME: &'static str = $name;
            const FLOAT: bool = true;
            fn from_i64(v: i64) -> Option<Self> {
                <Self as JsonScalar>::from_f64(v as f64)
            }
            fn from_u64(v: u64) -> Option<Self> {
                <Self as JsonScalar>::from_f64(v as f64)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Option<Self> {
                let out: $t = $conv(v);
                (out.is_finite() || !v.is_finite()).then_some(out)
            }
            $(#[inline(always)]
            fn from_decimal(d: &Decimal<'_>) -> Option<Self> {
                $decimal(d).filter(|v: &$t| v.is_finite())
            })?
            fn from_null() -> Option<Self> {
                Some($conv(f64::NAN))
            }
            fn from_str(text: &str) -> Option<Self> {
                non_finite(text).map($conv)
            }
        }
    };
}
float_scalar!(f32, "FP32", |v: f64| v as f32, Decimal::to_f32);
float_scalar!(f64, "FP64", |v: f64| v);
float_scalar!(f16, "FP16", f16::from_f64);
float_scalar!(bf16, "BF16", bf16::from_f64);

impl JsonScalar for bool {
    const NAME: &'static str = "BOOL";
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
    fn from_i64(v: i64) -> Option<Self> {
        match v {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn from_u64(v: u64) -> Option<Self> {
        Self::from_i64(v.min(2) as i64)
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
}

/// Where decoded elements go.
trait Sink {
    fn len(&self) -> usize;
    fn push_bool<E: de::Error>(&mut self, v: bool) -> Result<(), E>;
    fn push_i64<E: de::Error>(&mut self, v: i64) -> Result<(), E>;
    fn push_u64<E: de::Error>(&mut self, v: u64) -> Result<(), E>;
    fn push_f64<E: de::Error>(&mut self, v: f64) -> Result<(), E>;
    fn push_str<E: de::Error>(&mut self, v: &str) -> Result<(), E>;
    fn push_null<E: de::Error>(&mut self) -> Result<(), E>;
}

struct ScalarSink<'a, T>(&'a mut Vec<T>);

fn bad<T: JsonScalar, E: de::Error>(what: fmt::Arguments<'_>) -> E {
    E::custom(format!("{what} is not a valid {} value", T::NAME))
}

/// A number refused by `T`: out of range for a float type (which takes every other number), else not valid.
fn bad_number<T: JsonScalar, E: de::Error>(v: f64) -> E {
    if T::FLOAT {
        E::custom(format!(
            "{v:e} is out of range for {} (a finite number beyond its largest value)",
            T::NAME
        ))
    } else {
        bad::<T, E>(format_args!("{v}"))
    }
}

impl<T: JsonScalar> Sink for ScalarSink<'_, T> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push_bool<E: de::Error>(&mut self, v: bool) -> Result<(), E> {
        self.0
            .push(T::from_bool(v).ok_or_else(|| bad::<T, E>(format_args!("{v}")))?);
        Ok(())
    }
    fn push_i64<E: de::Error>(&mut self, v: i64) -> Result<(), E> {
        let refused = || match T::FLOAT {
            true => bad_number::<T, E>(v as f64),
            false => bad::<T, E>(format_args!("{v}")),
        };
        self.0.push(T::from_i64(v).ok_or_else(refused)?);
        Ok(())
    }
    fn push_u64<E: de::Error>(&mut self, v: u64) -> Result<(), E> {
        let refused = || match T::FLOAT {
            true => bad_number::<T, E>(v as f64),
            false => bad::<T, E>(format_args!("{v}")),
        };
        self.0.push(T::from_u64(v).ok_or_else(refused)?);
        Ok(())
    }
    fn push_f64<E: de::Error>(&mut self, v: f64) -> Result<(), E> {
        self.0
            .push(T::from_f64(v).ok_or_else(|| bad_number::<T, E>(v))?);
        Ok(())
    }
    fn push_str<E: de::Error>(&mut self, v: &str) -> Result<(), E> {
        let shown: String = v.chars().take(32).collect();
        self.0
            .push(T::from_str(v).ok_or_else(|| bad::<T, E>(format_args!("string {shown:?}")))?);
        Ok(())
    }
    fn push_null<E: de::Error>(&mut self) -> Result<(), E> {
        self.0
            .push(T::from_null().ok_or_else(|| bad::<T, E>(format_args!("null")))?);
        Ok(())
    }
}

struct BytesSink<'a>(&'a mut BytesBuf);

impl Sink for BytesSink<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push_bool<E: de::Error>(&mut self, v: bool) -> Result<(), E> {
        Err(E::custom(format!(
            "{v} is not a string (BYTES elements are JSON strings)"
        )))
    }
    fn push_i64<E: de::Error>(&mut self, v: i64) -> Result<(), E> {
        Err(E::custom(format!(
            "{v} is not a string (BYTES elements are JSON strings)"
        )))
    }
    fn push_u64<E: de::Error>(&mut self, v: u64) -> Result<(), E> {
        Err(E::custom(format!(
            "{v} is not a string (BYTES elements are JSON strings)"
        )))
    }
    fn push_f64<E: de::Error>(&mut self, v: f64) -> Result<(), E> {
        Err(E::custom(format!(
            "{v} is not a string (BYTES elements are JSON strings)"
        )))
    }
    fn push_str<E: de::Error>(&mut self, v: &str) -> Result<(), E> {
        self.0.push(v.as_bytes());
        Ok(())
    }
    fn push_null<E: de::Error>(&mut self) -> Result<(), E> {
        Err(E::custom(
            "null is not a string (BYTES elements are JSON strings)",
        ))
    }
}

/// Visits a JSON value, descending into arrays, pushing each scalar into the sink.
struct Flatten<'s, S> {
    sink: &'s mut S,
    limit: usize,
}

impl<S: Sink> Flatten<'_, S> {
    fn room<E: de::Error>(&self) -> Result<(), E> {
        if self.sink.len() >= self.limit {
            Err(E::custom(format!(
                "data has more elements than the shape's {}",
                self.limit
            )))
        } else {
            Ok(())
        }
    }
}

impl<'de, S: Sink> DeserializeSeed<'de> for Flatten<'_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for Flatten<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tensor elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let limit = self.limit;
        while seq
            .next_element_seed(Flatten {
                sink: &mut *self.sink,
                limit,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.room()?;
        self.sink.push_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.room()?;
        self.sink.push_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.room()?;
        self.sink.push_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.room()?;
        self.sink.push_f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.room()?;
        self.sink.push_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.room()?;
        self.sink.push_null()
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(de::Error::custom(
            "data must be an array of elements, not an object",
        ))
    }
}

/// A float element: a JSON number when finite, else the string `"NaN"`, `"Infinity"` or `"-Infinity"` (valid
/// JSON, allowed by the protocol's `tensor_data` schema, and read back to the same value by numpy's
/// `np.array(data, dtype)`, which tritonclient, kserve and MLServer's codecs use; `null` would read back as NaN
/// for an infinity too).
struct Float<T>(T);

impl<T: float_json::FloatLike> Serialize for Float<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.finite() {
            v.serialize_finite(serializer)
        } else if v.nan() {
            serializer.serialize_str("NaN")
        } else if v.negative() {
            serializer.serialize_str("-Infinity")
        } else {
            serializer.serialize_str("Infinity")
        }
    }
}

/// The two float widths written as JSON.
mod float_json {
    use serde::Serializer;

    pub trait FloatLike: Copy {
        fn finite(self) -> bool;
        fn nan(self) -> bool;
        fn negative(self) -> bool;
        fn serialize_finite<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error>;
    }

    macro_rules! float_like {
        ($t:ty, $method:ident) => {
            impl FloatLike for $t {
                fn finite(self) -> bool {
                    self.is_finite()
                }
                fn nan(self) -> bool {
                    self.is_nan()
                }
                fn negative(self) -> bool {
                    self.is_sign_negative()
                }
                fn serialize_finite<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
                    s.$method(self)
                }
            }
        };
    }
    float_like!(f32, serialize_f32);
    float_like!(f64, serialize_f64);
}

/// Serialises a tensor's elements as a flat JSON array. BYTES elements are JSON strings: as text when every
/// element is UTF-8, else every element base64-encoded (MLServer's `base64` content type; see [`JsonData::base64`]).
pub struct JsonData<'a> {
    data: &'a TensorData,
    base64: bool,
}

impl<'a> JsonData<'a> {
    /// Chooses the encoding: base64 for a BYTES tensor with an element that is not valid UTF-8.
    pub fn new(data: &'a TensorData) -> Self {
        let base64 = match data {
            TensorData::Bytes(b) => b.iter().any(|e| std::str::from_utf8(e).is_err()),
            _ => false,
        };
        JsonData { data, base64 }
    }

    /// Whether the elements are written base64-encoded: the output's `content_type` must then say `base64`.
    pub fn base64(&self) -> bool {
        self.base64
    }
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.data {
            TensorData::Bool(v) => serializer.collect_seq(v),
            TensorData::Uint8(v) => serializer.collect_seq(v),
            TensorData::Uint16(v) => serializer.collect_seq(v),
            TensorData::Uint32(v) => serializer.collect_seq(v),
            TensorData::Uint64(v) => serializer.collect_seq(v),
            TensorData::Int8(v) => serializer.collect_seq(v),
            TensorData::Int16(v) => serializer.collect_seq(v),
            TensorData::Int32(v) => serializer.collect_seq(v),
            TensorData::Int64(v) => serializer.collect_seq(v),
            TensorData::Fp16(v) => serializer.collect_seq(v.iter().map(|x| Float(x.to_f32()))),
            TensorData::Bf16(v) => serializer.collect_seq(v.iter().map(|x| Float(x.to_f32()))),
            TensorData::Fp32(v) => serializer.collect_seq(v.iter().map(|&x| Float(x))),
            TensorData::Fp64(v) => serializer.collect_seq(v.iter().map(|&x| Float(x))),
            TensorData::Bytes(b) if self.base64 => {
                // Each element is encoded as it is written: no String per element.
                let engine = &base64::engine::general_purpose::STANDARD;
                serializer.collect_seq(b.iter().map(|e| Base64Element(e, engine)))
            }
            TensorData::Bytes(b) => {
                let mut seq = serializer.serialize_seq(Some(b.len()))?;
                for element in b.iter() {
                    // `new` found every element valid UTF-8; a lossy read is never taken.
                    seq.serialize_element(&String::from_utf8_lossy(element))?;
                }
                seq.end()
            }
        }
    }
}

impl<'a> JsonData<'a> {
    /// Element `index` alone, written as the flat array writes it (KServe V1 nests elements into rows).
    pub fn element(&self, index: usize) -> JsonElement<'_> {
        JsonElement(self, index)
    }
}

/// One element of a [`JsonData`]; an index past the end is a serialisation error, never a panic.
pub struct JsonElement<'a>(&'a JsonData<'a>, usize);

impl Serialize for JsonElement<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let missing = || serde::ser::Error::custom("element index past the end of the tensor");
        let i = self.1;
        match self.0.data {
            TensorData::Fp16(v) => {
                Float(v.get(i).ok_or_else(missing)?.to_f32()).serialize(serializer)
            }
            TensorData::Bf16(v) => {
                Float(v.get(i).ok_or_else(missing)?.to_f32()).serialize(serializer)
            }
            TensorData::Fp32(v) => Float(*v.get(i).ok_or_else(missing)?).serialize(serializer),
            TensorData::Fp64(v) => Float(*v.get(i).ok_or_else(missing)?).serialize(serializer),
            TensorData::Bytes(b) => {
                if i >= b.len() {
                    return Err(missing());
                }
                if self.0.base64 {
                    let engine = &base64::engine::general_purpose::STANDARD;
                    Base64Element(b.get(i), engine).serialize(serializer)
                } else {
                    serializer.serialize_str(&String::from_utf8_lossy(b.get(i)))
                }
            }
            TensorData::Bool(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Uint8(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Uint16(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Uint32(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Uint64(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Int8(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Int16(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Int32(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
            TensorData::Int64(v) => v.get(i).ok_or_else(missing)?.serialize(serializer),
        }
    }
}

/// One element as a base64 JSON string.
struct Base64Element<'a>(&'a [u8], &'a base64::engine::GeneralPurpose);

impl Serialize for Base64Element<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(self.0, self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn nested_and_flat_decode_the_same() {
        let flat = decode_data("x", DataType::Fp32, 4, &raw("[1,2,3,4]")).unwrap();
        let nested = decode_data("x", DataType::Fp32, 4, &raw("[[1,2],[3,4]]")).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat, TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn non_finite_names_read_as_floats_only() {
        match decode_data(
            "x",
            DataType::Fp32,
            4,
            &raw(r#"["NaN", "Infinity", "-Infinity", "-inf"]"#),
        )
        .unwrap()
        {
            TensorData::Fp32(v) => {
                assert!(v[0].is_nan());
                assert_eq!(
                    &v[1..],
                    &[f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY]
                );
            }
            other => panic!("{other:?}"),
        }
        match decode_data("x", DataType::Fp16, 2, &raw(r#"[1, "infinity"]"#)).unwrap() {
            TensorData::Fp16(v) => assert_eq!(v[1], f16::INFINITY),
            other => panic!("{other:?}"),
        }
        assert!(decode_data("x", DataType::Int32, 1, &raw(r#"["NaN"]"#)).is_err());
        assert!(decode_data("x", DataType::Fp64, 1, &raw(r#"["Infinityy"]"#)).is_err());
    }

    #[test]
    fn finite_numbers_beyond_a_float_type_are_refused() {
        for (datatype, text) in [
            (DataType::Fp32, "[1e39]"),
            (DataType::Fp32, "[1.0, -3.5e38]"),
            (DataType::Fp16, "[70000]"),
            (DataType::Fp16, "[65520.0]"),
            (DataType::Bf16, "[1e39]"),
        ] {
            let count = text.matches(',').count() + 1;
            let e = decode_data("big", datatype, count, &raw(text))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("'big'") && e.contains("out of range"),
                "{text}: {e}"
            );
        }
        // The largest finite values themselves are kept, and so is FP64's whole range.
        assert!(decode_data("x", DataType::Fp32, 1, &raw("[3.4028235e38]")).is_ok());
        assert!(decode_data("x", DataType::Fp16, 1, &raw("[65504]")).is_ok());
        assert!(decode_data("x", DataType::Fp64, 1, &raw("[1e308]")).is_ok());
    }

    #[test]
    fn null_is_nan_for_floats_only() {
        match decode_data("x", DataType::Fp64, 2, &raw("[null, 1.5]")).unwrap() {
            TensorData::Fp64(v) => assert!(v[0].is_nan() && v[1] == 1.5),
            other => panic!("{other:?}"),
        }
        assert!(decode_data("x", DataType::Int32, 1, &raw("[null]")).is_err());
    }

    #[test]
    fn integers_are_range_checked() {
        let err = decode_data("x", DataType::Uint8, 1, &raw("[256]")).unwrap_err();
        assert!(err.to_string().contains("input 'x'"), "{err}");
        assert!(decode_data("x", DataType::Int8, 1, &raw("[-129]")).is_err());
        assert!(decode_data("x", DataType::Int32, 1, &raw("[1.5]")).is_err());
        assert_eq!(
            decode_data("x", DataType::Int32, 1, &raw("[2.0]")).unwrap(),
            TensorData::Int32(vec![2])
        );
        assert_eq!(
            decode_data("x", DataType::Uint64, 1, &raw("[18446744073709551615]")).unwrap(),
            TensorData::Uint64(vec![u64::MAX])
        );
    }

    #[test]
    fn counts_must_match() {
        let err = decode_data("x", DataType::Fp32, 3, &raw("[1,2]")).unwrap_err();
        assert!(err.to_string().contains("needs 3"), "{err}");
        let err = decode_data("x", DataType::Fp32, 1, &raw("[1,2]")).unwrap_err();
        assert!(err.to_string().contains("more elements"), "{err}");
    }

    #[test]
    fn bytes_are_strings() {
        let d = decode_data("s", DataType::Bytes, 2, &raw(r#"["a\u00e9", "b"]"#)).unwrap();
        match d {
            TensorData::Bytes(b) => {
                assert_eq!(b.get(0), "aé".as_bytes());
                assert_eq!(b.get(1), b"b");
            }
            other => panic!("{other:?}"),
        }
        assert!(decode_data("s", DataType::Bytes, 1, &raw("[1]")).is_err());
    }

    #[test]
    fn bytes_serialise_as_text_or_all_base64() {
        let text: BytesBuf = [b"a\x00b".as_slice(), b"", "é".as_bytes()]
            .into_iter()
            .collect();
        let data = TensorData::Bytes(text);
        let json = JsonData::new(&data);
        assert!(!json.base64());
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"["a\u0000b","","é"]"#
        );
        let binary: BytesBuf = [b"\xff\xfe".as_slice(), b"", b"a\x00b\x80", b"ok"]
            .into_iter()
            .collect();
        let data = TensorData::Bytes(binary);
        let json = JsonData::new(&data);
        assert!(json.base64());
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"["//4=","","YQBigA==","b2s="]"#
        );
    }

    #[test]
    fn serialises_flat() {
        let s = serde_json::to_string(&JsonData::new(&TensorData::Fp32(vec![
            0.1,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ])))
        .unwrap();
        assert_eq!(s, r#"[0.1,"NaN","Infinity","-Infinity"]"#);
        let s =
            serde_json::to_string(&JsonData::new(&TensorData::Fp64(vec![-0.0, f64::NAN]))).unwrap();
        assert_eq!(s, r#"[-0.0,"NaN"]"#);
        let s = serde_json::to_string(&JsonData::new(&TensorData::Fp16(vec![f16::from_f32(0.5)])))
            .unwrap();
        assert_eq!(s, "[0.5]");
    }
}
