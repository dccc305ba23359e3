//! MLServer content types (codecs): what `np`, `str`, `base64`, `datetime`, `pd`, `pd_json` and `img` mean for
//! an ONNX model's inputs and outputs. Applied by the service to every transport's requests and responses.

mod cast;
pub mod image;

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::error::{short, Error};
use crate::model::TensorSpec;
use crate::tensor::limits::Limits;
use crate::tensor::lookup::NameIndex;
use crate::tensor::{BytesBuf, DataType, Parameters, Tensor, TensorData};

/// A content type oxinfer understands; others are ignored, as MLServer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Np,
    Str,
    Base64,
    Datetime,
    Pd,
    PdJson,
    /// `img` or `pillow_image`: an encoded image (JPEG, PNG, WebP) decoded to UINT8 pixels.
    Img,
}

impl ContentType {
    pub fn parse(name: &str) -> Option<ContentType> {
        Some(match name {
            "np" => ContentType::Np,
            "str" => ContentType::Str,
            "base64" => ContentType::Base64,
            "datetime" => ContentType::Datetime,
            "pd" => ContentType::Pd,
            "pd_json" => ContentType::PdJson,
            "img" | "pillow_image" => ContentType::Img,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Np => "np",
            ContentType::Str => "str",
            ContentType::Base64 => "base64",
            ContentType::Datetime => "datetime",
            ContentType::Pd => "pd",
            ContentType::PdJson => "pd_json",
            ContentType::Img => "img",
        }
    }
}

/// The `content_type` in a parameters map, if it is one oxinfer knows.
pub fn content_type_of(parameters: Option<&Parameters>) -> Option<ContentType> {
    parameters?
        .get("content_type")?
        .as_str()
        .and_then(ContentType::parse)
}

/// The request-level content type: the request's own, else the model's (`model_default`).
pub fn request_content_type(
    request_parameters: &Parameters,
    model_default: Option<&str>,
) -> Option<ContentType> {
    content_type_of(Some(request_parameters)).or_else(|| model_default.and_then(ContentType::parse))
}

/// The content type that applies to each input: its own, else the model-settings input's, else what the
/// request-level one implies (`pd` columns: `np` for numbers, `str` for BYTES).
fn input_content_type(
    input: &Tensor,
    spec: Option<&TensorSpec>,
    request: Option<ContentType>,
) -> Option<ContentType> {
    content_type_of(Some(&input.parameters))
        .or_else(|| content_type_of(spec.and_then(|s| s.parameters.as_ref())))
        .or(match request {
            Some(ContentType::Pd | ContentType::PdJson) if input.datatype() == DataType::Bytes => {
                Some(ContentType::Str)
            }
            Some(ContentType::Pd | ContentType::PdJson) => Some(ContentType::Np),
            Some(ct @ (ContentType::Np | ContentType::Str)) => Some(ct),
            _ => None,
        })
}

/// Whether decoding will do heavy work (images), to be run off the async runtime.
pub fn needs_blocking(
    request_inputs: &[Tensor],
    inputs: &[TensorSpec],
    request_ct: Option<ContentType>,
) -> bool {
    let specs = NameIndex::new(inputs, |s| s.name.as_str());
    request_inputs.iter().any(|input| {
        input_content_type(input, specs.get(&input.name), request_ct) == Some(ContentType::Img)
    })
}

/// Decodes every input according to its content type so that it fits the model input of the same name, within
/// the per-request `limits` (image sizes).
pub fn decode_inputs(
    request_inputs: &mut [Tensor],
    inputs: &[TensorSpec],
    request_ct: Option<ContentType>,
    limits: &Limits,
) -> Result<(), Error> {
    if request_ct == Some(ContentType::Np) && request_inputs.len() != 1 {
        return Err(Error::InvalidInput(format!(
            "content type np at request level needs exactly one input; the request has {}",
            request_inputs.len()
        )));
    }
    if let ([input], [spec]) = (&mut *request_inputs, inputs) {
        // NumpyRequestCodec names its input "input-1": a single-input request feeds a single-input model.
        if request_ct == Some(ContentType::Np) && input.name != spec.name {
            input.name = spec.name.clone();
        }
    }
    let specs = NameIndex::new(inputs, |s| s.name.as_str());
    for input in request_inputs.iter_mut() {
        let Some(spec) = specs.get(&input.name) else {
            continue; // validation reports unknown inputs
        };
        if let Some(ct) = input_content_type(input, Some(spec), request_ct) {
            decode_input(input, spec, ct, limits)?;
        }
        fit_rank(input, spec)?;
    }
    Ok(())
}

fn decode_input(
    input: &mut Tensor,
    spec: &TensorSpec,
    ct: ContentType,
    limits: &Limits,
) -> Result<(), Error> {
    let name = short(&input.name).into_owned();
    let needs_bytes = |ct: ContentType| {
        Error::InvalidInput(format!(
            "input '{name}' has content type {} but datatype {}; it needs BYTES",
            ct.as_str(),
            input.datatype()
        ))
    };
    let decodes_bytes = matches!(
        ct,
        ContentType::Str | ContentType::Base64 | ContentType::Datetime | ContentType::Img
    );
    if decodes_bytes && input.datatype() != DataType::Bytes && input.datatype() == spec.datatype {
        return Ok(()); // already in the model's form (e.g. raw pixels for an `img` input)
    }
    match ct {
        ContentType::Np | ContentType::Pd | ContentType::PdJson => {
            if input.datatype() == DataType::Bytes {
                check_utf8(&name, input.data(), ct)?;
            } else if input.datatype() != spec.datatype && spec.datatype != DataType::Bytes {
                // numpy's astype: numbers are converted to the model's type.
                let cast = cast::cast(input.data(), spec.datatype);
                input.set_data(cast)?;
            }
        }
        ContentType::Str => {
            if input.datatype() != DataType::Bytes {
                return Err(needs_bytes(ct));
            }
            check_utf8(&name, input.data(), ct)?;
        }
        ContentType::Base64 => {
            let TensorData::Bytes(elements) = input.data() else {
                return Err(needs_bytes(ct));
            };
            let decoded = decode_base64(elements);
            if spec.datatype == DataType::Uint8 {
                let width = decoded.iter().next().map_or(0, <[u8]>::len);
                if let Some(i) = decoded.iter().position(|e| e.len() != width) {
                    return Err(Error::InvalidInput(format!(
                        "input '{name}' element {i} decodes to {} bytes but element 0 to {width}; UINT8 rows must be equal",
                        decoded.get(i).len()
                    )));
                }
                let bytes: Vec<u8> = decoded.iter().flatten().copied().collect();
                let mut shape = input.shape().to_vec();
                shape.push(width);
                input.set(shape, TensorData::Uint8(bytes))?;
            } else {
                input.set_data(TensorData::Bytes(decoded))?;
            }
        }
        ContentType::Datetime => {
            let TensorData::Bytes(elements) = input.data() else {
                return Err(needs_bytes(ct));
            };
            let mut nanos = Vec::with_capacity(elements.len());
            for (i, element) in elements.iter().enumerate() {
                nanos.push(parse_datetime(element).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "input '{name}' element {i} ({:?}) is not an ISO 8601 datetime",
                        short(&String::from_utf8_lossy(element))
                    ))
                })?);
            }
            let data = match spec.datatype {
                DataType::Int64 => TensorData::Int64(nanos),
                _ => TensorData::Bytes(
                    nanos
                        .iter()
                        .map(|&n| iso(n).into_bytes())
                        .collect::<Vec<_>>()
                        .iter()
                        .map(Vec::as_slice)
                        .collect(),
                ),
            };
            input.set_data(data)?;
        }
        ContentType::Img => {
            let TensorData::Bytes(elements) = input.data() else {
                return Err(needs_bytes(ct));
            };
            let (shape, pixels) =
                image::decode_images(&name, elements, spec, &input.parameters, limits)?;
            input.set(shape, TensorData::Uint8(pixels))?;
        }
    }
    Ok(())
}

