//! `RedisStore`'s core, as the binding calls it. The topology is chosen once,
//! here, when the store starts; every call then goes to that topology's
//! implementation of the operations (`topology.rs`) through one `match`.

use crate::cluster::Cluster;
use crate::config::{RecordPolicy, RedisConfig, TopologyConfig};
use crate::connection::LinkStats;
use crate::error::StoreResult;
use crate::events::EventSink;
use crate::listing;
use crate::logger::Logger;
use crate::record::{self, ListQuery, Precondition};
use crate::sentinel::SentinelServer;
use crate::single_server::{DirectServer, SingleServer};
use crate::supervisor::Status;
use crate::topology::Topology;

/// The topology the store talks to.
enum Backend {
    SingleServer(SingleServer<DirectServer>),
    Sentinel(SingleServer<SentinelServer>),
    Cluster(Cluster),
}

/// Evaluates `$body` with `$topology` bound to the backend's topology,
/// whichever it is (each arm is type-checked against its own type).
macro_rules! with_topology {
    ($backend:expr, $topology:ident => $body:expr) => {
        match $backend {
            Backend::SingleServer($topology) => $body,
            Backend::Sentinel($topology) => $body,
            Backend::Cluster($topology) => $body,
        }
    };
}

/// Ids, userIds and list options arrive checked by the binding; nothing
/// below it checks them again.
pub struct RedisStoreCore {
    backend: Backend,
    policy: RecordPolicy,
}

impl RedisStoreCore {
    /// Builds the topology's client (no I/O) and starts connecting in the background.
    pub fn start(config: RedisConfig, logger: Logger, events: EventSink) -> StoreResult<Self> {
        let backend = match &config.topology {
            TopologyConfig::SingleServer { url, servername } => Backend::SingleServer(SingleServer::start(
                DirectServer::new(url, servername.as_deref(), &config)?,
                &config,
                logger,
                events,
            )),
            TopologyConfig::Sentinel {
                sentinels,
                name,
                sentinel_password,
            } => Backend::Sentinel(SingleServer::start(
                SentinelServer::new(sentinels, name, sentinel_password.as_deref(), &config, logger.clone())?,
                &config,
                logger,
                events,
            )),
            TopologyConfig::Cluster { seeds } => Backend::Cluster(Cluster::start(seeds, &config, logger, events)?),
        };
        Ok(RedisStoreCore {
            backend,
            policy: config.policy,
        })
    }

    pub fn policy(&self) -> &RecordPolicy {
        &self.policy
    }

    pub fn redacted_url(&self) -> &str {
        with_topology!(&self.backend, topology => topology.link().redacted_url())
    }

    pub fn link_stats(&self) -> LinkStats {
        with_topology!(&self.backend, topology => topology.link().stats())
    }

    pub fn connect_timeout(&self) -> std::time::Duration {
        with_topology!(&self.backend, topology => topology.link().connect_timeout())
    }

    pub fn status(&self) -> Status {
        with_topology!(&self.backend, topology => topology.link().status())
    }

    pub async fn ping(&self) -> StoreResult<f64> {
        with_topology!(&self.backend, topology => topology.link().ping().await)
    }

    pub fn close(&self) {
        with_topology!(&self.backend, topology => topology.link().close())
    }

    pub async fn get(&self, id: &str) -> StoreResult<Option<String>> {
        with_topology!(&self.backend, topology => topology.get(id).await)
    }

    pub async fn set(&self, id: &str, json: String) -> StoreResult<()> {
        let record = record::prepare_record(id, json, &self.policy.rules, now_ms())?;
        with_topology!(&self.backend, topology => topology.set(id, record).await)
    }

    pub async fn set_if(&self, id: &str, json: String, precondition: &Precondition) -> StoreResult<()> {
        let record = record::prepare_record(id, json, &self.policy.rules, now_ms())?;
        with_topology!(&self.backend, topology => topology.set_if(id, record, precondition).await)
    }

    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        with_topology!(&self.backend, topology => topology.delete(id).await)
    }

    /// `id, json, id, json, ...` newest first (see `listing.rs`).
    pub async fn list_by_user(&self, user_id: &str, query: ListQuery) -> StoreResult<Vec<String>> {
        with_topology!(&self.backend, topology => listing::list_by_user(topology, user_id, query, &self.policy.rules).await)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl Drop for RedisStoreCore {
    fn drop(&mut self) {
        // A store the app dropped without close() must not reconnect forever.
        self.close();
    }
}
