//! The one error type of the crate, and its single mapping to a JS error.
//!
//! Every failure crosses into JS as an `Error` whose `code` is the stable
//! `STORE_*` code: thrown through [`JsError`] on synchronous paths, rejected
//! by `completion.rs` on asynchronous ones. `index.js` builds the JS class
//! (`RedisError`, `StoreInputError`, ...) from the code with one table;
//! [`StoreError::samples`] lets a test prove that table covers every variant.

use std::fmt::Write as _;

/// Which JS error class a failure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Redis unreachable, slow, refusing TLS/auth, or answering an error: HTTP 503.
    Redis,
    /// The caller passed bad input: HTTP 4xx.
    Input,
    /// The store was configured wrongly: refused at construction.
    Config,
    /// A stored record could not be read back (not JSON, schema rejected it).
    Data,
    /// A conditional write found the record changed since it was read: HTTP 409.
    Conflict,
}

impl ErrorClass {
    /// The class `index.js` builds for this kind of failure.
    pub fn js_name(self) -> &'static str {
        match self {
            ErrorClass::Redis => "RedisError",
            ErrorClass::Input => "StoreInputError",
            ErrorClass::Config => "StoreConfigError",
            ErrorClass::Data => "StoreDataError",
            ErrorClass::Conflict => "StoreConflictError",
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    InvalidUserId(String),
    #[error("{0}")]
    InvalidUpdatedAt(String),
    #[error("{0}")]
    InvalidRecord(String),
    #[error("record {id:?} is {bytes} bytes of JSON, over the limit of {limit} bytes (maxRecordBytes)")]
    RecordTooLarge { id: String, bytes: usize, limit: usize },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Config(String),
    #[error("stored record {id:?} is unreadable: {reason}")]
    CorruptRecord { id: String, reason: String },
    /// One call read more record bytes than its budget (`record::call_byte_budget`).
    #[error("{what} read {bytes} bytes of records, over the per-call budget of {limit} bytes (64 x maxRecordBytes); nothing was returned: ask for fewer records (limit)")]
    ResponseTooLarge { what: String, bytes: usize, limit: usize },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Reply(String),
    #[error("the store is closed; create a new store to talk to Redis again")]
    Closed,
    /// A conditional `set` (`ifUpdatedAt`) found another version stored.
    #[error("{0}")]
    Conflict(String),
    /// `waitReplicas`: the write is on the primary, but too few replicas
    /// confirmed it to survive a failover (`detail` says how many, or why
    /// `WAIT` did not answer).
    #[error(
        "{what}: the write was applied on the primary but {detail} (waitReplicas); a failover now could lose it: \
         retry, or report the failure"
    )]
    NotReplicated { what: String, detail: String },
}

