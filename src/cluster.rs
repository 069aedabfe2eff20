//! The store operations on a Redis Cluster, and how it is connected to.
//!
//! A record (`conv:<id>`) and its user's index (`user:<userId>:conversations`)
//! hash to different slots, usually on different nodes, and the layout is the
//! ioredis store's (no hash tags), so one script cannot cover both. Each
//! operation is a short sequence of single-slot steps, ordered so that what a
//! reader can see between steps is safe, and so that an interrupted sequence
//! heals on the next write or listing:
//!
//! - `set`: 1. write the record (one script, which also returns the previous
//!   owner); 2. add the id to the new owner's index and refresh its TTL;
//!   3. if the owner changed, remove the id from the old owner's index.
//!   Record first: an index entry never points at a record that is not there
//!   yet, so listings never prune an entry a writer is about to complete.
//!   Between 1 and 2 the record is readable by `get` but not yet listed.
//!   Between 2 and 3 the old owner's index still holds the id; listings skip
//!   it (the record now belongs to someone else) and prune it.
//!   If step 2 fails, the call rejects: the record was written but is listed
//!   only after the next `set` of it succeeds.
//! - `set` with `ifUpdatedAt`: step 1 is one script that checks the stored
//!   record's `updatedAt` and writes the record only if it matches, so the
//!   check is atomic with the record's write; steps 2 and 3 are as above.
//! - `delete`: 1. remove the record, reading it (GETDEL); 2. remove the id
//!   from its owner's index, only if its score is still the deleted record's
//!   (a `set` that raced in keeps its fresh entry). If step 2 fails, the
//!   entry points at nothing and the next listing prunes it.
//! - `listByUser` (`listing.rs`, shared with one server): 1. read a window of
//!   the index with scores; 2. read the records (MGET, split per slot);
//!   3. in the background, prune entries whose record is gone or belongs to
//!   another user, each only if its score is unchanged (`prune` here).
//! - `get`: one GET (with `slidingExpiry`, GETEX then EXPIRE of the index).
//!
//! With `waitReplicas`, each write step carries a `WAIT` to its own node
//! (`replication.rs`). A step its replicas do not confirm does not stop the
//! sequence: the later steps run (without waiting), so the layout on the
//! primaries is whole, and the call then rejects with `STORE_NOT_REPLICATED`.

use std::future::Future;
use std::time::Duration;

use redis::auth::BasicAuth;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use tokio::sync::Notify;

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{self, Link, LossWatch, Sign, Transport};
use crate::credentials::ProviderHook;
use crate::error::{StoreError, StoreResult};
use crate::events::EventSink;
use crate::keys::KeyLayout;
use crate::listing::Stale;
use crate::logger::Logger;
use crate::record::{self, Precondition, PreparedRecord};
use crate::replication::{self, Replication};
use crate::scripts;
use crate::topology::Topology;

const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 250;
/// The shortest time between two renamings of the nodes' connections.
const RENAME_SPACING: Duration = Duration::from_secs(1);

pub struct Cluster {
    link: Link<ClusterNodes>,
    keys: KeyLayout,
    policy: RecordPolicy,
    replication: Replication,
}

impl Cluster {
    /// Builds the cluster client from the seed node URLs (no I/O) and starts its link.
    pub fn start(seeds: &[String], config: &RedisConfig, logger: Logger, events: EventSink) -> StoreResult<Self> {
        let nodes = seeds
            .iter()
            .map(|url| connection::resp3_connection_info(url, config))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            // Node connections take their TCP settings from here, not the seeds'.
            .tcp_settings(connection::tcp_settings())
            // Few, short retries: a request for a dead primary's slots must not
            // keep the client busy refreshing slots (which holds back requests
            // for healthy nodes) long after our command timeout gave up on it.
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
        if let Some(tls) = &config.tls {
            builder = builder.certs(connection::tls_certificates(tls));
        }
        if let Some(credentials) = &config.credentials {
            // Every node's new connection asks it (see credentials.rs).
            builder = builder.set_credentials_provider(ProviderHook(credentials.clone()));
        }
        let client = builder
            .build()
            .map_err(|err| StoreError::Config(format!("cluster configuration is not usable: {err}")))?;
        let nodes = ClusterNodes {
            client,
            connection_name: config.connection_name.clone(),
            heartbeat: config.heartbeat,
            command_timeout: config.command_timeout,
        };
        Ok(Cluster {
            link: Link::start(nodes, config, logger, events, scripts::cluster()),
            keys: config.keys.clone(),
            policy: config.policy.clone(),
            replication: Replication::new(config.replica_ack),
        })
    }

