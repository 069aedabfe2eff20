//! redis-conversation-store: a Redis-backed conversation store for Node.js.
//!
//! Modules by responsibility: `config` (options and environment), `keys`
//! (storage layout), `record` and `json_scan` (validating and reading
//! records), `redis_store` (the store's core: the topology chosen once),
//! `topology` (the operations every topology provides), `single_server` and
//! `cluster` (the two topologies), `listing` (one listing for both), `replication`
//! (`WAIT` after writes, for `waitReplicas`),
//! `scripts` (Lua), `connection` (the supervised link) and `supervisor` (its
//! state machine), `memory_store`, `options` (the option table and the check of unknown
//! options), `logger`, `events` (connection events for JS), `error`, `completion` (settling
//! JS promises), `driver` (the one task that runs the calls), `busy_poll`, `text`, and `binding` (the napi classes). No module is
//! public: napi exports from private modules, and the compiler reports what
//! nothing uses.

// napi-derive registers exports only outside `cfg(test)`, so unit-test
// builds would see the binding's functions as unused; normal builds still do.
#[cfg_attr(test, allow(dead_code))]
mod binding;
mod busy_poll;
mod cluster;
mod completion;
mod config;
mod connection;
mod credentials;
mod driver;
mod error;
mod events;
mod json_scan;
mod keys;
mod listing;
mod logger;
mod memory_store;
// Oracles for the hand-written parts: property tests and fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
mod oracle;
// Its table reaches JS through a napi export (see `binding` above).
#[cfg_attr(test, allow(dead_code))]
mod options;
mod record;
mod redis_store;
mod replication;
mod scripts;
mod sentinel;
mod single_server;
mod supervisor;
mod text;
mod topology;

/// The fuzz targets' way in (`fuzz/`, built with `--features fuzzing`): the
/// oracle checks only. Normal and npm builds do not have it, so the napi
/// exports stay the crate's only public surface.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::oracle::{
        check_prepare, check_scan, check_stored_record, check_utf16_to_utf8, check_utf8_text, check_utf8_to_utf16,
    };
}