impl StoreError {
    /// The stable, documented `err.code` of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidId(_) => "STORE_INVALID_ID",
            StoreError::InvalidUserId(_) => "STORE_INVALID_USER_ID",
            StoreError::InvalidUpdatedAt(_) => "STORE_INVALID_UPDATED_AT",
            StoreError::InvalidRecord(_) => "STORE_INVALID_RECORD",
            StoreError::RecordTooLarge { .. } => "STORE_RECORD_TOO_LARGE",
            StoreError::InvalidArgument(_) => "STORE_INVALID_ARGUMENT",
            StoreError::Config(_) => "STORE_INVALID_CONFIG",
            StoreError::CorruptRecord { .. } => "STORE_CORRUPT_RECORD",
            StoreError::ResponseTooLarge { .. } => "STORE_RESPONSE_TOO_LARGE",
            StoreError::Unavailable(_) => "STORE_UNAVAILABLE",
            StoreError::Timeout(_) => "STORE_TIMEOUT",
            StoreError::Auth(_) => "STORE_AUTH",
            StoreError::Tls(_) => "STORE_TLS",
            StoreError::Reply(_) => "STORE_REPLY",
            StoreError::Closed => "STORE_CLOSED",
            StoreError::Conflict(_) => "STORE_CONFLICT",
            StoreError::NotReplicated { .. } => "STORE_NOT_REPLICATED",
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::InvalidId(_)
            | StoreError::InvalidUserId(_)
            | StoreError::InvalidUpdatedAt(_)
            | StoreError::InvalidRecord(_)
            | StoreError::RecordTooLarge { .. }
            | StoreError::InvalidArgument(_) => ErrorClass::Input,
            StoreError::Config(_) => ErrorClass::Config,
            StoreError::CorruptRecord { .. } | StoreError::ResponseTooLarge { .. } => ErrorClass::Data,
            StoreError::Unavailable(_)
            | StoreError::Timeout(_)
            | StoreError::Auth(_)
            | StoreError::Tls(_)
            | StoreError::Reply(_)
            | StoreError::Closed
            | StoreError::NotReplicated { .. } => ErrorClass::Redis,
            StoreError::Conflict(_) => ErrorClass::Conflict,
        }
    }

    /// True for failures that say nothing about the connection's health
    /// (a Redis reply error is an answer, so the link works).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::Tls(_)
        )
    }

    /// Classifies a redis-rs error, naming the errno (`ECONNREFUSED`, ...) when
    /// there is one, so the server's `isRedisError` regex matches it too.
    pub fn from_redis(err: &redis::RedisError, context: &str) -> StoreError {
        let detail = describe_redis_error(err);
        let message = format!("{context}: {detail}");
        if err.is_timeout() {
            return StoreError::Timeout(message);
        }
        if is_tls_failure(err) {
            return StoreError::Tls(message);
        }
        if detail.contains("WRONGTYPE") {
            // A key of the layout holds a hash, a list...: someone else's data.
            return StoreError::Reply(format!(
                "{message} (a key the store uses holds another type of value: data this store did not write)"
            ));
        }
        if is_read_only(err) {
            // The server was demoted to a replica: the link checks it (and,
            // with Sentinel, asks for the new primary), so it is a link failure.
            return StoreError::Unavailable(format!("{message} (READONLY: the server is a replica now)"));
        }
        match err.kind() {
            redis::ErrorKind::AuthenticationFailed => return StoreError::Auth(message),
            redis::ErrorKind::Server(kind) => {
                use redis::ServerErrorKind as K;
                return match kind {
                    K::NoPerm => StoreError::Auth(message),
                    K::BusyLoading | K::TryAgain | K::ClusterDown | K::MasterDown => StoreError::Unavailable(message),
                    // redis-rs follows a redirect a few times; one that is
                    // still answered means the slots are moving (a failover,
                    // a resharding) faster than it caught up. The node did
                    // not apply the command, so it is worth retrying.
                    K::Moved | K::Ask => StoreError::Unavailable(format!(
                        "{message} (the cluster is moving this key's slot; nothing was written)"
                    )),
                    _ => StoreError::Reply(message),
                };
            }
            redis::ErrorKind::Extension => {
                let code = err.code().unwrap_or_default();
                if code == "WRONGPASS" || code == "NOAUTH" {
                    return StoreError::Auth(message);
                }
                return StoreError::Reply(message);
            }
            _ => {}
        }
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_cluster_error()
            || err.kind() == redis::ErrorKind::ClusterConnectionNotFound
        {
            return StoreError::Unavailable(message);
        }
        StoreError::Reply(message)
    }

    /// One error of every variant, in declaration order, for the test of the
    /// JS boundary (`__test__/errors.test.js`). Each arm of the match below
    /// names the sample after its own, so a new variant does not compile
    /// until it is given a sample here.
    pub fn samples() -> Vec<StoreError> {
        let mut samples = vec![StoreError::InvalidId("sample: id".into())];
        while let Some(next) = samples.last().and_then(StoreError::next_sample) {
            samples.push(next);
        }
        samples
    }

    fn next_sample(&self) -> Option<StoreError> {
        let sample = |text: &str| format!("sample: {text}");
        Some(match self {
            StoreError::InvalidId(_) => StoreError::InvalidUserId(sample("userId")),
            StoreError::InvalidUserId(_) => StoreError::InvalidUpdatedAt(sample("updatedAt")),
            StoreError::InvalidUpdatedAt(_) => StoreError::InvalidRecord(sample("record")),
            StoreError::InvalidRecord(_) => StoreError::RecordTooLarge {
                id: "sample".into(),
                bytes: 2,
                limit: 1,
            },
            StoreError::RecordTooLarge { .. } => StoreError::InvalidArgument(sample("argument")),
            StoreError::InvalidArgument(_) => StoreError::Config(sample("config")),
            StoreError::Config(_) => StoreError::CorruptRecord {
                id: "sample".into(),
                reason: sample("corrupt"),
            },
            StoreError::CorruptRecord { .. } => StoreError::ResponseTooLarge {
                what: sample("listByUser"),
                bytes: 2,
                limit: 1,
            },
            StoreError::ResponseTooLarge { .. } => StoreError::Unavailable(sample("unavailable")),
            StoreError::Unavailable(_) => StoreError::Timeout(sample("timeout")),
            StoreError::Timeout(_) => StoreError::Auth(sample("auth")),
            StoreError::Auth(_) => StoreError::Tls(sample("tls")),
            StoreError::Tls(_) => StoreError::Reply(sample("reply")),
            StoreError::Reply(_) => StoreError::Closed,
            StoreError::Closed => StoreError::Conflict(sample("conflict")),
            StoreError::Conflict(_) => StoreError::NotReplicated {
                what: sample("write"),
                detail: "only 0 of 1 replicas confirmed it within 1 ms".into(),
            },
            StoreError::NotReplicated { .. } => return None,
        })
    }
}