/// MLServer encodes 1-D arrays as [N, 1] and decodes [N, 1] where [N] is meant: add or drop one trailing
/// dimension of 1 when that makes the input's rank match the model's.
fn fit_rank(input: &mut Tensor, spec: &TensorSpec) -> Result<(), Error> {
    let (have, want) = (input.shape().len(), spec.shape.len());
    let mut shape = input.shape().to_vec();
    if have == want + 1 && shape.last() == Some(&1) {
        shape.pop();
    } else if have + 1 == want && matches!(spec.shape.last(), Some(1 | -1)) {
        shape.push(1);
    } else {
        return Ok(());
    }
    input.reshape(shape)
}

fn check_utf8(name: &str, data: &TensorData, ct: ContentType) -> Result<(), Error> {
    if let TensorData::Bytes(elements) = data {
        if let Some(i) = elements
            .iter()
            .position(|e| std::str::from_utf8(e).is_err())
        {
            return Err(Error::InvalidInput(format!(
                "input '{name}' element {i} is not valid UTF-8 (content type {})",
                ct.as_str()
            )));
        }
    }
    Ok(())
}

/// Base64-decodes each element (standard or URL-safe alphabet, surrounding whitespace ignored). An element that is
/// not base64 is taken as the raw bytes it already is, as MLServer's Base64Codec does: so any bytes can be sent.
fn decode_base64(elements: &BytesBuf) -> BytesBuf {
    let mut out = BytesBuf::with_capacity(
        elements.len(),
        elements.iter().map(<[u8]>::len).sum::<usize>(),
    );
    // One scratch buffer for every element (no allocation per element).
    let mut scratch = Vec::new();
    for element in elements.iter() {
        let trimmed = element.trim_ascii();
        scratch.clear();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode_vec(trimmed, &mut scratch)
            .or_else(|_| {
                scratch.clear();
                base64::engine::general_purpose::URL_SAFE.decode_vec(trimmed, &mut scratch)
            });
        out.push(if decoded.is_ok() { &scratch } else { element });
    }
    out
}

