//! The transport-independent tensor: a V2 datatype, a shape and one typed buffer; codecs live in submodules.

pub mod batch;
pub mod binary;
pub mod limits;
pub mod lookup;

use half::{bf16, f16};
use std::fmt;

use crate::error::{shape_text, short, Error};
use limits::Limits;

/// Request/response/tensor parameters: a small JSON map (MLServer allows nested values such as `headers`).
pub type Parameters = serde_json::Map<String, serde_json::Value>;

/// The Open Inference Protocol datatypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Bf16,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    /// Every datatype, in the order the protocol lists them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The wire name, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a wire name (case-sensitive, as the protocol spells it).
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Size in bytes of one element; `None` for BYTES (variable).
    pub fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }
}

impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// BYTES elements stored flat: element `i` is `data[offsets[i]..offsets[i + 1]]` (no allocation per element).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BytesBuf {
    data: Vec<u8>,
    offsets: Vec<usize>,
}

impl BytesBuf {
    /// An empty buffer with room for `elements` elements and `bytes` bytes.
    pub fn with_capacity(elements: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(elements + 1);
        offsets.push(0);
        BytesBuf {
            data: Vec::with_capacity(bytes),
            offsets,
        }
    }

    /// A buffer from its parts: element `i` is `data[offsets[i]..offsets[i + 1]]`. `None` unless the offsets start
    /// at 0, never decrease and end at `data.len()`.
    pub fn from_parts(data: Vec<u8>, offsets: Vec<usize>) -> Option<Self> {
        let well_formed = offsets.first() == Some(&0)
            && offsets.last() == Some(&data.len())
            && offsets.windows(2).all(|w| w[0] <= w[1]);
        well_formed.then_some(BytesBuf { data, offsets })
    }

    /// Appends one element.
    pub fn push(&mut self, element: &[u8]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(element);
        self.offsets.push(self.data.len());
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

impl<'a> FromIterator<&'a [u8]> for BytesBuf {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut buf = BytesBuf::with_capacity(0, 0);
        for element in iter {
            buf.push(element);
        }
        buf
    }
}

/// A tensor's elements, row-major, in one typed buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Bf16(Vec<bf16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(BytesBuf),
}

/// Calls `$body` with `$v` bound to the typed vector of a numeric/bool variant; `$bytes` for BYTES.
#[macro_export]
#[doc(hidden)]
macro_rules! match_tensor_data {
    ($data:expr, $v:ident => $body:expr, $b:ident => $bytes:expr) => {
        match $data {
            $crate::tensor::TensorData::Bool($v) => $body,
            $crate::tensor::TensorData::Uint8($v) => $body,
            $crate::tensor::TensorData::Uint16($v) => $body,
            $crate::tensor::TensorData::Uint32($v) => $body,
            $crate::tensor::TensorData::Uint64($v) => $body,
            $crate::tensor::TensorData::Int8($v) => $body,
            $crate::tensor::TensorData::Int16($v) => $body,
            $crate::tensor::TensorData::Int32($v) => $body,
            $crate::tensor::TensorData::Int64($v) => $body,
            $crate::tensor::TensorData::Fp16($v) => $body,
            $crate::tensor::TensorData::Bf16($v) => $body,
            $crate::tensor::TensorData::Fp32($v) => $body,
            $crate::tensor::TensorData::Fp64($v) => $body,
            $crate::tensor::TensorData::Bytes($b) => $bytes,
        }
    };
}

/// A `match` on a [`DataType`] whose twelve number arms (all but BOOL and BYTES) evaluate `$body` with `$variant`
/// bound to the [`TensorData`] constructor of that type (the element type follows from it); the arms for BOOL and
/// BYTES come after, written by the caller.
#[macro_export]
#[doc(hidden)]
macro_rules! match_number_type {
    ($datatype:expr, $variant:ident => $body:expr, $($rest:tt)*) => {
        match $datatype {
            $crate::tensor::DataType::Uint8 => { let $variant = $crate::tensor::TensorData::Uint8; $body }
            $crate::tensor::DataType::Uint16 => { let $variant = $crate::tensor::TensorData::Uint16; $body }
            $crate::tensor::DataType::Uint32 => { let $variant = $crate::tensor::TensorData::Uint32; $body }
            $crate::tensor::DataType::Uint64 => { let $variant = $crate::tensor::TensorData::Uint64; $body }
            $crate::tensor::DataType::Int8 => { let $variant = $crate::tensor::TensorData::Int8; $body }
            $crate::tensor::DataType::Int16 => { let $variant = $crate::tensor::TensorData::Int16; $body }
            $crate::tensor::DataType::Int32 => { let $variant = $crate::tensor::TensorData::Int32; $body }
            $crate::tensor::DataType::Int64 => { let $variant = $crate::tensor::TensorData::Int64; $body }
            $crate::tensor::DataType::Fp16 => { let $variant = $crate::tensor::TensorData::Fp16; $body }
            $crate::tensor::DataType::Bf16 => { let $variant = $crate::tensor::TensorData::Bf16; $body }
            $crate::tensor::DataType::Fp32 => { let $variant = $crate::tensor::TensorData::Fp32; $body }
            $crate::tensor::DataType::Fp64 => { let $variant = $crate::tensor::TensorData::Fp64; $body }
            $($rest)*
        }
    };
}

