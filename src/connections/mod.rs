//! Serving a listener's connections so that no client can hold them hostage: an accept loop (REST, gRPC and
//! metrics each run one) on hyper's HTTP/1.1 + HTTP/2 connection builder, with
//!
//! - a header-read timeout: a new connection must send its first request's headers within
//!   `http_header_read_timeout`, and on HTTP/1.1 each later request within that long of its first byte (slowloris);
//! - an idle timeout (`http_keep_alive_timeout`, REST and metrics): a connection with no request in flight for that
//!   long is closed (HTTP/2 with a GOAWAY);
//! - a connection cap (`max_connections`, derived from the open-file limit by default) where the connection idle
//!   the longest is closed to make room for a newcomer, and a newcomer is refused only when every connection has a
//!   request in flight ([`registry`]);
//! - HTTP/2 limits: `http2_max_concurrent_streams`, and on gRPC keep-alive pings (`grpc_keepalive_time`,
//!   `grpc_keepalive_timeout`);
//! - shutdown: when the stop flag turns, the listener closes, idle connections close at once and busy ones once
//!   their requests are answered (the server bounds that wait by `graceful_shutdown_timeout`).
//!
//! Modules: [`policy`] (the settings of one listener), [`serve`] (the loop), [`state`] (one connection's
//! timers), [`registry`] (the cap), [`tracked`] (socket and body wrappers), [`fd_limit`] (the default cap), [`trim`] (memory given back
//! after a connection with many streams closes).

pub mod fd_limit;
pub mod policy;
pub mod registry;
pub mod serve;
pub mod state;
pub mod tracked;
pub mod trim;

pub use policy::Policy;
pub use serve::serve;
