//! The connection lifecycle of one Redis server: connect, notice loss,
//! reconnect with capped exponential backoff and jitter (forever), and run
//! each command within the command timeout whatever the link's state.
//!
//! One supervisor task owns the connection. Operations borrow a clone of the
//! current multiplexed connection; when one fails in a way that says the link
//! may be dead (I/O error, timeout), it tells the supervisor, which probes the
//! link with PING and replaces it if the probe fails. While no connection is
//! up and no attempt is under way, operations fail at once with
//! `STORE_UNAVAILABLE` instead of queueing.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::io::AsyncDNSResolver;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion,
    PushKind, RedisFuture, Value,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::{RedisConfig, TlsMaterial};
use crate::error::{StoreError, StoreResult};
use crate::logger::Logger;

const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 250;

/// What `/health` reads, synchronously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Before the first connection is up.
    Connecting,
    Ready,
    /// The connection was lost; attempts continue with backoff.
    Reconnecting,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Ready => "ready",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        }
    }
}

/// A live connection: to one server, or to a cluster (which routes each
/// command to the node owning its key and follows failovers by itself).
#[derive(Clone)]
pub enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Where the link connects to, built once from the configuration.
enum Target {
    Single {
        client: Client,
        servername_pin: Option<Arc<PinnedHost>>,
    },
    Cluster(ClusterClient),
}

#[derive(Clone)]
struct LinkState {
    status: Status,
    connection: Option<Connection>,
    /// A connection attempt is under way: operations may wait for it.
    attempting: bool,
    /// Why the last attempt failed, given to operations that fail fast.
    last_error: Option<StoreError>,
    failed_attempts: u32,
}

struct LinkInner {
    target: Target,
    redacted_url: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    heartbeat: Duration,
    backoff: crate::config::Backoff,
    state: watch::Sender<LinkState>,
    /// Operations ring this when the link looks dead; the supervisor probes it.
    trouble: Notify,
    logger: Logger,
    /// Loaded on every new connection, before it serves.
    scripts: Vec<redis::Script>,
}

/// A supervised connection to one Redis server.
#[derive(Clone)]
pub struct Link {
    inner: Arc<LinkInner>,
}