impl TensorData {
    /// The datatype of these elements.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Bf16(_) => DataType::Bf16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match_tensor_data!(self, v => v.len(), b => b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named tensor, as carried by a request or a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Dimensions, all non-negative; their product equals the element count.
    shape: Vec<usize>,
    data: TensorData,
    pub parameters: Parameters,
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Tensor, Error> {
        let name = name.into();
        check_count(&name, &shape, data.len())?;
        Ok(Tensor {
            name,
            shape,
            data,
            parameters: Parameters::new(),
        })
    }

    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// The dimensions (their product is the element count).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The elements, giving up the tensor.
    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// The name, shape, elements and parameters, giving up the tensor.
    pub fn into_parts(self) -> (String, Vec<usize>, TensorData, Parameters) {
        (self.name, self.shape, self.data, self.parameters)
    }

    /// The same tensor with `parameters`.
    pub fn with_parameters(mut self, parameters: Parameters) -> Tensor {
        self.parameters = parameters;
        self
    }

    /// Replaces shape and elements together, checking that they agree (unchanged on error).
    pub fn set(&mut self, shape: Vec<usize>, data: TensorData) -> Result<(), Error> {
        check_count(&self.name, &shape, data.len())?;
        self.shape = shape;
        self.data = data;
        Ok(())
    }

    /// Replaces the elements with as many others (e.g. re-encoded BYTES), keeping the shape.
    pub fn set_data(&mut self, data: TensorData) -> Result<(), Error> {
        check_count(&self.name, &self.shape, data.len())?;
        self.data = data;
        Ok(())
    }

    /// Gives the same elements another shape with the same element count.
    pub fn reshape(&mut self, shape: Vec<usize>) -> Result<(), Error> {
        check_count(&self.name, &shape, self.data.len())?;
        self.shape = shape;
        Ok(())
    }
}

/// Checks that `shape` holds `len` elements.
fn check_count(name: &str, shape: &[usize], len: usize) -> Result<(), Error> {
    let expected = element_count(name, shape)?;
    if expected != len {
        return Err(Error::InvalidInput(format!(
            "tensor '{}' has {len} elements but shape {} needs {expected}",
            short(name),
            shape_text(shape)
        )));
    }
    Ok(())
}

/// The product of `shape`, or a clear error when it overflows.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize, Error> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "tensor '{}' shape {} is too large",
                short(name),
                shape_text(shape)
            ))
        })
}

/// Checks a wire tensor header (datatype name and signed shape), as every transport receives it, against the
/// per-request `limits` (rank, then elements, before anything is allocated for the data): returns the datatype,
/// the dimensions and the element count, or an error naming the input.
pub fn parse_wire_header(
    name: &str,
    datatype: &str,
    shape: &[i64],
    limits: &Limits,
) -> Result<(DataType, Vec<usize>, usize), Error> {
    let parsed = DataType::parse(datatype).ok_or_else(|| {
        Error::InvalidInput(format!(
            "input '{}' has unknown datatype '{}'",
            short(name),
            short(datatype)
        ))
    })?;
    limits.check_rank(name, shape.len())?;
    let dims = shape_from_wire(name, shape)?;
    let count = element_count(name, &dims)?;
    limits.check_elements(name, &dims, count)?;
    Ok((parsed, dims, count))
}

/// Converts a wire shape (signed) into dimensions, rejecting negative values.
pub fn shape_from_wire(name: &str, shape: &[i64]) -> Result<Vec<usize>, Error> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                Error::InvalidInput(format!(
                    "tensor '{}' has a negative dimension in shape {}",
                    short(name),
                    shape_text(shape)
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("FLOAT"), None);
    }

    #[test]
    fn bytes_buf_stores_elements_flat() {
        let b: BytesBuf = [b"ab".as_slice(), b"", b"xyz"].into_iter().collect();
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0), b"ab");
        assert_eq!(b.get(1), b"");
        assert_eq!(b.get(2), b"xyz");
        let parts = BytesBuf::from_parts(b"abxyz".to_vec(), vec![0, 2, 2, 5]).unwrap();
        assert_eq!(parts, b);
        assert!(BytesBuf::from_parts(b"ab".to_vec(), vec![0, 3]).is_none());
        assert!(BytesBuf::from_parts(b"ab".to_vec(), vec![0, 2, 1, 2]).is_none());
        assert!(BytesBuf::from_parts(Vec::new(), Vec::new()).is_none());
    }

    #[test]
    fn tensor_new_checks_count() {
        assert!(Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![1.0; 4])).is_ok());
        let err = Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![1.0; 4])).unwrap_err();
        assert!(err.to_string().contains("'x'"));
    }

    #[test]
    fn wire_header_is_checked_against_the_limits() {
        let limits = Limits {
            max_rank: 2,
            max_elements: 6,
            ..Limits::default()
        };
        assert_eq!(
            parse_wire_header("x", "FP32", &[2, 3], &limits).unwrap(),
            (DataType::Fp32, vec![2, 3], 6)
        );
        let e = parse_wire_header("x", "FP32", &[1, 1, 1], &limits).unwrap_err();
        assert!(e.to_string().contains("max_shape_rank"), "{e}");
        let e = parse_wire_header("x", "FP32", &[7], &limits).unwrap_err();
        assert!(e.to_string().contains("max_tensor_elements"), "{e}");
        // A huge rank is refused before the shape is converted, with a short message.
        let huge = vec![1i64; 1_000_000];
        let e = parse_wire_header("x", "FP32", &huge, &limits).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn overflowing_shape_is_an_error() {
        assert!(element_count("x", &[usize::MAX, 2]).is_err());
        assert!(shape_from_wire("x", &[1, -1]).is_err());
    }
}
