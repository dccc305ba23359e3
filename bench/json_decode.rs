//! Micro-benchmark of REST JSON request decoding: times `parse_infer_request` on a MobileNet-sized FP32 body
//! (1x3x224x224 values written as a Python client does: float32 values at full f64 precision).
//!
//! cargo run --release --example json_decode [-- ITERATIONS]

use std::time::Instant;

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let count = 3 * 224 * 224;
    // A fixed xorshift stream of f32 in [0, 1), printed as the shortest f64 that reads back (Python's repr).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut data = String::with_capacity(count * 20);
    for i in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let value = (state >> 40) as f32 / (1u64 << 24) as f32;
        if i > 0 {
            data.push_str(", ");
        }
        data.push_str(&format!("{:?}", value as f64));
    }
    let body = format!(
        r#"{{"inputs": [{{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": [{data}]}}]}}"#
    );
    // The general path: serde reads the whole body (data kept raw), then the data is decoded from that text.
    let general = || {
        let wire: oxinfer::http::types::InferRequestJson<'_> =
            serde_json::from_slice(body.as_bytes()).expect("valid");
        let raw = wire.inputs[0].data.expect("data");
        oxinfer::http::json::decode_data("input", oxinfer::tensor::DataType::Fp32, count, raw)
            .expect("valid")
    };
    let fast = || {
        let request = oxinfer::http::types::parse_infer_request(
            body.as_bytes(),
            &oxinfer::tensor::limits::Limits::default(),
        )
        .expect("valid");
        request
            .inputs
            .into_iter()
            .next()
            .expect("input")
            .into_data()
    };
    assert!(general() == fast(), "both paths decode the same values");
    let (mut best, mut best_general) = (f64::MAX, f64::MAX);
    let mut total = 0.0;
    for _ in 0..iterations {
        let started = Instant::now();
        assert_eq!(fast().len(), count);
        let took = started.elapsed().as_secs_f64();
        best = best.min(took);
        total += took;
        let started = Instant::now();
        assert_eq!(general().len(), count);
        best_general = best_general.min(started.elapsed().as_secs_f64());
    }
    println!(
        "body {:.2} MB, {count} values: parse_infer_request best {:.2} ms, mean {:.2} ms; general path \
         (serde over the whole body) best {:.2} ms; {iterations} runs each, interleaved",
        body.len() as f64 / 1e6,
        best * 1e3,
        total / iterations as f64 * 1e3,
        best_general * 1e3
    );
}
