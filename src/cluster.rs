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

use std::future::Future;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use tokio::sync::Notify;

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{self, Link, LossWatch, Sign, Transport};
use crate::error::{StoreError, StoreResult};
use crate::keys::KeyLayout;
use crate::listing::Stale;
use crate::logger::Logger;
use crate::record::{self, Precondition, PreparedRecord};
use crate::scripts;
use crate::topology::Topology;

const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 250;

pub struct Cluster {
    link: Link<ClusterNodes>,
    keys: KeyLayout,
    policy: RecordPolicy,
}

impl Cluster {
    /// Builds the cluster client from the seed node URLs (no I/O) and starts its link.
    pub fn start(seeds: &[String], config: &RedisConfig, logger: Logger) -> StoreResult<Self> {
        let nodes = seeds
            .iter()
            .map(|url| connection::resp3_connection_info(url, config))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            // Few, short retries: a request for a dead primary's slots must not
            // keep the client busy refreshing slots (which holds back requests
            // for healthy nodes) long after our command timeout gave up on it.
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
        if let Some(tls) = &config.tls {
            builder = builder.certs(connection::tls_certificates(tls));
        }
        let client = builder
            .build()
            .map_err(|err| StoreError::Config(format!("cluster configuration is not usable: {err}")))?;
        Ok(Cluster {
            link: Link::start(ClusterNodes { client }, config, logger, scripts::cluster()),
            keys: config.keys.clone(),
            policy: config.policy.clone(),
        })
    }

    /// Steps 2 and 3 of `set`, once the record is written: the id into its
    /// owner's index (with the index TTL), and out of a previous owner's.
    async fn index_written(
        &self,
        id: &str,
        user_id: &str,
        score: i64,
        previous_owner: Option<String>,
    ) -> StoreResult<()> {
        let index = self.keys.user_index(user_id);
        let index_ttl = self.policy.index_ttl_seconds();
        self.link
            .run(&format!("ZADD {index}"), |mut connection| async move {
                redis::pipe()
                    .atomic()
                    .zadd(&index, id, score)
                    .ignore()
                    .expire(&index, index_ttl as i64)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await?;
        match previous_owner.filter(|owner| owner != user_id) {
            Some(previous) => self.remove_from_index(&self.keys.user_index(&previous), id).await,
            None => Ok(()),
        }
    }

    async fn remove_from_index(&self, index: &str, id: &str) -> StoreResult<()> {
        self.link
            .run(&format!("ZREM {index}"), |mut connection| async move {
                redis::cmd("ZREM")
                    .arg(index)
                    .arg(id)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await?;
        Ok(())
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
        let ttl = self.policy.ttl_seconds;
        let json = &record.json;
        let previous_owner: Option<String> = self
            .link
            .run(&format!("SET {key}"), |mut connection| async move {
                scripts::CLUSTER_SET_RECORD_SCRIPT
                    .key(&key)
                    .arg(json)
                    .arg(ttl)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        self.index_written(id, &record.user_id, record.score, previous_owner)
            .await
    }

    /// Step 1 checks the stored record and writes it in one script; steps 2
    /// and 3 are the plain `set`'s.
    async fn set_if(&self, id: &str, record: PreparedRecord, precondition: &Precondition) -> StoreResult<()> {
        let key = self.keys.record(id);
        let ttl = self.policy.ttl_seconds;
        let (mode, expected) = precondition.script_args();
        let json = &record.json;
        let (status, previous_owner, updated_at): (i64, String, String) = self
            .link
            .run(&format!("SET {key} (ifUpdatedAt)"), |mut connection| async move {
                scripts::CLUSTER_SET_RECORD_IF_SCRIPT
                    .key(&key)
                    .arg(json)
                    .arg(ttl)
                    .arg(mode)
                    .arg(expected)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        if status != 1 {
            return Err(precondition.conflict(id, &Precondition::found_from_script(status, updated_at)));
        }
        let previous_owner = Some(previous_owner).filter(|owner| !owner.is_empty());
        self.index_written(id, &record.user_id, record.score, previous_owner)
            .await
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        let key = self.keys.record(id);
        let removed: Option<Vec<u8>> = self
            .link
            .run(&format!("GETDEL {key}"), |mut connection| async move {
                redis::cmd("GETDEL").arg(&key).query_async(&mut connection).await
            })
            .await?;
        let Some(json) = removed.and_then(record::utf8_text) else {
            return Ok(());
        };
        let Some(owner) = record::owner_of(&json) else {
            return Ok(());
        };
        let index = self.keys.user_index(&owner);
        match record::updated_at_ms(&json) {
            Some(score) => remove_if_score(&self.link, &index, id, score as f64).await,
            // No updatedAt: its score was the write time, which nobody kept.
            None => self.remove_from_index(&index, id).await,
        }
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
}

impl Transport for ClusterNodes {
    type Connection = ClusterConnection;
    type Watch = ClusterWatch;

    async fn connect(&self) -> redis::RedisResult<(ClusterConnection, ClusterWatch)> {
        Ok((self.client.get_async_connection().await?, ClusterWatch))
    }
}

/// A cluster connection reconnects to each node and follows failovers by
/// itself; probing it as a whole would only get in the way, so it reports no
/// sign of loss.
pub struct ClusterWatch;

impl LossWatch for ClusterWatch {
    fn next_sign(&mut self, _trouble: &Notify) -> impl Future<Output = Sign> + Send {
        std::future::pending()
    }
}
