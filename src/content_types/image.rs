//! The `img` / `pillow_image` codec: encoded images (JPEG, PNG, WebP; raw bytes or base64 text) decoded into
//! UINT8 pixels laid out as the model's input wants them (NHWC or NCHW), resized when the settings ask.
//! Image sizes, declared in an image's header or requested by `resize`, are checked against `max_image_pixels`
//! before any pixel is allocated.

use std::io::Cursor;

use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};

use crate::error::{shape_text, Error};
use crate::model::TensorSpec;
use crate::tensor::limits::Limits;
use crate::tensor::{BytesBuf, Parameters};

/// Largest image side, in pixels, whatever `max_image_pixels` allows (no model takes a wider image).
pub const MAX_IMAGE_SIDE: u32 = 1 << 16;

/// How the model lays out pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// [N, H, W, C] (or [H, W, C] without a batch dimension).
    ChannelsLast,
    /// [N, C, H, W] (or [C, H, W]).
    ChannelsFirst,
}

/// What the model input expects: layout, batch dimension present, channels, and fixed height/width if any.
struct Target {
    layout: Layout,
    batched: bool,
    channels: usize,
    height: Option<u32>,
    width: Option<u32>,
}

fn fixed(d: i64) -> Option<u32> {
    u32::try_from(d).ok().filter(|&d| d > 0)
}

fn target(name: &str, spec: &TensorSpec) -> Result<Target, Error> {
    let is_channels = |d: i64| matches!(d, 1 | 3 | 4);
    let s = spec.shape.as_slice();
    let (batched, dims) = match s.len() {
        4 => (true, &s[1..]),
        3 => (false, s),
        _ => {
            return Err(Error::InvalidInput(format!(
                "input '{name}' has content type img but the model input has shape {}; images need [N,H,W,C] or [N,C,H,W]",
                shape_text(&spec.shape)
            )))
        }
    };
    let (layout, channels, h, w) = if is_channels(dims[2]) {
        (Layout::ChannelsLast, dims[2], dims[0], dims[1])
    } else if is_channels(dims[0]) {
        (Layout::ChannelsFirst, dims[0], dims[1], dims[2])
    } else {
        (Layout::ChannelsLast, 3, dims[0], dims[1])
    };
    Ok(Target {
        layout,
        batched,
        channels: channels as usize,
        height: fixed(h),
        width: fixed(w),
    })
}

/// Refuses an image of `width` x `height` pixels (`what`: "declares", "asks to be resized to") over the limits.
fn check_size(
    name: &str,
    what: &str,
    (width, height): (u32, u32),
    limits: &Limits,
) -> Result<(), Error> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(Error::InvalidInput(format!(
            "input '{name}' {what} {width}x{height} pixels, over the limit of {} pixels (setting max_image_pixels)",
            limits.max_image_pixels
        )));
    }
    if width.max(height) > MAX_IMAGE_SIDE {
        return Err(Error::InvalidInput(format!(
            "input '{name}' {what} {width}x{height} pixels; an image side may be at most {MAX_IMAGE_SIDE}"
        )));
    }
    Ok(())
}

/// The size to resize to, as (height, width): `resize: true` means the model's fixed height and width;
/// `resize: [H, W]` is explicit and must fit the limits (and the model, when its size is fixed).
fn resize_to(
    name: &str,
    parameters: &Parameters,
    spec: &TensorSpec,
    t: &Target,
    limits: &Limits,
) -> Result<Option<(u32, u32)>, Error> {
    let value = parameters
        .get("resize")
        .or_else(|| spec.parameters.as_ref().and_then(|p| p.get("resize")));
    match value {
        None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(true)) => match (t.height, t.width) {
            (Some(h), Some(w)) => Ok(Some((h, w))),
            _ => Err(Error::InvalidInput(format!(
                "input '{name}': resize needs the model's height and width to be fixed, or resize: [H, W]"
            ))),
        },
        Some(v) => {
            let side = |x: &serde_json::Value| x.as_u64().filter(|&d| d > 0);
            let (h, w) = match v.as_array().map(Vec::as_slice) {
                Some([h, w]) => match (side(h), side(w)) {
                    (Some(h), Some(w)) => (h, w),
                    _ => return Err(bad_resize(name, v)),
                },
                _ => return Err(bad_resize(name, v)),
            };
            let clamp = |d: u64| u32::try_from(d).unwrap_or(u32::MAX);
            let (h, w) = (clamp(h), clamp(w));
            check_size(name, "asks to be resized to", (w, h), limits)?;
            if let (Some(want_h), Some(want_w)) = (t.height, t.width) {
                if (h, w) != (want_h, want_w) {
                    return Err(Error::InvalidInput(format!(
                        "input '{name}' asks to be resized to {w}x{h} but the model wants {want_w}x{want_h}"
                    )));
                }
            }
            Ok(Some((h, w)))
        }
    }
}

