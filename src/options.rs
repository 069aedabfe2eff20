//! Every option the stores take, in one table: which store takes it, where it
//! is handled, its default as the docs state it, and its environment variable.
//!
//! The constructors check a user's options object against the table before
//! converting it, so a misspelled option, or one that belongs to the other
//! store, is refused with the option it probably meant instead of being
//! silently ignored. `index.js` reads the table to know which options only
//! `RedisStore` takes, and `__test__/options.test.js` checks the README and
//! `index.d.ts` against it.

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown};
use napi::{JsValue, ValueType};
use napi_derive::napi;

use crate::config::{
    DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_CONNECTION_NAME, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_EXCLUDED_FIELD,
    DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_LIST_LIMIT, DEFAULT_MAX_RECORD_BYTES, DEFAULT_RECONNECT_MAX_DELAY_MS,
    DEFAULT_RECONNECT_MIN_DELAY_MS, DEFAULT_TTL_SECONDS, DEFAULT_WAIT_REPLICAS,
};
use crate::error::{StoreError, StoreResult};

/// The two stores, as an options object's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Redis,
    Memory,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Redis => "RedisStore",
            Store::Memory => "MemoryStore",
        }
    }

    fn takes(self, spec: &OptionSpec) -> bool {
        self == Store::Redis || spec.stores == Takers::Both
    }
}

/// Which stores take an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takers {
    Both,
    RedisOnly,
}