impl Link {
    /// Builds the client (no I/O) and starts the supervisor on the napi runtime.
    pub fn start(config: &RedisConfig, logger: Logger, scripts: Vec<redis::Script>) -> StoreResult<Link> {
        let target = build_target(config)?;
        let (state, _) = watch::channel(LinkState {
            status: Status::Connecting,
            connection: None,
            attempting: true,
            last_error: None,
            failed_attempts: 0,
        });
        let link = Link {
            inner: Arc::new(LinkInner {
                target,
                redacted_url: config.redacted_url.clone(),
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
                heartbeat: config.heartbeat,
                backoff: config.backoff,
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
        Ok(link)
    }

    pub fn status(&self) -> Status {
        self.inner.state.borrow().status
    }

    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.target, Target::Cluster(_))
    }

    /// Stops reconnecting, drops the connection and settles every waiting
    /// operation with `STORE_CLOSED`. Idempotent.
    pub fn close(&self) {
        let mut was_open = false;
        self.inner.state.send_modify(|state| {
            was_open = state.status != Status::Closed;
            state.status = Status::Closed;
            state.connection = None;
            state.attempting = false;
        });
        if was_open {
            self.inner
                .logger
                .info(format!("closed the connection to {}", self.inner.redacted_url));
        }
        self.inner.trouble.notify_one();
    }

    /// Runs one operation against the current connection, within the command
    /// timeout counted from now, settling early with `STORE_CLOSED` on close.
    pub async fn run<T, F, Fut>(&self, what: &str, operation: F) -> StoreResult<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.inner.command_timeout;
        let connection = self.ready_connection(what, deadline).await?;
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
                    "{what}: no reply from Redis at {} within {} ms (command timeout, ETIMEDOUT)",
                    self.inner.redacted_url,
                    self.inner.command_timeout.as_millis()
                )))
            }
        }
    }

    /// The live connection; waits (until `deadline`) only while an attempt to
    /// connect is under way, and fails at once while backing off.
    async fn ready_connection(&self, what: &str, deadline: tokio::time::Instant) -> StoreResult<Connection> {
        let mut state = self.inner.state.subscribe();
        loop {
            {
                let current = state.borrow_and_update();
                match (&current.connection, current.status) {
                    (_, Status::Closed) => return Err(StoreError::Closed),
                    (Some(connection), _) => return Ok(connection.clone()),
                    (None, _) if !current.attempting => return Err(self.unavailable(what, &current)),
                    (None, _) => {}
                }
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(StoreError::Closed),
                Err(_) => {
                    let current = state.borrow();
                    return Err(StoreError::Unavailable(format!(
                        "{what}: not connected to Redis at {} within {} ms (command timeout){}",
                        self.inner.redacted_url,
                        self.inner.command_timeout.as_millis(),
                        current
                            .last_error
                            .as_ref()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
    }

    fn unavailable(&self, what: &str, state: &LinkState) -> StoreError {
        let cause = state
            .last_error
            .as_ref()
            .map_or_else(|| "connection lost".to_owned(), ToString::to_string);
        let cause_error = StoreError::Unavailable(format!(
            "{what}: Redis at {} is unreachable ({cause}); reconnecting in the background",
            self.inner.redacted_url
        ));
        match &state.last_error {
            // Keep the code of an auth or TLS failure: retrying will not fix those.
            Some(StoreError::Auth(_)) => StoreError::Auth(cause_error.to_string()),
            Some(StoreError::Tls(_)) => StoreError::Tls(cause_error.to_string()),
            _ => cause_error,
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

    fn is_closed(&self) -> bool {
        self.status() == Status::Closed
    }

    async fn supervise(self) {
        let mut down_since: Option<Instant> = None;
        let mut ever_connected = false;
        loop {
            if self.is_closed() {
                return;
            }
            self.inner.state.send_modify(|state| state.attempting = true);
            let (push_sender, mut pushes) = mpsc::unbounded_channel();
            match self.connect(push_sender).await {
                Ok(connection) => {
                    let failed = self.inner.state.borrow().failed_attempts;
                    if let Some(since) = down_since.take() {
                        self.inner.logger.info(format!(
                            "reconnected to {} after {} failed attempt(s), {:.1} s without Redis",
                            self.inner.redacted_url,
                            failed,
                            since.elapsed().as_secs_f64()
                        ));
                    } else if ever_connected || failed > 0 {
                        self.inner.logger.info(format!(
                            "connected to {} after {failed} failed attempt(s)",
                            self.inner.redacted_url
                        ));
                    } else {
                        self.inner
                            .logger
                            .info(format!("connected to {}", self.inner.redacted_url));
                    }
                    ever_connected = true;
                    let mut still_open = true;
                    self.inner.state.send_modify(|state| {
                        still_open = state.status != Status::Closed;
                        if still_open {
                            state.status = Status::Ready;
                            state.connection = Some(connection.clone());
                        }
                        state.attempting = false;
                        state.last_error = None;
                        state.failed_attempts = 0;
                    });
                    if !still_open {
                        return;
                    }
                    let Some(reason) = self.watch(connection, &mut pushes).await else {
                        return;
                    };
                    self.inner.logger.warn(format!(
                        "lost the connection to {}: {reason}; reconnecting",
                        self.inner.redacted_url
                    ));
                    down_since = Some(Instant::now());
                    self.inner.state.send_modify(|state| {
                        if state.status != Status::Closed {
                            state.status = Status::Reconnecting;
                            state.connection = None;
                            state.last_error = Some(StoreError::Unavailable(reason.clone()));
                        }
                    });
                    // The first attempt after a loss goes at once: a restart is often quick.
                }
                Err(err) => {
                    let mut failed = 0;
                    self.inner.state.send_modify(|state| {
                        state.failed_attempts += 1;
                        failed = state.failed_attempts;
                        state.attempting = false;
                        state.last_error = Some(err.clone());
                    });
                    let delay = self.inner.backoff.delay(failed, jitter());
                    // Every attempt at first, then one line in ten: no flood during a long outage.
                    if failed <= 5 || failed % 10 == 0 {
                        self.inner.logger.warn(format!(
                            "cannot connect to {} (attempt {failed}): {err}; next attempt in {} ms",
                            self.inner.redacted_url,
                            delay.as_millis()
                        ));
                    }
                    if down_since.is_none() && ever_connected {
                        down_since = Some(Instant::now());
                    }
                    let mut closed = self.inner.state.subscribe();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = until_closed(&mut closed) => return,
                    }
                }
            }
        }
    }

    async fn connect(&self, push_sender: mpsc::UnboundedSender<redis::PushInfo>) -> StoreResult<Connection> {
        let attempt = async {
            let mut connection = match &self.inner.target {
                Target::Single { client, servername_pin } => {
                    let mut config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(self.inner.connect_timeout))
                        .set_response_timeout(None)
                        .set_push_sender(push_sender);
                    if let Some(pin) = servername_pin {
                        config = config.set_dns_resolver(PinnedHostResolver(pin.clone()));
                    }
                    Connection::Single(client.get_multiplexed_async_connection_with_config(&config).await?)
                }
                Target::Cluster(client) => Connection::Cluster(client.get_async_connection().await?),
            };
            for script in &self.inner.scripts {
                script.load_async(&mut connection).await?;
            }
            Ok::<_, redis::RedisError>(connection)
        };
        match tokio::time::timeout(self.inner.connect_timeout, attempt).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(StoreError::from_redis(&err, "connect")),
            Err(_) => Err(StoreError::Timeout(format!(
                "connect: no connection to {} within {} ms (connect timeout, ETIMEDOUT)",
                self.inner.redacted_url,
                self.inner.connect_timeout.as_millis()
            ))),
        }
    }

    /// Waits until the connection is lost (returns why) or the link is closed (`None`).
    async fn watch(
        &self,
        mut connection: Connection,
        pushes: &mut mpsc::UnboundedReceiver<redis::PushInfo>,
    ) -> Option<String> {
        let mut closed = self.inner.state.subscribe();
        if self.is_cluster() {
            // A cluster connection reconnects to each node and follows
            // failovers itself; probing it as a whole would only get in the way.
            until_closed(&mut closed).await;
            return None;
        }
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(push) if push.kind != PushKind::Disconnection => continue,
                    _ => return Some("the server closed the connection (ECONNRESET)".to_owned()),
                },
                // A call saw trouble, or the link was quiet for a heartbeat:
                // either way, a PING says whether the connection still works.
                _ = self.inner.trouble.notified() => {}
                _ = tokio::time::sleep(self.inner.heartbeat) => {}
                _ = until_closed(&mut closed) => return None,
            }
            if self.is_closed() {
                return None;
            }
            if let Some(reason) = self.probe(&mut connection).await {
                return Some(reason);
            }
        }
    }

    /// `None` when the connection answers a PING within the command timeout.
    async fn probe(&self, connection: &mut Connection) -> Option<String> {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.inner.command_timeout, ping.query_async::<String>(connection)).await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(format!("PING failed: {err}")),
            Err(_) => Some(format!(
                "no answer to PING within {} ms (server hung, or the network path or an idle connection was cut)",
                self.inner.command_timeout.as_millis()
            )),
        }
    }
}