/// A READONLY reply, alone or inside an aborted transaction.
fn is_read_only(err: &redis::RedisError) -> bool {
    has_server_error(err, &[redis::ServerErrorKind::ReadOnly])
}

/// A reply that says the server behind the connection cannot serve the
/// store, however long the call waits: demoted to a replica (READONLY),
/// loading its data set (LOADING), or a replica cut off from its primary
/// (MASTERDOWN). Each would pass a PING, so the link replaces the connection
/// instead of probing it: through the same address, that reaches the new
/// primary once a managed endpoint (or the sentinels) points at it.
pub fn server_cannot_serve(err: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as K;
    has_server_error(err, &[K::ReadOnly, K::BusyLoading, K::MasterDown])
}

/// A reply error of one of `kinds`, alone or inside an aborted transaction.
fn has_server_error(err: &redis::RedisError, kinds: &[redis::ServerErrorKind]) -> bool {
    let listed = |kind: Option<redis::ServerErrorKind>| kind.is_some_and(|kind| kinds.contains(&kind));
    matches!(err.kind(), redis::ErrorKind::Server(kind) if kinds.contains(&kind))
        || err
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| listed(error.kind())))
}

/// The `code` of a JS error made in Rust: a store code (`STORE_*`), or, for a
/// failure of N-API itself (never expected: the environment is going away),
/// napi's status name, which `index.js` leaves as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsCode {
    Store(&'static str),
    Napi(napi::Status),
}

impl AsRef<str> for JsCode {
    fn as_ref(&self) -> &str {
        match self {
            JsCode::Store(code) => code,
            JsCode::Napi(status) => status.as_ref(),
        }
    }
}

/// What a synchronous binding call throws: napi-rs creates the JS error with
/// this `code` and message.
pub type JsError = napi::Error<JsCode>;

impl From<StoreError> for JsError {
    fn from(err: StoreError) -> Self {
        napi::Error::new(JsCode::Store(err.code()), err.to_string())
    }
}

/// Keeps napi's own status as the code of a failure of N-API itself.
pub fn napi_failure(err: napi::Error) -> JsError {
    napi::Error::new(JsCode::Napi(err.status), err.reason)
}

pub type StoreResult<T> = Result<T, StoreError>;

type DynError = dyn std::error::Error + 'static;

/// Every error under a redis error, outermost first. redis-rs keeps its
/// cause in an `Arc<dyn Error>`, which must be looked through to downcast.
fn causes(err: &redis::RedisError) -> impl Iterator<Item = &DynError> {
    std::iter::successors(std::error::Error::source(err), |current| current.source()).map(|current| match current
        .downcast_ref::<std::sync::Arc<
        dyn std::error::Error + Send + Sync,
    >>() {
        Some(inner) => &**inner as &DynError,
        None => current,
    })
}

/// The I/O error under a redis error, if any.
fn io_error_of(err: &redis::RedisError) -> Option<&std::io::Error> {
    causes(err).find_map(|cause| cause.downcast_ref::<std::io::Error>())
}

fn is_tls_failure(err: &redis::RedisError) -> bool {
    causes(err).any(|cause| {
        cause.downcast_ref::<rustls::Error>().is_some()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    })
}

