//! The JS binding: thin napi classes over the two store cores. Arguments
//! cross as plain strings (the record as its JSON text), so a record is never
//! walked property by property on the main thread. `index.js` has already
//! checked their JS types; the content rules of ids (`record.rs`) are applied
//! here, once, for every store. Every error leaves with its `code` set
//! (`error.rs`); `index.js` builds the JS class from it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use std::future::Future;
use std::time::Duration;

use napi::bindgen_prelude::{
    ClassInstance, External, FnArgs, Function, JsValuesTupleIntoVec, PromiseRaw, Unknown, Utf16String,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;
use napi_derive::napi;
use tokio::sync::watch;

use crate::completion::{self, Completer, Counted, JsText, Outcome, RecordPage};
use crate::config::{self, CommonOptions, RedisConfig, RedisOptions, StoreEnv};
use crate::connection;
use crate::credentials::{CredentialSource, ProviderKind};
use crate::error::{napi_failure, JsCode, JsError, StoreError, StoreResult};
use crate::events::{EventSink, LinkEvent};
use crate::logger::Logger;
use crate::memory_store::MemoryStoreCore;
use crate::options::{self, Store};
use crate::record::{self, ListQuery, Precondition};
use crate::redis_store::RedisStoreCore;
use crate::text::utf16_to_utf8;

type LogCallback<'a> = Function<'a, FnArgs<(String, String)>, ()>;
type EventCallback<'a> = Function<'a, LinkEvent, ()>;

/// Paging and shaping of `listByUser`.
#[napi(object)]
#[derive(Default)]
pub struct ListOptions {
    pub limit: Option<f64>,
    pub offset: Option<f64>,
    pub fields: Option<Vec<String>>,
}

/// A JS callback that tokio threads call: weak (it never keeps the process
/// alive) and not callee-handled, with a queue of `QUEUE` calls (0: no bound).
fn weak_callback<Args, const QUEUE: usize>(
    callback: Function<'_, Args, ()>,
) -> napi::Result<ThreadsafeFunction<Args, (), Args, napi::Status, false, true, QUEUE>, JsCode>
where
    Args: 'static + JsValuesTupleIntoVec,
{
    callback
        .build_threadsafe_function()
        .weak::<true>()
        .callee_handled::<false>()
        .max_queue_size::<QUEUE>()
        .build()
        .map_err(napi_failure)
}

fn logger_from(log: Option<LogCallback<'_>>) -> napi::Result<Logger, JsCode> {
    Ok(Logger::new(log.map(weak_callback).transpose()?))
}

fn events_from(on_event: Option<EventCallback<'_>>) -> napi::Result<EventSink, JsCode> {
    Ok(EventSink::new(on_event.map(weak_callback).transpose()?))
}

/// The connection's part of `store.stats()`.
#[napi(object)]
pub struct ConnectionStats {
    /// Times a connection came back after the first one.
    pub reconnections: u32,
    /// Milliseconds since the store was last ready: 0 while it is, absent if it never was.
    pub ms_since_ready: Option<f64>,
}

fn list_query(options: Unknown<'_>, default_limit: usize) -> StoreResult<ListQuery> {
    let options: ListOptions = options::from_js(options, StoreError::InvalidArgument)?.unwrap_or_default();
    ListQuery::new(options.limit, options.offset, options.fields, default_limit)
}

/// A page `id, json, id, json, ...` as its records' texts, one JS string
/// each. One string per record, not one array text per page: a page's string
/// (400 KB of UTF-16 for 50 chat records of 4 KB) is over V8's 128 KB limit
/// for its young generation, so each went to large-object space and faulted
/// in fresh pages on every call; records of that size stay in memory V8 has
/// already touched (50 × 4 KB page, `JSON.parse` included: 880 → 510 µs on
/// the main thread, 56 → 0 page faults per call).
fn page_records(pairs: Vec<String>) -> Vec<JsText> {
    pairs.into_iter().skip(1).step_by(2).map(JsText::from).collect()
}

/// The records of a page `NativeRedisStore.listByUser` resolved with, as
/// one string each, made now (`completion::RecordPage` says why); an empty
/// array when taken before.
#[napi(ts_return_type = "Array<string>")]
pub fn take_records(#[napi(ts_arg_type = "object")] page: &mut External<RecordPage>) -> RecordPage {
    page.take()
}

/// A write is on its way: the JS side calls this before encoding its
/// record, so the worker thread wakes meanwhile (`busy_poll::call_expected`).
#[napi]
pub fn expect_call() {
    crate::busy_poll::call_expected();
}

/// Above this many calls in flight the worker is not woken ahead (nor polls):
/// it is busy anyway. The JS side skips `expectCall` then.
#[napi]
pub const BUSY_POLL_MAX_IN_FLIGHT: u32 = crate::busy_poll::MAX_IN_FLIGHT as u32;

/// The tokio runtime behind every store: one worker thread by default
/// (`REDIS_STORE_WORKER_THREADS` to change it). A call's work on tokio is
/// small (encode, a socket write, a reply to route), so one worker keeps up,
/// and it spares the cross-thread wake-ups (and the core) that a worker per
/// CPU would cost next to Node's own thread and Redis.
#[napi_derive::module_init]
fn init_runtime() {
    let workers = std::env::var("REDIS_STORE_WORKER_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|count| (1..=64).contains(count))
        .unwrap_or(1);
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("redis-conversation-store")
        .enable_all()
        .build();
    // If it cannot be built, napi-rs falls back to its default runtime.
    if let Ok(runtime) = built {
        crate::driver::set_worker_threads(workers);
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}

fn ensure_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A call's own limits (`{ signal, timeoutMs }`): made by `index.js` only
/// for calls that pass them, so the common call carries nothing extra.
#[napi]
pub struct NativeCallLimits {
    timeout: Option<Duration>,
    aborted: watch::Sender<bool>,
}

#[napi]
impl NativeCallLimits {
    #[napi(constructor)]
    pub fn new(timeout_ms: Option<f64>) -> napi::Result<Self, JsCode> {
        let timeout = match timeout_ms {
            None => None,
            Some(ms) if (1.0..=2_147_483_647.0).contains(&ms) => Some(Duration::from_millis(ms as u64)),
            Some(ms) => {
                return Err(StoreError::InvalidArgument(format!(
                    "timeoutMs must be a number of milliseconds from 1 to 2147483647, got {ms}"
                ))
                .into())
            }
        };
        Ok(NativeCallLimits {
            timeout,
            aborted: watch::Sender::new(false),
        })
    }

    /// The caller's signal aborted: the call stops waiting for its reply
    /// (a reply that still arrives is matched to it and dropped).
    #[napi]
    pub fn abort(&self) {
        self.aborted.send_replace(true);
    }
}

/// `work` within a call's limits: its timeout in place of the command
/// timeout, and dropped (which cancels its wait) when the call is aborted.
fn within_limits<F>(limits: &NativeCallLimits, work: F) -> impl Future<Output = StoreResult<Outcome>> + Send + 'static
where
    F: Future<Output = StoreResult<Outcome>> + Send + 'static,
{
    let timeout = limits.timeout;
    let mut aborted = limits.aborted.subscribe();
    async move {
        let work = async move {
            match timeout {
                Some(timeout) => connection::with_call_timeout(timeout, work).await,
                None => work.await,
            }
        };
        let abort = async move {
            // Limits garbage-collected in flight (a call with `timeoutMs` and no
            // signal keeps no reference to them) can no longer abort: the call
            // runs on to its own outcome. Taking the closed channel for an abort
            // once settled such calls as successes before Redis answered.
            if aborted.wait_for(|aborted| *aborted).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            outcome = work => outcome,
            // index.js has already rejected the caller's promise with the
            // signal's reason; this settles the native one, which nobody reads.
            () = abort => Ok(Outcome::Unit),
        }
    }
}

type Limits<'a> = Option<ClassInstance<'a, NativeCallLimits>>;

/// The native half of `RedisStore` (see index.js for the public class).
/// Each operation returns a promise settled through the store's one
/// [`Completer`]; arguments are checked on tokio, so a bad one rejects.
#[napi]
pub struct NativeRedisStore {
    core: Arc<RedisStoreCore>,
    credentials: Option<Arc<CredentialSource>>,
    completer: Completer,
    _live: Counted,
}

/// `NativeRedisStore`s not yet dropped, across the process: a store of a
/// terminated worker must go too (its JS object is finalized with the worker).
static LIVE_REDIS_STORES: AtomicUsize = AtomicUsize::new(0);

impl NativeRedisStore {
    /// Starts `work` as a call settled through the store's completer, within
    /// the call's limits when it has any.
    fn call<'env, T, F>(&self, env: &'env Env, limits: Limits<'_>, work: F) -> napi::Result<PromiseRaw<'env, T>>
    where
        F: Future<Output = StoreResult<Outcome>> + Send + 'static,
    {
        match limits {
            None => self.completer.spawn(env, work),
            Some(limits) => self.completer.spawn(env, within_limits(&limits, work)),
        }
    }
}

#[napi]
impl NativeRedisStore {
    #[napi(constructor)]
    pub fn new(
        env: Env,
        #[napi(ts_arg_type = "RedisOptions")] options: Unknown<'_>,
        log: Option<LogCallback<'_>>,
        #[napi(ts_arg_type = "((event: LinkEvent) => void) | undefined | null")] on_event: Option<EventCallback<'_>>,
        #[napi(ts_arg_type = "'streaming' | 'async' | undefined | null")] provider_kind: Option<String>,
        request_credentials: Option<Function<'_, u32, ()>>,
        credentials_failed: Option<Function<'_, String, ()>>,
    ) -> napi::Result<Self, JsCode> {
        ensure_crypto_provider();
        let options: RedisOptions = options::read_options(Store::Redis, options)?.unwrap_or_default();
        let mut config = RedisConfig::from_options(options)?;
        let logger = logger_from(log)?;
        let kind = match (provider_kind.as_deref(), request_credentials) {
            (None, _) => None,
            (Some("streaming"), _) => Some(ProviderKind::Streaming),
            (Some("async"), Some(request)) => Some(ProviderKind::Async(weak_callback(request)?)),
            (Some(other), _) => {
                return Err(StoreError::Config(format!(
                    "credentials provider kind {other:?} needs 'streaming', or 'async' with a request function"
                ))
                .into())
            }
        };
        let on_failure = match (&kind, credentials_failed) {
            (Some(_), Some(callback)) => Some(weak_callback(callback)?),
            _ => None,
        };
        let credentials =
            kind.map(|kind| CredentialSource::new(kind, config.connect_timeout, logger.clone(), on_failure));
        config.credentials = credentials.clone();
        let core = RedisStoreCore::start(config, logger, events_from(on_event)?)?;
        Ok(NativeRedisStore {
            credentials,
            core: Arc::new(core),
            completer: Completer::new(&env).map_err(napi_failure)?,
            _live: Counted::new(&LIVE_REDIS_STORES),
        })
    }

    #[napi(getter)]
    pub fn status(&self) -> &'static str {
        self.core.status().as_str()
    }

    #[napi(getter)]
    pub fn excluded_fields(&self) -> Vec<String> {
        self.core.policy().rules.excluded_fields.clone()
    }

    /// How long `ready()` waits before it rejects.
    #[napi(getter)]
    pub fn connect_timeout_ms(&self) -> f64 {
        self.core.connect_timeout().as_millis() as f64
    }

    /// Synchronous and cheap: a read of the link's state.
    #[napi]
    pub fn link_stats(&self) -> ConnectionStats {
        let stats = self.core.link_stats();
        ConnectionStats {
            reconnections: stats.reconnections,
            ms_since_ready: stats.since_ready.map(|since| since.as_millis() as f64),
        }
    }

    #[napi(getter)]
    pub fn redacted_url(&self) -> String {
        self.core.redacted_url().to_owned()
    }

    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        id: String,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let core = self.core.clone();
        self.call(env, limits, async move {
            record::validate_id(&id)?;
            Ok(Outcome::Text(core.get(&id).await?.map(JsText::from)))
        })
    }

    /// `json` is read as UTF-16 (a copy for V8) and turned into UTF-8 on
    /// tokio, off the JS thread.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set<'env>(
        &self,
        env: &'env Env,
        id: String,
        json: Utf16String,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        self.call(env, limits, async move {
            record::validate_id(&id)?;
            let json = utf16_to_utf8(&json)
                .ok_or_else(|| StoreError::InvalidRecord(format!("conversation {id:?} is not valid Unicode text")))?;
            core.set(&id, json).await.map(|()| Outcome::Unit)
        })
    }

    /// `set` with `ifUpdatedAt`: `condition` is `absent`, `updatedAt` (then
    /// `updatedAt` holds the text) or `noUpdatedAt`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_if<'env>(
        &self,
        env: &'env Env,
        id: String,
        json: Utf16String,
        condition: String,
        updated_at: Option<String>,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        self.call(env, limits, async move {
            record::validate_id(&id)?;
            let precondition = Precondition::from_binding(&condition, updated_at)?;
            let json = utf16_to_utf8(&json)
                .ok_or_else(|| StoreError::InvalidRecord(format!("conversation {id:?} is not valid Unicode text")))?;
            core.set_if(&id, json, &precondition).await.map(|()| Outcome::Unit)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(
        &self,
        env: &'env Env,
        id: String,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        self.call(env, limits, async move {
            record::validate_id(&id)?;
            core.delete(&id).await.map(|()| Outcome::Unit)
        })
    }

    /// The page's records as JSON texts, in order: a handle that
    /// `takeRecords` turns into one string per record when JS reads it
    /// (`completion::RecordPage`), which V8 makes in memory it has touched
    /// already (see `page_records`).
    #[napi(ts_return_type = "Promise<object>")]
    pub fn list_by_user<'env>(
        &self,
        env: &'env Env,
        user_id: String,
        #[napi(ts_arg_type = "ListOptions | undefined | null")] options: Unknown<'_>,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let core = self.core.clone();
        let query = list_query(options, core.policy().list_limit);
        self.call(env, limits, async move {
            record::validate_user_id(&user_id)?;
            let query = query?;
            let pairs = core.list_by_user(&user_id, query).await?;
            Ok(Outcome::Page(page_records(pairs)))
        })
    }

    /// The page as `id, json, id, json, ...`, for when a record does not
    /// parse (a corrupt record) and the bad ones must be named and skipped.
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn list_by_user_pairs<'env>(
        &self,
        env: &'env Env,
        user_id: String,
        #[napi(ts_arg_type = "ListOptions | undefined | null")] options: Unknown<'_>,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let core = self.core.clone();
        let query = list_query(options, core.policy().list_limit);
        self.call(env, limits, async move {
            record::validate_user_id(&user_id)?;
            let query = query?;
            let pairs = core.list_by_user(&user_id, query).await?;
            Ok(Outcome::Texts(pairs.into_iter().map(JsText::from).collect()))
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn ping<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "NativeCallLimits | undefined | null")] limits: Limits<'_>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let core = self.core.clone();
        self.call(env, limits, async move { core.ping().await.map(Outcome::Number) })
    }

    #[napi]
    pub fn close(&self) {
        self.core.close();
    }

    /// @internal Credentials from the app's provider: the answer to
    /// `request`, or (`null`) a streaming provider's initial credentials or
    /// `onNext`. `index.js` has checked their types.
    #[napi(js_name = "_provideCredentials")]
    pub fn provide_credentials(&self, request: Option<u32>, username: Option<String>, password: String) {
        if let Some(source) = &self.credentials {
            source.provide(request, username, password);
        }
    }

    /// @internal The app's provider failed: the answer to `request`, or
    /// (`null`) a streaming provider's `onError` or a failed `subscribe`.
    #[napi(js_name = "_credentialsFailed")]
    pub fn credentials_failed(&self, request: Option<u32>, message: String) {
        if let Some(source) = &self.credentials {
            source.provider_failed(request, message);
        }
    }

    /// @internal Rejects with `StoreError::samples()[index]` through the
    /// store's completer (the asynchronous path of `__test__/errors.test.js`).
    #[napi(js_name = "_rejectWithSample", ts_return_type = "Promise<void>")]
    pub fn reject_with_sample<'env>(&self, env: &'env Env, index: u32) -> napi::Result<PromiseRaw<'env, ()>> {
        let sample = error_sample(index);
        self.completer.spawn(env, async move { Err(sample) })
    }
}