    /// One write step on the node that owns its keys; with `waitReplicas`,
    /// `WAIT` rides in the same pipeline, so it goes to that node (a `WAIT`
    /// sent alone would be routed to every primary). A step its replicas do
    /// not confirm is noted in `unconfirmed`, and the sequence goes on, so
    /// the layout on the primaries stays whole.
    async fn write_step<T: redis::FromRedisValue>(
        &self,
        what: &str,
        step: redis::Pipeline,
        script: Option<&redis::Script>,
        unconfirmed: &mut Unconfirmed,
    ) -> StoreResult<T> {
        // Once a step is unconfirmed the call rejects anyway: the later steps
        // do not wait for replicas too.
        let wait = unconfirmed.0.is_none();
        let (value, confirmation) = self
            .link
            .run(what, |mut connection| async move {
                self.replication.send(&mut connection, &step, script, wait).await
            })
            .await?;
        if let Err(err) = self.replication.confirm(what, confirmation, self.link.logger()) {
            unconfirmed.0.get_or_insert(err);
        }
        Ok(value)
    }

    /// Steps 2 and 3 of `set`, once the record is written: the id into its
    /// owner's index (with the index TTL), and out of a previous owner's.
    async fn index_written(
        &self,
        id: &str,
        user_id: &str,
        score: i64,
        previous_owner: Option<String>,
        unconfirmed: &mut Unconfirmed,
    ) -> StoreResult<()> {
        let index = self.keys.user_index(user_id);
        let mut step = redis::pipe();
        step.cmd("MULTI")
            .cmd("ZADD")
            .arg(&index)
            .arg(score)
            .arg(id)
            .cmd("EXPIRE")
            .arg(&index)
            .arg(self.policy.index_ttl_seconds())
            .cmd("EXEC");
        self.write_step::<()>(&format!("ZADD {index}"), step, None, unconfirmed)
            .await?;
        match previous_owner.filter(|owner| owner != user_id) {
            Some(previous) => {
                self.remove_from_index(&self.keys.user_index(&previous), id, unconfirmed)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn remove_from_index(&self, index: &str, id: &str, unconfirmed: &mut Unconfirmed) -> StoreResult<()> {
        let mut step = redis::pipe();
        step.cmd("ZREM").arg(index).arg(id);
        self.write_step::<i64>(&format!("ZREM {index}"), step, None, unconfirmed)
            .await?;
        Ok(())
    }

    /// Step 2 of `delete`: the id out of the deleted record's owner's index,
    /// only while its score is still the deleted record's.
    async fn unindex_deleted(
        &self,
        id: &str,
        removed: Option<String>,
        unconfirmed: &mut Unconfirmed,
    ) -> StoreResult<()> {
        let Some(json) = removed else {
            return Ok(());
        };
        let Some(owner) = record::owner_of(&json) else {
            return Ok(());
        };
        let index = self.keys.user_index(&owner);
        let Some(score) = record::updated_at_ms(&json) else {
            // No updatedAt: its score was the write time, which nobody kept.
            return self.remove_from_index(&index, id, unconfirmed).await;
        };
        let mut step = redis::pipe();
        step.add_command(replication::evalsha(&scripts::REMOVE_IF_SCORE_SCRIPT, 1))
            .arg(&index)
            .arg(id)
            .arg(score as f64);
        self.write_step::<i64>(
            &format!("ZREM {index}"),
            step,
            Some(&scripts::REMOVE_IF_SCORE_SCRIPT),
            unconfirmed,
        )
        .await?;
        Ok(())
    }
}

/// The first step of a write that its replicas did not confirm
/// (`waitReplicas`): the call rejects with it once every step has run.
#[derive(Default)]
struct Unconfirmed(Option<StoreError>);

impl Unconfirmed {
    /// The call's outcome: a failed step's error first (it says what is
    /// missing), else the unconfirmed one.
    fn after(self, steps: StoreResult<()>) -> StoreResult<()> {
        steps?;
        self.0.map_or(Ok(()), Err)
    }
}

impl Topology for Cluster {
    type Transport = ClusterNodes;

    fn link(&self) -> &Link<ClusterNodes> {
        &self.link
    }

    fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    async fn get(&self, id: &str) -> StoreResult<Option<String>> {
        let key = self.keys.record(id);
        let ttl = self.policy.ttl_seconds;
        let found: Option<Vec<u8>> = self
            .link
            .run(&format!("GET {key}"), |mut connection| {
                let command = if self.policy.sliding_expiry {
                    let mut getex = redis::cmd("GETEX");
                    getex.arg(&key).arg("EX").arg(ttl);
                    getex
                } else {
                    let mut get = redis::cmd("GET");
                    get.arg(&key);
                    get
                };
                async move { command.query_async(&mut connection).await }
            })
            .await?;
        let found = match found {
            None => None,
            Some(bytes) => {
                record::within_budget(
                    &format!("GET {}", self.keys.record(id)),
                    bytes.len(),
                    &self.policy.rules,
                )?;
                Some(record::stored_record(&self.keys.record(id), id, bytes)?)
            }
        };
        if self.policy.sliding_expiry {
            if let Some((_, owner)) = &found {
                let index = self.keys.user_index(owner);
                let index_ttl = self.policy.index_ttl_seconds();
                self.link
                    .run(&format!("EXPIRE {index}"), |mut connection| async move {
                        redis::cmd("EXPIRE")
                            .arg(&index)
                            .arg(index_ttl)
                            .query_async::<i64>(&mut connection)
                            .await
                    })
                    .await?;
            }
        }
        Ok(found.map(|(json, _)| json))
    }

    async fn set(&self, id: &str, record: PreparedRecord) -> StoreResult<()> {
        let key = self.keys.record(id);
        let mut step = redis::pipe();
        step.add_command(replication::evalsha(&scripts::CLUSTER_SET_RECORD_SCRIPT, 1))
            .arg(&key)
            .arg(&record.json)
            .arg(self.policy.ttl_seconds);
        let mut unconfirmed = Unconfirmed::default();
        let previous_owner: Option<String> = self
            .write_step(
                &format!("SET {key}"),
                step,
                Some(&scripts::CLUSTER_SET_RECORD_SCRIPT),
                &mut unconfirmed,
            )
            .await?;
        let indexed = self
            .index_written(id, &record.user_id, record.score, previous_owner, &mut unconfirmed)
            .await;
        unconfirmed.after(indexed)
    }

    /// Step 1 checks the stored record and writes it in one script; steps 2
    /// and 3 are the plain `set`'s.
    async fn set_if(&self, id: &str, record: PreparedRecord, precondition: &Precondition) -> StoreResult<()> {
        let key = self.keys.record(id);
        let (mode, expected) = precondition.script_args();
        let mut step = redis::pipe();
        step.add_command(replication::evalsha(&scripts::CLUSTER_SET_RECORD_IF_SCRIPT, 1))
            .arg(&key)
            .arg(&record.json)
            .arg(self.policy.ttl_seconds)
            .arg(mode)
            .arg(expected);
        let mut unconfirmed = Unconfirmed::default();
        let (status, previous_owner, updated_at): (i64, String, String) = self
            .write_step(
                &format!("SET {key} (ifUpdatedAt)"),
                step,
                Some(&scripts::CLUSTER_SET_RECORD_IF_SCRIPT),
                &mut unconfirmed,
            )
            .await?;
        if status != 1 {
            // Refused: nothing was written, so there is nothing to confirm.
            return Err(precondition.conflict(id, &Precondition::found_from_script(status, updated_at)));
        }
        let previous_owner = Some(previous_owner).filter(|owner| !owner.is_empty());
        let indexed = self
            .index_written(id, &record.user_id, record.score, previous_owner, &mut unconfirmed)
            .await;
        unconfirmed.after(indexed)
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        let key = self.keys.record(id);
        let mut step = redis::pipe();
        step.cmd("GETDEL").arg(&key);
        let mut unconfirmed = Unconfirmed::default();
        let removed: Option<Vec<u8>> = self
            .write_step(&format!("GETDEL {key}"), step, None, &mut unconfirmed)
            .await?;
        let unindexed = self
            .unindex_deleted(id, removed.and_then(record::utf8_text), &mut unconfirmed)
            .await;
        unconfirmed.after(unindexed)
    }

    /// Record and index live on different nodes, so nothing re-checks both
    /// atomically: an entry goes only if its score is unchanged, so a `set`
    /// that raced in keeps its fresh entry.
    fn prune(
        &self,
        index: String,
        _user_id: String,
        stale: Vec<Stale>,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send + 'static {
        let link = self.link.clone();
        let keys = self.keys.clone();
        async move {
            let mut foreign = Vec::new();
            for entry in &stale {
                // MGET answers nil for a key of another type too: that is
                // not a gone record, and not this store's to unlist.
                let key = keys.record(&entry.id);
                let kind: String = link
                    .run(&format!("TYPE {key}"), |mut connection| {
                        let key = &key;
                        async move { redis::cmd("TYPE").arg(key).query_async(&mut connection).await }
                    })
                    .await?;
                match kind.as_str() {
                    "none" => remove_if_score(&link, &index, &entry.id, entry.score).await?,
                    "string" => {} // written again since the listing read it
                    _ => foreign.push(entry.id.clone()),
                }
            }
            Ok(foreign)
        }
    }
}

/// Removes `id` from `index` only while its score is still `score`.
async fn remove_if_score(link: &Link<ClusterNodes>, index: &str, id: &str, score: f64) -> StoreResult<()> {
    link.run(&format!("ZREM {index}"), |mut connection| async move {
        scripts::REMOVE_IF_SCORE_SCRIPT
            .key(index)
            .arg(id)
            .arg(score)
            .invoke_async::<i64>(&mut connection)
            .await
    })
    .await?;
    Ok(())
}

/// The cluster's nodes, reached through one client that routes each command
/// to the node owning its key.
pub struct ClusterNodes {
    client: ClusterClient,
    connection_name: String,
    heartbeat: Duration,
    command_timeout: Duration,
}

impl Transport for ClusterNodes {
    type Connection = ClusterConnection;
    type Watch = ClusterWatch;

    /// redis-rs follows MOVED, refreshes the slots on READONLY (a write that
    /// reached a demoted primary), waits out LOADING, MASTERDOWN and
    /// CLUSTERDOWN, and reconnects to each node by itself.
    const HEALS_ITSELF: bool = true;

    async fn connect(&self) -> redis::RedisResult<(ClusterConnection, ClusterWatch)> {
        let connection = self.client.get_async_connection().await?;
        Ok((
            connection.clone(),
            ClusterWatch {
                connection,
                connection_name: self.connection_name.clone(),
                heartbeat: self.heartbeat,
                command_timeout: self.command_timeout,
            },
        ))
    }

    /// AUTH on every node's connection; fails naming the nodes that refused.
    async fn reauthenticate(&self, mut connection: ClusterConnection, auth: BasicAuth) -> redis::RedisResult<()> {
        let mut command = redis::cmd("AUTH");
        command.arg(auth.username()).arg(auth.password());
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
        let replies = connection.route_command(command, routing).await?;
        let refused: Vec<String> = match replies {
            // Without a response policy, each node's reply comes keyed by its address.
            redis::Value::Map(replies) => replies
                .into_iter()
                .filter_map(|(node, reply)| match reply {
                    redis::Value::ServerError(error) => Some(format!(
                        "{}: {}",
                        String::from_utf8_lossy(match &node {
                            redis::Value::BulkString(bytes) => bytes,
                            _ => &[],
                        }),
                        error.details().unwrap_or(error.code())
                    )),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if refused.is_empty() {
            Ok(())
        } else {
            Err(redis::RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                "AUTH refused",
                refused.join("; "),
            )))
        }
    }
}

/// A cluster connection reconnects to each node and follows failovers by
/// itself; probing it as a whole would only get in the way, so it reports no
/// sign of loss. It names the nodes' connections again after a call saw
/// trouble and at each heartbeat: redis-rs opens a node's new connection
/// (after a failover, or a node it had not met) without the store's name.
pub struct ClusterWatch {
    connection: ClusterConnection,
    connection_name: String,
    heartbeat: Duration,
    command_timeout: Duration,
}

impl LossWatch for ClusterWatch {
    async fn next_sign(&mut self, trouble: &Notify) -> Sign {
        loop {
            tokio::select! {
                _ = trouble.notified() => {}
                _ = tokio::time::sleep(self.heartbeat) => {}
            }
            if self.connection_name.is_empty() {
                continue;
            }
            // CLIENT SETNAME goes to every node; a node that is down is named
            // when it is back, at a later heartbeat.
            let rename = connection::set_client_name(&self.connection_name);
            let _ = tokio::time::timeout(self.command_timeout, rename.query_async::<()>(&mut self.connection)).await;
            // While calls keep failing (a failover), rename at most this often.
            tokio::time::sleep(RENAME_SPACING.min(self.heartbeat)).await;
        }
    }
}