/// The POSIX name Node users know for an I/O failure.
pub fn errno_name(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => "ECONNREFUSED",
        K::ConnectionReset => "ECONNRESET",
        K::ConnectionAborted => "ECONNABORTED",
        K::TimedOut => "ETIMEDOUT",
        K::HostUnreachable => "EHOSTUNREACH",
        K::NetworkUnreachable => "ENETUNREACH",
        K::BrokenPipe => "EPIPE",
        K::NotConnected => "ENOTCONN",
        K::AddrNotAvailable => "EADDRNOTAVAIL",
        K::UnexpectedEof => "ECONNRESET",
        _ => return None,
    })
}

fn describe_redis_error(err: &redis::RedisError) -> String {
    let mut text = err.to_string();
    if let Some(io) = io_error_of(err) {
        if let Some(name) = errno_name(io.kind()) {
            if !text.contains(name) {
                let _ = write!(text, " ({name})");
            }
        } else if io.to_string().contains("failed to lookup address") && !text.contains("ENOTFOUND") {
            text.push_str(" (ENOTFOUND)");
        }
    } else if err.is_connection_dropped() && !text.contains("ECONNRESET") {
        text.push_str(" (ECONNRESET)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_errors_carry_the_store_code_and_the_message() {
        let err = JsError::from(StoreError::InvalidId("id must be a non-empty string".into()));
        assert_eq!(err.status.as_ref(), "STORE_INVALID_ID");
        assert_eq!(err.reason, "id must be a non-empty string");
        assert_eq!(StoreError::Closed.class(), ErrorClass::Redis);
        let failure = napi_failure(napi::Error::new(napi::Status::GenericFailure, "gone"));
        assert_eq!(failure.status.as_ref(), "GenericFailure");
    }

    #[test]
    fn samples_cover_every_code_once_in_order() {
        let samples = StoreError::samples();
        let codes: Vec<&str> = samples.iter().map(StoreError::code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "{codes:?}");
        assert_eq!(codes.first(), Some(&"STORE_INVALID_ID"));
        assert_eq!(codes.last(), Some(&"STORE_NOT_REPLICATED"));
    }

    #[test]
    fn refused_connection_names_the_errno() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let err = StoreError::from_redis(&redis::RedisError::from(io), "GET conv:a");
        assert_eq!(err.code(), "STORE_UNAVAILABLE");
        assert!(err.to_string().contains("ECONNREFUSED"), "{err}");
    }

    /// The error redis-rs makes of the reply `line` (`-CODE text`).
    fn reply_error(line: &str) -> redis::RedisError {
        match redis::parse_redis_value(format!("{line}\r\n").as_bytes()).and_then(redis::Value::extract_error) {
            Err(err) => err,
            Ok(value) => panic!("{line:?} parsed as {value:?}, not an error"),
        }
    }

    #[test]
    fn replies_that_call_for_a_new_connection_are_unavailable() {
        for line in [
            "-READONLY You can't write against a read only replica.",
            "-LOADING Redis is loading the dataset in memory",
            "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ] {
            let reply = reply_error(line);
            assert!(server_cannot_serve(&reply), "{line}");
            let err = StoreError::from_redis(&reply, "SET conv:a");
            assert_eq!(err.code(), "STORE_UNAVAILABLE", "{line}");
        }
        for line in [
            "-ERR unknown command",
            "-NOSCRIPT No matching script",
            "-WRONGTYPE Operation against a key",
        ] {
            assert!(!server_cannot_serve(&reply_error(line)), "{line}");
        }
    }

    /// Seen once in a forced cluster failover: a write step's pipeline was
    /// still redirected after redis-rs's retries, and it reached the caller
    /// as `STORE_REPLY`, which the chat server's 503 handler does not match.
    #[test]
    fn redirects_that_outlive_the_retries_are_unavailable() {
        for line in ["-MOVED 10914 127.0.0.1:35599", "-ASK 10914 127.0.0.1:35599"] {
            let err = StoreError::from_redis(&reply_error(line), "SET conv:a");
            assert_eq!(err.code(), "STORE_UNAVAILABLE", "{line}");
            assert!(err.to_string().contains("nothing was written"), "{err}");
        }
    }

    #[test]
    fn timeouts_are_their_own_code() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let err = StoreError::from_redis(&redis::RedisError::from(io), "connect");
        assert_eq!(err.code(), "STORE_TIMEOUT");
    }
}
