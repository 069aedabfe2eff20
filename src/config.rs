//! Store configuration: the options a user passes (or the environment sets),
//! checked once at construction so a bad value is refused at startup, never
//! at the first request.

use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

use crate::error::{StoreError, StoreResult};
use crate::keys::KeyLayout;
use crate::record::{RecordRules, MAX_LIST_LIMIT};
use crate::replication::ReplicaAck;

pub const DEFAULT_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_LIST_LIMIT: usize = 50;
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
pub const DEFAULT_RECONNECT_MIN_DELAY_MS: u64 = 100;
pub const DEFAULT_RECONNECT_MAX_DELAY_MS: u64 = 5_000;
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 10_000;
pub const DEFAULT_WAIT_REPLICAS: u64 = 0;
/// More replicas than any deployment has: a typo, not a plan.
pub const MAX_WAIT_REPLICAS: u64 = 100;
/// The user index outlives its records by this much, as in the ioredis store.
pub const INDEX_TTL_EXTRA_SECONDS: u64 = 3_600;
pub const DEFAULT_EXCLUDED_FIELD: &str = "sdkConversationRef";
/// What `CLIENT LIST` shows for the store's connections, unless told otherwise.
pub const DEFAULT_CONNECTION_NAME: &str = "redis-conversation-store";

/// TLS material for `rediss://` connections.
#[napi(object)]
#[derive(Default)]
pub struct TlsOptions {
    /// CA certificate(s), PEM. Default: the system's trusted roots.
    pub ca: Option<Either<String, Buffer>>,
    /// Client certificate, PEM (mutual TLS). Needs `key`.
    pub cert: Option<Either<String, Buffer>>,
    /// Client private key, PEM (mutual TLS). Needs `cert`.
    pub key: Option<Either<String, Buffer>>,
    /// The name the server certificate must carry, when it differs from the URL's host.
    pub servername: Option<String>,
}

/// Options shared by both stores.
#[napi(object)]
#[derive(Default)]
pub struct CommonOptions {
    pub ttl_seconds: Option<f64>,
    pub list_limit: Option<f64>,
    pub exclude_fields: Option<Vec<String>>,
    pub max_record_bytes: Option<f64>,
    pub sliding_expiry: Option<bool>,
}

/// Options of the Redis store (camelCase in JS; see index.d.ts).
#[napi(object)]
#[derive(Default)]
pub struct RedisOptions {
    pub url: Option<String>,
    pub ttl_seconds: Option<f64>,
    pub command_timeout_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub tls: Option<TlsOptions>,
    pub allow_plaintext: Option<bool>,
    pub key_prefix: Option<String>,
    pub list_limit: Option<f64>,
    pub exclude_fields: Option<Vec<String>>,
    pub max_record_bytes: Option<f64>,
    pub sliding_expiry: Option<bool>,
    pub reconnect_min_delay_ms: Option<f64>,
    pub reconnect_max_delay_ms: Option<f64>,
    /// How often an idle connection is checked with a PING.
    pub heartbeat_interval_ms: Option<f64>,
    /// Treat `url` as a seed node of a Redis Cluster.
    pub cluster: Option<bool>,
    /// More seed nodes of the cluster (same scheme and credentials as `url`).
    pub cluster_nodes: Option<Vec<String>>,
    /// Sentinel URLs; the store asks them for the primary (instead of `url`).
    pub sentinels: Option<Vec<String>>,
    /// The master group name the sentinels monitor.
    pub sentinel_name: Option<String>,
    /// The sentinels' password, when it differs from the data nodes' ('' = none).
    pub sentinel_password: Option<String>,
    /// The name every connection gets with CLIENT SETNAME ('' = none).
    pub connection_name: Option<String>,
    /// Overrides the URL's user name (data nodes; sentinels too unless `sentinelPassword`).
    pub username: Option<String>,
    /// Overrides the URL's password (data nodes; sentinels too unless `sentinelPassword`).
    pub password: Option<String>,
    /// Replicas that must acknowledge each write (`WAIT`) before it resolves.
    pub wait_replicas: Option<f64>,
    /// How long `WAIT` may take, in ms (default: half of `commandTimeoutMs`).
    pub wait_timeout_ms: Option<f64>,
}

/// What both stores need to know about records and their lifetime.
#[derive(Debug, Clone)]
pub struct RecordPolicy {
    pub ttl_seconds: u64,
    pub list_limit: usize,
    pub sliding_expiry: bool,
    pub rules: RecordRules,
}

impl RecordPolicy {
    pub fn index_ttl_seconds(&self) -> u64 {
        self.ttl_seconds + INDEX_TTL_EXTRA_SECONDS
    }

