//! Lua scripts: the parts of `set`, `delete` and a sliding `get` that must
//! read a record and act on its owner's index in one atomic step, plus the
//! single-slot steps of the cluster path and the pruning of stale index
//! entries. They only touch keys of the documented layout, and they never
//! carry a record through Lua when a plain command can move it.

use std::sync::LazyLock;

use redis::Script;

/// A top-level string member of a stored record (its owner, `userId`, or its
/// `updatedAt`), as `JSON.parse` reads it. Fast path, as `record.rs`'s
/// `top_level_string`: in valid JSON a `"<key>":` not right after a
/// backslash is always a real key, so the only one, in a text without `\u` escapes (which could spell the key
/// a second time), with no `{`/`[` before it, is the top-level member.
/// Anything else (a `userId` nested in a history message first, a
/// non-string owner) is decoded in full.
const RECORD_HELPERS: &str = r#"
local function top_string(json, key)
  local pattern = '"' .. key .. '":'
  local first, last = string.find(json, pattern, 1, true)
  local bracket = string.find(json, '[%[{]', 2)
  -- (A `"<key>":` right after a backslash ends another key, such as `a\"userId`.)
  if first and string.sub(json, 1, 1) == '{' and string.sub(json, last + 1, last + 1) == '"'
      and string.sub(json, first - 1, first - 1) ~= '\\'
      and (not bracket or bracket > first)
      and not string.find(json, pattern, last + 1, true)
      and not string.find(json, '\\u', 1, true) then
    local close = string.find(json, '"', last + 2, true)
    if close then
      local value = string.sub(json, last + 2, close - 1)
      if not string.find(value, '\\', 1, true) then return value end
    end
  end
  local ok, decoded = pcall(cjson.decode, json)
  if ok and type(decoded) == 'table' and type(decoded[key]) == 'string' then
    return decoded[key]
  end
  return nil
end
local function owner_of(json)
  return top_string(json, 'userId')
end
local function updated_at_of(json)
  return top_string(json, 'updatedAt')
end
local function index_key(prefix, user_id)
  return prefix .. 'user:' .. user_id .. ':conversations'
end
-- The owner proven by a record's last kilobyte: its last `"userId":` (not
-- right after a backslash, which would end another key such as `a\"userId`;
-- not first in the tail, where that is unknown) starts the members that
-- close the record exactly when it is a top-level key. cjson checks that by
-- decoding them as one object, `{` .. the rest, which fails when anything
-- is left over, and reads the value (the last top-level userId, as
-- JSON.parse). Else nil: read more. (4.8 µs less Redis time per 4 KB `set`
-- than the pattern removal it replaced.)
local function owner_in_tail(tail)
  local first
  local from = 1
  while true do
    local f, l = string.find(tail, '"userId":', from, true)
    if not f then break end
    first, from = f, l + 1
  end
  if not first or first == 1 or string.sub(tail, first - 1, first - 1) == '\\' then return nil end
  local ok, members = pcall(cjson.decode, '{' .. string.sub(tail, first))
  if ok and type(members) == 'table' and type(members.userId) == 'string' then return members.userId end
  return nil
end
-- The owner of the record at `key`, reading only a kilobyte when that
-- settles it: its last kilobyte (owner_in_tail) first when `tail_first` (the
-- record being written has its userId there, so the stored one likely does
-- too), else its first: the first `"userId":` with no bracket before it
-- (after the opening brace) is the top-level key, since nothing before it is
-- nested, and JSON.stringify writes each key once. Otherwise the whole
-- record is read. Returns exists, owner.
local function owner_at(key, tail_first)
  if tail_first then
    local tail = redis.call('GETRANGE', key, -1024, -1)
    if tail == '' then return redis.call('EXISTS', key) == 1, nil end
    if #tail < 1024 then return true, owner_of(tail) end
    local owner = owner_in_tail(tail)
    if owner then return true, owner end
  end
  local head = redis.call('GETRANGE', key, 0, 1023)
  if head == '' then return redis.call('EXISTS', key) == 1, nil end
  if #head < 1024 then return true, owner_of(head) end
  local first, last = string.find(head, '"userId":', 1, true)
  local bracket = string.find(head, '[%[{]', 2)
  if string.sub(head, 1, 1) == '{' and first and (not bracket or bracket > first)
      and string.sub(head, first - 1, first - 1) ~= '\\'
      and string.sub(head, last + 1, last + 1) == '"' then
    local close = string.find(head, '"', last + 2, true)
    if close then
      local value = string.sub(head, last + 2, close - 1)
      if not string.find(value, '\\', 1, true) then return true, value end
    end
  end
  if not tail_first then
    local owner = owner_in_tail(redis.call('GETRANGE', key, -1024, -1))
    if owner then return true, owner end
  end
  local whole = redis.call('GET', key)
  if not whole then return false, nil end
  return true, owner_of(whole)