/// A default as the README's table and `index.d.ts` state it.
#[derive(Debug, Clone, Copy)]
pub enum Documented {
    /// A whole number, taken from the constant the configuration uses.
    Number(u64),
    /// A JavaScript value, written as code: `false`, `''`, `console`.
    Code(&'static str),
    /// A list of strings, written as a JavaScript array.
    Strings(&'static [&'static str]),
    /// A string, written as a JavaScript string literal.
    Named(&'static str),
    /// Words: "none", "required", "the URL's host".
    Words(&'static str),
}

impl Documented {
    /// The text the docs carry: code in backticks, words as they are.
    fn text(self) -> String {
        match self {
            Documented::Number(n) => format!("`{n}`"),
            Documented::Code(code) => format!("`{code}`"),
            Documented::Strings(items) => {
                let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
                format!("`[{}]`", quoted.join(", "))
            }
            Documented::Named(text) => format!("`'{text}'`"),
            Documented::Words(words) => words.to_owned(),
        }
    }
}

/// One option of the stores.
#[derive(Debug)]
pub struct OptionSpec {
    pub name: &'static str,
    pub stores: Takers,
    /// Handled by `index.js` (never reaches the native store).
    pub js_only: bool,
    /// `None` for an option whose fields carry the defaults (`tls`).
    pub default: Option<Documented>,
    /// The variable `createConversationStore` reads it from.
    pub env: Option<&'static str>,
    /// The keys of a nested options object.
    pub fields: &'static [OptionSpec],
}

const fn option(name: &'static str, stores: Takers, default: Documented) -> OptionSpec {
    OptionSpec {
        name,
        stores,
        js_only: false,
        default: Some(default),
        env: None,
        fields: &[],
    }
}

const fn from_env(spec: OptionSpec, env: &'static str) -> OptionSpec {
    OptionSpec { env: Some(env), ..spec }
}

const fn in_js(spec: OptionSpec) -> OptionSpec {
    OptionSpec { js_only: true, ..spec }
}

const BOTH: Takers = Takers::Both;
const REDIS: Takers = Takers::RedisOnly;

pub const TLS_FIELDS: &[OptionSpec] = &[
    option("ca", REDIS, Documented::Words("the system's trusted roots")),
    option("cert", REDIS, Documented::Words("none")),
    option("key", REDIS, Documented::Words("none")),
    option("servername", REDIS, Documented::Words("the URL's host")),
];

pub const STORE_OPTIONS: &[OptionSpec] = &[
    from_env(
        option("url", REDIS, Documented::Words("required unless `sentinels`")),
        "REDIS_URL",
    ),
    from_env(
        option("ttlSeconds", BOTH, Documented::Number(DEFAULT_TTL_SECONDS)),
        "REDIS_TTL",
    ),
    from_env(
        option(
            "commandTimeoutMs",
            REDIS,
            Documented::Number(DEFAULT_COMMAND_TIMEOUT_MS),
        ),
        "REDIS_TIMEOUT",
    ),
    from_env(
        option(
            "connectTimeoutMs",
            REDIS,
            Documented::Number(DEFAULT_CONNECT_TIMEOUT_MS),
        ),
        "REDIS_CONNECT_TIMEOUT",
    ),
    from_env(option("keyPrefix", REDIS, Documented::Code("''")), "REDIS_KEY_PREFIX"),
    from_env(
        option("allowPlaintext", REDIS, Documented::Code("false")),
        "REDIS_ALLOW_PLAINTEXT",
    ),
    OptionSpec {
        name: "tls",
        stores: REDIS,
        js_only: false,
        default: None,
        env: None,
        fields: TLS_FIELDS,
    },
    option("listLimit", BOTH, Documented::Number(DEFAULT_LIST_LIMIT as u64)),
    option("excludeFields", BOTH, Documented::Strings(&[DEFAULT_EXCLUDED_FIELD])),
    option(
        "maxRecordBytes",
        BOTH,
        Documented::Number(DEFAULT_MAX_RECORD_BYTES as u64),
    ),
    option("slidingExpiry", BOTH, Documented::Code("false")),
    from_env(option("cluster", REDIS, Documented::Code("false")), "REDIS_CLUSTER"),
    option("clusterNodes", REDIS, Documented::Code("[]")),
    from_env(option("sentinels", REDIS, Documented::Words("none")), "REDIS_SENTINELS"),
    from_env(
        option("sentinelName", REDIS, Documented::Words("required with `sentinels`")),
        "REDIS_SENTINEL_NAME",
    ),
    option(
        "sentinelPassword",
        REDIS,
        Documented::Words("the password in the sentinel URLs"),
    ),
    from_env(
        option("username", REDIS, Documented::Words("the URL's user")),
        "REDIS_USERNAME",
    ),
    from_env(
        option("password", REDIS, Documented::Words("the URL's password")),
        "REDIS_PASSWORD",
    ),
    in_js(option("credentialsProvider", REDIS, Documented::Words("none"))),
    option(
        "reconnectMinDelayMs",
        REDIS,
        Documented::Number(DEFAULT_RECONNECT_MIN_DELAY_MS),
    ),
    option(
        "reconnectMaxDelayMs",
        REDIS,
        Documented::Number(DEFAULT_RECONNECT_MAX_DELAY_MS),
    ),
    option(
        "heartbeatIntervalMs",
        REDIS,
        Documented::Number(DEFAULT_HEARTBEAT_INTERVAL_MS),
    ),
    from_env(
        option("connectionName", REDIS, Documented::Named(DEFAULT_CONNECTION_NAME)),
        "REDIS_CONNECTION_NAME",
    ),
    from_env(
        option("waitReplicas", REDIS, Documented::Number(DEFAULT_WAIT_REPLICAS)),
        "REDIS_WAIT_REPLICAS",
    ),
    from_env(
        option("waitTimeoutMs", REDIS, Documented::Words("half of `commandTimeoutMs`")),
        "REDIS_WAIT_TIMEOUT",
    ),
    in_js(option("schema", BOTH, Documented::Words("none"))),
    in_js(option("logger", BOTH, Documented::Code("console"))),
];

/// What to tell a user who wrote a name another client uses.
#[derive(Clone, Copy)]
enum Hint {
    Option(&'static str),
    Advice(&'static str),
}

const IN_THE_URL: &str = "it goes in the url: rediss://[user:password@]host[:port][/db]";

/// Names other Redis clients (ioredis, node-redis) or habit use, that edit
/// distance alone would not lead to the right option.
const ALIASES: &[(&str, Hint)] = &[
    ("ttl", Hint::Option("ttlSeconds")),
    ("expire", Hint::Option("ttlSeconds")),
    ("timeout", Hint::Option("commandTimeoutMs")),
    ("commandTimeout", Hint::Option("commandTimeoutMs")),
    ("connectTimeout", Hint::Option("connectTimeoutMs")),
    ("prefix", Hint::Option("keyPrefix")),
    ("limit", Hint::Option("listLimit")),
    ("nodes", Hint::Option("clusterNodes")),
    ("rootNodes", Hint::Option("clusterNodes")),
    ("name", Hint::Option("sentinelName")),
    ("clientName", Hint::Option("connectionName")),
    ("user", Hint::Option("username")),
    ("credentials", Hint::Option("credentialsProvider")),
    ("host", Hint::Advice(IN_THE_URL)),
    ("port", Hint::Advice(IN_THE_URL)),
    ("db", Hint::Advice(IN_THE_URL)),
    ("database", Hint::Advice(IN_THE_URL)),
    (
        "rejectUnauthorized",
        Hint::Advice("certificate verification cannot be turned off; give the server's CA as tls.ca"),
    ),
    (
        "retryStrategy",
        Hint::Advice("reconnection never gives up; tune it with reconnectMinDelayMs and reconnectMaxDelayMs"),
    ),
];

/// Why `name` (under `parent`, for a nested object) is refused by `store`.
fn refusal(store: Store, parent: Option<&OptionSpec>, name: &str) -> String {
    let choices = parent.map_or(STORE_OPTIONS, |parent| parent.fields);
    let path = |option: &str| match parent {
        Some(parent) => format!("{}.{option}", parent.name),
        None => option.to_owned(),
    };
    let known = choices.iter().find(|spec| spec.name == name);
    if let Some(spec) = known {
        // Known, so the other store takes it.
        return format!(
            "{} does not take the option {:?}: only RedisStore does",
            store.name(),
            path(spec.name)
        );
    }
    let unknown = format!("unknown {} option {:?}", store.name(), path(name));
    match hint(choices, name) {
        Some(Hint::Option(meant)) => {
            let owner = match choices.iter().find(|spec| spec.name == meant) {
                Some(spec) if !store.takes(spec) => " (a RedisStore option; MemoryStore does not take it)",
                _ => "",
            };
            format!("{unknown}: did you mean {:?}?{owner}", path(meant))
        }
        Some(Hint::Advice(advice)) => format!("{unknown}: {advice}"),
        None => {
            let names: Vec<String> = choices
                .iter()
                .filter(|spec| store.takes(spec))
                .map(|spec| path(spec.name))
                .collect();
            format!("{unknown}; the options are: {}", names.join(", "))
        }
    }
}

/// The option a refused name most likely meant: an alias, the same name in
/// another case, or the nearest name within a few typing mistakes.
fn hint(choices: &'static [OptionSpec], name: &str) -> Option<Hint> {
    if let Some((_, hint)) = ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)) {
        let applies = match hint {
            Hint::Option(meant) => choices.iter().any(|spec| spec.name == *meant),
            Hint::Advice(_) => true,
        };
        if applies {
            return Some(*hint);
        }
    }
    let lowered = name.to_lowercase();
    let tolerance = match lowered.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    choices
        .iter()
        .map(|spec| (edit_distance(&lowered, &spec.name.to_lowercase()), spec.name))
        .filter(|(distance, _)| *distance <= tolerance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, meant)| Hint::Option(meant))
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Refuses the first name `store` does not take, among `names` of the
/// top-level options object (`parent` `None`) or of a nested one.
pub fn check_names<'a>(
    store: Store,
    parent: Option<&OptionSpec>,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let choices = parent.map_or(STORE_OPTIONS, |parent| parent.fields);
    for name in names {
        let taken = choices.iter().any(|spec| spec.name == name && store.takes(spec));
        if !taken {
            return Err(StoreError::Config(refusal(store, parent, name)));
        }
    }
    Ok(())
}

/// Reads a store's options (`undefined`/`null` for none): refuses any key,
/// nested ones included, that the store does not take, then converts the
/// object to the napi options struct. A value napi cannot convert is a
/// configuration error too, with napi's message naming the field.
pub fn read_options<T: FromNapiValue>(store: Store, options: Unknown<'_>) -> StoreResult<Option<T>> {
    if matches!(options.get_type().map_err(config_error)?, ValueType::Object) {
        let object = object_of(&options)?;
        check_names(store, None, keys_of(&object)?.iter().map(String::as_str))?;
        for parent in STORE_OPTIONS.iter().filter(|spec| !spec.fields.is_empty()) {
            let Some(value) = object.get::<Unknown>(parent.name).map_err(config_error)? else {
                continue;
            };
            match value.get_type().map_err(config_error)? {
                ValueType::Null | ValueType::Undefined => {}
                ValueType::Object
                    if !value.is_array().map_err(config_error)? && !value.is_buffer().map_err(config_error)? =>
                {
                    let nested = object_of(&value)?;
                    check_names(store, Some(parent), keys_of(&nested)?.iter().map(String::as_str))?;
                }
                _ => {
                    let fields: Vec<&str> = parent.fields.iter().map(|spec| spec.name).collect();
                    return Err(StoreError::Config(format!(
                        "{} must be an object with any of: {}",
                        parent.name,
                        fields.join(", ")
                    )));
                }
            }
        }
    }
    from_js(options, StoreError::Config)
}

fn config_error(err: napi::Error) -> StoreError {
    StoreError::Config(err.reason)
}

/// `value` as an object; the caller has checked that it is one.
fn object_of<'env>(value: &Unknown<'env>) -> StoreResult<Object<'env>> {
    let raw = value.value();
    // SAFETY: a live value of the current call, on the JS thread.
    unsafe { Object::from_napi_value(raw.env, raw.value) }.map_err(config_error)
}

