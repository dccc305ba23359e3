//! REST helpers: requests on an in-process [`TestServer`], chunked bodies, and the assertions on answers.

use serde_json::Value;

use super::server::TestServer;

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET, returning status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// POST a JSON body, returning status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// POST raw bytes, returning status and JSON body.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }
}

/// `body` sent as HTTP chunks of `size` bytes (the server reads it in pieces cut at those points).
pub fn in_chunks(body: Vec<u8>, size: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(size).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

/// Asserts an error answer: the status, and an `{"error": ...}` body containing `needle`.
pub fn assert_error(actual: &(u16, Value), status: u16, needle: &str) {
    assert_eq!(actual.0, status, "body: {}", actual.1);
    let message = actual.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {}", actual.1));
    assert!(
        message.contains(needle),
        "error {message:?} does not contain {needle:?}"
    );
    assert_eq!(
        actual.1.as_object().unwrap().len(),
        1,
        "error body has only `error`: {}",
        actual.1
    );
}

/// Compares floats with a tolerance.
pub fn assert_close(actual: &Value, expected: &[f64]) {
    let actual: Vec<f64> = actual
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(actual.len(), expected.len(), "{actual:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{actual:?} != {expected:?}");
    }
}

/// Polls `check` until it returns true (60 s at most).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