end
"#;

/// KEYS: record. ARGV: id, new userId, prefix, `1` when the new record has its
/// userId in its last kilobyte (`owner_at`'s `tail_first`). The first command of `set`'s
/// MULTI/EXEC: when the stored record belongs to another user, its id leaves
/// that user's index. The record itself is written by a plain SET after it
/// in the same transaction, so its bytes never pass through Lua (copying a
/// 64 KB record into Lua and back doubled Redis's time per write: 317 µs
/// against 154 µs).
const MOVE_OWNER: &str = r#"
local exists, previous = owner_at(KEYS[1], ARGV[4] == '1')
if previous and previous ~= ARGV[2] then
  redis.call('ZREM', index_key(ARGV[3], previous), ARGV[1])
end
return 0
"#;

/// KEYS: record, index. ARGV: id, userId, prefix, json, ttl, score, index
/// ttl, tail-first (as `MOVE_OWNER`'s). `set` of a small record (`SCRIPTED_SET_MAX_BYTES`) as one script:
/// the move out of a previous owner's index, the record, its index entry and
/// both TTLs. Cheaper for Redis than `MOVE_OWNER`'s MULTI/EXEC at that size
/// (one command, the script sent by hash), and atomic in the same way; a
/// NOSCRIPT runs nothing, so the link reloads the script and sends it again.
const SET_SMALL: &str = r#"
local exists, previous = owner_at(KEYS[1], ARGV[8] == '1')
write_record(previous)
return 1
"#;

/// The write shared by the scripts that store a whole record (KEYS: record,
/// index; ARGV: id, userId, prefix, json, ttl, score, index ttl): the id
/// leaves `previous` owner's index, then the record, its entry, both TTLs.
const WRITE_RECORD: &str = r#"
local function write_record(previous)
  if previous and previous ~= ARGV[2] then
    redis.call('ZREM', index_key(ARGV[3], previous), ARGV[1])
  end
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
"#;

