//! Hostile connections against the real server: slowloris headers, idle keep-alive connections, a client holding
//! every descriptor it can, HTTP/2 streams past the limit, thousands of open gRPC streams, and shutdown with a
//! stream left open. Each asserts the server's answer, its liveness while the attack runs and, where the attack
//! is about memory or descriptors, what the process holds afterwards.

use crate::support;

use std::time::{Duration, Instant};

use oxinfer::tensor::TensorData;
use serde_json::json;
use support::grpc::{outputs, raw_request, tensor};
use support::hostile::{liveness_during, rss_bytes, rss_settles_below};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::Settings;
use support::{test_settings, write_model, Spawned, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

/// The issue's liveness target while an attack runs.
const LIVE: Duration = Duration::from_millis(100);

// Each test here measures latency, which another test's attack would skew: each runs `support::hostile::alone()`.

/// A test server on the bundled repository with `change` applied to its settings.
async fn server_with(change: impl FnOnce(&mut Settings)) -> TestServer {
    let mut settings = test_settings(&support::bundled_repository());
    change(&mut settings);
    TestServer::start_with(settings).await
}

/// Reads from `stream` until the server closes it (EOF or reset); returns everything read and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from `stream`: (status, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            while got.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.expect("the body");
                assert!(n > 0, "closed in the middle of the body");
                got.extend_from_slice(&buf[..n]);
            }
            let status = head[9..12].parse().unwrap();
            let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).to_string();
            return (status, body);
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .expect("a response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_headers_and_silent_connections_are_closed_at_the_header_read_timeout() {
    let _alone = support::hostile::alone().await;
    let s = server_with(|s| s.http_header_read_timeout = 1.0).await;
    let addr = s.server.http_addr;
    let probed = liveness_during(&addr.to_string(), None, async {
        // Headers dribbled one line every 100 ms: never complete.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        slow.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let (mut reader, mut writer) = slow.into_split();
        let dribble = tokio::spawn(async move {
            while writer.write_all(b"x-pad: 1\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut answer = Vec::new();
        let closed = loop {
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => panic!("a slowloris connection was kept 10 s"),
            }
        };
        dribble.abort();
        // A connection that sends nothing at all.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let (got, at) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
        let silent_closed = at.expect("a silent connection was kept 10 s") - started;
        // The metrics listener has the same hygiene.
        let metrics = s.server.metrics_addr.expect("metrics on");
        let mut silent = TcpStream::connect(metrics).await.unwrap();
        let started = Instant::now();
        let (_, at) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
        let metrics_closed = at.expect("a silent metrics connection was kept 10 s") - started;
        (closed, answer, silent_closed.max(metrics_closed), got)
    })
    .await;
    probed.assert_live_within(LIVE);
    let (closed, answer, silent_closed, silent_got) = probed.result;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(silent_got.is_empty());
    for (what, elapsed) in [("slowloris", closed), ("silent", silent_closed)] {
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(3000),
            "{what} connection closed after {elapsed:?} (timeout 1 s)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_keep_alive_connections_close_after_the_timeout_but_a_slow_request_is_answered() {
    let _alone = support::hostile::alone().await;
    let s = server_with(|s| {
        s.http_keep_alive_timeout = 1.0;
        s.http_header_read_timeout = 5.0;
    })
    .await;
    let addr = s.server.http_addr;
    let probed = liveness_during(&addr.to_string(), None, async {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut conn).await;
        let idle_from = Instant::now();
        let (rest, at) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
        let idle = at.expect("an idle connection was kept 10 s") - idle_from;

        // A request whose body takes 2.5 s (longer than the idle timeout) is in flight, not idle.
        let body = serde_json::to_vec(&support::iris_request()).unwrap();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v2/models/iris/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        slow.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        for piece in body.chunks(body.len().div_ceil(5)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            slow.write_all(piece).await.unwrap();
        }
        let slow_answer = read_response(&mut slow).await;
        (answer, rest, idle, slow_answer, started.elapsed())
    })
    .await;
    probed.assert_live_within(LIVE);
    let ((status, body), rest, idle, (slow_status, slow_body), slow_took) = probed.result;
    assert_eq!((status, body.as_str()), (200, r#"{"live":true}"#));
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_millis(3000),
        "the idle connection closed after {idle:?} (timeout 1 s)"
    );
    assert_eq!(slow_status, 200, "{slow_body}");
    let answer: serde_json::Value = serde_json::from_str(&slow_body).unwrap();
    assert_eq!(answer["outputs"][0]["name"], "label");
    assert_eq!(answer["outputs"][0]["data"], json!([0, 2]));
    assert!(slow_took >= Duration::from_millis(2500), "{slow_took:?}");
}

/// The real binary with its open-file limit (soft and hard) set to `files`.
fn spawn_with_open_files(files: u64, env: &[(&str, &str)]) -> Spawned {
    use std::os::unix::process::CommandExt;
    let repository = support::bundled_repository().display().to_string();
    let mut all_env = vec![
        ("MLSERVER_HTTP_PORT", "0"),
        ("MLSERVER_GRPC_PORT", "0"),
        ("MLSERVER_HOST", "127.0.0.1"),
    ];
    all_env.extend_from_slice(env);
    let mut command = Spawned::command(&["start", &repository], &all_env);
    let limit = libc::rlimit {
        rlim_cur: files as libc::rlim_t,
        rlim_max: files as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe and touches only the child being started.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Spawned::run(command)
}

/// A flood (hundreds of connects or thousands of streams at once) is absorbed at the speed of the accept queue:
/// on this shared 2-core machine with a debug build, probes queued behind it took up to ~200 ms (the 100 ms
/// target is asserted while an attacker holds what it opened). Every probe must still be answered, within 1 s.
fn assert_not_locked_out<T>(probed: &support::hostile::Probed<T>) {
    assert_eq!(
        probed.failures, 0,
        "liveness probes failed: {:?}",
        probed.latencies
    );
    assert!(
        probed.worst() < Duration::from_secs(1),
        "liveness took {:?} during the flood",
        probed.worst()
    );
    eprintln!("worst liveness during the flood: {:?}", probed.worst());
}

/// How many of `conns` the server has closed (reading what it sent, a non-blocking read then sees EOF or a
/// reset).
fn closed_by_server(conns: &[TcpStream]) -> usize {
    let closed = |c: &TcpStream| loop {
        let mut buf = [0u8; 1024];
        match c.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    conns.iter().filter(|c| closed(c)).count()
}

/// Open descriptors of `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_held_at_the_open_file_limit_do_not_lock_clients_out() {
    let _alone = support::hostile::alone().await;
    // The reproduction: with 256 descriptors, 244 idle connections used to leave none for new clients.
    let server = spawn_with_open_files(256, &[]);
    server.wait_ready().await;
    let pid = server.child.id();
    let held = 244;
    // The flood of connects: probes wait behind it in the accept queue, but none is locked out.
    let flood = liveness_during(&server.http, Some(pid), async {
        let mut rest = Vec::new();
        let mut grpc = Vec::new();
        for _ in 0..held {
            rest.push(TcpStream::connect(&server.http).await.unwrap());
            grpc.push(TcpStream::connect(&server.grpc).await.unwrap());
        }
        (rest, grpc)
    })
    .await;
    assert_not_locked_out(&flood);
    let (rest, grpc) = flood.result;
    // While the attacker holds every connection it could open: liveness, and real clients served.
    let probed = liveness_during(&server.http, Some(pid), async {
        // Real clients, on fresh connections, while the attacker holds everything it could open.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut answers = Vec::new();
        for _ in 0..5 {
            let r = client
                .post(server.url("/v2/models/iris/infer"))
                .json(&support::iris_request())
                .send()
                .await
                .expect("REST answers at the cap");
            answers.push((
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            ));
        }
        let mut grpc_client =
            GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
                .await
                .expect("gRPC accepts at the cap");
        let live = grpc_client
            .server_live(pb::ServerLiveRequest {})
            .await
            .expect("ServerLive answers at the cap")
            .into_inner()
            .live;
        (answers, live)
    })
    .await;
    let (answers, live) = &probed.result;
    for (status, body) in answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["outputs"][0]["data"], json!([0, 2]));
    }
    assert!(live);
    probed.assert_live_within(LIVE);
    // The derived cap (51 per listener under 256 descriptors) closed the longest-idle connections to make room.
    let (rest_closed, grpc_closed) = (closed_by_server(&rest), closed_by_server(&grpc));
    assert!(
        rest_closed >= held - 51 - 32,
        "REST closed only {rest_closed} of {held}"
    );
    assert!(
        grpc_closed >= held - 51 - 32,
        "gRPC closed only {grpc_closed} of {held}"
    );
    let files = open_files(pid);
    assert!(files < 256, "{files} descriptors open");
}

/// A client speaking raw HTTP/2 frames (to do what a well-behaved client library would not).
struct RawH2 {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Frame types and flags used here.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK literal header field without indexing (names and values under 127 bytes).
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

impl RawH2 {
    /// Connects, exchanges SETTINGS (acknowledging the server's) and returns the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    async fn connect(addr: &str) -> (RawH2, Option<u32>) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        let mut h2 = RawH2 {
            stream,
            buf: Vec::new(),
        };
        loop {
            let (kind, flags, _, payload) = h2.next_frame().await.expect("the server's SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                let max = payload.chunks_exact(6).find_map(|s| {
                    (u16::from_be_bytes([s[0], s[1]]) == 0x3)
                        .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
                });
                h2.stream
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .unwrap();
                return (h2, max);
            }
        }
    }

    /// Opens streams `ids` as ModelStreamInfer calls that send nothing more (one write).
    async fn open_streams(&mut self, ids: impl Iterator<Item = u32>) {
        let mut block = Vec::new();
        literal(&mut block, ":method", "POST");
        literal(&mut block, ":scheme", "http");
        literal(
            &mut block,
            ":path",
            "/inference.GRPCInferenceService/ModelStreamInfer",
        );
        literal(&mut block, ":authority", "x");
        literal(&mut block, "content-type", "application/grpc");
        literal(&mut block, "te", "trailers");
        let mut out = Vec::new();
        for id in ids {
            out.extend(frame(HEADERS, END_HEADERS, id, &block));
        }
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame (type, flags, stream, payload); `None` when the connection closes or 5 s pass.
    async fn next_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let (kind, flags) = (self.buf[3], self.buf[4]);
                    let id =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & 0x7fff_ffff;
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    return Some((kind, flags, id, payload));
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads frames until `want` streams got response HEADERS; returns those and the refused streams.
    async fn responses(&mut self, want: usize) -> (Vec<u32>, Vec<u32>) {
        let (mut answered, mut refused) = (Vec::new(), Vec::new());
        while answered.len() < want {
            let Some((kind, _, id, payload)) = self.next_frame().await else {
                break;
            };
            match kind {
                HEADERS => answered.push(id),
                RST_STREAM => {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    assert_eq!(code, REFUSED_STREAM, "stream {id} reset with {code}");
                    refused.push(id);
                }
                GOAWAY => panic!("the server closed the connection: {payload:?}"),
                DATA => panic!("data on stream {id} before any request"),
                _ => {}
            }
        }
        (answered, refused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_advertises_and_enforces_max_concurrent_streams() {
    let _alone = support::hostile::alone().await;
    let s = server_with(|s| s.http2_max_concurrent_streams = 4).await;
    let grpc = s.server.grpc_addr.to_string();
    let probed = liveness_during(&s.server.http_addr.to_string(), None, async {
        let (mut h2, advertised) = RawH2::connect(&grpc).await;
        // Let the server see our SETTINGS ACK before the streams (it enforces what was acknowledged).
        tokio::time::sleep(Duration::from_millis(100)).await;
        h2.open_streams((0..6).map(|i| 1 + 2 * i)).await;
        let (answered, refused) = h2.responses(4).await;
        // Wait for the two refusals if they come after the answers.
        let mut refused = refused;
        while refused.len() < 2 {
            match h2.next_frame().await {
                Some((RST_STREAM, _, id, _)) => refused.push(id),
                Some(_) => {}
                None => break,
            }
        }
        (advertised, answered, refused)
    })
    .await;
    probed.assert_live_within(LIVE);
    let (advertised, answered, refused) = probed.result;
    assert_eq!(advertised, Some(4));
    let mut answered = answered;
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 3, 5, 7]);
    assert_eq!(refused, vec![9, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_open_grpc_streams_are_bounded_and_memory_comes_back_after_they_close() {
    let _alone = support::hostile::alone().await;
    let server = Spawned::start(
        &[
            "start",
            &support::bundled_repository().display().to_string(),
        ],
        &[
            ("MLSERVER_HOST", "127.0.0.1"),
            ("MLSERVER_HTTP_PORT", "0"),
            ("MLSERVER_GRPC_PORT", "0"),
        ],
    );
    server.wait_ready().await;
    let pid = server.child.id();
    // Warm both transports up so that idle means "has served".
    reqwest::get(server.url("/v2/health/live")).await.unwrap();
    let (warm, _) = RawH2::connect(&server.grpc).await;
    drop(warm);
    let idle = rss_bytes(pid);
    let connections = 40;
    let per_connection = 300; // the default limit is 256: 44 of each connection's streams are refused
    let flood = liveness_during(&server.http, Some(pid), async {
        let mut open = Vec::new();
        let (mut answered, mut refused) = (0, 0);
        for _ in 0..connections {
            let (mut h2, advertised) = RawH2::connect(&server.grpc).await;
            assert_eq!(advertised, Some(256));
            tokio::time::sleep(Duration::from_millis(20)).await;
            h2.open_streams((0..per_connection).map(|i| 1 + 2 * i))
                .await;
            let (a, r) = h2.responses(256).await;
            answered += a.len();
            refused += r.len();
            open.push(h2);
        }
        (open, answered, refused)
    })
    .await;
    assert_not_locked_out(&flood);
    let (open, answered, _refused) = flood.result;
    // Held: liveness at the target.
    let probed = liveness_during(&server.http, Some(pid), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_bytes(pid)
    })
    .await;
    let held = probed.result;
    // Closed all at once: tearing 10,240 streams down is another burst.
    let teardown = liveness_during(&server.http, Some(pid), async {
        drop(open);
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    assert_not_locked_out(&teardown);
    assert_eq!(answered, connections * 256);
    // At least two thirds of what the streams took comes back (the rest is the allocator's fragmentation:
    // measured 14 KB per open stream, +144 MB for 10,240 and +38 MB left after they closed, debug build).
    let target = idle + (held.saturating_sub(idle)) / 3;
    // The memory comes back through a trim of the allocator's arenas: liveness at the target meanwhile.
    let settling = liveness_during(&server.http, Some(pid), rss_settles_below(pid, target)).await;
    settling.assert_live_within(LIVE);
    let after = settling.result;
    eprintln!(
        "RSS idle {} MB, with {answered} open streams {} MB (peak {} MB), after closing {} MB; {} descriptors open",
        idle >> 20,
        held >> 20,
        flood.peak_rss.max(probed.peak_rss) >> 20,
        after >> 20,
        open_files(pid)
    );
    assert!(
        after <= target,
        "RSS {} MB after the streams closed (idle {} MB, {} MB with them open)",
        after >> 20,
        idle >> 20,
        held >> 20
    );
    probed.assert_live_within(LIVE);
}

/// A model folder holding a copy of iris that waits up to `wait` seconds to fill a batch.
fn slow_iris(root: &std::path::Path, wait: f64) {
    write_model(
        root,
        "slow",
        &json!({"name": "slow", "max_batch_size": 64, "max_batch_time": wait,
                "parameters": {"uri": "./model.onnx"}}),
        Some("iris"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_idle_streams_within_two_seconds_and_answers_the_request_in_flight() {
    let _alone = support::hostile::alone().await;
    let root = tempfile::tempdir().unwrap();
    slow_iris(root.path(), 1.0);
    let mut settings = test_settings(root.path());
    settings.graceful_shutdown_timeout = 30.0;
    let s = TestServer::start_with(settings).await;
    let url = format!("http://{}", s.server.grpc_addr);
    let mut client = GrpcInferenceServiceClient::connect(url).await.unwrap();

    // An idle stream: opened, nothing sent.
    let (_idle_tx, idle_rx) = tokio::sync::mpsc::channel::<pb::ModelInferRequest>(1);
    let mut idle = client
        .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(idle_rx))
        .await
        .unwrap()
        .into_inner();
    // A stream with a request (answered at once now that an idle batching model does not wait the window).
    let (busy_tx, busy_rx) = tokio::sync::mpsc::channel(1);
    let mut busy = client
        .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(busy_rx))
        .await
        .unwrap()
        .into_inner();
    let input = tensor(
        "input",
        vec![2, 4],
        TensorData::Fp32(vec![5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]),
    );
    busy_tx.send(raw_request("slow", &[input])).await.unwrap();
    let service = s.server.service.clone();
    support::wait_until("the request reaches the model", || {
        let text = service.metrics_text();
        async move {
            text.lines().any(|l| {
                l.starts_with("batch_request_queue_count")
                    && l.contains("slow")
                    && !l.ends_with(" 0")
            })
        }
    })
    .await;

    let started = Instant::now();
    let shutdown = tokio::spawn(s.server.shutdown(Duration::from_secs(30)));
    let idle_end = idle
        .message()
        .await
        .expect_err("the idle stream ends with a status");
    let idle_ended = started.elapsed();
    let answer = busy
        .message()
        .await
        .expect("the answer")
        .expect("a message");
    assert_eq!(answer.error_message, "");
    let label = outputs(answer.infer_response.as_ref().unwrap(), true)
        .into_iter()
        .find(|t| t.name == "label")
        .unwrap();
    assert_eq!(*label.data(), TensorData::Int64(vec![0, 2]));
    let busy_end = busy
        .message()
        .await
        .expect_err("then the stream ends with a status");
    let drained = shutdown.await.unwrap();
    let took = started.elapsed();
    drop(busy_tx);

    for status in [&idle_end, &busy_end] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("shutting down"), "{status:?}");
    }
    // Streams end once idle for 2 s after the stop (the busy one: 2 s after its answer, at about 1 s).
    assert!(
        idle_ended >= Duration::from_millis(1900) && idle_ended < Duration::from_millis(4000),
        "the idle stream ended after {idle_ended:?}"
    );
    assert!(drained, "in-flight requests did not finish");
    assert!(
        took < Duration::from_secs(6),
        "shutdown took {took:?} (graceful timeout 30 s)"
    );
}

/// A model folder holding tests/models/slow_identity.onnx (a fixed cost per run) with one instance, one thread.
fn slow_identity(root: &std::path::Path) {
    let dir = write_model(
        root,
        "slow",
        &json!({"name": "slow", "parallel_workers": 1,
                "parameters": {"uri": "./model.onnx", "extra": {"intra_op_threads": 1}}}),
        None,
    );
    let fixture = support::test_model("slow_identity");
    std::fs::copy(fixture, dir.join("model.onnx")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grpc_call_past_its_grpc_timeout_is_cancelled() {
    let _alone = support::hostile::alone().await;
    let root = tempfile::tempdir().unwrap();
    slow_identity(root.path());
    let s = TestServer::start_with(test_settings(root.path())).await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", s.server.grpc_addr))
        .await
        .unwrap();
    let input = || tensor("x", vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]));
    // Requests without a deadline fill the model's queue, so the timed one waits far past its 300 ms.
    let mut ahead = Vec::new();
    for _ in 0..12 {
        let mut c = client.clone();
        let request = raw_request("slow", &[input()]);
        ahead.push(tokio::spawn(
            async move { c.model_infer(request).await.is_ok() },
        ));
    }
    let service = s.server.service.clone();
    support::wait_until("requests queue behind the slow model", || {
        let text = service.metrics_text();
        async move {
            text.lines().any(|l| {
                l.starts_with("model_queue_depth{model=\"slow\"")
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) >= Some(6.0)
            })
        }
    })
    .await;
    let mut request = tonic::Request::new(raw_request("slow", &[input()]));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = client
        .model_infer(request)
        .await
        .expect_err("past its deadline");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(status.message(), "Timeout expired");
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    for answered in ahead {
        assert!(answered.await.unwrap(), "the requests ahead are answered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_idle_connections_and_an_idle_stream_open_exits_within_seconds() {
    let _alone = support::hostile::alone().await;
    let mut server = Spawned::start(
        &[
            "start",
            &support::bundled_repository().display().to_string(),
        ],
        &[
            ("MLSERVER_HOST", "127.0.0.1"),
            ("MLSERVER_HTTP_PORT", "0"),
            ("MLSERVER_GRPC_PORT", "0"),
            ("MLSERVER_GRACEFUL_SHUTDOWN_TIMEOUT", "30"),
        ],
    );
    server.wait_ready().await;
    // An idle keep-alive REST connection, a silent connection, and an idle ModelStreamInfer stream.
    let mut keep_alive = TcpStream::connect(&server.http).await.unwrap();
    keep_alive
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut keep_alive).await.0, 200);
    let _silent = TcpStream::connect(&server.http).await.unwrap();
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::ModelInferRequest>(1);
    let mut stream = client
        .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let started = Instant::now();
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let status = stream
        .message()
        .await
        .expect_err("the stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = started.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM (graceful timeout 30 s)"
    );
    let (rest, at) = read_until_closed(&mut keep_alive, Duration::from_secs(1)).await;
    assert!(
        rest.is_empty() && at.is_some(),
        "the keep-alive connection was closed"
    );
    eprintln!("exited {took:?} after SIGTERM");
}