fn bad_resize(name: &str, value: &serde_json::Value) -> Error {
    Error::InvalidInput(format!(
        "input '{name}': resize must be true or [height, width] (positive integers), got {}",
        crate::error::short(&value.to_string())
    ))
}

/// Decodes one element: raw image bytes when they carry an image signature, else base64 text of one. The size its
/// header declares is checked against the limits before the pixels are decoded.
fn decode_one(
    name: &str,
    index: usize,
    element: &[u8],
    limits: &Limits,
) -> Result<DynamicImage, Error> {
    let owned;
    let bytes = if image::guess_format(element).is_ok() {
        element
    } else {
        owned = base64::engine::general_purpose::STANDARD
            .decode(element.trim_ascii())
            .map_err(|_| {
                Error::InvalidInput(format!(
                    "input '{name}' element {index} is neither an image (JPEG, PNG, WebP) nor base64 of one"
                ))
            })?;
        &owned
    };
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| matches!(f, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP));
    let Some(format) = format else {
        return Err(Error::InvalidInput(format!(
            "input '{name}' element {index} is not a JPEG, PNG or WebP image"
        )));
    };
    let undecodable = |e: image::ImageError| {
        Error::InvalidInput(format!(
            "input '{name}' element {index} is not a decodable image: {e}"
        ))
    };
    let declared = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(undecodable)?;
    check_size(name, &format!("element {index} declares"), declared, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // A backstop for what the header check cannot see (a decoder's own buffers): 8 bytes per pixel allowed.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(MAX_IMAGE_SIDE);
    decoder_limits.max_image_height = Some(MAX_IMAGE_SIDE);
    decoder_limits.max_alloc = Some(limits.max_image_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(decoder_limits);
    reader.decode().map_err(undecodable)
}

/// Decodes every element into one UINT8 tensor within `limits`; returns its shape and pixels.
pub fn decode_images(
    name: &str,
    elements: &BytesBuf,
    spec: &TensorSpec,
    parameters: &Parameters,
    limits: &Limits,
) -> Result<(Vec<usize>, Vec<u8>), Error> {
    let t = target(name, spec)?;
    if !t.batched && elements.len() != 1 {
        return Err(Error::InvalidInput(format!(
            "input '{name}' has {} images but the model input takes one (no batch dimension)",
            elements.len()
        )));
    }
    let resize = resize_to(name, parameters, spec, &t, limits)?;
    let mut pixels = Vec::new();
    let mut size: Option<(u32, u32)> = None;
    for (i, element) in elements.iter().enumerate() {
        let mut img = decode_one(name, i, element, limits)?;
        if let Some((h, w)) = resize {
            if img.height() != h || img.width() != w {
                img = img.resize_exact(w, h, FilterType::Triangle);
            }
        }
        let (h, w) = (img.height(), img.width());
        if let (Some(want_h), Some(want_w)) = (t.height, t.width) {
            if (h, w) != (want_h, want_w) {
                return Err(Error::InvalidInput(format!(
                    "input '{name}' image {i} is {w}x{h} but the model wants {want_w}x{want_h}; set parameters.resize"
                )));
            }
        }
        match size {
            Some(first) if first != (h, w) => {
                return Err(Error::InvalidInput(format!(
                    "input '{name}' images differ in size"
                )));
            }
            Some(_) => {}
            None => {
                // The whole tensor's size is known from the first image: check it before the pixels grow.
                let shape = [elements.len(), h as usize, w as usize, t.channels];
                let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                limits.check_elements(name, &shape, count.unwrap_or(usize::MAX))?;
                pixels.reserve_exact(count.unwrap_or(0));
            }
        }
        size = Some((h, w));
        let interleaved = match t.channels {
            1 => img.into_luma8().into_raw(),
            4 => img.into_rgba8().into_raw(),
            _ => img.into_rgb8().into_raw(),
        };
        match t.layout {
            Layout::ChannelsLast => pixels.extend_from_slice(&interleaved),
            Layout::ChannelsFirst => {
                let plane = (h * w) as usize;
                let start = pixels.len();
                pixels.resize(start + interleaved.len(), 0);
                for (p, px) in interleaved.chunks_exact(t.channels).enumerate() {
                    for (c, &v) in px.iter().enumerate() {
                        pixels[start + c * plane + p] = v;
                    }
                }
            }
        }
    }
    let (h, w) = size.unwrap_or((0, 0));
    let (h, w, c) = (h as usize, w as usize, t.channels);
    let mut shape = match t.layout {
        Layout::ChannelsLast => vec![h, w, c],
        Layout::ChannelsFirst => vec![c, h, w],
    };
    if t.batched {
        shape.insert(0, elements.len());
    }
    Ok((shape, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DataType;

    fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn spec(shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: "image".into(),
            datatype: DataType::Uint8,
            shape,
            parameters: None,
        }
    }

    #[test]
    fn decodes_to_nhwc_and_nchw() {
        let elements: BytesBuf = [png(2, 2, [10, 20, 30]).as_slice()].into_iter().collect();
        let (shape, px) = decode_images(
            "image",
            &elements,
            &spec(vec![-1, 2, 2, 3]),
            &Parameters::new(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(shape, vec![1, 2, 2, 3]);
        assert_eq!(&px[..6], &[10, 20, 30, 10, 20, 30]);
        let (shape, px) = decode_images(
            "image",
            &elements,
            &spec(vec![-1, 3, 2, 2]),
            &Parameters::new(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(shape, vec![1, 3, 2, 2]);
        assert_eq!(&px[..5], &[10, 10, 10, 10, 20]);
    }

    #[test]
    fn base64_and_resize() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(png(8, 4, [1, 2, 3]));
        let elements: BytesBuf = [b64.as_bytes()].into_iter().collect();
        let mut params = Parameters::new();
        let err = decode_images(
            "image",
            &elements,
            &spec(vec![-1, 2, 2, 3]),
            &params,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("set parameters.resize"), "{err}");
        params.insert("resize".into(), true.into());
        let (shape, px) = decode_images(
            "image",
            &elements,
            &spec(vec![-1, 2, 2, 3]),
            &params,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(shape, vec![1, 2, 2, 3]);
        assert_eq!(&px[..3], &[1, 2, 3]);
    }

    #[test]
    fn garbage_is_named() {
        let elements: BytesBuf = [b"not an image".as_slice()].into_iter().collect();
        let err = decode_images(
            "pic",
            &elements,
            &spec(vec![-1, 2, 2, 3]),
            &Parameters::new(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("input 'pic' element 0"), "{err}");
    }

    /// A real PNG whose header is rewritten to declare `width` x `height` (its pixel data stays 1x1).
    fn png_declaring(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(1, 1, [0, 0, 0]);
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height; the chunk's CRC follows its 13 bytes.
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn small_limits() -> Limits {
        Limits {
            max_image_pixels: 10_000,
            ..Limits::default()
        }
    }

    #[test]
    fn requested_resize_is_checked_before_decoding() {
        let elements: BytesBuf = [png(8, 8, [1, 2, 3]).as_slice()].into_iter().collect();
        let mut params = Parameters::new();
        for (resize, needle) in [
            (serde_json::json!([20000, 20000]), "max_image_pixels"),
            (serde_json::json!([1, 100_000]), "at most 65536"),
            (serde_json::json!([1u64 << 32, 1]), "max_image_pixels"),
            (serde_json::json!([0, 5]), "positive integers"),
            (serde_json::json!([50, 50]), "model wants 2x2"),
        ] {
            params.insert("resize".into(), resize.clone());
            let limits = Limits {
                max_image_pixels: 1 << 40,
                ..small_limits()
            };
            let limits = if needle == "max_image_pixels" {
                small_limits()
            } else {
                limits
            };
            let e = decode_images(
                "image",
                &elements,
                &spec(vec![-1, 2, 2, 3]),
                &params,
                &limits,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("input 'image'") && e.contains(needle),
                "{resize}: {e}"
            );
        }
        params.insert("resize".into(), serde_json::json!([100, 100]));
        let (shape, _) = decode_images(
            "image",
            &elements,
            &spec(vec![-1, -1, -1, 3]),
            &params,
            &small_limits(),
        )
        .unwrap();
        assert_eq!(shape, vec![1, 100, 100, 3]);
    }

    #[test]
    fn declared_size_is_checked_before_decoding() {
        let elements: BytesBuf = [png_declaring(100_000, 100_000).as_slice()]
            .into_iter()
            .collect();
        let e = decode_images(
            "image",
            &elements,
            &spec(vec![-1, -1, -1, 3]),
            &Parameters::new(),
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("element 0 declares 100000x100000") && e.contains("max_image_pixels"),
            "{e}"
        );
        // Under the pixel limit but over the tensor's element limit: refused before the pixels grow.
        let elements: BytesBuf = [png(60, 60, [1, 2, 3]).as_slice()].into_iter().collect();
        let limits = Limits {
            max_elements: 1000,
            ..Limits::default()
        };
        let e = decode_images(
            "image",
            &elements,
            &spec(vec![-1, -1, -1, 3]),
            &Parameters::new(),
            &limits,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_tensor_elements"), "{e}");
    }
}
