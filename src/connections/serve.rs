//! The accept loop and the task that serves one connection under its [`Policy`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::policy::Policy;
use super::registry::{Admission, Registry};
use super::state::{instant_of, ConnState};
use super::tracked::{GuardedBody, TrackedIo};

/// After a graceful close (GOAWAY) starts on an idle connection, how long it gets before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long the loop waits after an accept error that is not about one connection (EMFILE, ENOBUFS...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Most one accept error is logged per this long.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection's timers are looked at least this often (a request ending does not wake its task).
const MAX_CHECK_PERIOD: Duration = Duration::from_secs(5);

/// Serves `service` on every connection `listener` accepts, under `policy`, until `stop` turns true; then
/// closes the listener, asks every connection to finish (idle ones close at once) and waits for them.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    policy: Policy,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let builder = Arc::new(connection_builder(&policy));
    let registry = Arc::new(Registry::new(policy.name, policy.max_connections));
    let policy = Arc::new(policy);
    let mut connections = JoinSet::new();
    let mut last_error_log: Option<Instant> = None;
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms a call).
                    let _ = stream.set_nodelay(true);
                    match admit(&registry).await {
                        Some(state) => {
                            connections.spawn(serve_connection(
                                builder.clone(),
                                stream,
                                service.clone(),
                                state,
                                registry.clone(),
                                policy.clone(),
                                stop.clone(),
                            ));
                        }
                        None => refuse(stream, policy.refusal.as_deref()),
                    }
                }
                Err(e) if is_about_one_connection(&e) => {}
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(
                            listener = policy.name,
                            open_connections = registry.len(),
                            "{} listener cannot accept a connection: {e}; retrying",
                            policy.name
                        );
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Admits a new connection, waiting (up to [`CLOSE_GRACE`] each time) while evicted connections are still closing
/// so that a burst of newcomers does not outrun the evictions; `None`: refuse it.
async fn admit(registry: &Registry) -> Option<Arc<ConnState>> {
    loop {
        match registry.admit() {
            Admission::Admitted(state) => return Some(state),
            Admission::Refused => return None,
            Admission::Wait => {
                if !registry.wait_for_close(CLOSE_GRACE).await {
                    return None;
                }
            }
        }
    }
}

/// The connection speaks HTTP/2 (a GOAWAY tells its client to go): the gRPC listener's always do, a REST
/// connection's requests tell.
fn speaks_http2(state: &ConnState, policy: &Policy) -> bool {
    policy.http2_only || (state.has_served() && state.is_http2())
}

/// Completes when the stop flag turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accept errors that concern only the connection being accepted (the loop goes on at once).
fn is_about_one_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Closes a connection refused at the cap, first writing `reply` if the socket takes it without waiting.
fn refuse(stream: TcpStream, reply: Option<&[u8]>) {
    if let Some(reply) = reply {
        let _ = stream.try_write(reply);
    }
}

/// hyper's connection builder for `policy`. HTTP/1.1 gets no timer: its header timeout is ours (hyper's would
/// also cut idle keep-alive connections at the header timeout).
fn connection_builder(policy: &Policy) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if policy.http2_only {
        builder = builder.http2_only();
    }
    builder.http1().keep_alive(true);
    let h2 = &policy.http2;
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .keep_alive_interval(h2.keep_alive_interval)
        .initial_stream_window_size(h2.stream_window)
        .initial_connection_window_size(h2.connection_window)
        .max_frame_size(h2.max_frame_size);
    if let Some(timeout) = h2.keep_alive_timeout {
        http2.keep_alive_timeout(timeout);
    }
    builder
}

/// Serves one connection until it ends, its timers run out, it is evicted, or the server stops.
async fn serve_connection<S, B>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    service: S,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    policy: Arc<Policy>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let requests = state.clone();
    let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = requests.begin_request(request.version() == Version::HTTP_2);
        let call = service.clone().oneshot(request);
        async move {
            let response = call.await?;
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
        }
    });
    let io = TokioIo::new(TrackedIo::new(stream, state.clone()));
    let conn = builder.serve_connection(io, hyper_service);
    tokio::pin!(conn);
    let timeouts = policy.timeouts;
    let check_period = [timeouts.header_read, timeouts.idle]
        .into_iter()
        .flatten()
        .fold(MAX_CHECK_PERIOD, Duration::min);
    // When a graceful close started (GOAWAY sent, or keep-alive off after the current request).
    let mut closing: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let wake = match closing {
            Some(since) if state.is_idle() => (since + CLOSE_GRACE).max(now),
            Some(_) => now + check_period,
            None => state
                .deadline(&timeouts)
                .map(instant_of)
                .map_or(now + check_period, |deadline| {
                    deadline.min(now + check_period)
                }),
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = policy.name, "connection ended: {e}");
                }
                break;
            }
            () = stopped(&mut stop), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = state.close.notified(), if closing.is_none() => {
                // Evicted at the cap (an idle connection was chosen; a request may have come in since).
                if state.is_idle() && !speaks_http2(&state, &policy) {
                    break;
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = tokio::time::sleep_until(wake.into()) => {
                match closing {
                    Some(since) => {
                        if state.is_idle() && since.elapsed() >= CLOSE_GRACE {
                            break;
                        }
                    }
                    None => {
                        let expired = state
                            .deadline(&timeouts)
                            .is_some_and(|deadline| instant_of(deadline) <= Instant::now());
                        if expired {
                            // Nothing in flight: HTTP/1.1 (or a REST connection that never sent a request) is
                            // just closed; HTTP/2 is told with a GOAWAY.
                            if !speaks_http2(&state, &policy) {
                                break;
                            }
                            conn.as_mut().graceful_shutdown();
                            closing = Some(Instant::now());
                        }
                    }
                }
            }
        }
    }
    registry.remove(&state);
    if state.peak_in_flight() >= super::trim::HEAVY_CONNECTION {
        super::trim::after_heavy_connection();
    }
}
