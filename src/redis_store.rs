//! The store operations on one Redis server: each is one script (one atomic
//! step, one round trip) run through the supervised [`Link`]. On a cluster
//! the same operations run as ordered single-slot steps (`cluster_store.rs`).

use crate::config::{RecordPolicy, RedisConfig};
use crate::connection::{Link, Status};
use crate::error::StoreResult;
use crate::keys::KeyLayout;
use crate::logger::Logger;
use crate::record::{self, ListQuery};
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
        if self.link.is_cluster() {
            return self.cluster_set(id, record).await;
        }
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

    /// `id, json, id, json, ...` newest first; `json` is the whole record or,
    /// with `fields`, an object of just those fields.
    pub async fn list_by_user(&self, user_id: &str, query: ListQuery) -> StoreResult<Vec<String>> {
        record::validate_user_id(user_id)?;
        if self.link.is_cluster() {
            return self.cluster_list_by_user(user_id, &query).await;
        }
        let index = self.keys.user_index(user_id);
        let needle = format!("\"userId\":{}", serde_json::Value::from(user_id));
        // The script drops records of other users itself; the strict check
        // here catches the rare one it let through (a nested "userId" equal
        // to this user's). Then the page is short: prune and read it again.
        let mut listed = Vec::new();
        for _pass in 0..2 {
            let found = self.list_script(&index, user_id, &needle, &query).await?;
            let mut values = found.into_iter();
            let rows = std::iter::from_fn(|| Some((values.next()?, values.next()?, ())));
            let (page, foreign) = shape_listing(user_id, &query, rows);
            listed = page;
            if foreign.is_empty() {
                break;
            }
            self.prune_foreign(&index, user_id, foreign.into_iter().map(|(id, ())| id).collect())
                .await;
        }
        Ok(listed)
    }

    async fn list_script(
        &self,
        index: &str,
        user_id: &str,
        needle: &str,
        query: &ListQuery,
    ) -> StoreResult<Vec<String>> {
        self.link
            .run(&format!("LIST {index}"), |mut connection| async move {
                scripts::LIST_SCRIPT
                    .key(index)
                    .arg(self.keys.prefix())
                    .arg(query.offset)
                    .arg(query.limit)
                    .arg(user_id)
                    .arg(needle)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
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

/// Turns `(id, json, tag)` rows (newest first) into the `id, json, ...` list
/// handed to JS, projecting `fields`; rows owned by another user are left out
/// and returned (with their tag) for pruning.
pub(crate) fn shape_listing<T>(
    user_id: &str,
    query: &ListQuery,
    rows: impl Iterator<Item = (String, String, T)>,
) -> (Vec<String>, Vec<(String, T)>) {
    let mut listed = Vec::new();
    let mut foreign = Vec::new();
    for (id, json, tag) in rows {
        if record::owner_of(&json).is_some_and(|owner| owner != user_id) {
            foreign.push((id, tag));
            continue;
        }
        let shaped = match &query.fields {
            // Unreadable records go to JS whole, which skips them with a warning.
            Some(fields) => record::project_fields(&id, &json, fields).unwrap_or(json),
            None => json,
        };
        listed.push(id);
        listed.push(shaped);
    }
    (listed, foreign)
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
