//! Redis Sentinel as a [`Transport`] for [`SingleServer`]: each connection
//! attempt asks the sentinels (in turn, skipping any that is down or does not
//! know the master) for the current primary, connects to it, and checks with
//! `ROLE` that it really is the primary before it serves. Once it serves, the
//! watch ends it (so the link asks the sentinels again) when the connection is
//! lost, when `ROLE` says the server was demoted (checked when a call timed
//! out or hit an I/O error, and at each heartbeat), or when the sentinel that
//! named the primary announces `+switch-master`. A `READONLY`, `LOADING` or
//! `MASTERDOWN` reply ends it at once, in the link (`connection.rs`). While the link
//! backs off after a failed attempt, a `+switch-master` (or a sentinel that
//! already names another primary) ends the backoff, so a long reconnection
//! delay never holds the store on a dead primary.
//!
//! Not redis-rs's `sentinel` module: it checks the role on a throwaway
//! connection and hands out another, without the push channel the link needs
//! to notice a lost connection, and keeps no sentinel subscription.
//!
//! [`SingleServer`]: crate::single_server::SingleServer

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, PushInfo, PushKind, RedisConnectionInfo,
    RedisError, RedisResult, Value,
};
use tokio::sync::{mpsc, Notify};

use crate::config::RedisConfig;
use crate::connection::{self, LossWatch, Sign, Transport};
use crate::credentials::ProviderHook;
use crate::error::{StoreError, StoreResult};
use crate::logger::Logger;

const SWITCH_MASTER: &str = "+switch-master";

/// Finds the primary of one master group through its sentinels.
pub struct SentinelServer {
    name: String,
    /// Each sentinel's client, with its URL as logs show it.
    sentinels: Vec<(Client, String)>,
    /// The data nodes' settings (credentials, db, protocol); the address is
    /// the one the sentinels announce.
    primary_settings: ConnectionInfo,
    tls: Option<redis::TlsCertificates>,
    /// Which sentinel to ask first: the last that answered.
    first: Mutex<usize>,
    /// The primary the sentinels last named, reachable or not.
    last_named: Mutex<Option<(String, u16)>>,
    connect_timeout: Duration,
    heartbeat: Duration,
    /// `connectionName`, also given to the lasting subscription connection.
    connection_name: String,
    logger: Logger,
    /// The app's credentials provider, for the data nodes (not the sentinels).
    credentials: Option<ProviderHook>,
}

impl SentinelServer {
    /// Builds the clients (no I/O).
    pub fn new(
        urls: &[String],
        name: &str,
        sentinel_password: Option<&str>,
        config: &RedisConfig,
        logger: Logger,
    ) -> StoreResult<Self> {
        let mut sentinels = Vec::with_capacity(urls.len());
        let mut primary_settings = None;
        for url in urls {
            let info = connection::resp3_connection_info(url, config)?;
            primary_settings.get_or_insert_with(|| info.clone());
            // A sentinel has no databases; its password may differ.
            let mut settings = info.redis_settings().clone().set_db(0);
            if let Some(password) = sentinel_password {
                settings = without_password(&settings);
                if !password.is_empty() {
                    settings = settings.set_password(password);
                }
            }
            let shown = display_addr(info.addr());
            sentinels.push((client(info.set_redis_settings(settings), config)?, shown));
        }
        let primary_settings = primary_settings
            .ok_or_else(|| StoreError::Config("sentinels must list at least one sentinel URL".to_owned()))?;
        Ok(SentinelServer {
            name: name.to_owned(),
            sentinels,
            primary_settings,
            tls: config.tls.as_ref().map(connection::tls_certificates),
            first: Mutex::new(0),
            last_named: Mutex::new(None),
            connect_timeout: config.connect_timeout,
            credentials: config.credentials.clone().map(ProviderHook),
            heartbeat: config.heartbeat,
            connection_name: config.connection_name.clone(),
            logger,
        })
    }

    /// Each sentinel gets a share of the connect timeout, so that one that
    /// hangs leaves time to ask the others and to connect to the primary.
    fn per_sentinel_timeout(&self) -> Duration {
        self.connect_timeout / (self.sentinels.len() as u32 + 1)
    }

