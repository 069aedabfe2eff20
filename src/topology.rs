//! What every Redis topology provides: the store's operations on it. The
//! topology is chosen once, when the store starts (`redis_store.rs`), and each
//! one implements this trait, so the compiler checks that none lacks an
//! operation. Listing is one algorithm for all (`listing.rs`) over
//! [`Topology::link`] and [`Topology::prune`].
//!
//! Today: one server (`single_server.rs`), found by its URL or through Redis
//! Sentinel (`sentinel.rs`, the same operations), and a cluster (`cluster.rs`). A new
//! topology is a `Transport` (how to connect, what says the connection was
//! lost), an implementation of this trait (or the single-server one reused,
//! when the commands are the same), and a variant of `redis_store::Backend`.

use std::future::Future;

use crate::connection::{Link, Transport};
use crate::error::StoreResult;
use crate::keys::KeyLayout;
use crate::listing::Stale;
use crate::record::{Precondition, PreparedRecord};

pub trait Topology: Send + Sync + 'static {
    type Transport: Transport;

    fn link(&self) -> &Link<Self::Transport>;

    fn keys(&self) -> &KeyLayout;

    /// The record's JSON; with `slidingExpiry`, both TTLs are refreshed.
    async fn get(&self, id: &str) -> StoreResult<Option<String>>;

    /// Writes a record the caller checked, with its index entry and both TTLs,
    /// and moves the id out of a previous owner's index.
    async fn set(&self, id: &str, record: PreparedRecord) -> StoreResult<()>;

    /// `set`, only if the stored record satisfies `precondition` (checked
    /// atomically with the record's write); otherwise writes nothing and
    /// fails with `StoreError::Conflict`.
    async fn set_if(&self, id: &str, record: PreparedRecord, precondition: &Precondition) -> StoreResult<()>;

    /// Removes the record and its index entry; a missing id is a no-op.
    async fn delete(&self, id: &str) -> StoreResult<()>;

    /// Removes index entries that a listing of `user_id` found stale (record
    /// gone, or now another user's), keeping any a concurrent `set` renewed.
    /// Run in the background, after the caller has its page. Resolves the
    /// ids left in place because their key holds another type of value
    /// (data this store did not write), for the listing to warn about.
    fn prune(
        &self,
        index: String,
        user_id: String,
        stale: Vec<Stale>,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send + 'static;
}
