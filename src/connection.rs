//! The supervised link to Redis, whatever the topology: connect, notice loss,
//! reconnect with capped exponential backoff and jitter (forever), and run
//! each command within the command timeout whatever the link's state.
//!
//! One supervisor task owns the connection. It performs the I/O that the
//! state machine's phase calls for (`supervisor.rs`) and feeds back what
//! happened; every change of state goes through [`Link::feed`]. Operations
//! borrow a clone of the current connection; when one fails in a way that
//! says the link may be dead (I/O error, timeout), it tells the supervisor,
//! which reports the link as not ready, probes it with PING and replaces it
//! if the probe fails. A reply that says the server cannot serve the store
//! any more (READONLY, LOADING, MASTERDOWN: a demoted primary would still
//! answer a PING) replaces the connection at once, through the same address.
//! While no connection is up and no attempt is under way, operations fail at
//! once with `STORE_UNAVAILABLE` instead of queueing.
//!
//! Every new connection is named with `CLIENT SETNAME` (`connectionName`)
//! before it serves, so that operators find the store in `CLIENT LIST`.
//!
//! What differs per topology (how to open a connection, what says it was
//! lost) is its [`Transport`], chosen once when the store starts.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::auth::BasicAuth;
use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion, Script};
use tokio::sync::{watch, Notify};

