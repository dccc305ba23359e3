//! Large REST JSON bodies take the envelope fast path (data arrays read from the body by the number reader):
//! same answers as small bodies, and the same clear errors for bad data.

use crate::support;

use serde_json::{json, Value};
use support::{assert_error, bundled_repository, in_chunks, TestServer};

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
    let request = json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32",
                                      "data": vec![row.clone(); rows]}]});
    let probabilities = |r: &Value| -> Vec<Value> {
        let out = r["outputs"].as_array().unwrap();
        let p = out.iter().find(|o| o["name"] == "probabilities").unwrap();
        p["data"].as_array().unwrap().clone()
    };
    let one = probabilities(&small.1);
    // Whole, and in chunks that cut the envelope, the keys and the number literals at every offset.
    let text = serde_json::to_vec(&request).unwrap();
    for size in [None, Some(7), Some(4093)] {
        let big = match size {
            None => s.post("/v2/models/iris/infer", &request).await,
            Some(n) => {
                s.post_raw("/v2/models/iris/infer", in_chunks(text.clone(), n))
                    .await
            }
        };
        assert_eq!(big.0, 200, "{size:?}: {}", big.1);
        let many = probabilities(&big.1);
        assert_eq!(many.len(), rows * 3);
        for chunk in many.chunks(3) {
            assert_eq!(chunk, one.as_slice());
        }
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

/// The `datatypes` identity model's inputs, one element each, but `input_fp32` given as raw JSON text.
fn datatypes_body(fp32_rows: usize, fp32_data: &str) -> String {
    let mut inputs = vec![format!(
        r#"{{"name": "input_fp32", "shape": [{fp32_rows}, 1], "datatype": "FP32", "data": [{fp32_data}]}}"#
    )];
    for (suffix, datatype, value) in [
        ("bool", "BOOL", "true"),
        ("int8", "INT8", "1"),
        ("int16", "INT16", "1"),
        ("int32", "INT32", "1"),
        ("int64", "INT64", "1"),
        ("uint8", "UINT8", "1"),
        ("uint16", "UINT16", "1"),
        ("uint32", "UINT32", "1"),
        ("uint64", "UINT64", "1"),
        ("fp16", "FP16", "0.5"),
        ("fp64", "FP64", "0.5"),
        ("string", "BYTES", "\"a\""),
    ] {
        inputs.push(format!(
            r#"{{"name": "input_{suffix}", "shape": [1, 1], "datatype": "{datatype}", "data": [{value}]}}"#
        ));
    }
    format!(r#"{{"inputs": [{}]}}"#, inputs.join(", "))
}

#[tokio::test]
async fn fp32_values_are_the_f32_of_the_correctly_rounded_f64() {
    let s = TestServer::start(&bundled_repository()).await;
    // Python's repr of float32 values (15-17 digits), 18-19 digit literals, points halfway between two f32s (where
    // a quick estimate and the exact f64 can round apart), exponents, integers, negatives.
    let mut literals: Vec<String> = vec![
        "0.8506242036819458".into(),
        "0.002738475799560547".into(),
        "-0.26978665590286255".into(),
        "1.0000000596046447753906250".into(),
        "1.00000005960464477539".into(),
        "1.0000000596046448".into(),
        "1.0000000596046447".into(),
        "3.4028234663852886e38".into(),
        "1.5e-45".into(),
        "7".into(),
        "-0.0".into(),
        "123456.78901234567".into(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while literals.len() < 3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let below = f32::from_bits(0x3c00_0000 + (state >> 40) as u32);
        let half = (f64::from(below) + f64::from(f32::from_bits(below.to_bits() + 1))) / 2.0;
        literals.push(format!("{:?}", f64::from(below)));
        literals.push(format!("{half:.17e}"));
        literals.push(format!("{half:.16e}").replace('e', "1e"));
    }
    let body = datatypes_body(literals.len(), &literals.join(", "));
    assert!(body.len() > 64 * 1024, "takes the fast path");
    let r = s.post_raw("/v2/models/datatypes/infer", body).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let output = r.1["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "output_fp32")
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(output.len(), literals.len());
    for (literal, got) in literals.iter().zip(&output) {
        let expected = literal.parse::<f64>().unwrap() as f32;
        let got = got.as_f64().unwrap() as f32;
        assert_eq!(got.to_bits(), expected.to_bits(), "{literal}");
    }
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
