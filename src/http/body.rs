//! Reading an infer request body: whole, within `max_request_body_size`, and kept in the chunks it arrived in, so
//! that binary tensor data is copied once, from those chunks straight into the tensors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::RequestExt;
use http_body_util::{BodyExt, Collected, LengthLimitError};

use crate::error::Error;
use crate::service::Service;

/// The whole body of an infer request, as received.
pub struct InferBody(Collected<Bytes>);

impl InferBody {
    /// The body as one buffer over its chunks (no copy).
    pub fn into_buf(self) -> impl bytes::Buf {
        self.0.aggregate()
    }
}

impl FromRequest<Arc<Service>> for InferBody {
    type Rejection = Error;

    async fn from_request(request: Request, service: &Arc<Service>) -> Result<Self, Error> {
        // The limit is the router's `DefaultBodyLimit` (max_request_body_size), after any gzip decoding.
        match request.into_limited_body().collect().await {
            Ok(collected) => Ok(InferBody(collected)),
            Err(e) if caused_by_limit(&e) => Err(Error::PayloadTooLarge(format!(
                "request body is larger than the limit of {} bytes (max_request_body_size)",
                service.settings().max_request_body_size
            ))),
            Err(e) => Err(Error::InvalidInput(format!(
                "cannot read the request body: {e}"
            ))),
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
