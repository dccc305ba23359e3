//! MLServer content types end to end over REST: np, str, base64, datetime, pd and the img codec, and their errors.

use crate::support;

use base64::Engine;
use serde_json::{json, Value};
use support::{assert_error, bundled_repository, write_model, TestServer};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn encoded(img: image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A solid image: red 255, green 0, blue `blue`.
fn solid(size: u32, blue: u8) -> image::RgbImage {
    image::RgbImage::from_pixel(size, size, image::Rgb([255, 0, blue]))
}

fn assert_mean(r: &Value, row: usize, expected: [f64; 3], tolerance: f64) {
    let data = r["outputs"][0]["data"].as_array().unwrap();
    for c in 0..3 {
        let got = data[row * 3 + c].as_f64().unwrap();
        assert!(
            (got - expected[c]).abs() <= tolerance,
            "channel {c}: {got} vs {}: {r}",
            expected[c]
        );
    }
}

#[tokio::test]
async fn np_casts_to_the_models_type_and_fits_n_by_1() {
    let s = TestServer::start(&bundled_repository()).await;
    // NumpyCodec sends float64; the model wants FP32.
    let req = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
        "parameters": {"content_type": "np"}, "data": [6.7, 3.0, 5.2, 2.3]}]});
    let (status, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([2]));
    // Request-level np, with a trailing dimension of 1 more than the model has.
    let req = json!({"parameters": {"content_type": "np"}, "inputs": [{"name": "input", "shape": [1, 4, 1],
        "datatype": "INT64", "data": [6, 3, 5, 2]}]});
    let (status, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    // Without a content type the datatype must match.
    let req = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]});
    assert_error(
        &s.post("/v2/models/iris/infer", &req).await,
        400,
        "expects FP32",
    );
    // np at request level with several inputs.
    let req = json!({"parameters": {"content_type": "np"}, "inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]}]});
    assert_error(
        &s.post("/v2/models/simple/infer", &req).await,
        400,
        "content type np at request level needs exactly one input",
    );
}

#[tokio::test]
async fn pd_columns_feed_named_inputs() {
    let s = TestServer::start(&bundled_repository()).await;
    // PandasCodec: every column an input; int64 columns cast to the model's INT32.
    let req = json!({"parameters": {"content_type": "pd"}, "inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT64", "data": (0..16).collect::<Vec<i64>>()},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT64", "data": vec![2i64; 16]}]});
    let (status, r) = s.post("/v2/models/simple/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0]["data"],
        json!((2..18).collect::<Vec<i32>>())
    );
}

#[tokio::test]
async fn str_and_base64_decode_bytes() {
    let s = TestServer::start(&bundled_repository()).await;
    let numbers: Vec<String> = (0..16)
        .map(|i: i32| b64(i.to_string().as_bytes()))
        .collect();
    let req = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES", "parameters": {"content_type": "base64"}, "data": numbers},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "BYTES", "parameters": {"content_type": "str"}, "data": vec!["1"; 16]}]});
    let (status, r) = s.post("/v2/models/simple_string/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"][15], "16");
    // As MLServer's Base64Codec does, an element that is not base64 ("17": no padding) is taken as it is.
    let mut raw = req.clone();
    raw["inputs"][0]["data"][3] = json!("17");
    let (status, r) = s.post("/v2/models/simple_string/infer", &raw).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"][3], "18");
    let mut wrong_type = req.clone();
    wrong_type["inputs"][1] = json!({"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
        "parameters": {"content_type": "str"}, "data": vec![1; 16]});
    assert_error(
        &s.post("/v2/models/simple_string/infer", &wrong_type).await,
        400,
        "input 'INPUT1' has content type str but datatype INT32",
    );
}

#[tokio::test]
async fn str_rejects_invalid_utf8_sent_as_binary() {
    let s = TestServer::start(&bundled_repository()).await;
    let header = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES", "parameters": {"content_type": "str", "binary_data_size": 6}},
        {"name": "INPUT1", "shape": [1, 1], "datatype": "BYTES", "data": ["1"]}]});
    let mut body = serde_json::to_vec(&header).unwrap();
    let len = body.len();
    body.extend_from_slice(&[2, 0, 0, 0, 0xff, 0xfe]);
    let r = s
        .client
        .post(s.url("/v2/models/simple_string/infer"))
        .header("Inference-Header-Content-Length", len)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("input 'INPUT0' element 0 is not valid UTF-8"),
        "{v}"
    );
}

/// A repository with output content types declared, and a datetime input feeding an INT64 tensor.
fn typed_outputs_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_model(
        dir.path(),
        "labels",
        &json!({"outputs": [{"name": "label", "parameters": {"content_type": "str"}},
                            {"name": "probabilities", "parameters": {"content_type": "np"}}]}),
        Some("iris-labels"),
    );
    write_model(
        dir.path(),
        "iris",
        &json!({"outputs": [{"name": "label", "parameters": {"content_type": "np"}}]}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "types",
        &json!({"inputs": [{"name": "input_int64", "parameters": {"content_type": "datetime"}}],
                "outputs": [{"name": "output_int64", "parameters": {"content_type": "datetime"}},
                            {"name": "output_string", "parameters": {"content_type": "base64"}}]}),
        Some("datatypes"),
    );
    dir
}