/// The native half of `MemoryStore`: synchronous, `index.js` makes it async.
#[napi]
pub struct NativeMemoryStore {
    core: MemoryStoreCore,
    closed: AtomicBool,
}

#[napi]
impl NativeMemoryStore {
    #[napi(constructor)]
    pub fn new(
        #[napi(ts_arg_type = "CommonOptions | undefined | null")] options: Unknown<'_>,
    ) -> napi::Result<Self, JsCode> {
        let options: CommonOptions = options::read_options(Store::Memory, options)?.unwrap_or_default();
        let policy = options.into_policy()?;
        Ok(NativeMemoryStore {
            core: MemoryStoreCore::new(policy),
            closed: AtomicBool::new(false),
        })
    }

    fn open(&self) -> StoreResult<&MemoryStoreCore> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(&self.core)
    }

    #[napi(getter)]
    pub fn status(&self) -> &'static str {
        if self.closed.load(Ordering::Acquire) {
            "closed"
        } else {
            "ready"
        }
    }

    #[napi]
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Nothing to measure in memory: 0, or STORE_CLOSED after close().
    #[napi]
    pub fn ping(&self) -> napi::Result<f64, JsCode> {
        self.open()?;
        Ok(0.0)
    }

    #[napi(getter)]
    pub fn excluded_fields(&self) -> Vec<String> {
        self.core.policy().rules.excluded_fields.clone()
    }

    #[napi]
    pub fn get(&self, id: String) -> napi::Result<Option<String>, JsCode> {
        record::validate_id(&id)?;
        Ok(self.open()?.get(&id)?)
    }

    #[napi]
    pub fn set(&self, id: String, json: String) -> napi::Result<(), JsCode> {
        record::validate_id(&id)?;
        Ok(self.open()?.set(&id, json)?)
    }

    #[napi]
    pub fn set_if(
        &self,
        id: String,
        json: String,
        condition: String,
        updated_at: Option<String>,
    ) -> napi::Result<(), JsCode> {
        record::validate_id(&id)?;
        let precondition = Precondition::from_binding(&condition, updated_at)?;
        Ok(self.open()?.set_if(&id, json, &precondition)?)
    }

    #[napi]
    pub fn delete(&self, id: String) -> napi::Result<(), JsCode> {
        record::validate_id(&id)?;
        Ok(self.open()?.delete(&id)?)
    }

    #[napi(ts_return_type = "Array<string>")]
    pub fn list_by_user(
        &self,
        user_id: String,
        #[napi(ts_arg_type = "ListOptions | undefined | null")] options: Unknown<'_>,
    ) -> napi::Result<Vec<JsText>, JsCode> {
        Ok(page_records(self.list_by_user_pairs(user_id, options)?))
    }

    #[napi]
    pub fn list_by_user_pairs(
        &self,
        user_id: String,
        #[napi(ts_arg_type = "ListOptions | undefined | null")] options: Unknown<'_>,
    ) -> napi::Result<Vec<String>, JsCode> {
        record::validate_user_id(&user_id)?;
        let query = list_query(options, self.core.policy().list_limit)?;
        Ok(self.open()?.list_by_user(&user_id, &query)?)
    }
}

