//! Reading an infer request body: whole, within `max_request_body_size`, and kept in the chunks it arrived in, so
//! that binary tensor data is copied once, from those chunks straight into the tensors, and JSON is read in place.
//! Every byte read is counted against the admission budget (`max_bytes_in_flight`) as it arrives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::RequestExt;
use bytes::{Buf, BufMut, BytesMut};
use http_body_util::{BodyExt, LengthLimitError};

use crate::admission::Permit;
use crate::error::Error;
use crate::service::DataPlane;

/// The whole body of an infer request, as received, and the bytes it holds of the admission budget.
pub struct InferBody(Chunks, Permit);

impl InferBody {
    /// The body as one buffer over its chunks (no copy), and its permit.
    pub fn into_parts(self) -> (Chunks, Permit) {
        (self.0, self.1)
    }
}

/// A request extension set when the body was already read and counted against the budget (decompressed
/// bodies): the permit that holds it.
#[derive(Clone)]
pub struct Admitted(Arc<Mutex<Option<Permit>>>);

impl Admitted {
    pub fn new(permit: Permit) -> Admitted {
        Admitted(Arc::new(Mutex::new(Some(permit))))
    }

    fn take(&self) -> Option<Permit> {
        self.0.lock().ok()?.take()
    }
}

impl FromRequest<Arc<DataPlane>> for InferBody {
    type Rejection = Error;

    async fn from_request(mut request: Request, service: &Arc<DataPlane>) -> Result<Self, Error> {
        let admitted = request
            .extensions_mut()
            .remove::<Admitted>()
            .and_then(|a| a.take());
        let counted = admitted.is_some();
        let mut permit = admitted.unwrap_or_else(|| service.admission().permit());
        // The limit is the router's `DefaultBodyLimit` (max_request_body_size), after any gzip decoding.
        let limit = service.settings().max_request_body_size;
        let mut body = request.into_limited_body();
        let mut chunks = Chunks::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if caused_by_limit(&e) {
                    too_large(limit)
                } else {
                    Error::InvalidInput(format!("cannot read the request body: {e}"))
                }
            })?;
            if let Ok(data) = frame.into_data() {
                if !counted {
                    permit.grow(data.len())?;
                }
                chunks.push(data);
            }
        }
        Ok(InferBody(chunks, permit))
    }
}

/// The answer to a body over `max_request_body_size` (after decompression).
pub fn too_large(limit: usize) -> Error {
    Error::PayloadTooLarge(format!(
        "request body is larger than the limit of {limit} bytes (max_request_body_size)"
    ))
}

/// Bytes held in the chunks they arrived in, read as one buffer.
#[derive(Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Chunks {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The unread bytes, chunk by chunk.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|c| &c[..])
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c)
    }

    fn advance(&mut self, mut count: usize) {
        assert!(count <= self.remaining, "advance past the end of the body");
        self.remaining -= count;
        while count > 0 {
            let front = &mut self.chunks[0];
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Within the first chunk without a copy.
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining, "copy past the end of the body");
        match self.chunks.front_mut() {
            Some(front) if front.len() >= len => {
                let bytes = front.split_to(len);
                self.remaining -= len;
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                bytes
            }
            _ => {
                let mut out = BytesMut::with_capacity(len);
                out.put(self.take(len));
                out.freeze()
            }
        }
    }
}

fn caused_by_limit(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
