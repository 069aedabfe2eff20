//! The JS binding: thin napi classes over the two store cores. Arguments
//! cross as plain strings (the record as its JSON text), so a record is never
//! walked property by property on the main thread; errors cross in the wire
//! format of `error.rs`, which `index.js` shapes into JS error classes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use napi::bindgen_prelude::{FnArgs, Function, Object, PromiseRaw, Utf16String};
use napi::Env;
use napi_derive::napi;
use serde_json::Value;

use crate::completion::{Completer, JsText, Outcome};
use crate::config::{self, CommonOptions, RedisConfig, RedisOptions, StoreEnv};
use crate::error::{StoreError, StoreResult};
use crate::logger::Logger;
use crate::memory_store::MemoryStoreCore;
use crate::options::{self, Store};
use crate::record::ListQuery;
use crate::redis_store::RedisStoreCore;
use crate::text::utf16_to_utf8;

type LogCallback<'a> = Function<'a, FnArgs<(String, String)>, ()>;

/// Paging and shaping of `listByUser`.
#[napi(object)]
#[derive(Default)]
pub struct ListOptions {
    pub limit: Option<f64>,
    pub offset: Option<f64>,
    pub fields: Option<Vec<String>>,
}

fn logger_from(log: Option<LogCallback<'_>>) -> napi::Result<Logger> {
    let sink = match log {
        None => None,
        Some(callback) => Some(
            callback
                .build_threadsafe_function()
                .weak::<true>()
                .callee_handled::<false>()
                .max_queue_size::<256>()
                .build()?,
        ),
    };
    Ok(Logger::new(sink))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Arguments arrive as loose JS values so that a wrong type gets the store's
/// own error (with its code) rather than a conversion failure.
fn string_arg(name: &str, value: Option<Value>, error: fn(String) -> StoreError) -> StoreResult<String> {
    match value {
        Some(Value::String(text)) => Ok(text),
        None => Err(error(format!("{name} must be a non-empty string, got undefined"))),
        Some(other) => Err(error(format!(
            "{name} must be a non-empty string, got {}",
            describe(&other)
        ))),
    }
}

fn record_arg<T>(id: &str, json: Option<T>) -> StoreResult<T> {
    json.ok_or_else(|| StoreError::InvalidRecord(format!("conversation {id:?} must be a plain object, got undefined")))
}

fn list_query(options: Option<ListOptions>, default_limit: usize) -> StoreResult<ListQuery> {
    let options = options.unwrap_or_default();
    ListQuery::new(options.limit, options.offset, options.fields, default_limit)
}

/// `[json,json,...]` from `id, json, id, json, ...`.
fn json_array(pairs: Vec<String>) -> String {
    let bytes = pairs
        .iter()
        .skip(1)
        .step_by(2)
        .map(|json| json.len() + 1)
        .sum::<usize>();
    let mut array = String::with_capacity(bytes + 2);
    array.push('[');
    for (index, json) in pairs.iter().skip(1).step_by(2).enumerate() {
        if index > 0 {
            array.push(',');
        }
        array.push_str(json);
    }
    array.push(']');
    array
}

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

/// The native half of `RedisStore` (see index.js for the public class).
/// Each operation returns a promise settled through the store's one
/// [`Completer`]; arguments are checked on tokio, so a bad one rejects.
#[napi]
pub struct NativeRedisStore {
    core: Arc<RedisStoreCore>,
    completer: Completer,
}

#[napi]
impl NativeRedisStore {
    #[napi(
        constructor,
        ts_args_type = "options: RedisOptions, log?: LogCallback | undefined | null"
    )]
    pub fn new(env: Env, options: Object<'_>, log: Option<LogCallback<'_>>) -> napi::Result<Self> {
        ensure_crypto_provider();
        let options: RedisOptions = options::read_options(&env, Store::Redis, options)?;
        let config = RedisConfig::from_options(options)?;
        let core = RedisStoreCore::start(config, logger_from(log)?)?;
        Ok(NativeRedisStore {
            core: Arc::new(core),
            completer: Completer::new(&env)?,
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

    #[napi(getter)]
    pub fn redacted_url(&self) -> String {
        self.core.redacted_url().to_owned()
    }

    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get<'env>(&self, env: &'env Env, id: Option<Value>) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let core = self.core.clone();
        self.completer.spawn(env, async move {
            let id = string_arg("id", id, StoreError::InvalidId)?;
            Ok(Outcome::Text(core.get(&id).await?.map(JsText::from)))
        })
    }

    /// `json` is read as UTF-16 (a copy for V8) and turned into UTF-8 on
    /// tokio, off the JS thread.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set<'env>(
        &self,
        env: &'env Env,
        id: Option<Value>,
        json: Option<Utf16String>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        self.completer.spawn(env, async move {
            let id = string_arg("id", id, StoreError::InvalidId)?;
            let json = record_arg(&id, json)?;
            let json = utf16_to_utf8(&json)
                .ok_or_else(|| StoreError::InvalidRecord(format!("conversation {id:?} is not valid Unicode text")))?;
            core.set(&id, json).await.map(|()| Outcome::Unit)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env, id: Option<Value>) -> napi::Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        self.completer.spawn(env, async move {
            let id = string_arg("id", id, StoreError::InvalidId)?;
            core.delete(&id).await.map(|()| Outcome::Unit)
        })
    }

    /// The page as one JSON array text: one string and one `JSON.parse` on
    /// the main thread, however many records.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn list_by_user<'env>(
        &self,
        env: &'env Env,
        user_id: Option<Value>,
        options: Option<ListOptions>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let core = self.core.clone();
        self.completer.spawn(env, async move {
            let user_id = string_arg("userId", user_id, StoreError::InvalidUserId)?;
            let query = list_query(options, core.policy().list_limit)?;
            let pairs = core.list_by_user(&user_id, query).await?;
            Ok(Outcome::Text(Some(JsText::from(json_array(pairs)))))
        })
    }

    /// The page as `id, json, id, json, ...`, for when the array text does not
    /// parse (a corrupt record) and each record must be read on its own.
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn list_by_user_pairs<'env>(
        &self,
        env: &'env Env,
        user_id: Option<Value>,
        options: Option<ListOptions>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let core = self.core.clone();
        self.completer.spawn(env, async move {
            let user_id = string_arg("userId", user_id, StoreError::InvalidUserId)?;
            let query = list_query(options, core.policy().list_limit)?;
            core.list_by_user(&user_id, query).await.map(Outcome::Texts)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn ping<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, f64>> {
        let core = self.core.clone();
        self.completer
            .spawn(env, async move { core.ping().await.map(Outcome::Number) })
    }

    #[napi]
    pub fn close(&self) {
        self.core.close();
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
    #[napi(constructor, ts_args_type = "options?: CommonOptions | undefined | null")]
    pub fn new(env: Env, options: Option<Object<'_>>) -> napi::Result<Self> {
        let options: CommonOptions = match options {
            Some(options) => options::read_options(&env, Store::Memory, options)?,
            None => CommonOptions::default(),
        };
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
    pub fn ping(&self) -> napi::Result<f64> {
        self.open()?;
        Ok(0.0)
    }

    #[napi(getter)]
    pub fn excluded_fields(&self) -> Vec<String> {
        self.core.policy().rules.excluded_fields.clone()
    }

    #[napi]
    pub fn get(&self, id: Option<Value>) -> napi::Result<Option<String>> {
        let id = string_arg("id", id, StoreError::InvalidId)?;
        Ok(self.open()?.get(&id)?)
    }

    #[napi]
    pub fn set(&self, id: Option<Value>, json: Option<String>) -> napi::Result<()> {
        let id = string_arg("id", id, StoreError::InvalidId)?;
        let json = record_arg(&id, json)?;
        Ok(self.open()?.set(&id, json)?)
    }

    #[napi]
    pub fn delete(&self, id: Option<Value>) -> napi::Result<()> {
        let id = string_arg("id", id, StoreError::InvalidId)?;
        Ok(self.open()?.delete(&id)?)
    }

    #[napi]
    pub fn list_by_user(&self, user_id: Option<Value>, options: Option<ListOptions>) -> napi::Result<String> {
        Ok(json_array(self.list_by_user_pairs(user_id, options)?))
    }

    #[napi]
    pub fn list_by_user_pairs(
        &self,
        user_id: Option<Value>,
        options: Option<ListOptions>,
    ) -> napi::Result<Vec<String>> {
        let user_id = string_arg("userId", user_id, StoreError::InvalidUserId)?;
        let query = list_query(options, self.core.policy().list_limit)?;
        Ok(self.open()?.list_by_user(&user_id, &query)?)
    }
}

/// Reads `REDIS_*` variables into `RedisStore` options, naming the variable
/// in any error; `url` is absent when `REDIS_URL` is not set.
#[napi]
pub fn redis_options_from_env(env: StoreEnv) -> napi::Result<RedisOptions> {
    Ok(config::options_from_env(env)?)
}