/// Reads `REDIS_*` variables into `RedisStore` options, naming the variable
/// in any error; `url` is absent when `REDIS_URL` is not set.
#[napi]
pub fn redis_options_from_env(
    #[napi(ts_arg_type = "StoreEnv")] env: Unknown<'_>,
) -> napi::Result<RedisOptions, JsCode> {
    let env: StoreEnv = options::from_js(env, StoreError::Config)?.unwrap_or_default();
    Ok(config::options_from_env(env)?)
}

/// One `StoreError` of every variant, as the JS boundary test sees them.
#[napi(object)]
pub struct ErrorSample {
    pub code: String,
    /// The JS class `index.js` must build for `code`.
    pub class_name: String,
    pub message: String,
}

fn error_sample(index: u32) -> StoreError {
    let samples = StoreError::samples();
    let count = samples.len();
    samples
        .into_iter()
        .nth(index as usize)
        .unwrap_or_else(|| StoreError::InvalidArgument(format!("no error sample {index}; there are {count}")))
}

/// @internal Every `StoreError` variant with its code and JS class.
#[napi(js_name = "_errorSamples")]
pub fn error_samples() -> Vec<ErrorSample> {
    StoreError::samples()
        .into_iter()
        .map(|err| ErrorSample {
            code: err.code().to_owned(),
            class_name: err.class().js_name().to_owned(),
            message: err.to_string(),
        })
        .collect()
}

