//! gRPC helpers: tonic clients of a test server, and test-side builders/readers of requests and responses
//! written independently of the server's converters.

use std::time::{Duration, Instant};

use half::f16;
use oxinfer::grpc::pb;
use oxinfer::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxinfer::grpc::pb::model_infer_request::InferInputTensor;
use oxinfer::tensor::binary::{decode_raw, encode_raw};
use oxinfer::tensor::{BytesBuf, DataType, Tensor, TensorData};
use tonic::transport::Channel;

use super::server::{shared, Addrs};

pub type Client = GrpcInferenceServiceClient<Channel>;

/// A connected channel, for the health and reflection clients.
pub async fn channel(addrs: Addrs) -> Channel {
    Channel::from_shared(addrs.grpc_url())
        .expect("a valid URL")
        .connect()
        .await
        .expect("connects")
}

/// A client without message size limits (the server's limit is what the tests exercise).
pub async fn connect(addrs: Addrs) -> Client {
    GrpcInferenceServiceClient::connect(addrs.grpc_url())
        .await
        .expect("connects")
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// Connects and polls ServerReady until it says true (every bundled model loaded).
pub async fn ready_client(addrs: Addrs) -> Client {
    let mut client = connect(addrs).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .server_ready(pb::ServerReadyRequest {})
            .await
            .expect("ServerReady answers")
            .into_inner()
            .ready;
        if ready {
            return client;
        }
        assert!(Instant::now() < deadline, "server not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The shared server's ready client.
pub async fn client() -> Client {
    ready_client(shared()).await
}

pub fn tensor(name: &str, shape: Vec<usize>, data: TensorData) -> Tensor {
    Tensor::new(name, shape, data).expect("count matches shape")
}

pub fn bytes_data(elements: &[&str]) -> TensorData {
    TensorData::Bytes(elements.iter().map(|s| s.as_bytes()).collect::<BytesBuf>())
}

/// The suffixes of the `datatypes` model's inputs (`input_<t>`) and outputs (`output_<t>`).
pub const DATATYPES: [&str; 13] = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "fp16",
    "fp32", "fp64", "string",
];

/// `rows` x 3 elements of `datatypes` input `suffix`, including each type's extremes.
pub fn datatypes_input(suffix: &str, rows: usize) -> Tensor {
    let n = rows * 3;
    let pick =
        |values: &[i128]| -> Vec<i128> { (0..n).map(|i| values[i % values.len()]).collect() };
    let data = match suffix {
        "bool" => TensorData::Bool((0..n).map(|i| i % 3 != 1).collect()),
        "int8" => TensorData::Int8(
            pick(&[-128, -1, 0, 1, 127])
                .into_iter()
                .map(|v| v as i8)
                .collect(),
        ),
        "int16" => TensorData::Int16(
            pick(&[i16::MIN as i128, -1, 0, 7, i16::MAX as i128])
                .into_iter()
                .map(|v| v as i16)
                .collect(),
        ),
        "int32" => TensorData::Int32(
            pick(&[i32::MIN as i128, -1, 0, 7, i32::MAX as i128])
                .into_iter()
                .map(|v| v as i32)
                .collect(),
        ),
        "int64" => TensorData::Int64(
            pick(&[i64::MIN as i128, -1, 0, 7, i64::MAX as i128])
                .into_iter()
                .map(|v| v as i64)
                .collect(),
        ),
        "uint8" => TensorData::Uint8(
            pick(&[0, 1, 200, 255])
                .into_iter()
                .map(|v| v as u8)
                .collect(),
        ),
        "uint16" => {
            TensorData::Uint16(pick(&[0, 1, 65535]).into_iter().map(|v| v as u16).collect())
        }
        "uint32" => TensorData::Uint32(
            pick(&[0, 1, u32::MAX as i128])
                .into_iter()
                .map(|v| v as u32)
                .collect(),
        ),
        "uint64" => TensorData::Uint64(
            pick(&[0, 1, u64::MAX as i128])
                .into_iter()
                .map(|v| v as u64)
                .collect(),
        ),
        "fp16" => TensorData::Fp16(
            [1.5f32, -2.0, 0.25, 0.0, 65504.0, -0.5]
                .iter()
                .cycle()
                .take(n)
                .map(|&v| f16::from_f32(v))
                .collect(),
        ),
        "fp32" => TensorData::Fp32(
            [1.5f32, -2.25, 3.0e38, 0.0, 1e-3, -7.0]
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect(),
        ),
        "fp64" => TensorData::Fp64(
            [1e300f64, -2.5, 0.1, 0.0, -1e-300, 3.0]
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect(),
        ),
        "string" => {
            let words = ["a", "", "héllo", "x y", "123", "\u{1F600}"];
            bytes_data(&(0..n).map(|i| words[i % words.len()]).collect::<Vec<_>>())
        }
        other => panic!("no datatypes input {other}"),
    };
    tensor(&format!("input_{suffix}"), vec![rows, 3], data)
}

/// Every input of the `datatypes` model.
pub fn datatypes_inputs(rows: usize) -> Vec<Tensor> {
    DATATYPES.iter().map(|s| datatypes_input(s, rows)).collect()
}

/// An input tensor message without contents.
pub fn input_message(tensor: &Tensor) -> InferInputTensor {
    InferInputTensor {
        name: tensor.name.clone(),
        datatype: tensor.datatype().as_str().into(),
        shape: tensor.shape().iter().map(|&d| d as i64).collect(),
        ..Default::default()
    }
}

/// A request with every input in `raw_input_contents` (how tritonclient sends).
pub fn raw_request(model: &str, inputs: &[Tensor]) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs: inputs.iter().map(input_message).collect(),
        raw_input_contents: inputs
            .iter()
            .map(|t| {
                let mut raw = Vec::new();
                encode_raw(t.data(), &mut raw);
                raw.into()
            })
            .collect(),
        ..Default::default()
    }
}

