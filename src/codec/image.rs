//! The `img` / `pillow_image` codec: encoded images (JPEG, PNG, WebP; raw bytes or base64 text) decoded into
//! UINT8 pixels laid out as the model's input wants them (NHWC or NCHW), resized when the settings ask.

use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};

use crate::error::Error;
use crate::model::TensorSpec;
use crate::tensor::{BytesBuf, Parameters};

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
                "input '{name}' has content type img but the model input has shape {:?}; images need [N,H,W,C] or [N,C,H,W]",
                spec.shape
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

/// The size to resize to: `resize: true` means the model's fixed height and width; `resize: [H, W]` is explicit.
fn resize_to(
    name: &str,
    parameters: &Parameters,
    spec: &TensorSpec,
    t: &Target,
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
            let hw: Option<Vec<u32>> = v.as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect());
            match hw.as_deref() {
                Some(&[h, w]) if h > 0 && w > 0 => Ok(Some((h, w))),
                _ => Err(Error::InvalidInput(format!("input '{name}': resize must be true or [height, width], got {v}"))),
            }
        }
    }
}

/// Decodes one element: raw image bytes when they carry an image signature, else base64 text of one.
fn decode_one(name: &str, index: usize, element: &[u8]) -> Result<DynamicImage, Error> {
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
    image::load_from_memory_with_format(bytes, format).map_err(|e| {
        Error::InvalidInput(format!(
            "input '{name}' element {index} is not a decodable image: {e}"
        ))
    })
}

/// Decodes every element into one UINT8 tensor; returns its shape and pixels.
pub fn decode_images(
    name: &str,
    elements: &BytesBuf,
    spec: &TensorSpec,
    parameters: &Parameters,
) -> Result<(Vec<usize>, Vec<u8>), Error> {
    let t = target(name, spec)?;
    if !t.batched && elements.len() != 1 {
        return Err(Error::InvalidInput(format!(
            "input '{name}' has {} images but the model input takes one (no batch dimension)",
            elements.len()
        )));
    }
    let resize = resize_to(name, parameters, spec, &t)?;
    let mut pixels = Vec::new();
    let mut size: Option<(u32, u32)> = None;
    for (i, element) in elements.iter().enumerate() {
        let mut img = decode_one(name, i, element)?;
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
        if let Some(first) = size {
            if first != (h, w) {
                return Err(Error::InvalidInput(format!(
                    "input '{name}' images differ in size"
                )));
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
        )
        .unwrap();
        assert_eq!(shape, vec![1, 2, 2, 3]);
        assert_eq!(&px[..6], &[10, 20, 30, 10, 20, 30]);
        let (shape, px) = decode_images(
            "image",
            &elements,
            &spec(vec![-1, 3, 2, 2]),
            &Parameters::new(),
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
        let err = decode_images("image", &elements, &spec(vec![-1, 2, 2, 3]), &params).unwrap_err();
        assert!(err.to_string().contains("set parameters.resize"), "{err}");
        params.insert("resize".into(), true.into());
        let (shape, px) =
            decode_images("image", &elements, &spec(vec![-1, 2, 2, 3]), &params).unwrap();
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
        )
        .unwrap_err();
        assert!(err.to_string().contains("input 'pic' element 0"), "{err}");
    }
}
