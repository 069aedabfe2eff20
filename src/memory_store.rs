//! The same contract in process memory: the embedded default for
//! development and tests. It mirrors the Redis layout's semantics: record
//! TTL, a per-user index ordered like `ZREVRANGE` (score, then id, both
//! descending) that outlives its records by an hour, pruning on listing.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RecordPolicy;
use crate::error::StoreResult;
use crate::record::{self, Found, ListQuery, Precondition};
use crate::redis_store::now_ms;

struct StoredRecord {
    json: String,
    owner: String,
    expires_at: Instant,
}

#[derive(Default)]
struct UserIndex {
    order: BTreeSet<(Reverse<i64>, Reverse<String>)>,
    scores: HashMap<String, i64>,
    expires_at: Option<Instant>,
}

impl UserIndex {
    fn insert(&mut self, id: &str, score: i64) {
        if let Some(old) = self.scores.insert(id.to_owned(), score) {
            self.order.remove(&(Reverse(old), Reverse(id.to_owned())));
        }
        self.order.insert((Reverse(score), Reverse(id.to_owned())));
    }

    fn remove(&mut self, id: &str) {
        if let Some(score) = self.scores.remove(id) {
            self.order.remove(&(Reverse(score), Reverse(id.to_owned())));
        }
    }
}

#[derive(Default)]
struct Data {
    records: HashMap<String, StoredRecord>,
    indexes: HashMap<String, UserIndex>,
    writes_since_sweep: usize,
}

impl Data {
    fn live_record(&mut self, id: &str, now: Instant) -> Option<&mut StoredRecord> {
        if self.records.get(id).is_some_and(|record| record.expires_at <= now) {
            self.records.remove(id);
        }
        self.records.get_mut(id)
    }

    fn live_index(&mut self, user_id: &str, now: Instant) -> Option<&mut UserIndex> {
        if self
            .indexes
            .get(user_id)
            .is_some_and(|index| index.expires_at.is_some_and(|at| at <= now))
        {
            self.indexes.remove(user_id);
        }
        self.indexes.get_mut(user_id)
    }

    /// Drops expired entries now and then, so memory follows the live data.
    fn sweep_if_due(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep < 1024.max(self.records.len()) {
            return;
        }
        self.writes_since_sweep = 0;
        self.records.retain(|_, record| record.expires_at > now);
        self.indexes
            .retain(|_, index| index.expires_at.is_none_or(|at| at > now));
    }
}

/// Ids and userIds arrive validated by the binding (`record::validate_id`).
pub struct MemoryStoreCore {
    policy: RecordPolicy,
    data: Mutex<Data>,
}

impl MemoryStoreCore {
    pub fn new(policy: RecordPolicy) -> Self {
        MemoryStoreCore {
            policy,
            data: Mutex::new(Data::default()),
        }
    }

    pub fn policy(&self) -> &RecordPolicy {
        &self.policy
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave the maps half-updated in
        // a way later calls would misread, so a poisoned lock is still usable.
        self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_ttl(&self) -> Duration {
        Duration::from_secs(self.policy.ttl_seconds)
    }

    fn index_ttl(&self) -> Duration {
        Duration::from_secs(self.policy.index_ttl_seconds())
    }

    pub fn get(&self, id: &str) -> StoreResult<Option<String>> {
        let now = Instant::now();
        let (record_ttl, index_ttl) = (self.record_ttl(), self.index_ttl());
        let mut data = self.data();
        let Some(record) = data.live_record(id, now) else {
            return Ok(None);
        };
        let json = record.json.clone();
        if self.policy.sliding_expiry {
            record.expires_at = now + record_ttl;
            let owner = record.owner.clone();
            if let Some(index) = data.live_index(&owner, now) {
                index.expires_at = Some(now + index_ttl);
            }
        }
        Ok(Some(json))
    }

    pub fn set(&self, id: &str, json: String) -> StoreResult<()> {
        self.set_checked(id, json, None)
    }

    /// `set`, only if the stored record satisfies `precondition`, checked
    /// under the same lock as the write.
    pub fn set_if(&self, id: &str, json: String, precondition: &Precondition) -> StoreResult<()> {
        self.set_checked(id, json, Some(precondition))
    }

    fn set_checked(&self, id: &str, json: String, precondition: Option<&Precondition>) -> StoreResult<()> {
        let prepared = record::prepare_record(id, json, &self.policy.rules, now_ms())?;
        let now = Instant::now();
        let mut data = self.data();
        if let Some(precondition) = precondition {
            let found = match data.live_record(id, now) {
                None => Found::Nothing,
                Some(stored) => Found::Record(record::updated_at_of(&stored.json)),
            };
            if !precondition.holds(&found) {
                return Err(precondition.conflict(id, &found));
            }
        }
        let previous = data.live_record(id, now).map(|record| record.owner.clone());
        if let Some(previous) = previous.filter(|owner| *owner != prepared.user_id) {
            if let Some(index) = data.live_index(&previous, now) {
                index.remove(id);
            }
        }
        data.records.insert(
            id.to_owned(),
            StoredRecord {
                json: prepared.json,
                owner: prepared.user_id.clone(),
                expires_at: now + self.record_ttl(),
            },
        );
        let index = data.indexes.entry(prepared.user_id).or_default();
        index.insert(id, prepared.score);
        index.expires_at = Some(now + self.index_ttl());
        data.sweep_if_due(now);
        Ok(())
    }

    pub fn delete(&self, id: &str) -> StoreResult<()> {
        let now = Instant::now();
        let mut data = self.data();
        let owner = data.live_record(id, now).map(|record| record.owner.clone());
        data.records.remove(id);
        if let Some(index) = owner.and_then(|owner| data.live_index(&owner, now)) {
            index.remove(id);
        }
        Ok(())
    }

    /// Same shape as the Redis store: `id, json, id, json, ...` newest first.
    pub fn list_by_user(&self, user_id: &str, query: &ListQuery) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        let mut data = self.data();
        let Some(index) = data.live_index(user_id, now) else {
            return Ok(Vec::new());
        };
        let ordered: Vec<String> = index.order.iter().map(|(_, Reverse(id))| id.clone()).collect();
        let mut listed = Vec::new();
        let mut stale = Vec::new();
        let mut live = 0;
        for id in ordered {
            let Some(record) = data.live_record(&id, now) else {
                stale.push(id);
                continue;
            };
            if record.owner != user_id {
                stale.push(id);
                continue;
            }
            live += 1;
            if live > query.offset {
                let json = match &query.fields {
                    None => record.json.clone(),
                    Some(fields) => record::project_fields(&id, &record.json, fields)?,
                };
                listed.push(id);
                listed.push(json);
            }
            if live >= query.offset + query.limit {
                break;
            }
        }
        if let Some(index) = data.live_index(user_id, now) {
            for id in &stale {
                index.remove(id);
            }
        }
        Ok(listed)
    }
}