fn keys_of(object: &Object<'_>) -> StoreResult<Vec<String>> {
    Object::keys(object).map_err(config_error)
}

/// Converts a JS value (`undefined`/`null` for none) to a napi struct; a
/// value napi cannot convert becomes `error`, with napi's message naming the
/// field.
pub fn from_js<T: FromNapiValue>(value: Unknown<'_>, error: fn(String) -> StoreError) -> StoreResult<Option<T>> {
    let raw = value.value();
    // SAFETY: a live value of the current call, on the JS thread.
    unsafe { Option::<T>::from_napi_value(raw.env, raw.value) }.map_err(|err| error(err.reason))
}

/// One row of the option table, as `storeOptions()` hands it to JS.
#[napi(object)]
pub struct StoreOption {
    pub name: String,
    /// `both`, or `redis` for an option only `RedisStore` takes.
    pub store: String,
    /// Handled by index.js (never reaches the native store).
    pub js_only: bool,
    /// As the README's options table states it: code in backticks, or words.
    /// Absent for an option whose fields carry the defaults.
    pub default: Option<String>,
    /// The environment variable `createConversationStore` reads it from.
    pub env: Option<String>,
    /// The keys of a nested options object (`tls`).
    pub fields: Vec<StoreOption>,
}

fn to_js(spec: &OptionSpec) -> StoreOption {
    StoreOption {
        name: spec.name.to_owned(),
        store: match spec.stores {
            Takers::Both => "both",
            Takers::RedisOnly => "redis",
        }
        .to_owned(),
        js_only: spec.js_only,
        default: spec.default.map(Documented::text),
        env: spec.env.map(str::to_owned),
        fields: spec.fields.iter().map(to_js).collect(),
    }
}