use crate::config::{Backoff, RedisConfig, TlsMaterial};
use crate::credentials::CredentialSource;
use crate::error::{self, StoreError, StoreResult};
use crate::events::{self, EventSink};
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

    /// The connection follows failovers and replaces broken connections by
    /// itself (a cluster's, per node): what one call sees says nothing about
    /// the link as a whole, so a failed call neither marks it stalled nor
    /// replaces it.
    const HEALS_ITSELF: bool = false;

    fn connect(&self) -> impl Future<Output = redis::RedisResult<(Self::Connection, Self::Watch)>> + Send;

    /// Resolves when an attempt now may succeed where the last one failed
    /// (the sentinels announced a new primary), ending a backoff early.
    /// Never, by default: the backoff runs its course.
    fn worth_retrying(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// Authenticates the live `connection` again, in place, with rotated
    /// credentials: AUTH on a multiplexed connection is an ordinary command,
    /// queued between the calls already in flight.
    fn reauthenticate(
        &self,
        mut connection: Self::Connection,
        auth: BasicAuth,
    ) -> impl Future<Output = redis::RedisResult<()>> + Send {
        async move {
            redis::cmd("AUTH")
                .arg(auth.username())
                .arg(auth.password())
                .query_async::<()>(&mut connection)
                .await
        }
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
    /// Given to every connection with `CLIENT SETNAME`.
    connection_name: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    state: watch::Sender<Shared<T::Connection>>,
    /// Operations ring this when the link looks dead.
    trouble: Notify,
    logger: Logger,
    /// The JS store's 'ready', 'reconnecting' and 'error' events.
    events: EventSink,
    /// Loaded on every new connection, before it serves, so that calls never
    /// pay (or reorder behind) a NOSCRIPT retry after a server restart.
    scripts: Vec<Script>,
    backoff: Backoff,
}

/// The connection's part of `stats()`.
pub struct LinkStats {
    pub reconnections: u32,
    /// Zero while ready; `None` if never ready.
    pub since_ready: Option<Duration>,
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
    pub fn start(
        transport: T,
        config: &RedisConfig,
        logger: Logger,
        events: EventSink,
        scripts: Vec<Script>,
    ) -> Link<T> {
        let (state, _) = watch::channel(Shared {
            supervisor: Supervisor::new(config.backoff),
            connection: None,
        });
        let link = Link {
            inner: Arc::new(LinkInner {
                transport,
                redacted_url: config.redacted_url.clone(),
                connection_name: config.connection_name.clone(),
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
                state,
                trouble: Notify::new(),
                logger,
                events,
                scripts,
                backoff: config.backoff,
            }),
        };
        link.inner
            .logger
            .info(format!("connecting to {}", link.inner.redacted_url));
        let supervisor = link.clone();
        napi::bindgen_prelude::spawn(async move { supervisor.supervise().await });
        if let Some(source) = config.credentials.clone().filter(|source| source.is_streaming()) {
            let keeper = link.clone();
            napi::bindgen_prelude::spawn(async move { keeper.keep_authenticated(source).await });
        }
        link
    }

    /// Follows a streaming provider: each time its credentials change, the
    /// live connection (every node's, on a cluster) is authenticated again in
    /// place. A refusal leaves the connection as it was (still authenticated
    /// with the previous credentials) and is retried with the reconnection
    /// backoff until it succeeds or newer credentials arrive. Connections made
    /// later take the newest credentials themselves (`credentials.rs`).
    async fn keep_authenticated(self, source: Arc<CredentialSource>) {
        let mut updates = source.updates();
        // The first credentials are the handshake's, not a rotation.
        let _ = self.unless_closed(updates.wait_for(Option::is_some)).await;
        updates.borrow_and_update();
        while let Some(Ok(())) = self.unless_closed(updates.changed()).await {
            let mut attempt = 0;
            loop {
                let Some(auth) = updates.borrow_and_update().clone() else {
                    break;
                };
                let Some(connection) = self.inner.state.borrow().connection.clone() else {
                    // Nothing live: the next connection authenticates with these.
                    break;
                };
                let reauthenticated = tokio::time::timeout(
                    self.inner.command_timeout,
                    self.inner.transport.reauthenticate(connection, auth.clone()),
                );
                let failure = match self.unless_closed(reauthenticated).await {
                    None => return,
                    Some(Ok(Ok(()))) => {
                        self.inner.logger.info(format!(
                            "re-authenticated the connection to {} in place as user {:?} (rotated credentials)",
                            self.inner.redacted_url,
                            auth.username()
                        ));
                        break;
                    }
                    Some(Ok(Err(err))) => StoreError::from_redis(&err, "AUTH").to_string(),
                    Some(Err(_)) => format!(
                        "AUTH: no reply within {} ms (command timeout)",
                        self.inner.command_timeout.as_millis()
                    ),
                };
                attempt += 1;
                let delay = self.inner.backoff.delay(attempt, jitter());
                source.failed(&format!(
                    "re-authentication of the connection to {} as user {:?} failed ({failure}); it keeps serving \
                     with the credentials it has; retrying in {} ms",
                    self.inner.redacted_url,
                    auth.username(),
                    delay.as_millis()
                ));
                let newer = async {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = updates.changed() => {}
                    }
                };
                if self.unless_closed(newer).await.is_none() {
                    return;
                }
            }
        }
    }

    pub fn status(&self) -> Status {
        self.inner.state.borrow().supervisor.status()
    }

    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// What `stats()` reports about the connection, read without waiting.
    pub fn stats(&self) -> LinkStats {
        let state = self.inner.state.borrow();
        LinkStats {
            reconnections: state.supervisor.reconnections(),
            since_ready: state.supervisor.since_ready(Instant::now()),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
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
        let (connection, serving) = self.ready_connection(what, deadline, timeout, timeout_name).await?;
        let mut closed = self.inner.state.subscribe();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout_at(deadline, operation(connection)) => outcome,
            _ = until_closed(&mut closed) => return Err(StoreError::Closed),
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let unusable = error::server_cannot_serve(&err);
                let err = StoreError::from_redis(&err, what);
                if unusable && !T::HEALS_ITSELF {
                    self.feed(
                        Event::Unusable {
                            connection: serving,
                            reason: err.to_string(),
                        },
                        None,
                    );
                } else if err.is_connection_failure() {
                    self.call_failed(serving, &err);
                }
                Err(err)
            }
            Err(_) => {
                let err = StoreError::Timeout(format!(
                    "{what}: no reply from Redis at {} within {} ms ({timeout_name}, ETIMEDOUT)",
                    self.inner.redacted_url,
                    timeout.as_millis()
                ));
                self.call_failed(serving, &err);
                Err(err)
            }
        }
    }

    /// A call on connection `serving` failed in a way that says the link may
    /// be dead: it no longer reads as ready, and the watch checks it.
    fn call_failed(&self, serving: u64, err: &StoreError) {
        if !T::HEALS_ITSELF {
            // Before the watch is woken, so that its probe's answer comes after.
            self.feed(
                Event::CallFailed {
                    connection: serving,
                    reason: err.to_string(),
                },
                None,
            );
        }
        self.inner.trouble.notify_one();
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

    /// The live connection and its number; waits (until `deadline`) only
    /// while an attempt to connect is under way, and fails at once while
    /// backing off.
    async fn ready_connection(
        &self,
        what: &str,
        deadline: tokio::time::Instant,
        timeout: Duration,
        timeout_name: &str,
    ) -> StoreResult<(T::Connection, u64)> {
        let mut state = self.inner.state.subscribe();
        loop {
            {
                let current = state.borrow_and_update();
                if current.supervisor.phase() == Phase::Closed {
                    return Err(StoreError::Closed);
                }
                if let Some(connection) = &current.connection {
                    return Ok((connection.clone(), current.supervisor.connection()));
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
        // Readers are woken only by a change: when many calls fail at once,
        // all but the first of their events change nothing.
        self.inner.state.send_if_modified(|shared| {
            let before = (shared.supervisor.phase(), shared.supervisor.status());
            notice = shared.supervisor.on(event, now);
            phase = shared.supervisor.phase();
            let mut modified = notice.is_some() || before != (phase, shared.supervisor.status());
            if !phase.serves() {
                modified |= shared.connection.take().is_some();
            } else if connected.is_some() {
                shared.connection = connected;
                modified = true;
            }
            modified
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
        for event in events::events_of(notice, &self.inner.redacted_url) {
            self.inner.events.emit(event);
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

    /// Watches the serving connection until the machine leaves the serving
    /// phases (here, or from a call whose reply made the connection unusable).
    async fn serve(&self, mut connection: T::Connection, mut watch: T::Watch) {
        loop {
            let event = match self.phase() {
                Phase::Ready => match self.while_serving(watch.next_sign(&self.inner.trouble)).await {
                    Some(Sign::Lost(reason)) => Event::Lost(reason),
                    Some(Sign::CheckDue) => Event::CheckDue,
                    None => return,
                },
                Phase::Probing => match self.while_serving(self.probe(&mut connection)).await {
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

    /// `work`'s output, or `None` if the machine leaves the serving phases first.
    async fn while_serving<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut state = self.inner.state.subscribe();
        let left = async move {
            // The guard returned by wait_for is not Send: drop it here, not in a select! arm.
            let _ = state
                .wait_for(|shared| !shared.supervisor.phase().serves())
                .await
                .is_ok();
        };
        tokio::select! {
            output = work => Some(output),
            _ = left => None,
        }
    }

    /// A new connection, named, with the scripts loaded, within the connect timeout.
    async fn open(&self) -> StoreResult<(T::Connection, T::Watch)> {
        let attempt = async {
            let (mut connection, watch) = self.inner.transport.connect().await?;
            self.name(&mut connection).await?;
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

    /// `CLIENT SETNAME`: a server that refuses it (an ACL without
    /// `+client|setname`) still gets the store's calls, unnamed, with a warning.
    async fn name(&self, connection: &mut T::Connection) -> redis::RedisResult<()> {
        if self.inner.connection_name.is_empty() {
            return Ok(());
        }
        let setname = set_client_name(&self.inner.connection_name);
        match setname.query_async::<()>(connection).await {
            // A cluster's SETNAME goes to every node: one that is down must
            // not keep the others from serving. Its watch renames later.
            Err(_) if T::HEALS_ITSELF => Ok(()),
            Err(err) if matches!(err.kind(), redis::ErrorKind::Server(_) | redis::ErrorKind::Extension) => {
                self.inner.logger.warn(format!(
                    "{} refused CLIENT SETNAME {} ({err}); the connection serves unnamed",
                    self.inner.redacted_url, self.inner.connection_name
                ));
                Ok(())
            }
            named => named,
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

/// The command that names a connection `name` (`connectionName`).
pub fn set_client_name(name: &str) -> redis::Cmd {
    let mut command = redis::cmd("CLIENT");
    command.arg("SETNAME").arg(name);
    command
}

/// A number in [0, 1) for backoff jitter; std's hasher keys are random per call.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A node's or server's URL as connection settings, speaking RESP3 (which
/// lets a single-server connection report its own loss with a push), with
/// [`tcp_settings`].
pub fn resp3_connection_info(url: &str, config: &RedisConfig) -> StoreResult<ConnectionInfo> {
    let info = url.into_connection_info().map_err(|err| unusable_url(config, &err))?;
    let redis_settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(redis_settings).set_tcp_settings(tcp_settings()))
}

/// Every connection sends each write at once (`TCP_NODELAY`, as ioredis and
/// node-redis do; redis-rs leaves Nagle on). With Nagle, a write issued while
/// an earlier one is unacknowledged waits for that ACK, which a server a
/// network away may delay until it has a reply to carry it. Through the
/// bench's 0.5 ms proxy it changed no throughput (`get` 4 KB at concurrency
/// 64: 27.0k ops/s before and after); it removes the risk, as the peers do.
pub fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
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

#[cfg(test)]
mod tests {
    #[test]
    fn connections_send_each_write_at_once() {
        assert!(super::tcp_settings().nodelay(), "Nagle must be off on every connection");
    }
}