    fn from_parts(
        ttl_seconds: Option<f64>,
        list_limit: Option<f64>,
        exclude_fields: Option<Vec<String>>,
        max_record_bytes: Option<f64>,
        sliding_expiry: Option<bool>,
    ) -> StoreResult<Self> {
        let excluded_fields = exclude_fields.unwrap_or_else(|| vec![DEFAULT_EXCLUDED_FIELD.to_owned()]);
        if let Some(protected) = excluded_fields.iter().find(|f| *f == "userId" || *f == "updatedAt") {
            return Err(config_error(format!(
                "excludeFields cannot contain {protected:?}: the store needs it to index the record"
            )));
        }
        Ok(RecordPolicy {
            ttl_seconds: whole("ttlSeconds", ttl_seconds, DEFAULT_TTL_SECONDS, 1, 10 * 365 * 86_400)?,
            list_limit: whole(
                "listLimit",
                list_limit,
                DEFAULT_LIST_LIMIT as u64,
                1,
                MAX_LIST_LIMIT as u64,
            )? as usize,
            sliding_expiry: sliding_expiry.unwrap_or(false),
            rules: RecordRules {
                excluded_fields,
                max_record_bytes: whole(
                    "maxRecordBytes",
                    max_record_bytes,
                    DEFAULT_MAX_RECORD_BYTES as u64,
                    64,
                    512 * 1024 * 1024,
                )? as usize,
            },
        })
    }
}

impl CommonOptions {
    pub fn into_policy(self) -> StoreResult<RecordPolicy> {
        RecordPolicy::from_parts(
            self.ttl_seconds,
            self.list_limit,
            self.exclude_fields,
            self.max_record_bytes,
            self.sliding_expiry,
        )
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    pub ca: Option<Vec<u8>>,
    pub client_cert_and_key: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client_cert_and_key.is_some())
            .finish()
    }
}

/// How long to wait between reconnection attempts: exponential, capped, jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), drawn from the upper half
    /// of the exponential step so that clients spread out but never retry hot.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let step = self.min_delay.as_millis() as f64 * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let capped = step.min(self.max_delay.as_millis() as f64);
        Duration::from_millis((capped * (0.5 + 0.5 * random.clamp(0.0, 1.0))) as u64)
    }
}

/// Which Redis deployment the store talks to: chosen once, at construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyConfig {
    /// One server at `url`. With `servername`, TLS checks the server's
    /// certificate against that name instead of the URL's host.
    SingleServer { url: String, servername: Option<String> },
    /// A Redis Cluster, discovered from these seed node URLs (`url` first).
    Cluster { seeds: Vec<String> },
    /// A primary/replica set watched by Redis Sentinel: the store asks the
    /// `sentinels` for the primary of `name`. Their URLs' credentials, db and
    /// scheme apply to the data nodes too; `sentinel_password` (if any)
    /// replaces the password for the sentinels only.
    Sentinel {
        sentinels: Vec<String>,
        name: String,
        sentinel_password: Option<String>,
    },
}

/// The checked configuration of a `RedisStore`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub topology: TopologyConfig,
    /// The URL with any password replaced by `***`, for logs and messages.
    pub redacted_url: String,
    pub tls: Option<TlsMaterial>,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub keys: KeyLayout,
    pub policy: RecordPolicy,
    pub backoff: Backoff,
    /// A connection with no other sign of life is PINGed this often, so that
    /// one a load balancer cut while idle is replaced before a call needs it.
    pub heartbeat: Duration,
    /// Given to every connection with `CLIENT SETNAME`; empty: none is sent.
    pub connection_name: String,
    /// The app's `credentialsProvider`, when it gave one: it supplies the
    /// data nodes' credentials in place of the URL's (`credentials.rs`).
    pub credentials: Option<std::sync::Arc<crate::credentials::CredentialSource>>,
    /// With `waitReplicas` above 0, every write is followed by `WAIT`.
    pub replica_ack: Option<ReplicaAck>,
}

