//! The supervised link to Redis, whatever the topology: connect, notice loss,
//! reconnect with capped exponential backoff and jitter (forever), and run
//! each command within the command timeout whatever the link's state.
//!
//! One supervisor task owns the connection. It performs the I/O that the
//! state machine's phase calls for (`supervisor.rs`) and feeds back what
//! happened; every change of state goes through [`Link::feed`]. Operations
//! borrow a clone of the current connection; when one fails in a way that
//! says the link may be dead (I/O error, timeout), it tells the supervisor,
//! which may probe the link with PING and replace it if the probe fails.
//! While no connection is up and no attempt is under way, operations fail at
//! once with `STORE_UNAVAILABLE` instead of queueing.
//!
//! What differs per topology (how to open a connection, what says it was
//! lost) is its [`Transport`], chosen once when the store starts.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion, Script};
use tokio::sync::{watch, Notify};

use crate::config::{RedisConfig, TlsMaterial};
use crate::error::{StoreError, StoreResult};
use crate::logger::Logger;
use crate::supervisor::{Event, Notice, Phase, Status, Supervisor};

tokio::task_local! {
    /// A call's own `timeoutMs`: in place of the command timeout for each
    /// command the call runs (set by the binding only for calls that pass it).
    static CALL_TIMEOUT: Duration;
}

/// The running call's own `timeoutMs`, if it was given one.
pub fn call_timeout() -> Option<Duration> {
    CALL_TIMEOUT.try_with(|timeout| *timeout).ok()
}

/// Runs `work` with `timeout` in place of the command timeout.
pub async fn with_call_timeout<F: Future>(timeout: Duration, work: F) -> F::Output {
    CALL_TIMEOUT.scope(timeout, work).await
}

/// How one topology opens connections. Bounded by the connect timeout and
/// followed by the script loading, both done by the link.
pub trait Transport: Send + Sync + 'static {
    type Connection: ConnectionLike + Clone + Send + Sync + 'static;
    type Watch: LossWatch;

    fn connect(&self) -> impl Future<Output = redis::RedisResult<(Self::Connection, Self::Watch)>> + Send;

    /// Resolves when an attempt now may succeed where the last one failed
    /// (the sentinels announced a new primary), ending a backoff early.
    /// Never, by default: the backoff runs its course.
    fn worth_retrying(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// What a topology's connection tells about its own health.
pub trait LossWatch: Send + 'static {
    /// Waits for the next sign of trouble. `trouble` is rung by calls that
    /// failed in a way that says the link may be dead.
    fn next_sign(&mut self, trouble: &Notify) -> impl Future<Output = Sign> + Send;
}

pub enum Sign {
    /// The connection is gone; says why.
    Lost(String),
    /// The connection may be dead: a PING will tell.
    CheckDue,
}

/// The state every reader sees: the machine, and the connection while it serves.
struct Shared<C> {
    supervisor: Supervisor,
    connection: Option<C>,
}

struct LinkInner<T: Transport> {
    transport: T,
    redacted_url: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    state: watch::Sender<Shared<T::Connection>>,
    /// Operations ring this when the link looks dead.
    trouble: Notify,
    logger: Logger,
    /// Loaded on every new connection, before it serves, so that calls never
    /// pay (or reorder behind) a NOSCRIPT retry after a server restart.
    scripts: Vec<Script>,
}

/// A supervised connection through the transport `T`.
pub struct Link<T: Transport> {
    inner: Arc<LinkInner<T>>,
}

