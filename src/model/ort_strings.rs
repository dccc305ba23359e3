//! ONNX Runtime string tensors filled and read by length, so that BYTES elements are any bytes (NUL, not UTF-8).
//!
//! ort's own string helpers go through C strings (`FillStringTensor`, which stops at a NUL) and Rust `String`s
//! (which must be UTF-8). ONNX Runtime itself keeps each element as a `std::string` with a length, so here the C
//! API is called directly: `GetResizedStringTensorElementBuffer` sizes each element and we copy its bytes in;
//! `GetStringTensorContent` copies every element into one buffer with offsets, which becomes a [`BytesBuf`] as is.
//! All of this module's `unsafe` is in this file.

use std::ffi::c_char;
use std::ptr::{self, NonNull};

use ort::memory::Allocator;
use ort::sys::{ONNXTensorElementDataType, OrtStatusPtr, OrtValue};
use ort::value::{DynValue, Value};
use ort::AsPointer;

use crate::tensor::BytesBuf;

/// Turns an ONNX Runtime status into a result; an error status is released by the `ort::Error` that owns it.
fn check(status: OrtStatusPtr) -> Result<(), ort::Error> {
    // SAFETY: `status` was just returned by an ONNX Runtime API call and is used nowhere else.
    unsafe { ort::Error::result_from_status(status) }
}

/// The number of elements of `shape`, or `None` if a dimension is negative or the product overflows.
fn count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

/// Builds an ONNX string tensor of `shape` whose element `i` is exactly `elements.get(i)`.
pub fn string_tensor(shape: &[i64], elements: &BytesBuf) -> Result<DynValue, ort::Error> {
    if count(shape) != Some(elements.len()) {
        return Err(ort::Error::new(format!(
            "{} strings do not fill shape {shape:?}",
            elements.len()
        )));
    }
    let api = ort::api();
    let allocator = Allocator::default();
    let mut raw: *mut OrtValue = ptr::null_mut();
    // SAFETY: the allocator is ONNX Runtime's default CPU allocator, alive for this call; `shape` points at
    // `shape.len()` dimensions; `raw` is a valid place for the out-pointer.
    check(unsafe {
        (api.CreateTensorAsOrtValue)(
            allocator.ptr().cast_mut(),
            shape.as_ptr(),
            shape.len(),
            ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING,
            &mut raw,
        )
    })?;
    let raw =
        NonNull::new(raw).ok_or_else(|| ort::Error::new("CreateTensorAsOrtValue gave no value"))?;
    // SAFETY: `raw` is a tensor we just created with `allocator` and own; the `Value` takes ownership and releases
    // it on drop, so every error path below frees it.
    let mut value: DynValue = unsafe { Value::from_ptr(raw, Some(&allocator)) };
    for (i, element) in elements.iter().enumerate() {
        if element.is_empty() {
            continue; // the tensor's strings start empty
        }
        let mut buffer: *mut c_char = ptr::null_mut();
        // SAFETY: `value` is a live string tensor of `elements.len()` elements and `i` is in range (ONNX Runtime
        // checks it too); `buffer` is a valid place for the out-pointer.
        check(unsafe {
            (api.GetResizedStringTensorElementBuffer)(
                value.ptr_mut(),
                i,
                element.len(),
                &mut buffer,
            )
        })?;
        if buffer.is_null() {
            return Err(ort::Error::new(
                "GetResizedStringTensorElementBuffer gave no buffer",
            ));
        }
        // SAFETY: ONNX Runtime resized element `i` to `element.len()` bytes and `buffer` points at them; they do
        // not overlap `element`, which lives in our own buffer.
        unsafe { ptr::copy_nonoverlapping(element.as_ptr(), buffer.cast::<u8>(), element.len()) };
    }
    Ok(value)
}

/// Copies every element of an ONNX string tensor (on the CPU) into one [`BytesBuf`], with no allocation per
/// element.
pub fn read_strings(value: &DynValue) -> Result<BytesBuf, ort::Error> {
    let shape = value
        .dtype()
        .tensor_shape()
        .ok_or_else(|| ort::Error::new("not a tensor"))?;
    let elements = count(shape).ok_or_else(|| ort::Error::new("string tensor with a bad shape"))?;
    if elements == 0 {
        return Ok(BytesBuf::with_capacity(0, 0));
    }
    let api = ort::api();
    let mut total = 0usize;
    // SAFETY: `value` is a live tensor for the duration of the call; `total` is a valid place for the length.
    check(unsafe { (api.GetStringTensorDataLength)(value.ptr(), &mut total) })?;
    let mut data = vec![0u8; total];
    // One slot more than there are elements: the end of the last element goes there.
    let mut offsets = vec![0usize; elements + 1];
    // SAFETY: `data` has room for `total` bytes and `offsets` for `elements` starts; ONNX Runtime checks that both
    // fit the tensor (a tensor that is not a string tensor is refused with an error status).
    check(unsafe {
        (api.GetStringTensorContent)(
            value.ptr(),
            data.as_mut_ptr().cast(),
            total,
            offsets.as_mut_ptr(),
            elements,
        )
    })?;
    offsets[elements] = total;
    BytesBuf::from_parts(data, offsets)
        .ok_or_else(|| ort::Error::new("ONNX Runtime gave inconsistent string offsets"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        crate::runtime::init(None).expect("ONNX Runtime (run scripts/provision-ort.sh)");
    }

    #[test]
    fn any_bytes_round_trip() {
        init();
        let elements: BytesBuf = [
            b"a\x00b".as_slice(),
            b"",
            b"\xff\xfe",
            b"a\x00b\x80",
            b"plain text, longer than a small-string buffer",
            b"\x00",
        ]
        .into_iter()
        .collect();
        let value = string_tensor(&[2, 3], &elements).unwrap();
        assert_eq!(
            value.dtype().tensor_shape().map(|s| s.to_vec()),
            Some(vec![2, 3])
        );
        assert_eq!(read_strings(&value).unwrap(), elements);
        // ort's own reader sees the same UTF-8 elements (the tensor is an ordinary string tensor).
        let plain: BytesBuf = [b"x".as_slice(), b"", "é".as_bytes()].into_iter().collect();
        let value = string_tensor(&[3], &plain).unwrap();
        let (_, strings) = value.try_extract_strings().unwrap();
        assert_eq!(strings, vec!["x", "", "é"]);
    }

    #[test]
    fn empty_tensors_and_all_empty_strings() {
        init();
        let none = BytesBuf::default();
        let value = string_tensor(&[0, 4], &none).unwrap();
        assert_eq!(read_strings(&value).unwrap().len(), 0);
        let blanks: BytesBuf = [b"".as_slice(); 3].into_iter().collect();
        let value = string_tensor(&[3, 1], &blanks).unwrap();
        assert_eq!(read_strings(&value).unwrap(), blanks);
    }

    #[test]
    fn count_must_match_the_shape() {
        init();
        let two: BytesBuf = [b"a".as_slice(), b"b"].into_iter().collect();
        assert!(string_tensor(&[3], &two).is_err());
        assert!(string_tensor(&[-1], &two).is_err());
        // A numeric tensor is not read as strings.
        let numbers = ort::value::Tensor::from_array(([2usize], vec![1.0f32, 2.0])).unwrap();
        assert!(read_strings(&numbers.into_dyn()).is_err());
    }
}