impl RedisConfig {
    pub fn from_options(mut options: RedisOptions) -> StoreResult<Self> {
        apply_user_info(&mut options)?;
        let allow_plaintext = options.allow_plaintext.unwrap_or(false);
        let sentinel = sentinel_choice(
            options.url.is_some(),
            options.cluster,
            options.sentinels,
            options.sentinel_name,
            options.sentinel_password,
        )?;
        let (url, label) = match &sentinel {
            Some(choice) => (choice.sentinels[0].clone(), "sentinels[0]"),
            None => (
                options.url.ok_or_else(|| {
                    config_error(
                        "url is required (e.g. rediss://:password@host:6380), or sentinels and sentinelName \
                         for a Redis Sentinel set"
                            .to_owned(),
                    )
                })?,
                "url",
            ),
        };
        let parsed = check_url(label, &url, allow_plaintext)?;
        let is_tls = parsed.scheme == "rediss";
        let (tls, servername) = match options.tls {
            Some(tls) if is_tls => {
                let servername = tls.servername.clone();
                (Some(tls_material(tls)?), checked_servername(servername)?)
            }
            Some(_) => {
                return Err(config_error(
                    "tls options were given but the url is redis:// (plaintext); use rediss://".to_owned(),
                ))
            }
            None if is_tls => (
                Some(TlsMaterial {
                    ca: None,
                    client_cert_and_key: None,
                }),
                None,
            ),
            None => (None, None),
        };
        let min_delay = whole(
            "reconnectMinDelayMs",
            options.reconnect_min_delay_ms,
            DEFAULT_RECONNECT_MIN_DELAY_MS,
            1,
            60_000,
        )?;
        let max_delay = whole(
            "reconnectMaxDelayMs",
            options.reconnect_max_delay_ms,
            DEFAULT_RECONNECT_MAX_DELAY_MS.max(min_delay),
            1,
            600_000,
        )?;
        if max_delay < min_delay {
            return Err(config_error(format!(
                "reconnectMaxDelayMs ({max_delay}) must not be below reconnectMinDelayMs ({min_delay})"
            )));
        }
        let topology = match cluster_seeds(
            &url,
            &parsed.scheme,
            options.cluster,
            options.cluster_nodes,
            allow_plaintext,
        )? {
            Some(_) if servername.is_some() => return Err(config_error(
                "tls.servername is not supported with cluster: true (each node is reached by the name it announces)"
                    .to_owned(),
            )),
            Some(seeds) => TopologyConfig::Cluster { seeds },
            None => match sentinel {
                Some(_) if servername.is_some() => {
                    return Err(config_error(
                        "tls.servername is not supported with sentinels (each node is reached by the address \
                         the sentinels announce)"
                            .to_owned(),
                    ))
                }
                Some(SentinelChoice {
                    sentinels,
                    name,
                    password: sentinel_password,
                }) => {
                    for (index, other) in sentinels.iter().enumerate().skip(1) {
                        let label = format!("sentinels[{index}]");
                        if check_url(&label, other, allow_plaintext)?.scheme != parsed.scheme {
                            return Err(config_error(format!(
                                "{label} must use the same scheme as sentinels[0] ({}://)",
                                parsed.scheme
                            )));
                        }
                    }
                    TopologyConfig::Sentinel {
                        sentinels,
                        name,
                        sentinel_password,
                    }
                }
                None => TopologyConfig::SingleServer { url, servername },
            },
        };
        let connection_name = checked_connection_name(options.connection_name)?;
        let command_timeout_ms = whole(
            "commandTimeoutMs",
            options.command_timeout_ms,
            DEFAULT_COMMAND_TIMEOUT_MS,
            1,
            600_000,
        )?;
        let replica_ack = replica_ack(options.wait_replicas, options.wait_timeout_ms, command_timeout_ms)?;
        let key_prefix = options.key_prefix.unwrap_or_default();
        if key_prefix.len() > 256 {
            return Err(config_error("keyPrefix must be at most 256 bytes".to_owned()));
        }
        Ok(RedisConfig {
            redacted_url: match &topology {
                TopologyConfig::Cluster { seeds } => {
                    format!("cluster (seed {}{})", parsed.redacted, extra_seeds(seeds.len()))
                }
                TopologyConfig::Sentinel { sentinels, name, .. } => format!(
                    "sentinel master {name} (via {}{})",
                    parsed.redacted,
                    extra_seeds(sentinels.len())
                ),
                TopologyConfig::SingleServer { .. } => parsed.redacted,
            },
            topology,
            tls,
            command_timeout: Duration::from_millis(command_timeout_ms),
            connect_timeout: Duration::from_millis(whole(
                "connectTimeoutMs",
                options.connect_timeout_ms,
                DEFAULT_CONNECT_TIMEOUT_MS,
                1,
                600_000,
            )?),
            keys: KeyLayout::new(key_prefix),
            policy: RecordPolicy::from_parts(
                options.ttl_seconds,
                options.list_limit,
                options.exclude_fields,
                options.max_record_bytes,
                options.sliding_expiry,
            )?,
            backoff: Backoff {
                min_delay: Duration::from_millis(min_delay),
                max_delay: Duration::from_millis(max_delay),
            },
            heartbeat: Duration::from_millis(whole(
                "heartbeatIntervalMs",
                options.heartbeat_interval_ms,
                DEFAULT_HEARTBEAT_INTERVAL_MS,
                50,
                3_600_000,
            )?),
            connection_name,
            credentials: None,
            replica_ack,
        })
    }
}

/// The `connectionName`, refused here rather than by every `CLIENT SETNAME`:
/// Redis takes only printable ASCII without spaces (`!` to `~`).
fn checked_connection_name(name: Option<String>) -> StoreResult<String> {
    let Some(name) = name else {
        return Ok(DEFAULT_CONNECTION_NAME.to_owned());
    };
    if let Some(refused) = name.chars().find(|c| !('!'..='~').contains(c)) {
        return Err(config_error(format!(
            "connectionName {name:?} cannot contain {refused:?}: Redis takes client names of printable ASCII \
             without spaces or newlines (e.g. 'chat-api-prod'), or '' for none"
        )));
    }
    Ok(name)
}

