//! redis-conversation-store: a Redis-backed conversation store for Node.js.
//!
//! Modules by responsibility: `config` (options and environment), `keys`
//! (storage layout), `record` and `json_scan` (validating and reading
//! records), `scripts` and `redis_store` (operations on Redis),
//! `connection` (lifecycle), `memory_store`, `options` (the option table
//! and the check of unknown options), `logger`, `error`, and
//! `binding` (the napi classes).

pub mod binding;
pub mod cluster_store;
pub mod completion;
pub mod config;
pub mod connection;
pub mod error;
pub mod json_scan;
pub mod keys;
pub mod listing;
pub mod logger;
pub mod memory_store;
pub mod options;
pub mod record;
pub mod redis_store;
pub mod scripts;
pub mod text;