#[tokio::test]
async fn output_content_types_follow_mlserver_conventions() {
    let dir = typed_outputs_repository();
    let s = TestServer::start(dir.path()).await;
    let req = support::iris_request();
    let (status, r) = s.post("/v2/models/labels/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0],
        json!({"name": "label", "shape": [2, 1], "datatype": "BYTES", "parameters": {"content_type": "str"},
               "data": ["setosa", "virginica"]})
    );
    assert_eq!(r["outputs"][1]["shape"], json!([2, 3]));
    assert_eq!(r["outputs"][1]["parameters"], json!({"content_type": "np"}));
    let (_, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(r["outputs"][0]["shape"], json!([2, 1]), "[N] -> [N, 1]");
}

/// The `datatypes` model needs every input; these are small defaults.
fn datatypes_request(int64: Value, string: Value) -> Value {
    let mut inputs = vec![
        json!({"name": "input_int64", "shape": [1, 2], "datatype": "BYTES", "data": int64}),
        json!({"name": "input_string", "shape": [1, 2], "datatype": "BYTES", "data": string}),
    ];
    for (suffix, dt, v) in [
        ("bool", "BOOL", json!([true, false])),
        ("int8", "INT8", json!([1, 2])),
        ("int16", "INT16", json!([1, 2])),
        ("int32", "INT32", json!([1, 2])),
        ("uint8", "UINT8", json!([1, 2])),
        ("uint16", "UINT16", json!([1, 2])),
        ("uint32", "UINT32", json!([1, 2])),
        ("uint64", "UINT64", json!([1, 2])),
        ("fp16", "FP16", json!([1, 2])),
        ("fp32", "FP32", json!([1, 2])),
        ("fp64", "FP64", json!([1, 2])),
    ] {
        inputs.push(
            json!({"name": format!("input_{suffix}"), "shape": [1, 2], "datatype": dt, "data": v}),
        );
    }
    json!({"inputs": inputs})
}

#[tokio::test]
async fn datetime_feeds_int64_and_comes_back_iso() {
    let dir = typed_outputs_repository();
    let s = TestServer::start(dir.path()).await;
    let req = datatypes_request(
        json!(["2021-08-24T15:01:19", "1970-01-01T00:00:01+00:00"]),
        json!(["hi", "there"]),
    );
    let (status, r) = s.post("/v2/models/types/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    let out = |name: &str| {
        r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap()
            .clone()
    };
    let dt = out("output_int64");
    assert_eq!(dt["datatype"], "BYTES");
    assert_eq!(
        dt["data"],
        json!(["2021-08-24T15:01:19+00:00", "1970-01-01T00:00:01+00:00"])
    );
    assert_eq!(dt["parameters"], json!({"content_type": "datetime"}));
    assert_eq!(
        out("output_string")["data"],
        json!([b64(b"hi"), b64(b"there")])
    );
    let bad = datatypes_request(
        json!(["2021-08-24T15:01:19", "not a date"]),
        json!(["a", "b"]),
    );
    assert_error(
        &s.post("/v2/models/types/infer", &bad).await,
        400,
        "input 'input_int64' element 1 (\"not a date\") is not an ISO 8601 datetime",
    );
}

#[tokio::test]
async fn images_are_decoded_resized_and_checked() {
    let s = TestServer::start(&bundled_repository()).await;
    // A PNG (exact), a JPEG (lossy) and a lossless WebP in one batch, base64 in JSON; 64x64 resized to the
    // model's 32x32.
    let png = encoded(solid(64, 100), image::ImageFormat::Png);
    let jpeg = encoded(solid(32, 0), image::ImageFormat::Jpeg);
    let webp = encoded(solid(48, 7), image::ImageFormat::WebP);
    let req = json!({"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES", "data": [b64(&png), b64(&jpeg), b64(&webp)]}]});
    let (status, r) = s.post("/v2/models/image_stats/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_mean(&r, 0, [255.0, 0.0, 100.0], 0.01);
    assert_mean(&r, 1, [255.0, 0.0, 0.0], 3.0);
    assert_mean(&r, 2, [255.0, 0.0, 7.0], 0.01);
    // The `pillow_image` name, raw bytes over the binary extension.
    let header = json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
        "parameters": {"content_type": "pillow_image", "binary_data_size": png.len() + 4}}]});
    let mut body = serde_json::to_vec(&header).unwrap();
    let len = body.len();
    body.extend_from_slice(&(png.len() as u32).to_le_bytes());
    body.extend_from_slice(&png);
    let r: Value = s
        .client
        .post(s.url("/v2/models/image_stats/infer"))
        .header("Inference-Header-Content-Length", len)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_mean(&r, 0, [255.0, 0.0, 100.0], 0.01);
    // Garbage is a 400 naming the input.
    let req = json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(b"GIF89a-nope")]}]});
    assert_error(
        &s.post("/v2/models/image_stats/infer", &req).await,
        400,
        "input 'image' element 0 is not a JPEG, PNG or WebP image",
    );
    // A WebP cut short is a 400 naming the element, not a panic.
    let req = json!({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64(&webp), b64(&webp[..webp.len() / 2])]}]});
    assert_error(
        &s.post("/v2/models/image_stats/infer", &req).await,
        400,
        "input 'image' element 1 is not a decodable image",
    );
    let req =
        json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["!!!"]}]});
    assert_error(
        &s.post("/v2/models/image_stats/infer", &req).await,
        400,
        "neither an image",
    );
}

#[tokio::test]
async fn unknown_content_types_are_ignored() {
    let s = TestServer::start(&bundled_repository()).await;
    let mut req = support::iris_request();
    req["parameters"] = json!({"content_type": "something-else"});
    req["inputs"][0]["parameters"] = json!({"content_type": "dict"});
    assert_eq!(s.post("/v2/models/iris/infer", &req).await.0, 200);
}