/// @internal Throws `StoreError::samples()[index]` (the synchronous path of
/// `__test__/errors.test.js`).
#[napi(js_name = "_throwErrorSample")]
pub fn throw_error_sample(index: u32) -> napi::Result<(), JsCode> {
    Err(JsError::from(error_sample(index)))
}

/// What a terminated worker could leak (for `__test__/worker-threads.test.js`).
#[napi(object)]
pub struct LiveCounts {
    /// Calls started by any `NativeRedisStore` and not yet settled or abandoned.
    pub calls: u32,
    /// `NativeRedisStore`s not yet dropped.
    pub redis_stores: u32,
    /// Whether the worker thread is busy polling (`busy_poll.rs`).
    pub polling: bool,
}

/// @internal Counts across every environment (main thread and workers).
#[napi(js_name = "_liveCounts")]
pub fn live_counts() -> LiveCounts {
    let count = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    LiveCounts {
        calls: count(completion::live_calls()),
        redis_stores: count(LIVE_REDIS_STORES.load(Ordering::Relaxed)),
        polling: crate::busy_poll::polling(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets its flag when dropped: tells whether a call's work was dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_page_hands_over_its_records_in_order() {
        let pairs = ["c1", r#"{"a":1}"#, "c2", r#"{"b":"東京"}"#].map(String::from).to_vec();
        let records = page_records(pairs);
        assert_eq!(records.len(), 2);
        assert!(matches!(&records[0], JsText::Ascii(text) if text == r#"{"a":1}"#));
        assert!(matches!(&records[1], JsText::Utf16(units) if String::from_utf16_lossy(units) == r#"{"b":"東京"}"#));
        assert!(page_records(Vec::new()).is_empty());
    }

    #[tokio::test]
    async fn an_abort_drops_the_work_and_settles_at_once() {
        let Ok(limits) = NativeCallLimits::new(None) else {
            panic!("limits without a timeout are valid");
        };
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let work = async move {
            let _flag = flag;
            std::future::pending::<StoreResult<Outcome>>().await
        };
        let call = tokio::spawn(within_limits(&limits, work));
        tokio::task::yield_now().await;
        assert!(!dropped.load(Ordering::SeqCst));
        limits.abort();
        let settled = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(matches!(settled, Ok(Ok(Ok(Outcome::Unit)))));
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn limits_dropped_in_flight_leave_the_call_to_its_own_outcome() {
        let Ok(limits) = NativeCallLimits::new(Some(5_000.0)) else {
            panic!("a 5 s timeout is valid");
        };
        let (reply, replied) = tokio::sync::oneshot::channel::<()>();
        let work = async move {
            let _ = replied.await;
            Err(StoreError::Timeout("the work's own outcome".into()))
        };
        let call = tokio::spawn(within_limits(&limits, work));
        tokio::task::yield_now().await;
        // As when V8 collects the JS object while the call waits for Redis.
        drop(limits);
        tokio::task::yield_now().await;
        assert!(!call.is_finished(), "settled by the limits going away");
        let _ = reply.send(());
        let settled = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(
            matches!(settled, Ok(Ok(Err(StoreError::Timeout(_))))),
            "settled otherwise"
        );
    }

    #[test]
    fn timeouts_must_be_in_range() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 3e9] {
            assert!(NativeCallLimits::new(Some(bad)).is_err(), "{bad}");
        }
        assert!(
            NativeCallLimits::new(Some(250.0)).is_ok_and(|limits| limits.timeout == Some(Duration::from_millis(250)))
        );
    }
}
