//! Reading an infer request body: whole, within `max_request_body_size`, and kept in the chunks it arrived in, so
//! that binary tensor data is copied once, from those chunks straight into the tensors, and JSON is read in place.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::RequestExt;
use bytes::{Buf, BufMut, BytesMut};
use http_body_util::{BodyExt, LengthLimitError};

use crate::error::Error;
use crate::service::Service;

/// The whole body of an infer request, as received.
pub struct InferBody(Chunks);

impl InferBody {
    /// The body as one buffer over its chunks (no copy).
    pub fn into_buf(self) -> Chunks {
        self.0
    }
}

impl FromRequest<Arc<Service>> for InferBody {
    type Rejection = Error;

    async fn from_request(request: Request, service: &Arc<Service>) -> Result<Self, Error> {
        // The limit is the router's `DefaultBodyLimit` (max_request_body_size), after any gzip decoding.
        let mut body = request.into_limited_body();
        let mut chunks = Chunks::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if caused_by_limit(&e) {
                    Error::PayloadTooLarge(format!(
                        "request body is larger than the limit of {} bytes (max_request_body_size)",
                        service.settings().max_request_body_size
                    ))
                } else {
                    Error::InvalidInput(format!("cannot read the request body: {e}"))
                }
            })?;
            if let Ok(data) = frame.into_data() {
                chunks.push(data);
            }
        }
        Ok(InferBody(chunks))
    }
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