/// KEYS: record. ARGV: id, prefix. Deletes the record and its index entry.
const DELETE: &str = r#"
local exists, owner = owner_at(KEYS[1])
if not exists then return 0 end
if owner then redis.call('ZREM', index_key(ARGV[2], owner), ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1
"#;

/// KEYS: record. ARGV: ttl, index ttl, prefix. A read that refreshes both TTLs.
const GET_SLIDING: &str = r#"
local value = redis.call('GET', KEYS[1])
local owner = value and owner_of(value)
-- Only a record with an owner is this store's: never put a TTL on other data.
if owner then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', index_key(ARGV[3], owner), ARGV[2])
end
return value
"#;

/// KEYS: index. ARGV: prefix, userId, ids... Removes the ids whose record is
/// gone or (checked again, atomically) belongs to another user. Returns the
/// ids left in place because their key holds another type of value (data
/// this store did not write: not its to unlist).
const PRUNE_STALE: &str = r#"
local foreign = {}
for i = 3, #ARGV do
  local value = redis.pcall('GET', ARGV[1] .. 'conv:' .. ARGV[i])
  if type(value) == 'table' then
    foreign[#foreign + 1] = ARGV[i]
  else
    local owner = value and owner_of(value)
    if (not value) or (owner and owner ~= ARGV[2]) then
      redis.call('ZREM', KEYS[1], ARGV[i])
    end
  end
end
return foreign
"#;

/// The check of a conditional write (`ifUpdatedAt`), shared by its scripts.
/// `old` is the stored record (or false); mode is `absent`, `updatedAt` or
/// `noUpdatedAt` (`record::Precondition`). Returns nil when the write may go
/// ahead, else the reply `{status, '', updatedAt}`: status 0 nothing stored,
/// 2 a record with that `updatedAt`, 3 a record without one.
const CONDITIONAL_CHECK: &str = r#"
local function refused(old, mode, expected)
  if not old then
    if mode == 'absent' then return nil end
    return {0, '', ''}
  end
  local stored = updated_at_of(old)
  if (mode == 'updatedAt' and stored == expected) or (mode == 'noUpdatedAt' and stored == nil) then
    return nil
  end
  if stored then return {2, '', stored} end
  return {3, '', ''}
end
"#;

/// KEYS: record, index. ARGV: id, userId, prefix, json, ttl, score, index
/// ttl, mode, expected. A conditional `set` on one server: the check, the
/// move out of a previous owner's index, the record, its index entry and both
/// TTLs in one atomic step. The record passes through Lua here (unlike a
/// large plain `set`'s MULTI/EXEC), the price of checking it in the same step.
/// Returns `{1, '', ''}` when written, else the check's refusal.
const SET_IF: &str = r#"
local old = redis.call('GET', KEYS[1])
local refusal = refused(old, ARGV[8], ARGV[9])
if refusal then return refusal end
write_record(old and owner_of(old))
return {1, '', ''}
"#;

/// Cluster step 1 of a conditional `set`. KEYS: record. ARGV: json, ttl,
/// mode, expected. Checks and writes the record in one step; returns
/// `{1, previous owner or '', ''}` when written, else the check's refusal.
const CLUSTER_SET_RECORD_IF: &str = r#"
local old = redis.call('GET', KEYS[1])
local refusal = refused(old, ARGV[3], ARGV[4])
if refusal then return refusal end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {1, (old and owner_of(old)) or '', ''}
"#;

/// Cluster step 1 of `set`. KEYS: record. ARGV: json, ttl.
/// Writes the record and returns its previous owner (or nil).
const CLUSTER_SET_RECORD: &str = r#"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if old then return owner_of(old) end
return nil
"#;

/// KEYS: index. ARGV: id, score. Removes the id only while its score is the
/// one the caller saw, so an entry a concurrent `set` just wrote survives.
const REMOVE_IF_SCORE: &str = r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"#;

/// One script's source from its parts, without the comment lines and the
/// indentation: Redis hashes the whole source of every EVAL (`MOVE_OWNER`,
/// on each large `set`), so its length is paid per call.
fn source(parts: &[&str]) -> String {
    let mut source = String::new();
    for line in parts.iter().flat_map(|part| part.lines()) {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        source.push_str(line);
        source.push('\n');
    }
    source
}

fn script(parts: &[&str]) -> Script {
    Script::new(&source(parts))
}

/// Sent as EVAL (Redis caches it by hash): inside MULTI, an EVALSHA that
/// meets NOSCRIPT would fail alone while the rest of the transaction ran.
pub static MOVE_OWNER_SOURCE: LazyLock<String> = LazyLock::new(|| source(&[RECORD_HELPERS, MOVE_OWNER]));
/// The largest record `set` writes with `SET_SMALL_SCRIPT`. Above it, copying
/// the record into Lua costs Redis more than the MULTI/EXEC round does
/// (measured with Redis's own CPU time per `set`: 4 KB, 20.6 µs by script
/// against 27 µs by MULTI/EXEC; 64 KB, 110 µs against 45 µs).
pub const SCRIPTED_SET_MAX_BYTES: usize = 8 * 1024;
pub static SET_SMALL_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(&[RECORD_HELPERS, WRITE_RECORD, SET_SMALL]));
pub static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(&[RECORD_HELPERS, DELETE]));
pub static GET_SLIDING_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(&[RECORD_HELPERS, GET_SLIDING]));
pub static PRUNE_STALE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(&[RECORD_HELPERS, PRUNE_STALE]));
pub static CLUSTER_SET_RECORD_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&[RECORD_HELPERS, CLUSTER_SET_RECORD]));
pub static SET_IF_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&[RECORD_HELPERS, CONDITIONAL_CHECK, WRITE_RECORD, SET_IF]));
pub static CLUSTER_SET_RECORD_IF_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&[RECORD_HELPERS, CONDITIONAL_CHECK, CLUSTER_SET_RECORD_IF]));
pub static REMOVE_IF_SCORE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(&[REMOVE_IF_SCORE]));