impl<T: Transport> Clone for Link<T> {
    fn clone(&self) -> Self {
        Link {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Transport> Link<T> {
    /// Starts the supervisor on the napi runtime; the first attempt begins at once.
    pub fn start(transport: T, config: &RedisConfig, logger: Logger, scripts: Vec<Script>) -> Link<T> {
        let (state, _) = watch::channel(Shared {
            supervisor: Supervisor::new(config.backoff),
            connection: None,
        });
        let link = Link {
            inner: Arc::new(LinkInner {
                transport,
                redacted_url: config.redacted_url.clone(),
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
                state,
                trouble: Notify::new(),
                logger,
                scripts,
            }),
        };
        link.inner
            .logger
            .info(format!("connecting to {}", link.inner.redacted_url));
        let supervisor = link.clone();
        napi::bindgen_prelude::spawn(async move { supervisor.supervise().await });
        link
    }

    pub fn status(&self) -> Status {
        self.inner.state.borrow().supervisor.status()
    }

    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    pub fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    /// Stops reconnecting, drops the connection and settles every waiting
    /// operation with `STORE_CLOSED`. Idempotent.
    pub fn close(&self) {
        self.feed(Event::Close, None);
    }

    /// Runs one operation against the current connection, within the command
    /// timeout counted from now, settling early with `STORE_CLOSED` on close.
    pub async fn run<R, F, Fut>(&self, what: &str, operation: F) -> StoreResult<R>
    where
        F: FnOnce(T::Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<R>>,
    {
        let (timeout, timeout_name) = match CALL_TIMEOUT.try_with(|timeout| *timeout) {
            Ok(timeout) => (timeout, "timeoutMs"),
            Err(_) => (self.inner.command_timeout, "command timeout"),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let connection = self.ready_connection(what, deadline, timeout, timeout_name).await?;
        let mut closed = self.inner.state.subscribe();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout_at(deadline, operation(connection)) => outcome,
            _ = until_closed(&mut closed) => return Err(StoreError::Closed),
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let err = StoreError::from_redis(&err, what);
                if err.is_connection_failure() {
                    self.inner.trouble.notify_one();
                }
                Err(err)
            }
            Err(_) => {
                self.inner.trouble.notify_one();
                Err(StoreError::Timeout(format!(
                    "{what}: no reply from Redis at {} within {} ms ({timeout_name}, ETIMEDOUT)",
                    self.inner.redacted_url,
                    timeout.as_millis()
                )))
            }
        }
    }

    /// A round trip to Redis, in milliseconds.
    pub async fn ping(&self) -> StoreResult<f64> {
        let started = Instant::now();
        self.run("PING", |mut connection| async move {
            redis::cmd("PING").query_async::<String>(&mut connection).await
        })
        .await?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    }

    /// The live connection; waits (until `deadline`) only while an attempt to
    /// connect is under way, and fails at once while backing off.
    async fn ready_connection(
        &self,
        what: &str,
        deadline: tokio::time::Instant,
        timeout: Duration,
        timeout_name: &str,
    ) -> StoreResult<T::Connection> {
        let mut state = self.inner.state.subscribe();
        loop {
            {
                let current = state.borrow_and_update();
                if current.supervisor.phase() == Phase::Closed {
                    return Err(StoreError::Closed);
                }
                if let Some(connection) = &current.connection {
                    return Ok(connection.clone());
                }
                if !current.supervisor.attempting() {
                    return Err(self.unavailable(what, current.supervisor.last_error()));
                }
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(StoreError::Closed),
                Err(_) => {
                    let current = state.borrow();
                    return Err(StoreError::Unavailable(format!(
                        "{what}: not connected to Redis at {} within {} ms ({timeout_name}){}",
                        self.inner.redacted_url,
                        timeout.as_millis(),
                        current
                            .supervisor
                            .last_error()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
    }

    fn unavailable(&self, what: &str, last_error: Option<&StoreError>) -> StoreError {
        let cause = last_error.map_or_else(|| "connection lost".to_owned(), ToString::to_string);
        let cause_error = StoreError::Unavailable(format!(
            "{what}: Redis at {} is unreachable ({cause}); reconnecting in the background",
            self.inner.redacted_url
        ));
        match last_error {
            // Keep the code of an auth or TLS failure: retrying will not fix those.
            Some(StoreError::Auth(_)) => StoreError::Auth(cause_error.to_string()),
            Some(StoreError::Tls(_)) => StoreError::Tls(cause_error.to_string()),
            _ => cause_error,
        }
    }

    fn phase(&self) -> Phase {
        self.inner.state.borrow().supervisor.phase()
    }

    /// Applies one event to the state machine and publishes the outcome: the
    /// one place the link's state changes, and where its notices go out.
    /// `connected` is the new connection that comes with `Event::Connected`.
    fn feed(&self, event: Event, connected: Option<T::Connection>) -> Phase {
        let now = Instant::now();
        let mut notice = None;
        let mut phase = Phase::Closed;
        self.inner.state.send_modify(|shared| {
            notice = shared.supervisor.on(event, now);
            phase = shared.supervisor.phase();
            if !phase.serves() {
                shared.connection = None;
            } else if connected.is_some() {
                shared.connection = connected;
            }
        });
        if let Some(notice) = notice {
            self.announce(&notice);
        }
        phase
    }

    fn announce(&self, notice: &Notice) {
        if let Some((level, line)) = notice.log_line(&self.inner.redacted_url) {
            self.inner.logger.log(level, line);
        }
    }

    async fn supervise(self) {
        while let Some((connection, watch)) = self.until_connected().await {
            self.serve(connection, watch).await;
        }
    }

    /// Attempts and backoff, as long as the machine asks for them; the new
    /// connection and its watch once one serves, `None` once closed.
    async fn until_connected(&self) -> Option<(T::Connection, T::Watch)> {
        loop {
            match self.phase() {
                Phase::Connecting => match self.unless_closed(self.open()).await? {
                    Ok((connection, watch)) => {
                        if self.feed(Event::Connected, Some(connection.clone())).serves() {
                            return Some((connection, watch));
                        }
                    }
                    Err(error) => {
                        self.feed(
                            Event::ConnectFailed {
                                error,
                                jitter: jitter(),
                            },
                            None,
                        );
                    }
                },
                Phase::BackingOff { delay, .. } => {
                    let backoff = async {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = self.inner.transport.worth_retrying() => {}
                        }
                    };
                    self.unless_closed(backoff).await?;
                    self.feed(Event::BackoffElapsed, None);
                }
                // Closed; the serving phases are only ever entered above.
                Phase::Ready | Phase::Probing | Phase::Closed => return None,
            }
        }
    }

    /// Watches the serving connection until the machine leaves the serving phases.
    async fn serve(&self, mut connection: T::Connection, mut watch: T::Watch) {
        loop {
            let event = match self.phase() {
                Phase::Ready => match self.unless_closed(watch.next_sign(&self.inner.trouble)).await {
                    Some(Sign::Lost(reason)) => Event::Lost(reason),
                    Some(Sign::CheckDue) => Event::CheckDue,
                    None => return,
                },
                Phase::Probing => match self.unless_closed(self.probe(&mut connection)).await {
                    Some(Ok(())) => Event::ProbeOk,
                    Some(Err(reason)) => Event::Lost(reason),
                    None => return,
                },
                Phase::Connecting | Phase::BackingOff { .. } | Phase::Closed => return,
            };
            self.feed(event, None);
        }
    }

    /// `work`'s output, or `None` if the link is closed first.
    async fn unless_closed<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut closed = self.inner.state.subscribe();
        tokio::select! {
            output = work => Some(output),
            _ = until_closed(&mut closed) => None,
        }
    }

    /// A new connection with the scripts loaded, within the connect timeout.
    async fn open(&self) -> StoreResult<(T::Connection, T::Watch)> {
        let attempt = async {
            let (mut connection, watch) = self.inner.transport.connect().await?;
            for script in &self.inner.scripts {
                script.load_async(&mut connection).await?;
            }
            Ok::<_, redis::RedisError>((connection, watch))
        };
        match tokio::time::timeout(self.inner.connect_timeout, attempt).await {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(err)) => Err(StoreError::from_redis(&err, "connect")),
            Err(_) => Err(StoreError::Timeout(format!(
                "connect: no connection to {} within {} ms (connect timeout, ETIMEDOUT)",
                self.inner.redacted_url,
                self.inner.connect_timeout.as_millis()
            ))),
        }
    }

    /// Whether the connection answers a PING within the command timeout, and
    /// if not, why.
    async fn probe(&self, connection: &mut T::Connection) -> Result<(), String> {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.inner.command_timeout, ping.query_async::<String>(connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(format!("PING failed: {err}")),
            Err(_) => Err(format!(
                "no answer to PING within {} ms (server hung, or the network path or an idle connection was cut)",
                self.inner.command_timeout.as_millis()
            )),
        }
    }
}

/// Resolves once the link is closed (or its state sender is gone).
async fn until_closed<C>(state: &mut watch::Receiver<Shared<C>>) {
    // The guard returned by wait_for is not Send: drop it here, not in a select! arm.
    let _ = state
        .wait_for(|shared| shared.supervisor.phase() == Phase::Closed)
        .await
        .is_ok();
}

/// A number in [0, 1) for backoff jitter; std's hasher keys are random per call.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A node's or server's URL as connection settings, speaking RESP3 (which
/// lets a single-server connection report its own loss with a push).
pub fn resp3_connection_info(url: &str, config: &RedisConfig) -> StoreResult<ConnectionInfo> {
    let info = url.into_connection_info().map_err(|err| unusable_url(config, &err))?;
    let redis_settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(redis_settings))
}

/// A URL that passed the option checks but that the client refused.
pub fn unusable_url(config: &RedisConfig, err: &redis::RedisError) -> StoreError {
    StoreError::Config(format!("url {} is not usable: {err}", config.redacted_url))
}

pub fn tls_certificates(tls: &TlsMaterial) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: tls
            .client_cert_and_key
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca.clone(),
    }
}
