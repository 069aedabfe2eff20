//! The store operations on one Redis server, run through the supervised
//! [`Link`]: `set` is one MULTI/EXEC transaction (a small script, then SET,
//! ZADD and EXPIRE), `delete` and a sliding `get` are each one script; each
//! is one atomic step and one round trip. Listing is in `listing.rs`. On a cluster the same
//! operations run as ordered single-slot steps (`cluster_store.rs`).

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{Link, Status};
use crate::error::StoreResult;
use crate::keys::KeyLayout;
use crate::logger::Logger;
use crate::record;
use crate::scripts;

pub struct RedisStoreCore {
    pub(crate) link: Link,
    pub(crate) keys: KeyLayout,
    pub(crate) policy: RecordPolicy,
    pub(crate) logger: Logger,
}

impl RedisStoreCore {
    pub fn start(config: RedisConfig, logger: Logger) -> StoreResult<Self> {
        let link = Link::start(&config, logger.clone(), scripts::all())?;
        Ok(RedisStoreCore {
            link,
            keys: config.keys,
            policy: config.policy,
            logger,
        })
    }

    pub fn policy(&self) -> &RecordPolicy {
        &self.policy
    }

    pub fn redacted_url(&self) -> &str {
        self.link.redacted_url()
    }

    pub fn status(&self) -> Status {
        self.link.status()
    }

    pub async fn ping(&self) -> StoreResult<f64> {
        self.link.ping().await
    }

    pub fn close(&self) {
        self.link.close();
    }

    pub async fn get(&self, id: &str) -> StoreResult<Option<String>> {
        record::validate_id(id)?;
        if self.link.is_cluster() {
            return self.cluster_get(id).await;
        }
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
        Ok(found.map(record::text_from_bytes))
    }

    pub async fn set(&self, id: &str, json: String) -> StoreResult<()> {
        let record = record::prepare_record(id, json, &self.policy.rules, now_ms())?;
        if self.link.is_cluster() {
            return self.cluster_set(id, record).await;
        }
        let key = self.keys.record(id);
        let index = self.keys.user_index(&record.user_id);
        let what = format!("SET {key}");
        // One transaction: the move out of a previous owner's index, the
        // record, the index entry and both TTLs, applied as one step.
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .cmd("EVAL")
            .arg(scripts::MOVE_OWNER_SOURCE.as_str())
            .arg(1)
            .arg(&key)
            .arg(id)
            .arg(&record.user_id)
            .arg(self.keys.prefix())
            .ignore()
            .cmd("SET")
            .arg(&key)
            .arg(&record.json)
            .arg("EX")
            .arg(self.policy.ttl_seconds)
            .ignore()
            .cmd("ZADD")
            .arg(&index)
            .arg(record.score)
            .arg(id)
            .ignore()
            .cmd("EXPIRE")
            .arg(&index)
            .arg(self.policy.index_ttl_seconds())
            .ignore();
        self.link
            .run(&what, |mut connection| async move {
                transaction.query_async::<()>(&mut connection).await
            })
            .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        record::validate_id(id)?;
        if self.link.is_cluster() {
            return self.cluster_delete(id).await;
        }
        let key = self.keys.record(id);
        let what = format!("DEL {key}");
        self.link
            .run(&what, |mut connection| async move {
                scripts::DELETE_SCRIPT
                    .key(&key)
                    .arg(id)
                    .arg(self.keys.prefix())
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await?;
        Ok(())
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
        self.link.close();
    }
}