/// Nanoseconds since the Unix epoch of an ISO 8601 datetime (naive ones are UTC), or a date.
fn parse_datetime(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|d| d.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|d| d.and_utc())
        })
        .or_else(|_| {
            chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
                .map(|d| d.with_timezone(&Utc))
        })
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })?;
    parsed.timestamp_nanos_opt()
}

/// ISO 8601 text of nanoseconds since the epoch, as Python's isoformat writes a UTC datetime.
fn iso(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Encodes the outputs whose model-settings declare a content type, MLServer's way: 1-D outputs become [N, 1]
/// and `content_type` is set in the output's parameters.
pub fn encode_outputs(
    response_outputs: &mut [Tensor],
    outputs: &[TensorSpec],
) -> Result<(), Error> {
    let specs = NameIndex::new(outputs, |s| s.name.as_str());
    for output in response_outputs.iter_mut() {
        let spec = specs.get(&output.name);
        let Some(ct) = content_type_of(spec.and_then(|s| s.parameters.as_ref())) else {
            continue;
        };
        match (ct, output.data()) {
            (ContentType::Base64, TensorData::Bytes(elements)) => {
                let engine = &base64::engine::general_purpose::STANDARD;
                let encoded: Vec<String> = elements.iter().map(|e| engine.encode(e)).collect();
                output.set_data(TensorData::Bytes(
                    encoded.iter().map(|s| s.as_bytes()).collect(),
                ))?;
            }
            (ContentType::Datetime, TensorData::Int64(nanos)) => {
                let text: Vec<String> = nanos.iter().map(|&n| iso(n)).collect();
                output.set_data(TensorData::Bytes(
                    text.iter().map(|s| s.as_bytes()).collect(),
                ))?;
            }
            (
                ContentType::Np | ContentType::Str | ContentType::Base64 | ContentType::Datetime,
                _,
            ) => {}
            _ => continue,
        }
        if let [n] = *output.shape() {
            output.reshape(vec![n, 1])?;
        }
        output
            .parameters
            .insert("content_type".into(), serde_json::Value::from(ct.as_str()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_like_python_isoformat() {
        assert_eq!(parse_datetime(b"1970-01-01T00:00:01"), Some(1_000_000_000));
        assert_eq!(parse_datetime(b"1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_datetime(b"2021-08-24T15:01:19.5"),
            Some(1_629_817_279_500_000_000)
        );
        assert_eq!(
            parse_datetime(b"2021-08-24"),
            Some(1_629_763_200_000_000_000)
        );
        assert_eq!(parse_datetime(b"yesterday"), None);
        assert_eq!(iso(1_629_817_279_000_000_000), "2021-08-24T15:01:19+00:00");
    }

    #[test]
    fn base64_decodes_or_passes_raw_bytes_through() {
        let elements: BytesBuf = [
            b"YQBigA==".as_slice(),
            b" //4= ",
            b"_-8=",
            b"",
            b"%%% not base64",
            b"\xff\x00",
        ]
        .into_iter()
        .collect();
        let decoded = decode_base64(&elements);
        let want: [&[u8]; 6] = [
            b"a\x00b\x80",
            b"\xff\xfe",
            b"\xff\xef",
            b"",
            b"%%% not base64",
            b"\xff\x00",
        ];
        assert_eq!(decoded.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn content_types_parse() {
        assert_eq!(ContentType::parse("pillow_image"), Some(ContentType::Img));
        assert_eq!(ContentType::parse("dict"), None);
    }
}