/// Resolves once the link is closed (or its state sender is gone).
async fn until_closed(state: &mut watch::Receiver<LinkState>) {
    // The guard returned by wait_for is not Send: drop it here, not in a select! arm.
    let _ = state.wait_for(|state| state.status == Status::Closed).await.is_ok();
}

/// A number in [0, 1) for backoff jitter; std's hasher keys are random per call.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Connects to `target` while TLS checks the certificate against `servername`.
struct PinnedHost {
    servername: String,
    target: String,
}

struct PinnedHostResolver(Arc<PinnedHost>);

impl AsyncDNSResolver for PinnedHostResolver {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        let target = if host == self.0.servername {
            self.0.target.clone()
        } else {
            host.to_owned()
        };
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.as_str(), port)).await?.collect();
            Ok(Box::new(addresses.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

fn build_target(config: &RedisConfig) -> StoreResult<Target> {
    let invalid =
        |err: redis::RedisError| StoreError::Config(format!("url {} is not usable: {err}", config.redacted_url));
    let connection_info = |url: &str| -> StoreResult<ConnectionInfo> {
        let info = url.into_connection_info().map_err(invalid)?;
        // RESP3 lets a single-server connection report its own loss (a disconnection push).
        let redis_settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        Ok(info.set_redis_settings(redis_settings))
    };
    let certificates = |tls: &TlsMaterial| redis::TlsCertificates {
        client_tls: tls
            .client_cert_and_key
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca.clone(),
    };
    if let Some(seeds) = &config.cluster_seeds {
        let nodes = seeds
            .iter()
            .map(|url| connection_info(url))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            // Few, short retries: a request for a dead primary's slots must not
            // keep the client busy refreshing slots (which holds back requests
            // for healthy nodes) long after our command timeout gave up on it.
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
        if let Some(tls) = &config.tls {
            builder = builder.certs(certificates(tls));
        }
        let client = builder
            .build()
            .map_err(|err| StoreError::Config(format!("cluster configuration is not usable: {err}")))?;
        return Ok(Target::Cluster(client));
    }
    let mut info = connection_info(&config.url)?;
    let Some(tls) = &config.tls else {
        return Ok(Target::Single {
            client: Client::open(info).map_err(invalid)?,
            servername_pin: None,
        });
    };
    let mut servername_pin = None;
    if let (Some(servername), ConnectionAddr::TcpTls { host, port, .. }) = (&tls.servername, info.addr().clone()) {
        servername_pin = Some(Arc::new(PinnedHost {
            servername: servername.clone(),
            target: host,
        }));
        info = info.set_addr(ConnectionAddr::TcpTls {
            host: servername.clone(),
            port,
            insecure: false,
            tls_params: None,
        });
    }
    let client = Client::build_with_tls(info, certificates(tls))
        .map_err(|err| StoreError::Config(format!("TLS material is not usable: {err}")))?;
    Ok(Target::Single { client, servername_pin })
}