/// Writes the `username`/`password` options into every URL that carries the
/// data nodes' credentials, so that the rest of the configuration (and the
/// redaction of the password) treats them as the URL's own.
fn apply_user_info(options: &mut RedisOptions) -> StoreResult<()> {
    let (username, password) = (options.username.take(), options.password.take());
    if username.is_none() && password.is_none() {
        return Ok(());
    }
    if username
        .as_deref()
        .is_some_and(|name| name.is_empty() || name.contains(char::is_whitespace))
    {
        return Err(config_error(
            "username must be a user name (not empty, no spaces)".to_owned(),
        ));
    }
    let rewrite = |url: &mut String| -> StoreResult<()> {
        // A URL that does not parse is refused later, with its label.
        let Some(mut parsed) = redis::parse_redis_url(url) else {
            return Ok(());
        };
        let user_set = match &username {
            Some(name) => parsed.set_username(name).is_ok(),
            None => true,
        };
        let password_set = match &password {
            Some(secret) => parsed.set_password(Some(secret)).is_ok(),
            None => true,
        };
        if !(user_set && password_set) {
            return Err(config_error(
                "username/password cannot be applied to the url (it has no host)".to_owned(),
            ));
        }
        *url = parsed.to_string();
        Ok(())
    };
    for url in options
        .url
        .iter_mut()
        .chain(options.cluster_nodes.iter_mut().flatten())
        .chain(options.sentinels.iter_mut().flatten())
    {
        rewrite(url)?;
    }
    Ok(())
}

/// `waitReplicas` and `waitTimeoutMs`, checked against the command timeout:
/// `WAIT` runs inside the write's own time budget, so it must leave room
/// (a tenth of `commandTimeoutMs`) for the write and the round trip, or a
/// slow acknowledgement would surface as `STORE_TIMEOUT` instead of naming
/// the replicas that did not confirm.
fn replica_ack(
    replicas: Option<f64>,
    timeout_ms: Option<f64>,
    command_timeout_ms: u64,
) -> StoreResult<Option<ReplicaAck>> {
    let replicas = whole("waitReplicas", replicas, DEFAULT_WAIT_REPLICAS, 0, MAX_WAIT_REPLICAS)?;
    let most = command_timeout_ms * 9 / 10;
    let explicit = timeout_ms.is_some();
    // WAIT 0 would block forever: the timeout is at least 1 ms.
    let timeout_ms = whole("waitTimeoutMs", timeout_ms, (command_timeout_ms / 2).max(1), 1, 600_000)?;
    if (explicit || replicas > 0) && timeout_ms > most {
        return Err(config_error(format!(
            "waitTimeoutMs ({timeout_ms}) must be at most nine tenths of commandTimeoutMs ({command_timeout_ms}), \
             i.e. {most}, so that the write and its round trip fit in the call's time too"
        )));
    }
    Ok((replicas > 0).then(|| ReplicaAck {
        replicas: replicas as u32,
        timeout: Duration::from_millis(timeout_ms),
    }))
}

fn extra_seeds(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    }
}

/// The seed URLs of a cluster: `url` (already checked, with `scheme`), then
/// each of `nodes`, checked the same way and required to share the scheme.
fn cluster_seeds(
    url: &str,
    scheme: &str,
    cluster: Option<bool>,
    nodes: Option<Vec<String>>,
    allow_plaintext: bool,
) -> StoreResult<Option<Vec<String>>> {
    if !cluster.unwrap_or(false) {
        if nodes.is_some_and(|nodes| !nodes.is_empty()) {
            return Err(config_error("clusterNodes needs cluster: true".to_owned()));
        }
        return Ok(None);
    }
    let mut seeds = vec![url.to_owned()];
    for (index, node) in nodes.unwrap_or_default().into_iter().enumerate() {
        let label = format!("clusterNodes[{index}]");
        if check_url(&label, &node, allow_plaintext)?.scheme != scheme {
            return Err(config_error(format!(
                "{label} must use the same scheme as url ({scheme}://)"
            )));
        }
        seeds.push(node);
    }
    Ok(Some(seeds))
}

/// The sentinel URLs, master name and sentinel password when the options
/// ask for Sentinel, refusing the combinations that cannot mean anything.
fn sentinel_choice(
    has_url: bool,
    cluster: Option<bool>,
    sentinels: Option<Vec<String>>,
    name: Option<String>,
    password: Option<String>,
) -> StoreResult<Option<SentinelChoice>> {
    let Some(sentinels) = sentinels.filter(|list| !list.is_empty()) else {
        if name.is_some() || password.is_some() {
            return Err(config_error(
                "sentinelName and sentinelPassword need sentinels (the sentinel URLs to ask for the primary)"
                    .to_owned(),
            ));
        }
        return Ok(None);
    };
    if has_url {
        return Err(config_error(
            "url and sentinels cannot be used together: with sentinels the store asks them for the primary's \
             address, so there is no fixed url; put the credentials and db in the sentinel URLs"
                .to_owned(),
        ));
    }
    if cluster.unwrap_or(false) {
        return Err(config_error(
            "cluster and sentinels cannot be used together: Sentinel watches one primary/replica set, while a \
             Redis Cluster finds and fails over its own nodes"
                .to_owned(),
        ));
    }
    let name = match name {
        Some(name) if !name.is_empty() && !name.contains(char::is_whitespace) => name,
        Some(name) => {
            return Err(config_error(format!(
                "sentinelName {name:?} is not a master name (no spaces, not empty)"
            )))
        }
        None => {
            return Err(config_error(
                "sentinelName is required with sentinels: the master group name the sentinels monitor (e.g. \
                 mymaster)"
                    .to_owned(),
            ))
        }
    };
    Ok(Some(SentinelChoice {
        sentinels,
        name,
        password,
    }))
}