    /// What sentinel `index` names as the primary (`None`: it does not know the name).
    async fn ask(&self, index: usize) -> RedisResult<Option<(String, u16)>> {
        let asking = async {
            let mut sentinel = self.sentinels[index]
                .0
                .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
                .await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.name)
                .query_async::<Option<(String, u16)>>(&mut sentinel)
                .await
        };
        match tokio::time::timeout(self.per_sentinel_timeout(), asking).await {
            Ok(answer) => answer,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "no answer",
                format!("within {} ms", self.per_sentinel_timeout().as_millis()),
            ))),
        }
    }

    /// The order to ask the sentinels in: the last that answered first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.first.lock().map_or(0, |first| *first);
        (0..self.sentinels.len()).map(move |step| (first + step) % self.sentinels.len())
    }

    /// The primary's address by the first sentinel that knows it, with that
    /// sentinel's index; the reasons the others gave, if none does.
    async fn ask_sentinels(&self) -> RedisResult<((String, u16), usize)> {
        let mut reasons = Vec::new();
        for index in self.order() {
            let shown = &self.sentinels[index].1;
            match self.ask(index).await {
                Ok(Some(address)) => {
                    if let Ok(mut named) = self.last_named.lock() {
                        *named = Some(address.clone());
                    }
                    return Ok((address, index));
                }
                Ok(None) => reasons.push(format!("{shown} does not know master {:?}", self.name)),
                Err(err) => reasons.push(format!("{shown}: {err}")),
            }
        }
        Err(RedisError::from((
            ErrorKind::Io,
            "no sentinel named the primary",
            reasons.join("; "),
        )))
    }

    /// A connection to `address` that has confirmed, with `ROLE`, that it is the primary.
    async fn connect_primary(
        &self,
        address: &(String, u16),
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<MultiplexedConnection> {
        let (host, port) = address.clone();
        let addr = match self.primary_settings.addr() {
            ConnectionAddr::TcpTls { .. } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let info = self.primary_settings.clone().set_addr(addr);
        let client = match &self.tls {
            Some(tls) => Client::build_with_tls(info, tls.clone())?,
            None => Client::open(info)?,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None)
            .set_push_sender(pushes);
        let config = match &self.credentials {
            Some(credentials) => config.set_credentials_provider(credentials.clone()),
            None => config,
        };
        let mut primary = client.get_multiplexed_async_connection_with_config(&config).await?;
        match role(&mut primary).await? {
            role if role == "master" => Ok(primary),
            role => Err(RedisError::from((
                ErrorKind::Io,
                "not the primary",
                format!(
                    "the sentinels named {}:{} as the primary of {:?}, but its ROLE is {role} (a failover is under way)",
                    address.0, address.1, self.name
                ),
            ))),
        }
    }

    /// A subscription to `+switch-master` on sentinel `index`.
    async fn subscribe(&self, index: usize) -> RedisResult<Subscription> {
        let (sender, notices) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new().set_push_sender(sender);
        let subscribing = async {
            let mut sentinel = self.sentinels[index]
                .0
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // It lasts, so it is named like the primary's (a sentinel that
            // refuses the name still serves the subscription).
            if !self.connection_name.is_empty() {
                let setname = connection::set_client_name(&self.connection_name);
                let _ = setname.query_async::<()>(&mut sentinel).await;
            }
            sentinel.subscribe(SWITCH_MASTER).await?;
            Ok::<_, RedisError>(sentinel)
        };
        match tokio::time::timeout(self.per_sentinel_timeout(), subscribing).await {
            Ok(Ok(sentinel)) => Ok(Subscription {
                _connection: sentinel,
                notices,
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(RedisError::from((ErrorKind::Io, "no answer to SUBSCRIBE"))),
        }
    }

    /// Resolves once a sentinel names a primary other than the one the last
    /// attempt was given (announced with `+switch-master`, or already known
    /// when the subscription starts); never, if no sentinel can be reached.
    async fn until_switched(&self) {
        let named_before = self.last_named.lock().ok().and_then(|named| named.clone());
        let order: Vec<usize> = self.order().collect();
        for index in order {
            let Ok(mut subscription) = self.subscribe(index).await else {
                continue;
            };
            // A switch just before the subscription started is not announced again.
            if let Ok(Some(address)) = self.ask(index).await {
                if Some(&address) != named_before.as_ref() {
                    return;
                }
            }
            while let Some(push) = subscription.notices.recv().await {
                if push.kind == PushKind::Disconnection {
                    break;
                }
                if switched_to(&self.name, &push).is_some() {
                    return;
                }
            }
        }
        std::future::pending().await
    }
}

impl Transport for SentinelServer {
    type Connection = MultiplexedConnection;
    type Watch = SentinelWatch;

    async fn connect(&self) -> RedisResult<(MultiplexedConnection, SentinelWatch)> {
        let (address, index) = self.ask_sentinels().await?;
        let (push_sender, pushes) = mpsc::unbounded_channel();
        let primary = self.connect_primary(&address, push_sender).await?;
        if let Ok(mut first) = self.first.lock() {
            *first = index;
        }
        // Without it, the other signs of a failover remain.
        let switches = match self.subscribe(index).await {
            Ok(subscription) => Some(subscription),
            Err(err) => {
                self.logger.warn(format!(
                    "cannot subscribe to {SWITCH_MASTER} on sentinel {}: {err}",
                    self.sentinels[index].1
                ));
                None
            }
        };
        self.logger.info(format!(
            "sentinel {} names {}:{} as the primary of {}; ROLE confirms it",
            self.sentinels[index].1, address.0, address.1, self.name
        ));
        Ok((
            primary.clone(),
            SentinelWatch {
                primary,
                address,
                name: self.name.clone(),
                pushes,
                switches,
                heartbeat: self.heartbeat,
                role_timeout: self.connect_timeout,
            },
        ))
    }

    async fn worth_retrying(&self) {
        self.until_switched().await
    }
}

/// A sentinel connection subscribed to `+switch-master`, and what it receives.
pub struct Subscription {
    /// Held so that the connection (and the subscription) lasts as long as the watch.
    _connection: MultiplexedConnection,
    notices: mpsc::UnboundedReceiver<PushInfo>,
}

/// The signs that the primary a connection serves is gone or no longer the primary.
pub struct SentinelWatch {
    primary: MultiplexedConnection,
    address: (String, u16),
    name: String,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// `+switch-master` announcements, while the sentinel connection lasts.
    switches: Option<Subscription>,
    heartbeat: Duration,
    role_timeout: Duration,
}

impl SentinelWatch {
    /// Lost if `ROLE` answers that the server is no longer the primary;
    /// otherwise a check by the link (which PINGs).
    async fn check_role(&mut self) -> Sign {
        match tokio::time::timeout(self.role_timeout, role(&mut self.primary)).await {
            Ok(Ok(role)) if role != "master" => Sign::Lost(format!(
                "{}:{} is no longer the primary of {} (ROLE is {role}); asking the sentinels again",
                self.address.0, self.address.1, self.name
            )),
            _ => Sign::CheckDue,
        }
    }
}

impl LossWatch for SentinelWatch {
    async fn next_sign(&mut self, trouble: &Notify) -> Sign {
        loop {
            let switch = async {
                match &mut self.switches {
                    Some(subscription) => subscription.notices.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(push) if push.kind != PushKind::Disconnection => continue,
                    _ => return Sign::Lost("the primary closed the connection (ECONNRESET)".to_owned()),
                },
                notice = switch => match notice {
                    Some(push) if push.kind != PushKind::Disconnection => {
                        if let Some(new_primary) = switched_to(&self.name, &push) {
                            return Sign::Lost(format!(
                                "the sentinels moved the primary of {} to {new_primary} ({SWITCH_MASTER})",
                                self.name
                            ));
                        }
                    }
                    // The sentinel went away: the other signs still hold.
                    _ => self.switches = None,
                },
                // A call timed out or hit an I/O error, or the link was
                // quiet for a heartbeat: is this still the primary?
                _ = trouble.notified() => return self.check_role().await,
                _ = tokio::time::sleep(self.heartbeat) => return self.check_role().await,
            }
        }
    }
}

/// The new primary's address, if `push` announces a switch of master `name`.
fn switched_to(name: &str, push: &PushInfo) -> Option<String> {
    if push.kind != PushKind::Message {
        return None;
    }
    let payload = match push.data.last()? {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    // "<name> <old-ip> <old-port> <new-ip> <new-port>"
    let fields: Vec<&str> = payload.split(' ').collect();
    match fields.as_slice() {
        [switched, _, _, ip, port] if *switched == name => Some(format!("{ip}:{port}")),
        _ => None,
    }
}

/// The first field of `ROLE`: `master`, `slave` (a replica) or `sentinel`.
async fn role(connection: &mut MultiplexedConnection) -> RedisResult<String> {
    let reply: Vec<Value> = redis::cmd("ROLE").query_async(connection).await?;
    match reply.first() {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::SimpleString(text)) => Ok(text.clone()),
        _ => Err(RedisError::from((ErrorKind::Parse, "ROLE reply without a role"))),
    }
}

fn client(info: ConnectionInfo, config: &RedisConfig) -> StoreResult<Client> {
    match &config.tls {
        None => Client::open(info).map_err(|err| connection::unusable_url(config, &err)),
        Some(tls) => Client::build_with_tls(info, connection::tls_certificates(tls))
            .map_err(|err| StoreError::Config(format!("TLS material is not usable: {err}"))),
    }
}

/// The same settings with no credentials (for sentinels that need none).
fn without_password(settings: &RedisConnectionInfo) -> RedisConnectionInfo {
    RedisConnectionInfo::default()
        .set_db(settings.db())
        .set_protocol(settings.protocol())
}

fn display_addr(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
        other => other.to_string(),
    }
}