/// The scripts a single server's operations use, loaded on each new connection.
pub fn single_server() -> Vec<Script> {
    vec![
        Script::new(&MOVE_OWNER_SOURCE),
        Script::clone(&SET_SMALL_SCRIPT),
        Script::clone(&DELETE_SCRIPT),
        Script::clone(&GET_SLIDING_SCRIPT),
        Script::clone(&PRUNE_STALE_SCRIPT),
        Script::clone(&SET_IF_SCRIPT),
    ]
}

/// The scripts a cluster's operations use, loaded on each new connection.
pub fn cluster() -> Vec<Script> {
    vec![
        Script::clone(&CLUSTER_SET_RECORD_SCRIPT),
        Script::clone(&REMOVE_IF_SCORE_SCRIPT),
        Script::clone(&CLUSTER_SET_RECORD_IF_SCRIPT),
    ]
}

#[cfg(test)]
mod tests {
    //! The Lua owner lookup against `serde_json`, through a real
    //! redis-server (the one the Node tests use, from PATH) listening on a
    //! Unix socket only, so it never meets a developer's Redis on 6379.

    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRunner};

    use super::RECORD_HELPERS;
    use crate::oracle::{expected_top_level_string, generate};
    use crate::record;

    struct Server {
        child: Child,
        dir: PathBuf,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn start_server() -> (Server, redis::Connection) {
        let dir = std::env::temp_dir().join(format!("rcs-lua-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (the Node tests need it too)");
        let server = Server { child, dir };
        let client = redis::Client::open(format!("unix://{}", socket.display())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get_connection() {
                Ok(connection) => return (server, connection),
                Err(err) if Instant::now() > deadline => panic!("redis-server did not answer in 10 s: {err}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// For every generated record: `owner_at` (reading its first or its last
    /// kilobyte first, when that settles it), `owner_of` on the whole record, the Rust
    /// `owner_of`, and `updated_at_of` all give `JSON.parse`'s answer.
    #[test]
    fn lua_owner_lookup_agrees_with_serde_json() {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(2000usize);
        let mut runner = TestRunner::new(Config::default());
        let strategy = (generate::stored_record(), generate::style());
        let records: Vec<String> = (0..cases)
            .map(|_| {
                let (doc, style) = strategy.new_tree(&mut runner).unwrap().current();
                doc.write(style)
            })
            .collect();
        let script = format!(
            "{RECORD_HELPERS}
local exists, head_owner = owner_at(KEYS[1], false)
local exists_too, tail_owner = owner_at(KEYS[1], true)
local whole = redis.call('GET', KEYS[1])
return {{head_owner or false, owner_of(whole) or false, updated_at_of(whole) or false, tail_owner or false}}"
        );
        let (_server, mut connection) = start_server();
        for batch in records.chunks(200) {
            let mut pipe = redis::pipe();
            for (at, text) in batch.iter().enumerate() {
                let key = format!("conv:{at}");
                pipe.cmd("SET").arg(&key).arg(text).ignore();
                pipe.cmd("EVAL").arg(&script).arg(1).arg(&key);
            }
            let answers: Vec<Vec<Option<String>>> = pipe.query(&mut connection).unwrap();
            for (text, answer) in batch.iter().zip(answers) {
                let Some(owner) = expected_top_level_string(text, "userId") else {
                    continue; // not JSON to serde_json (a lone surrogate escape)
                };
                let updated_at = expected_top_level_string(text, "updatedAt").flatten();
                assert_eq!(answer[0], owner, "owner_at (head first) of {text}");
                assert_eq!(answer[3], owner, "owner_at (tail first) of {text}");
                assert_eq!(answer[1], owner, "Lua owner_of of {text}");
                assert_eq!(record::owner_of(text), owner, "Rust owner_of of {text}");
                assert_eq!(answer[2], updated_at, "Lua updated_at_of of {text}");
            }
        }
    }
}