struct SentinelChoice {
    sentinels: Vec<String>,
    name: String,
    password: Option<String>,
}

fn config_error(message: String) -> StoreError {
    StoreError::Config(message)
}

/// A whole number option within bounds, or its default when absent.
fn whole(name: &str, value: Option<f64>, default: u64, min: u64, max: u64) -> StoreResult<u64> {
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && v >= min as f64 && v <= max as f64 => Ok(v as u64),
        Some(v) => Err(config_error(format!(
            "{name} must be a whole number from {min} to {max}, got {v}"
        ))),
    }
}

fn pem(name: &str, value: Either<String, Buffer>) -> StoreResult<Vec<u8>> {
    let bytes = match value {
        Either::A(text) => text.into_bytes(),
        Either::B(buffer) => buffer.to_vec(),
    };
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(config_error(format!("tls.{name} must be PEM text (-----BEGIN ...)")));
    }
    Ok(bytes)
}

fn tls_material(tls: TlsOptions) -> StoreResult<TlsMaterial> {
    let ca = tls.ca.map(|ca| pem("ca", ca)).transpose()?;
    let client_cert_and_key = match (tls.cert, tls.key) {
        (Some(cert), Some(key)) => Some((pem("cert", cert)?, pem("key", key)?)),
        (None, None) => None,
        _ => {
            return Err(config_error(
                "tls.cert and tls.key must be given together (mutual TLS)".to_owned(),
            ))
        }
    };
    Ok(TlsMaterial {
        ca,
        client_cert_and_key,
    })
}

/// `tls.servername`, checked; it belongs to the single-server topology.
fn checked_servername(servername: Option<String>) -> StoreResult<Option<String>> {
    match servername {
        Some(name) if name.is_empty() || name.contains(['/', ':', '@', ' ']) => {
            Err(config_error(format!("tls.servername {name:?} is not a host name")))
        }
        name => Ok(name),
    }
}

/// What a checked URL tells the rest of the configuration.
pub struct CheckedUrl {
    pub scheme: String,
    pub redacted: String,
}

