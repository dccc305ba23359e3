//! Generates the gRPC code (messages, server and client) from proto/ into OUT_DIR, plus the file
//! descriptor set that server reflection serves. protoc comes from `PROTOC` when set, else the vendored one.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=proto");
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => protoc_bin_vendored::protoc_bin_path()?,
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("inference_descriptor.bin"))
        // prost's codec, with large messages decoded and encoded as blocking work (src/grpc/codec.rs).
        .codec_path("crate::grpc::message_codec::OffRuntimeCodec")
        // Raw tensor bytes as `bytes::Bytes`: decoded without a copy out of the receive buffer.
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_with_config(config, &["proto/grpc_service.proto"], &["proto"])?;
    Ok(())
}