/// A request with every input in typed `contents`.
pub fn typed_request(model: &str, inputs: &[Tensor]) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs: inputs
            .iter()
            .map(|t| InferInputTensor {
                contents: Some(typed_contents(t.data())),
                ..input_message(t)
            })
            .collect(),
        ..Default::default()
    }
}

/// Typed contents for a buffer (FP16 cannot be typed: only an empty one is allowed).
pub fn typed_contents(data: &TensorData) -> pb::InferTensorContents {
    let mut c = pb::InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v.clone(),
        TensorData::Int8(v) => c.int_contents = v.iter().map(|&x| x as i32).collect(),
        TensorData::Int16(v) => c.int_contents = v.iter().map(|&x| x as i32).collect(),
        TensorData::Int32(v) => c.int_contents = v.clone(),
        TensorData::Int64(v) => c.int64_contents = v.clone(),
        TensorData::Uint8(v) => c.uint_contents = v.iter().map(|&x| x as u32).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.iter().map(|&x| x as u32).collect(),
        TensorData::Uint32(v) => c.uint_contents = v.clone(),
        TensorData::Uint64(v) => c.uint64_contents = v.clone(),
        TensorData::Fp32(v) => c.fp32_contents = v.clone(),
        TensorData::Fp64(v) => c.fp64_contents = v.clone(),
        TensorData::Bytes(b) => c.bytes_contents = b.iter().map(|e| e.to_vec()).collect(),
        empty if empty.is_empty() => {}
        other => panic!("{} has no typed contents", other.datatype()),
    }
    c
}

/// Reads typed contents back into a buffer of `datatype`.
pub fn from_typed(datatype: DataType, c: &pb::InferTensorContents) -> TensorData {
    match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents.clone()),
        DataType::Int8 => TensorData::Int8(c.int_contents.iter().map(|&x| x as i8).collect()),
        DataType::Int16 => TensorData::Int16(c.int_contents.iter().map(|&x| x as i16).collect()),
        DataType::Int32 => TensorData::Int32(c.int_contents.clone()),
        DataType::Int64 => TensorData::Int64(c.int64_contents.clone()),
        DataType::Uint8 => TensorData::Uint8(c.uint_contents.iter().map(|&x| x as u8).collect()),
        DataType::Uint16 => TensorData::Uint16(c.uint_contents.iter().map(|&x| x as u16).collect()),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents.clone()),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents.clone()),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents.clone()),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents.clone()),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.iter().map(Vec::as_slice).collect()),
        DataType::Fp16 | DataType::Bf16 => panic!("{datatype} never comes typed"),
    }
}

/// The response's outputs as tensors, read from raw or typed contents (asserting which one was used).
pub fn outputs(response: &pb::ModelInferResponse, expect_raw: bool) -> Vec<Tensor> {
    if expect_raw {
        assert_eq!(
            response.raw_output_contents.len(),
            response.outputs.len(),
            "raw outputs"
        );
    } else {
        assert!(
            response.raw_output_contents.is_empty(),
            "expected typed outputs"
        );
    }
    response
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let datatype = DataType::parse(&o.datatype).expect("known datatype");
            let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
            let count = shape.iter().product();
            let data = if expect_raw {
                assert!(o.contents.is_none(), "raw response with typed contents too");
                decode_raw(
                    &o.name,
                    datatype,
                    count,
                    &response.raw_output_contents[i][..],
                )
                .expect("well-formed raw output")
            } else {
                from_typed(datatype, o.contents.as_ref().expect("typed contents"))
            };
            tensor(&o.name, shape, data)
        })
        .collect()
}

/// The output named `name`.
pub fn output<'a>(outputs: &'a [Tensor], name: &str) -> &'a Tensor {
    outputs
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no output {name}"))
}

/// A tensor's data as REST writes it, read back as a JSON value (through text, as a client sees it).
pub fn json_data(data: &TensorData) -> serde_json::Value {
    let text = serde_json::to_vec(&oxinfer::http::json::JsonData::new(data)).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// The REST JSON body for the same inputs.
pub fn rest_body(inputs: &[Tensor]) -> serde_json::Value {
    serde_json::json!({
        "inputs": inputs.iter().map(|t| serde_json::json!({
            "name": t.name,
            "shape": t.shape(),
            "datatype": t.datatype().as_str(),
            "data": json_data(t.data()),
        })).collect::<Vec<_>>()
    })
}

/// An output as REST would write it: (name, datatype, shape, data).
pub fn as_json(t: &Tensor) -> serde_json::Value {
    serde_json::json!({
        "name": t.name,
        "datatype": t.datatype().as_str(),
        "shape": t.shape(),
        "data": json_data(t.data()),
    })
}