/// The option table: which store takes each option, its default and its
/// environment variable.
#[napi]
pub fn store_options() -> Vec<StoreOption> {
    STORE_OPTIONS.iter().map(to_js).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(store: Store, name: &str) -> String {
        match check_names(store, None, [name]) {
            Err(err) => err.to_string(),
            Ok(()) => panic!("{name} was accepted by {store:?}"),
        }
    }

    fn tls() -> &'static OptionSpec {
        STORE_OPTIONS.iter().find(|spec| spec.name == "tls").unwrap()
    }

    #[test]
    fn every_option_of_a_store_is_accepted() {
        let names: Vec<&str> = STORE_OPTIONS.iter().map(|spec| spec.name).collect();
        assert!(check_names(Store::Redis, None, names.iter().copied()).is_ok());
        let memory = STORE_OPTIONS
            .iter()
            .filter(|spec| spec.stores == Takers::Both)
            .map(|spec| spec.name);
        assert!(check_names(Store::Memory, None, memory).is_ok());
        let fields = TLS_FIELDS.iter().map(|spec| spec.name);
        assert!(check_names(Store::Redis, Some(tls()), fields).is_ok());
    }

    #[test]
    fn a_misspelled_option_names_the_one_it_meant() {
        for (typed, meant) in [
            ("ttl", "ttlSeconds"),
            ("commandTimeout", "commandTimeoutMs"),
            ("keyprefix", "keyPrefix"),
            ("connectTimeout", "connectTimeoutMs"),
            ("ttlSecond", "ttlSeconds"),
            ("heartbeatIntervalMS", "heartbeatIntervalMs"),
            ("uri", "url"),
        ] {
            let message = refused(Store::Redis, typed);
            assert!(message.contains(&format!("{typed:?}")), "{message}");
            assert!(message.contains(&format!("did you mean {meant:?}?")), "{message}");
        }
    }

    #[test]
    fn credentials_are_redis_options() {
        let message = refused(Store::Memory, "password");
        assert!(message.contains("only RedisStore does"), "{message}");
        let message = refused(Store::Redis, "credentials");
        assert!(message.contains("did you mean \"credentialsProvider\"?"), "{message}");
    }

    #[test]
    fn a_name_far_from_every_option_lists_the_options() {
        let message = refused(Store::Memory, "colour");
        assert!(
            message.contains("unknown MemoryStore option \"colour\"; the options are:"),
            "{message}"
        );
        assert!(message.contains("ttlSeconds") && !message.contains("url"), "{message}");
    }

    #[test]
    fn a_redis_option_given_to_the_memory_store_says_which_store_takes_it() {
        let message = refused(Store::Memory, "commandTimeoutMs");
        assert!(message.contains("MemoryStore does not take the option \"commandTimeoutMs\": only RedisStore does"));
        let message = refused(Store::Memory, "commandTimeout");
        assert!(
            message.contains("(a RedisStore option; MemoryStore does not take it)"),
            "{message}"
        );
    }

    #[test]
    fn nested_keys_are_checked_with_their_path() {
        let message = match check_names(Store::Redis, Some(tls()), ["serverName"]) {
            Err(err) => err.to_string(),
            Ok(()) => String::new(),
        };
        assert!(message.contains("unknown RedisStore option \"tls.serverName\": did you mean \"tls.servername\"?"));
    }

    #[test]
    fn documented_defaults_are_the_configuration_constants() {
        let default_of = |name: &str| {
            STORE_OPTIONS
                .iter()
                .find(|spec| spec.name == name)
                .and_then(|spec| spec.default)
                .map(Documented::text)
        };
        assert_eq!(default_of("ttlSeconds").as_deref(), Some("`86400`"));
        assert_eq!(default_of("maxRecordBytes").as_deref(), Some("`1048576`"));
        assert_eq!(default_of("excludeFields").as_deref(), Some("`['sdkConversationRef']`"));
        assert_eq!(default_of("url").as_deref(), Some("required unless `sentinels`"));
    }

    #[test]
    fn names_are_unique_and_camel_case() {
        for list in [STORE_OPTIONS, TLS_FIELDS] {
            for (index, spec) in list.iter().enumerate() {
                assert!(spec.name.chars().all(|c| c.is_ascii_alphanumeric()), "{}", spec.name);
                assert!(spec.name.starts_with(|c: char| c.is_ascii_lowercase()), "{}", spec.name);
                assert!(
                    list[..index].iter().all(|other| other.name != spec.name),
                    "{}",
                    spec.name
                );
            }
        }
        for (alias, _) in ALIASES {
            assert!(
                STORE_OPTIONS.iter().all(|spec| spec.name != *alias),
                "{alias} is an option"
            );
        }
    }
}
