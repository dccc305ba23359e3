//! Request bodies sent gzip- or deflate-compressed (`gzip_enabled`): read whole, then inflated on a blocking thread,
//! never on the async runtime, within `max_request_body_size` after decompression and within the admission budget.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Buf;
use flate2::read::{MultiGzDecoder, ZlibDecoder};
use http_body_util::{BodyExt, Limited};

use super::body::{too_large, Admitted, Chunks};
use crate::admission::Permit;
use crate::error::Error;
use crate::service::DataPlane;

/// Decompressed bytes are counted against the budget this many at a time.
const STEP: u64 = 1024 * 1024;

#[derive(Clone, Copy)]
enum Encoding {
    Gzip,
    /// HTTP's `deflate` is the zlib format (RFC 1950).
    Deflate,
}

/// Middleware: replaces a compressed body by its decompressed bytes (and drops `Content-Encoding`), the permit
/// holding them travelling with the request ([`Admitted`]). Other encodings were refused before this runs.
pub async fn inflate(
    State(service): State<Arc<DataPlane>>,
    request: Request,
    next: Next,
) -> Response {
    let encoding = match request.headers().get(header::CONTENT_ENCODING) {
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"gzip") => Encoding::Gzip,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"deflate") => Encoding::Deflate,
        _ => return next.run(request).await,
    };
    match inflate_request(&service, encoding, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn inflate_request(
    service: &DataPlane,
    encoding: Encoding,
    request: Request,
) -> Result<Request, Error> {
    let limit = service.settings().max_request_body_size;
    let (mut parts, body) = request.into_parts();
    let mut permit = service.admission().permit();
    let mut compressed = Chunks::default();
    let mut body = Limited::new(body, limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large(limit)
            } else {
                Error::InvalidInput(format!("cannot read the request body: {e}"))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            permit.grow(data.len())?;
            compressed.push(data);
        }
    }
    let (inflated, mut permit) = service
        .admission()
        .off_reactor(move || {
            let inflated = decompress(encoding, compressed, limit, &mut permit);
            (inflated, permit)
        })
        .await?;
    let inflated = inflated?;
    // The compressed bytes are gone; the permit now holds the decompressed ones.
    permit.set(inflated.len())?;
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(Admitted::new(permit));
    Ok(Request::from_parts(
        parts,
        Body::from(Bytes::from(inflated)),
    ))
}

/// Inflates `compressed`, refusing output past `limit` (413) or past the budget (503) as it grows.
fn decompress(
    encoding: Encoding,
    compressed: Chunks,
    limit: usize,
    permit: &mut Permit,
) -> Result<Vec<u8>, Error> {
    let reader = compressed.reader();
    let mut decoder: Box<dyn Read> = match encoding {
        Encoding::Gzip => Box::new(MultiGzDecoder::new(reader)),
        Encoding::Deflate => Box::new(ZlibDecoder::new(reader)),
    };
    let mut out = Vec::new();
    loop {
        let read = decoder
            .by_ref()
            .take(STEP)
            .read_to_end(&mut out)
            .map_err(|e| Error::InvalidInput(format!("cannot decompress the request body: {e}")))?;
        if read == 0 {
            return Ok(out);
        }
        if out.len() > limit {
            return Err(too_large(limit));
        }
        permit.grow(read)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::config::Settings;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Chunks {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        let mut chunks = Chunks::default();
        chunks.push(Bytes::from(e.finish().unwrap()));
        chunks
    }

    fn admission(limit: usize) -> Admission {
        Admission::new(&Settings {
            max_bytes_in_flight: Some(limit),
            ..Settings::default()
        })
    }

    #[test]
    fn inflates_within_the_limit_and_counts_the_bytes() {
        let admission = admission(1 << 30);
        let mut permit = admission.permit();
        let body = vec![b' '; 3 * STEP as usize + 5];
        let out = decompress(Encoding::Gzip, gzip(&body), body.len(), &mut permit).unwrap();
        assert_eq!(out, body);
        assert_eq!(permit.bytes(), body.len());
    }

    #[test]
    fn a_bomb_stops_at_the_limit_or_the_budget() {
        let body = vec![b' '; 8 * STEP as usize];
        let admission = admission(1 << 30);
        let mut permit = admission.permit();
        let error =
            decompress(Encoding::Gzip, gzip(&body), 2 * STEP as usize, &mut permit).unwrap_err();
        assert_eq!(error.http_status(), 413);
        assert!(
            error.to_string().contains("max_request_body_size"),
            "{error}"
        );

        let admission = self::admission(STEP as usize);
        let mut permit = admission.permit();
        let error = decompress(Encoding::Gzip, gzip(&body), usize::MAX, &mut permit).unwrap_err();
        assert_eq!(error.http_status(), 503);
        assert!(error.to_string().contains("max_bytes_in_flight"), "{error}");
    }

    #[test]
    fn corrupt_data_is_a_client_error() {
        let mut chunks = Chunks::default();
        chunks.push(Bytes::from_static(b"\x1f\x8bnot gzip at all"));
        let admission = admission(1 << 30);
        let error = decompress(Encoding::Gzip, chunks, 1000, &mut admission.permit()).unwrap_err();
        assert_eq!(error.http_status(), 400);
    }
}
