//! The real binary: --version, --help, start-up errors, and serving on a free port.

use std::time::{Duration, Instant};

use crate::support::{self, oxinfer, Spawned};

fn repo() -> String {
    support::bundled_repository().display().to_string()
}

#[test]
fn version_and_help() {
    let out = oxinfer().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oxinfer {}", env!("CARGO_PKG_VERSION"))
    );
    let out = oxinfer().args(["start", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--http-port",
        "--grpc-port",
        "--host",
        "--onnxruntime-lib",
        "MLSERVER_HTTP_PORT",
        "[FOLDER]",
    ] {
        assert!(help.contains(option), "help lacks {option}:\n{help}");
    }
}

#[test]
fn a_missing_onnxruntime_library_is_a_clear_error() {
    let out = oxinfer()
        .args([
            "start",
            &repo(),
            "--onnxruntime-lib",
            "/nonexistent/libonnxruntime.so",
            "--http-port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--onnxruntime-lib") && err.contains("/nonexistent/libonnxruntime.so"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn invalid_settings_stop_start_up_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        br#"{"http_port": "eighty"}"#,
    )
    .unwrap();
    let out = oxinfer()
        .args(["start", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid setting http_port"), "{err}");

    let out = oxinfer()
        .args(["start", dir.path().to_str().unwrap()])
        .env("MLSERVER_HTTP_PORT", "99999")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = oxinfer()
        .args(["start", "/no/such/folder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/folder"));
    // The folder can come from MLSERVER_MODELS_DIR (Seldon Core).
    let out = oxinfer()
        .arg("start")
        .env("MLSERVER_MODELS_DIR", "/no/such/models-dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/models-dir"));
}

#[test]
fn the_binary_serves_the_bundled_repository() {
    let repo = repo();
    let mut server = Spawned::start(
        &[
            "start",
            &repo,
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
        ],
        &[],
    );
    let addr = server.http.clone();
    let url = format!("http://{addr}/v2/health/ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{addr}/v2/models/iris/infer"))
            .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["outputs"][0]["data"], serde_json::json!([2]));
    });
    // SIGTERM stops it cleanly.
    server.sigterm();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
