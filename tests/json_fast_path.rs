//! Large REST JSON bodies take the envelope fast path (data arrays read from the body by the number reader):
//! same answers as small bodies, and the same clear errors for bad data.

mod common;

use common::{assert_error, bundled_repository, TestServer};
use serde_json::{json, Value};

/// `rows` copies of `row` for the simple model (INT32 [N, 16] twice).
fn simple_request(rows: usize, a: &Value, b: &Value) -> Value {
    json!({"inputs": [
        {"name": "INPUT0", "shape": [rows, 16], "datatype": "INT32", "data": vec![a.clone(); rows]},
        {"name": "INPUT1", "shape": [rows, 16], "datatype": "INT32", "data": vec![b.clone(); rows]},
    ]})
}

#[tokio::test]
async fn large_bodies_decode_like_small_ones() {
    let s = TestServer::start(&bundled_repository()).await;
    // iris: 2000 rows of long float literals (a Python client's float32 values) against the same row alone.
    let row = json!([
        5.099999904632568,
        3.5,
        1.399999976158142,
        0.20000000298023224
    ]);
    let small = s
        .post(
            "/v2/models/iris/infer",
            &json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [row]}]}),
        )
        .await;
    assert_eq!(small.0, 200, "{}", small.1);
    let rows = 2000;
    let big = s
        .post(
            "/v2/models/iris/infer",
            &json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32",
                                "data": vec![row.clone(); rows]}]}),
        )
        .await;
    assert_eq!(big.0, 200, "{}", big.1);
    let probabilities = |r: &Value| -> Vec<Value> {
        let out = r["outputs"].as_array().unwrap();
        let p = out.iter().find(|o| o["name"] == "probabilities").unwrap();
        p["data"].as_array().unwrap().clone()
    };
    let (one, many) = (probabilities(&small.1), probabilities(&big.1));
    assert_eq!(many.len(), rows * 3);
    for chunk in many.chunks(3) {
        assert_eq!(chunk, one.as_slice());
    }

    // Integers, nested, and a second input after the first one's data.
    let a: Value = (0..16).map(|i| i * 1000 - 7).collect();
    let b: Value = (0..16).map(|i| -i).collect();
    let r = s
        .post("/v2/models/simple/infer", &simple_request(400, &a, &b))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let sum = r.1["outputs"].as_array().unwrap()[0]["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sum.len(), 400 * 16);
    assert_eq!(sum[15], json!(15 * 1000 - 7 - 15));
    assert_eq!(sum[16 * 399 + 3], json!(3000 - 7 - 3));
}

#[tokio::test]
async fn large_bodies_keep_clear_errors() {
    let s = TestServer::start(&bundled_repository()).await;
    let a: Value = (0..16).collect();
    let mut bad = a.clone();
    bad[5] = json!("5");
    let r = s
        .post("/v2/models/simple/infer", &simple_request(400, &a, &bad))
        .await;
    assert_error(&r, 400, "INPUT1");
    bad[5] = json!(3_000_000_000u64);
    let r = s
        .post("/v2/models/simple/infer", &simple_request(400, &a, &bad))
        .await;
    assert_error(&r, 400, "INPUT1");
    let mut request = simple_request(400, &a, &a);
    request["inputs"][0]["shape"] = json!([401, 16]);
    let r = s.post("/v2/models/simple/infer", &request).await;
    assert_error(&r, 400, "INPUT0");
    bad[5] = json!(1.5);
    let r = s
        .post("/v2/models/simple/infer", &simple_request(400, &bad, &a))
        .await;
    assert_error(&r, 400, "INPUT0");
}
