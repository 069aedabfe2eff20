//! Lua scripts: the parts of `set`, `delete` and a sliding `get` that must
//! read a record and act on its owner's index in one atomic step, plus the
//! single-slot steps of the cluster path and the pruning of stale index
//! entries. They only touch keys of the documented layout, and they never
//! carry a record through Lua when a plain command can move it.

use std::sync::LazyLock;

use redis::Script;

/// The owner (`userId`) of a stored record. Fast path: records written with
/// `JSON.stringify` have no spaces, and a key can only appear unescaped as a
/// real key, so a single `"userId":"` with no second `"userId":` is the
/// top-level one. Anything else is decoded in full.
const OWNER_OF: &str = r#"
local function owner_of(json)
  local first, last = string.find(json, '"userId":"', 1, true)
  if first and not string.find(json, '"userId":', last, true) then
    local close = string.find(json, '"', last + 1, true)
    if close then
      local value = string.sub(json, last + 1, close - 1)
      if not string.find(value, '\\', 1, true) then return value end
    end
  end
  local ok, decoded = pcall(cjson.decode, json)
  if ok and type(decoded) == 'table' and type(decoded.userId) == 'string' then
    return decoded.userId
  end
  return nil
end
local function index_key(prefix, user_id)
  return prefix .. 'user:' .. user_id .. ':conversations'
end
-- The owner of the record at `key`, reading only its first kilobyte when
-- that settles it: a `"userId":"` with no bracket before it (after the
-- opening brace) is at the top level, since nothing before it is nested.
-- Otherwise the whole record is read. Returns exists, owner.
local function owner_at(key)
  local head = redis.call('GETRANGE', key, 0, 1023)
  if head == '' then return redis.call('EXISTS', key) == 1, nil end
  local first, last = string.find(head, '"userId":"', 1, true)
  if string.sub(head, 1, 1) == '{' and first and not string.find(string.sub(head, 2, first - 1), '[%[{]') then
    local close = string.find(head, '"', last + 1, true)
    if close then
      local value = string.sub(head, last + 1, close - 1)
      if not string.find(value, '\\', 1, true) then return true, value end
    end
  end
  local whole = redis.call('GET', key)
  if not whole then return false, nil end
  return true, owner_of(whole)
end
"#;

/// KEYS: record. ARGV: id, new userId, prefix. The first command of `set`'s
/// MULTI/EXEC: when the stored record belongs to another user, its id leaves
/// that user's index. The record itself is written by a plain SET after it
/// in the same transaction, so its bytes never pass through Lua (copying a
/// 64 KB record into Lua and back doubled Redis's time per write: 317 µs
/// against 154 µs).
const MOVE_OWNER: &str = r#"
local exists, previous = owner_at(KEYS[1])
if previous and previous ~= ARGV[2] then
  redis.call('ZREM', index_key(ARGV[3], previous), ARGV[1])
end
return 0
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
if value then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  local owner = owner_of(value)
  if owner then redis.call('EXPIRE', index_key(ARGV[3], owner), ARGV[2]) end
end
return value
"#;

/// KEYS: index. ARGV: prefix, userId, ids... Removes the ids whose record is
/// gone or (checked again, atomically) belongs to another user.
const PRUNE_STALE: &str = r#"
local removed = 0
for i = 3, #ARGV do
  local value = redis.call('GET', ARGV[1] .. 'conv:' .. ARGV[i])
  local owner = value and owner_of(value)
  if (not value) or (owner and owner ~= ARGV[2]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
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

fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{OWNER_OF}{body}"))
}

/// Sent as EVAL (Redis caches it by hash): inside MULTI, an EVALSHA that
/// meets NOSCRIPT would fail alone while the rest of the transaction ran.
pub static MOVE_OWNER_SOURCE: LazyLock<String> = LazyLock::new(|| format!("{OWNER_OF}{MOVE_OWNER}"));
pub static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(DELETE));
pub static GET_SLIDING_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(GET_SLIDING));
pub static PRUNE_STALE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(PRUNE_STALE));
pub static CLUSTER_SET_RECORD_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(CLUSTER_SET_RECORD));
pub static REMOVE_IF_SCORE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE_IF_SCORE));

/// Every script, loaded on each new connection so that calls never pay (or
/// reorder behind) a NOSCRIPT retry after a server restart.
pub fn all() -> Vec<Script> {
    let move_owner = Script::new(&MOVE_OWNER_SOURCE);
    [
        &DELETE_SCRIPT,
        &GET_SLIDING_SCRIPT,
        &PRUNE_STALE_SCRIPT,
        &CLUSTER_SET_RECORD_SCRIPT,
        &REMOVE_IF_SCORE_SCRIPT,
    ]
    .into_iter()
    .map(|script| Script::clone(script))
    .chain([move_owner])
    .collect()
}