/// Checks a Redis URL; `label` names it in messages (`url`, `REDIS_URL`).
pub fn check_url(label: &str, url: &str, allow_plaintext: bool) -> StoreResult<CheckedUrl> {
    let parsed = redis::parse_redis_url(url).ok_or_else(|| {
        config_error(format!(
            "{label} is not a valid Redis URL (expected rediss://[user:password@]host[:port][/db])"
        ))
    })?;
    let scheme = parsed.scheme().to_owned();
    match scheme.as_str() {
        "rediss" => {}
        "redis" if allow_plaintext => {}
        "redis" => {
            return Err(config_error(format!(
                "{label} uses plaintext redis://, which sends data and passwords unencrypted; use rediss:// \
                 (TLS), or opt in explicitly with allowPlaintext: true (REDIS_ALLOW_PLAINTEXT=true), e.g. for a \
                 local development server"
            )))
        }
        other => {
            return Err(config_error(format!(
                "{label} scheme {other}:// is not supported; use rediss:// (or redis:// with allowPlaintext)"
            )))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(config_error(format!("{label} has no host")));
    }
    if parsed.fragment().is_some() {
        return Err(config_error(format!(
            "{label} must not have a #fragment (certificate checks cannot be turned off through the URL)"
        )));
    }
    let path = parsed.path().trim_start_matches('/');
    if !path.is_empty() && path.parse::<u16>().is_err() {
        return Err(config_error(format!(
            "{label} path must be a database number, got {path:?}"
        )));
    }
    let mut redacted = parsed.clone();
    if parsed.password().is_some() {
        let _ = redacted.set_password(Some("***"));
    }
    Ok(CheckedUrl {
        scheme,
        redacted: redacted.to_string(),
    })
}

/// The environment variables `createConversationStore` reads.
#[napi(object)]
#[derive(Default)]
pub struct StoreEnv {
    #[napi(js_name = "REDIS_URL")]
    pub redis_url: Option<String>,
    #[napi(js_name = "REDIS_TTL")]
    pub redis_ttl: Option<String>,
    #[napi(js_name = "REDIS_TIMEOUT")]
    pub redis_timeout: Option<String>,
    #[napi(js_name = "REDIS_CONNECT_TIMEOUT")]
    pub redis_connect_timeout: Option<String>,
    #[napi(js_name = "REDIS_KEY_PREFIX")]
    pub redis_key_prefix: Option<String>,
    #[napi(js_name = "REDIS_ALLOW_PLAINTEXT")]
    pub redis_allow_plaintext: Option<String>,
    #[napi(js_name = "REDIS_CLUSTER")]
    pub redis_cluster: Option<String>,
    #[napi(js_name = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    #[napi(js_name = "REDIS_SENTINEL_NAME")]
    pub redis_sentinel_name: Option<String>,
    #[napi(js_name = "REDIS_CONNECTION_NAME")]
    pub redis_connection_name: Option<String>,
    #[napi(js_name = "REDIS_REQUIRED")]
    pub redis_required: Option<String>,
    #[napi(js_name = "REDIS_USERNAME")]
    pub redis_username: Option<String>,
    #[napi(js_name = "REDIS_PASSWORD")]
    pub redis_password: Option<String>,
    #[napi(js_name = "REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<String>,
    #[napi(js_name = "REDIS_WAIT_TIMEOUT")]
    pub redis_wait_timeout: Option<String>,
}

/// Reads the environment into store options, naming the variable in every
/// error. Without `REDIS_URL` the options have no `url` (the caller then uses
/// the memory store, with the same `REDIS_TTL`).
pub fn options_from_env(env: StoreEnv) -> StoreResult<RedisOptions> {
    let present = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let ttl = env_number("REDIS_TTL", present(env.redis_ttl), 1, 10 * 365 * 86_400)?;
    let sentinels = present(env.redis_sentinels);
    let sentinel_name = present(env.redis_sentinel_name);
    let allow_plaintext = env_flag("REDIS_ALLOW_PLAINTEXT", present(env.redis_allow_plaintext))?;
    let required = env_flag("REDIS_REQUIRED", present(env.redis_required))?;
    let common = || -> StoreResult<RedisOptions> {
        Ok(RedisOptions {
            ttl_seconds: ttl,
            command_timeout_ms: env_number("REDIS_TIMEOUT", present(env.redis_timeout.clone()), 1, 600_000)?,
            connect_timeout_ms: env_number(
                "REDIS_CONNECT_TIMEOUT",
                present(env.redis_connect_timeout.clone()),
                1,
                600_000,
            )?,
            key_prefix: env.redis_key_prefix.clone(),
            allow_plaintext: Some(allow_plaintext),
            connection_name: present(env.redis_connection_name.clone()),
            username: present(env.redis_username.clone()),
            password: present(env.redis_password.clone()),
            wait_replicas: env_number(
                "REDIS_WAIT_REPLICAS",
                present(env.redis_wait_replicas.clone()),
                0,
                MAX_WAIT_REPLICAS,
            )?,
            wait_timeout_ms: env_number(
                "REDIS_WAIT_TIMEOUT",
                present(env.redis_wait_timeout.clone()),
                1,
                600_000,
            )?,
            ..RedisOptions::default()
        })
    };
    if let Some(list) = sentinels {
        if present(env.redis_url.clone()).is_some() {
            return Err(config_error(
                "REDIS_URL and REDIS_SENTINELS cannot both be set: with sentinels the store asks them for the \
                 primary's address"
                    .to_owned(),
            ));
        }
        let urls: Vec<String> = list.split(',').map(|url| url.trim().to_owned()).collect();
        for (index, url) in urls.iter().enumerate() {
            check_url(
                &format!("REDIS_SENTINELS (sentinel {})", index + 1),
                url,
                allow_plaintext,
            )?;
        }
        let Some(name) = sentinel_name else {
            return Err(config_error(
                "REDIS_SENTINEL_NAME is required with REDIS_SENTINELS: the master group name (e.g. mymaster)"
                    .to_owned(),
            ));
        };
        return Ok(RedisOptions {
            sentinels: Some(urls),
            sentinel_name: Some(name),
            ..common()?
        });
    }
    if sentinel_name.is_some() {
        return Err(config_error(
            "REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is not: give the sentinel URLs, comma-separated".to_owned(),
        ));
    }
    let Some(url) = present(env.redis_url) else {
        if required {
            // Production must not silently keep conversations in one process's memory.
            return Err(config_error(
                "REDIS_REQUIRED is true but neither REDIS_URL nor REDIS_SENTINELS is set: refusing to fall back to \
                 MemoryStore"
                    .to_owned(),
            ));
        }
        return Ok(RedisOptions {
            ttl_seconds: ttl,
            ..RedisOptions::default()
        });
    };
    let cluster = env_flag("REDIS_CLUSTER", present(env.redis_cluster))?;
    // In cluster mode REDIS_URL may list several seed nodes, comma-separated.
    let mut urls: Vec<&str> = if cluster {
        url.split(',').map(str::trim).collect()
    } else {
        vec![url.trim()]
    };
    for (index, seed) in urls.iter().enumerate() {
        let label = if urls.len() > 1 {
            format!("REDIS_URL (seed {})", index + 1)
        } else {
            "REDIS_URL".to_owned()
        };
        check_url(&label, seed, allow_plaintext)?;
    }
    let first = urls.remove(0).to_owned();
    Ok(RedisOptions {
        url: Some(first),
        cluster: Some(cluster),
        cluster_nodes: Some(urls.into_iter().map(str::to_owned).collect()),
        ..common()?
    })
}

fn env_flag(name: &str, value: Option<String>) -> StoreResult<bool> {
    match value.as_deref().map(str::trim) {
        None => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some("0" | "false" | "no") => Ok(false),
        Some(other) => Err(config_error(format!("{name} must be true or false, got {other:?}"))),
    }
}

fn env_number(name: &str, value: Option<String>, min: u64, max: u64) -> StoreResult<Option<f64>> {
    let Some(text) = value else { return Ok(None) };
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n as f64)),
        _ => Err(config_error(format!(
            "{name} must be a whole number from {min} to {max}, got {text:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> RedisOptions {
        RedisOptions {
            url: Some(url.to_owned()),
            ..RedisOptions::default()
        }
    }

    #[test]
    fn plaintext_needs_an_explicit_opt_in() {
        let err = RedisConfig::from_options(options("redis://127.0.0.1:6379")).unwrap_err();
        assert!(err.to_string().contains("allowPlaintext"), "{err}");
        let ok = RedisConfig::from_options(RedisOptions {
            allow_plaintext: Some(true),
            ..options("redis://h:1")
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn passwords_are_redacted() {
        let config = RedisConfig::from_options(options("rediss://user:s3cret@cache.example:6380/2")).unwrap();
        assert!(!config.redacted_url.contains("s3cret"), "{}", config.redacted_url);
        assert!(config.redacted_url.contains("***"));
        assert!(config.tls.is_some());
    }

    #[test]
    fn username_and_password_override_the_url_and_are_redacted() {
        let config = RedisConfig::from_options(RedisOptions {
            username: Some("app".to_owned()),
            password: Some("p@ss:w/rd".to_owned()),
            ..options("rediss://old:oldpw@cache.example:6380")
        })
        .unwrap();
        assert_eq!(config.redacted_url, "rediss://app:***@cache.example:6380");
        let TopologyConfig::SingleServer { url, .. } = &config.topology else {
            panic!("{:?}", config.topology)
        };
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd"));
        let cluster = RedisConfig::from_options(RedisOptions {
            password: Some("s3cret".to_owned()),
            cluster: Some(true),
            cluster_nodes: Some(vec!["rediss://b:7001".to_owned()]),
            ..options("rediss://a:7000")
        })
        .unwrap();
        assert_eq!(
            cluster.topology,
            TopologyConfig::Cluster {
                seeds: vec![
                    "rediss://:s3cret@a:7000".to_owned(),
                    "rediss://:s3cret@b:7001".to_owned()
                ],
            }
        );
        assert!(!cluster.redacted_url.contains("s3cret"));
        let from_env = options_from_env(StoreEnv {
            redis_url: Some("rediss://h".into()),
            redis_username: Some("app".into()),
            redis_password: Some("pw".into()),
            ..StoreEnv::default()
        })
        .unwrap();
        assert_eq!(
            (from_env.username.as_deref(), from_env.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        assert!(RedisConfig::from_options(RedisOptions {
            username: Some("two words".to_owned()),
            ..options("rediss://h")
        })
        .is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["not a url", "http://h", "rediss://h#insecure", "rediss://h/abc"] {
            assert!(RedisConfig::from_options(options(bad)).is_err(), "{bad}");
        }
        let negative = RedisOptions {
            ttl_seconds: Some(-5.0),
            ..options("rediss://h")
        };
        assert!(RedisConfig::from_options(negative).is_err());
    }

    #[test]
    fn the_topology_is_chosen_from_the_options() {
        let single = RedisConfig::from_options(RedisOptions {
            tls: Some(TlsOptions {
                servername: Some("cache.internal".to_owned()),
                ..TlsOptions::default()
            }),
            ..options("rediss://10.0.0.5:6380")
        })
        .unwrap();
        assert_eq!(
            single.topology,
            TopologyConfig::SingleServer {
                url: "rediss://10.0.0.5:6380".to_owned(),
                servername: Some("cache.internal".to_owned()),
            }
        );
        let cluster = RedisConfig::from_options(RedisOptions {
            cluster: Some(true),
            cluster_nodes: Some(vec!["rediss://b:7001".to_owned()]),
            ..options("rediss://a:7000")
        })
        .unwrap();
        assert_eq!(
            cluster.topology,
            TopologyConfig::Cluster {
                seeds: vec!["rediss://a:7000".to_owned(), "rediss://b:7001".to_owned()],
            }
        );
        assert_eq!(cluster.redacted_url, "cluster (seed rediss://a:7000 and 1 more)");
        let err = RedisConfig::from_options(RedisOptions {
            cluster: Some(true),
            tls: Some(TlsOptions {
                servername: Some("cache.internal".to_owned()),
                ..TlsOptions::default()
            }),
            ..options("rediss://a:7000")
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("tls.servername is not supported with cluster"),
            "{err}"
        );
    }

    #[test]
    fn sentinels_replace_the_url_and_refuse_what_cannot_go_with_them() {
        let sentinels = || Some(vec!["rediss://:pw@s1:26379".to_owned(), "rediss://s2:26379".to_owned()]);
        let config = RedisConfig::from_options(RedisOptions {
            sentinels: sentinels(),
            sentinel_name: Some("mymaster".to_owned()),
            ..RedisOptions::default()
        })
        .unwrap();
        assert_eq!(
            config.topology,
            TopologyConfig::Sentinel {
                sentinels: sentinels().unwrap(),
                name: "mymaster".to_owned(),
                sentinel_password: None,
            }
        );
        assert_eq!(
            config.redacted_url,
            "sentinel master mymaster (via rediss://:***@s1:26379 and 1 more)"
        );
        let refused = |options: RedisOptions| match RedisConfig::from_options(options) {
            Err(err) => err.to_string(),
            Ok(_) => String::new(),
        };
        let with = |more: RedisOptions| RedisOptions {
            sentinels: sentinels(),
            sentinel_name: Some("mymaster".to_owned()),
            ..more
        };
        assert!(refused(with(options("rediss://h"))).contains("url and sentinels cannot be used together"));
        assert!(refused(with(RedisOptions {
            cluster: Some(true),
            ..RedisOptions::default()
        }))
        .contains("cluster and sentinels cannot be used together"));
        assert!(refused(RedisOptions {
            sentinel_name: None,
            ..with(RedisOptions::default())
        })
        .contains("sentinelName is required"));
        assert!(refused(RedisOptions {
            sentinels: Some(vec!["rediss://s1".to_owned(), "redis://s2".to_owned()]),
            allow_plaintext: Some(true),
            ..with(RedisOptions::default())
        })
        .contains("sentinels[1] must use the same scheme"));
        assert!(refused(RedisOptions {
            sentinel_name: Some("mymaster".to_owned()),
            ..options("rediss://h")
        })
        .contains("need sentinels"));
        let from_env = options_from_env(StoreEnv {
            redis_sentinels: Some("rediss://s1:26379, rediss://s2:26379".into()),
            redis_sentinel_name: Some("mymaster".into()),
            ..StoreEnv::default()
        })
        .unwrap();
        assert_eq!(
            from_env.sentinels,
            sentinels().map(|_| vec!["rediss://s1:26379".to_owned(), "rediss://s2:26379".to_owned()])
        );
        assert!(options_from_env(StoreEnv {
            redis_url: Some("rediss://h".into()),
            redis_sentinels: Some("rediss://s1:26379".into()),
            redis_sentinel_name: Some("mymaster".into()),
            ..StoreEnv::default()
        })
        .is_err_and(|err| err.to_string().contains("REDIS_URL and REDIS_SENTINELS")));
    }

    #[test]
    fn env_errors_name_the_variable() {
        let error_of = |url: &str, ttl: &str| match options_from_env(StoreEnv {
            redis_url: Some(url.into()),
            redis_ttl: Some(ttl.into()),
            ..StoreEnv::default()
        }) {
            Err(err) => err.to_string(),
            Ok(_) => String::new(),
        };
        assert!(error_of("rediss://h", "abc").contains("REDIS_TTL"));
        assert!(error_of("rediss://h", "-5").contains("REDIS_TTL"));
        assert!(error_of("not a url", "5").contains("REDIS_URL"));
        assert!(options_from_env(StoreEnv::default()).is_ok_and(|options| options.url.is_none()));
    }

    #[test]
    fn redis_required_refuses_a_missing_url() {
        let with = |url: Option<&str>, required: &str| {
            options_from_env(StoreEnv {
                redis_url: url.map(str::to_owned),
                redis_required: Some(required.to_owned()),
                ..StoreEnv::default()
            })
        };
        assert!(with(None, "true").is_err_and(|err| err.to_string().contains("REDIS_REQUIRED")));
        assert!(with(None, "false").is_ok_and(|options| options.url.is_none()));
        assert!(with(Some("rediss://h"), "true").is_ok_and(|options| options.url.is_some()));
        assert!(with(Some("rediss://h"), "maybe").is_err_and(|err| err.to_string().contains("REDIS_REQUIRED")));
    }

    #[test]
    fn replica_acknowledgement_fits_inside_the_command_timeout() {
        let ack = |replicas: Option<f64>, wait: Option<f64>, command: Option<f64>| {
            RedisConfig::from_options(RedisOptions {
                wait_replicas: replicas,
                wait_timeout_ms: wait,
                command_timeout_ms: command,
                ..options("rediss://h")
            })
            .map(|config| config.replica_ack)
        };
        assert_eq!(ack(None, None, None), Ok(None));
        assert_eq!(
            ack(Some(1.0), None, Some(1000.0)),
            Ok(Some(ReplicaAck {
                replicas: 1,
                timeout: Duration::from_millis(500),
            }))
        );
        assert!(ack(Some(2.0), Some(900.0), Some(1000.0)).is_ok());
        let refused = |result: StoreResult<Option<ReplicaAck>>| match result {
            Err(err) => err.to_string(),
            Ok(_) => String::new(),
        };
        assert!(refused(ack(Some(1.0), Some(901.0), Some(1000.0))).contains("at most nine tenths"));
        assert!(refused(ack(Some(101.0), None, None)).contains("waitReplicas must be a whole number from 0 to 100"));
        assert!(refused(ack(Some(1.0), None, Some(1.0))).contains("nine tenths"));
        // Without waitReplicas the default is never in the way.
        assert_eq!(ack(None, None, Some(1.0)), Ok(None));
        let from_env = options_from_env(StoreEnv {
            redis_url: Some("rediss://h".into()),
            redis_wait_replicas: Some("2".into()),
            redis_wait_timeout: Some("250".into()),
            ..StoreEnv::default()
        })
        .unwrap();
        assert_eq!(
            (from_env.wait_replicas, from_env.wait_timeout_ms),
            (Some(2.0), Some(250.0))
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let backoff = Backoff {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff.delay(30, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff.delay(30, 0.0), Duration::from_millis(500));
    }
}
