//! The store operations on one Redis server: each is one script (one atomic
//! step, one round trip) run through the supervised [`Link`].

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{Link, Status};
use crate::error::StoreResult;
use crate::keys::KeyLayout;
use crate::logger::Logger;
use crate::record::{self, ListQuery};
use crate::scripts;

pub struct RedisStoreCore {
    link: Link,
    keys: KeyLayout,
    policy: RecordPolicy,
    logger: Logger,
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
        let key = self.keys.record(id);
        let what = format!("GET {key}");
        if self.policy.sliding_expiry {
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
                .await
        } else {
            self.link
                .run(&what, |mut connection| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut connection).await
                })
                .await
        }
    }

    pub async fn set(&self, id: &str, json: String) -> StoreResult<()> {
        let record = record::prepare_record(id, json, &self.policy.rules, now_ms())?;
        let key = self.keys.record(id);
        let index = self.keys.user_index(&record.user_id);
        let what = format!("SET {key}");
        self.link
            .run(&what, |mut connection| async move {
                scripts::SET_SCRIPT
                    .key(&key)
                    .key(&index)
                    .arg(&record.json)
                    .arg(self.policy.ttl_seconds)
                    .arg(self.policy.index_ttl_seconds())
                    .arg(record.score)
                    .arg(id)
                    .arg(&record.user_id)
                    .arg(self.keys.prefix())
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        record::validate_id(id)?;
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

    /// `id, json, id, json, ...` newest first; `json` is the whole record or,
    /// with `fields`, an object of just those fields.
    pub async fn list_by_user(&self, user_id: &str, query: ListQuery) -> StoreResult<Vec<String>> {
        record::validate_user_id(user_id)?;
        let index = self.keys.user_index(user_id);
        let what = format!("LIST {index}");
        let found: Vec<String> = self
            .link
            .run(&what, |mut connection| {
                let index = index.clone();
                async move {
                    scripts::LIST_SCRIPT
                        .key(&index)
                        .arg(self.keys.prefix())
                        .arg(query.offset)
                        .arg(query.limit)
                        .invoke_async(&mut connection)
                        .await
                }
            })
            .await?;
        let mut listed = Vec::with_capacity(found.len());
        let mut foreign = Vec::new();
        for pair in found.chunks_exact(2) {
            let (id, json) = (&pair[0], &pair[1]);
            match record::owner_of(json) {
                Some(owner) if owner != user_id => {
                    foreign.push(id.clone());
                    continue;
                }
                _ => {}
            }
            let shaped = match &query.fields {
                None => json.clone(),
                Some(fields) => match record::project_fields(id, json, fields) {
                    Ok(projection) => projection,
                    // Unreadable records go to JS whole, which skips them with a warning.
                    Err(_) => json.clone(),
                },
            };
            listed.push(id.clone());
            listed.push(shaped);
        }
        if !foreign.is_empty() {
            self.prune_foreign(&index, user_id, foreign).await;
        }
        Ok(listed)
    }

    /// Second round trip, only when an index held another user's ids (left
    /// by an older writer): they are removed, and never returned.
    async fn prune_foreign(&self, index: &str, user_id: &str, ids: Vec<String>) {
        self.logger.warn(format!(
            "index {index} held {} id(s) of records owned by another user ({}); pruned them",
            ids.len(),
            ids.join(", ")
        ));
        let outcome = self
            .link
            .run(&format!("PRUNE {index}"), |mut connection| async move {
                scripts::PRUNE_FOREIGN_SCRIPT
                    .key(index)
                    .arg(self.keys.prefix())
                    .arg(user_id)
                    .arg(&ids)
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await;
        if let Err(err) = outcome {
            // The listing is still right (foreign ids were skipped); the prune is retried next time.
            self.logger.warn(format!("pruning {index} failed: {err}"));
        }
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
