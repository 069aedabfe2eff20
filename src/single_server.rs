//! The store operations on one Redis server: `set`, `delete` and a sliding
//! `get` are each one atomic step and one round trip (a MULTI/EXEC or a
//! script), and stale index entries are pruned by a script that re-checks
//! each record. They hold for any way of finding the server: its URL
//! ([`DirectServer`]), or the primary the sentinels name (`sentinel.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::AsyncDNSResolver;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, FromRedisValue, PushInfo, PushKind, Script};
use tokio::sync::{mpsc, Notify};

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{self, Link, LossWatch, Sign, Transport};
use crate::credentials::ProviderHook;
use crate::error::{StoreError, StoreResult};
use crate::events::EventSink;
use crate::keys::KeyLayout;
use crate::listing::Stale;
use crate::logger::Logger;
use crate::record::{self, Precondition, PreparedRecord};
use crate::replication::{self, Acknowledged, Replication};
use crate::scripts;
use crate::topology::Topology;

pub struct SingleServer<T: Transport> {
    link: Link<T>,
    keys: KeyLayout,
    policy: RecordPolicy,
    replication: Replication,
}

impl<T: Transport> SingleServer<T> {
    pub fn start(transport: T, config: &RedisConfig, logger: Logger, events: EventSink) -> Self {
        SingleServer {
            link: Link::start(transport, config, logger, events, scripts::single_server()),
            keys: config.keys.clone(),
            policy: config.policy.clone(),
            replication: Replication::new(config.replica_ack),
        }
    }

    /// The call of a script that writes a whole record (`SET_SMALL`,
    /// `SET_IF`): its keys and the arguments they share, in their order.
    fn record_write(
        &self,
        script: &Script,
        id: &str,
        key: &str,
        index: &str,
        record: &PreparedRecord,
    ) -> redis::Pipeline {
        let mut step = redis::pipe();
        step.add_command(replication::evalsha(script, 2))
            .arg(key)
            .arg(index)
            .arg(id)
            .arg(&record.user_id)
            .arg(self.keys.prefix())
            .arg(&record.json)
            .arg(self.policy.ttl_seconds)
            .arg(record.score)
            .arg(self.policy.index_ttl_seconds());
        step
    }

    /// Sends one write step on the link (with `WAIT` after it when replicas
    /// must acknowledge); `script` is the one it calls by hash, if any.
    async fn send_step<R: FromRedisValue>(
        &self,
        what: &str,
        step: &redis::Pipeline,
        script: Option<&Script>,
    ) -> StoreResult<Acknowledged<R>> {
        self.link
            .run(what, |mut connection| async move {
                self.replication.send(&mut connection, step, script, true).await
            })
            .await
    }
}

/// The scripts' `tail_first` argument: where to look first for the stored
/// record's owner.
fn tail_first(record: &PreparedRecord) -> &'static str {
    if record.owner_near_end {
        "1"
    } else {
        "0"
    }
}

impl<T: Transport> Topology for SingleServer<T> {
    type Transport = T;

    fn link(&self) -> &Link<T> {
        &self.link
    }

    fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    async fn get(&self, id: &str) -> StoreResult<Option<String>> {
        let key = self.keys.record(id);
        let what = format!("GET {key}");
        let found: Option<Vec<u8>> = if self.policy.sliding_expiry {
            let ttl = self.policy.ttl_seconds;
            let index_ttl = self.policy.index_ttl_seconds();
            let prefix = self.keys.prefix();
            self.link
                .run(&what, |mut connection| async move {
                    scripts::GET_SLIDING_SCRIPT
                        .key(&key)
                        .arg(ttl)
                        .arg(index_ttl)
                        .arg(prefix)
                        .invoke_async(&mut connection)
                        .await
                })
                .await?
        } else {
            self.link
                .run(&what, |mut connection| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut connection).await
                })
                .await?
        };
        let Some(bytes) = found else { return Ok(None) };
        record::within_budget(&what, bytes.len(), &self.policy.rules)?;
        record::stored_record(&self.keys.record(id), id, bytes).map(|(json, _)| Some(json))
    }

    async fn set(&self, id: &str, record: PreparedRecord) -> StoreResult<()> {
        let key = self.keys.record(id);
        let index = self.keys.user_index(&record.user_id);
        let what = format!("SET {key}");
        if record.json.len() <= scripts::SCRIPTED_SET_MAX_BYTES {
            // The same atomic step, as one script sent by its hash.
            let mut step = self.record_write(&scripts::SET_SMALL_SCRIPT, id, &key, &index, &record);
            step.arg(tail_first(&record));
            let (_written, confirmation): Acknowledged<i64> =
                self.send_step(&what, &step, Some(&scripts::SET_SMALL_SCRIPT)).await?;
            return self.replication.confirm(&what, confirmation, self.link.logger());
        }
        // One transaction: the move out of a previous owner's index, the
        // record, the index entry and both TTLs, applied as one step. The
        // record's bytes never pass through Lua.
        let mut transaction = redis::pipe();
        transaction
            .cmd("MULTI")
            .cmd("EVAL")
            .arg(scripts::MOVE_OWNER_SOURCE.as_str())
            .arg(1)
            .arg(&key)
            .arg(id)
            .arg(&record.user_id)
            .arg(self.keys.prefix())
            .arg(tail_first(&record))
            .cmd("SET")
            .arg(&key)
            .arg(&record.json)
            .arg("EX")
            .arg(self.policy.ttl_seconds)
            .cmd("ZADD")
            .arg(&index)
            .arg(record.score)
            .arg(id)
            .cmd("EXPIRE")
            .arg(&index)
            .arg(self.policy.index_ttl_seconds())
            .cmd("EXEC");
        let ((), confirmation) = self.send_step(&what, &transaction, None).await?;
        self.replication.confirm(&what, confirmation, self.link.logger())
    }

    /// One script: the check and the whole write, as one atomic step.
    async fn set_if(&self, id: &str, record: PreparedRecord, precondition: &Precondition) -> StoreResult<()> {
        let key = self.keys.record(id);
        let index = self.keys.user_index(&record.user_id);
        let (mode, expected) = precondition.script_args();
        let what = format!("SET {key} (ifUpdatedAt)");
        let mut step = self.record_write(&scripts::SET_IF_SCRIPT, id, &key, &index, &record);
        step.arg(mode).arg(expected);
        let ((status, _, updated_at), confirmation): Acknowledged<(i64, String, String)> =
            self.send_step(&what, &step, Some(&scripts::SET_IF_SCRIPT)).await?;
        if status == 1 {
            return self.replication.confirm(&what, confirmation, self.link.logger());
        }
        // Refused: nothing was written, so there is nothing to confirm.
        Err(precondition.conflict(id, &Precondition::found_from_script(status, updated_at)))
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        let key = self.keys.record(id);
        let what = format!("DEL {key}");
        let mut step = redis::pipe();
        step.add_command(replication::evalsha(&scripts::DELETE_SCRIPT, 1))
            .arg(&key)
            .arg(id)
            .arg(self.keys.prefix());
        let (_removed, confirmation): Acknowledged<i64> =
            self.send_step(&what, &step, Some(&scripts::DELETE_SCRIPT)).await?;
        self.replication.confirm(&what, confirmation, self.link.logger())
    }

    /// One script re-checks each record atomically before removing its entry.
    fn prune(
        &self,
        index: String,
        user_id: String,
        stale: Vec<Stale>,
    ) -> impl std::future::Future<Output = StoreResult<Vec<String>>> + Send + 'static {
        let link = self.link.clone();
        let prefix = self.keys.prefix().to_owned();
        async move {
            let ids: Vec<&str> = stale.iter().map(|entry| entry.id.as_str()).collect();
            link.run(&format!("PRUNE {index}"), |mut connection| async move {
                scripts::PRUNE_STALE_SCRIPT
                    .key(&index)
                    .arg(&prefix)
                    .arg(&user_id)
                    .arg(&ids)
                    .invoke_async::<Vec<String>>(&mut connection)
                    .await
            })
            .await
        }
    }
}

/// One server at the URL's address: a multiplexed RESP3 connection that
/// reports its own loss, checked with a PING when a call saw trouble or the
/// connection was quiet for a heartbeat.
pub struct DirectServer {
    client: Client,
    servername_pin: Option<Arc<PinnedHost>>,
    connect_timeout: Duration,
    heartbeat: Duration,
    credentials: Option<ProviderHook>,
}

impl DirectServer {
    /// Builds the client (no I/O).
    pub fn new(url: &str, servername: Option<&str>, config: &RedisConfig) -> StoreResult<Self> {
        let mut info = connection::resp3_connection_info(url, config)?;
        let mut servername_pin = None;
        let client = match &config.tls {
            None => Client::open(info).map_err(|err| connection::unusable_url(config, &err))?,
            Some(tls) => {
                if let (Some(servername), ConnectionAddr::TcpTls { host, port, .. }) = (servername, info.addr().clone())
                {
                    servername_pin = Some(Arc::new(PinnedHost {
                        servername: servername.to_owned(),
                        target: host,
                    }));
                    info = info.set_addr(ConnectionAddr::TcpTls {
                        host: servername.to_owned(),
                        port,
                        insecure: false,
                        tls_params: None,
                    });
                }
                Client::build_with_tls(info, connection::tls_certificates(tls))
                    .map_err(|err| StoreError::Config(format!("TLS material is not usable: {err}")))?
            }
        };
        Ok(DirectServer {
            client,
            servername_pin,
            connect_timeout: config.connect_timeout,
            heartbeat: config.heartbeat,
            credentials: config.credentials.clone().map(ProviderHook),
        })
    }
}

impl Transport for DirectServer {
    type Connection = MultiplexedConnection;
    type Watch = ServerWatch;

    async fn connect(&self) -> redis::RedisResult<(MultiplexedConnection, ServerWatch)> {
        let (push_sender, pushes) = mpsc::unbounded_channel();
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None)
            .set_push_sender(push_sender);
        if let Some(pin) = &self.servername_pin {
            config = config.set_dns_resolver(PinnedHostResolver(pin.clone()));
        }
        if let Some(credentials) = &self.credentials {
            config = config.set_credentials_provider(credentials.clone());
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((
            connection,
            ServerWatch {
                pushes,
                heartbeat: self.heartbeat,
            },
        ))
    }
}

/// The signs of loss of one server's connection.
pub struct ServerWatch {
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    heartbeat: Duration,
}

impl LossWatch for ServerWatch {
    async fn next_sign(&mut self, trouble: &Notify) -> Sign {
        loop {
            tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(push) if push.kind != PushKind::Disconnection => continue,
                    _ => return Sign::Lost("the server closed the connection (ECONNRESET)".to_owned()),
                },
                // A call saw trouble, or the link was quiet for a heartbeat:
                // either way, a PING says whether the connection still works.
                _ = trouble.notified() => return Sign::CheckDue,
                _ = tokio::time::sleep(self.heartbeat) => return Sign::CheckDue,
            }
        }
    }
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
