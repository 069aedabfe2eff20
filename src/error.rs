//! The one error type of the crate, and its single mapping to a JS error.
//!
//! napi-rs rejects async calls with a plain `Error` whose `code` is a napi
//! status, so the kind and the stable code travel in the message as
//! `<kind>|<code>|<text>`; `index.js` turns that back into the right JS class
//! (`RedisError`, `StoreInputError`, ...). Nothing else crosses the boundary.

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
}

impl ErrorClass {
    fn js_name(self) -> &'static str {
        match self {
            ErrorClass::Redis => "RedisError",
            ErrorClass::Input => "StoreInputError",
            ErrorClass::Config => "StoreConfigError",
            ErrorClass::Data => "StoreDataError",
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
            StoreError::Unavailable(_) => "STORE_UNAVAILABLE",
            StoreError::Timeout(_) => "STORE_TIMEOUT",
            StoreError::Auth(_) => "STORE_AUTH",
            StoreError::Tls(_) => "STORE_TLS",
            StoreError::Reply(_) => "STORE_REPLY",
            StoreError::Closed => "STORE_CLOSED",
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
            StoreError::CorruptRecord { .. } => ErrorClass::Data,
            StoreError::Unavailable(_)
            | StoreError::Timeout(_)
            | StoreError::Auth(_)
            | StoreError::Tls(_)
            | StoreError::Reply(_)
            | StoreError::Closed => ErrorClass::Redis,
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
        match err.kind() {
            redis::ErrorKind::AuthenticationFailed => return StoreError::Auth(message),
            redis::ErrorKind::Server(kind) => {
                use redis::ServerErrorKind as K;
                return match kind {
                    K::NoPerm => StoreError::Auth(message),
                    K::BusyLoading | K::TryAgain | K::ClusterDown | K::MasterDown => StoreError::Unavailable(message),
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

    /// The message format `index.js` decodes: `<JS class>|<code>|<message>`.
    pub fn to_wire(&self) -> String {
        format!("{}|{}|{}", self.class().js_name(), self.code(), self)
    }
}

impl From<StoreError> for napi::Error {
    fn from(err: StoreError) -> Self {
        napi::Error::new(napi::Status::GenericFailure, err.to_wire())
    }
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
    fn wire_format_carries_class_code_and_message() {
        let err = StoreError::InvalidId("id must be a non-empty string".into());
        assert_eq!(
            err.to_wire(),
            "StoreInputError|STORE_INVALID_ID|id must be a non-empty string"
        );
        assert_eq!(StoreError::Closed.class(), ErrorClass::Redis);
    }

    #[test]
    fn refused_connection_names_the_errno() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let err = StoreError::from_redis(&redis::RedisError::from(io), "GET conv:a");
        assert_eq!(err.code(), "STORE_UNAVAILABLE");
        assert!(err.to_string().contains("ECONNREFUSED"), "{err}");
    }

    #[test]
    fn timeouts_are_their_own_code() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let err = StoreError::from_redis(&redis::RedisError::from(io), "connect");
        assert_eq!(err.code(), "STORE_TIMEOUT");
    }
}
