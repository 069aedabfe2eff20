//! What the store knows about a record: the content rules of ids and
//! records, checked before anything is written, the index score, the owner
//! of a stored record, and picking fields for a light listing. Shared by both
//! stores. (The JS types of the arguments are checked once, in `index.js`;
//! the binding applies the id rules here once, before any store operation.)

use crate::error::{StoreError, StoreResult};
use crate::json_scan::{self, object_members, Member};

/// Longest id or userId accepted, in bytes (keys stay cheap to hash and log).
pub const MAX_ID_BYTES: usize = 1024;

/// Rules a store applies to every record it writes.
#[derive(Debug, Clone)]
pub struct RecordRules {
    /// Top-level fields never persisted (default `sdkConversationRef`);
    /// `index.js` drops them before `JSON.stringify` (one may be a live,
    /// circular SDK object), so the JSON that reaches Rust never has them.
    pub excluded_fields: Vec<String>,
    /// Largest record JSON accepted, in bytes.
    pub max_record_bytes: usize,
}

/// A record checked and ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    pub json: String,
    pub user_id: String,
    /// `Date.parse(updatedAt)` in ms: the record's score in its user's index.
    pub score: i64,
    /// The `userId` member starts in the record's last KiB: the scripts that
    /// look up the stored record's owner then read that KiB of it first.
    pub owner_near_end: bool,
}

/// How much of a stored record the scripts read at a time to find its owner.
pub const OWNER_LOOKUP_BYTES: usize = 1024;

pub fn validate_id(id: &str) -> StoreResult<()> {
    if id.is_empty() {
        return Err(StoreError::InvalidId("id must be a non-empty string".into()));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(StoreError::InvalidId(format!(
            "id is {} bytes long; the limit is {MAX_ID_BYTES}",
            id.len()
        )));
    }
    Ok(())
}

pub fn validate_user_id(user_id: &str) -> StoreResult<()> {
    if user_id.is_empty() {
        return Err(StoreError::InvalidUserId("userId must be a non-empty string".into()));
    }
    if user_id.len() > MAX_ID_BYTES {
        return Err(StoreError::InvalidUserId(format!(
            "userId is {} bytes long; the limit is {MAX_ID_BYTES}",
            user_id.len()
        )));
    }
    Ok(())
}

/// Checks a record's JSON (as `JSON.stringify` made it, excluded fields
/// already dropped) and extracts what the index needs; `id` was validated by
/// the binding. Every byte is kept as it is, so the stored value is exactly
/// what the ioredis store would have written.
pub fn prepare_record(id: &str, json: String, rules: &RecordRules, now_ms: i64) -> StoreResult<PreparedRecord> {
    let members = object_members(&json)
        .map_err(|err| StoreError::InvalidRecord(format!("conversation {id:?} must be a plain object: {err}")))?;
    let mut user_id = None;
    let mut updated_at = None;
    for member in &members {
        if member.key_is("userId") {
            user_id = Some(member);
        } else if member.key_is("updatedAt") {
            updated_at = Some(member);
        }
    }
    let owner_near_end = user_id.is_some_and(|member| json.len() - member.span.start <= OWNER_LOOKUP_BYTES);
    let user_id = match user_id {
        None => {
            return Err(StoreError::InvalidUserId(format!(
                "conversation {id:?} has no userId; every conversation needs its owner's id"
            )))
        }
        Some(member) => member.string_value().ok_or_else(|| {
            StoreError::InvalidUserId(format!(
                "conversation {id:?}: userId must be a string, got {}",
                member.value
            ))
        })?,
    };
    validate_user_id(&user_id)?;
    let score = match updated_at {
        None => now_ms,
        Some(member) => updated_at_score(id, member)?,
    };
    if json.len() > rules.max_record_bytes {
        return Err(StoreError::RecordTooLarge {
            id: id.to_owned(),
            bytes: json.len(),
            limit: rules.max_record_bytes,
        });
    }
    Ok(PreparedRecord {
        json,
        user_id,
        score,
        owner_near_end,
    })
}

fn updated_at_score(id: &str, member: &Member<'_>) -> StoreResult<i64> {
    let text = member.string_value().ok_or_else(|| {
        StoreError::InvalidUpdatedAt(format!(
            "conversation {id:?}: updatedAt must be an ISO 8601 date string, got {}",
            member.value
        ))
    })?;
    parse_iso_date_ms(&text).ok_or_else(|| {
        StoreError::InvalidUpdatedAt(format!(
            "conversation {id:?}: updatedAt {text:?} is not an ISO 8601 date (e.g. 2024-05-01T12:00:00.000Z)"
        ))
    })
}

/// How many of the largest records one call may read: its byte budget is
/// this many times `maxRecordBytes` (64 MiB at the default), so a
/// `listByUser` of 1,000 records of 1 MiB fails instead of building a
/// gigabyte on the JS thread.
pub const CALL_BUDGET_RECORDS: usize = 64;

/// The bytes of stored records one call may read and hand to JS.
pub fn call_byte_budget(rules: &RecordRules) -> usize {
    rules.max_record_bytes.saturating_mul(CALL_BUDGET_RECORDS)
}

/// Stored bytes as text, if they are UTF-8. Checked with a SIMD validator:
/// std's check of mixed-script chat text was a fifth of all CPU time when
/// listing 64 KB records.
pub fn utf8_text(bytes: Vec<u8>) -> Option<String> {
    simdutf8::basic::from_utf8(&bytes).ok()?;
    // SAFETY: just validated as UTF-8.
    Some(unsafe { String::from_utf8_unchecked(bytes) })
}

/// The value stored at `key` (record `id`) as a record this store could
/// have written: UTF-8 text of a JSON object with a string `userId`.
/// Anything else is data the store did not write (or corrupt): refused
/// with the key named, never handed to JS as if it were a conversation.
/// Returns the text and its owner.
pub fn stored_record(key: &str, id: &str, bytes: Vec<u8>) -> StoreResult<(String, String)> {
    let unreadable = |reason: String| StoreError::CorruptRecord {
        id: id.to_owned(),
        reason: format!("{key} {reason}"),
    };
    let text = utf8_text(bytes).ok_or_else(|| unreadable("holds bytes that are not UTF-8 text".into()))?;
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.starts_with('{') {
        let head: String = start.chars().take(24).collect();
        return Err(unreadable(format!("holds {head:?}..., not a JSON object")));
    }
    let Some(owner) = owner_of(&text) else {
        // Only on this error path: say whether it is JSON at all.
        return Err(unreadable(match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Err(err) => format!("is not valid JSON: {err}"),
            Ok(_) => "has no string userId".into(),
        }));
    };
    Ok((text, owner))
}

/// `ResponseTooLarge` unless `bytes` read so far fit the call's budget.
pub fn within_budget(what: &str, bytes: usize, rules: &RecordRules) -> StoreResult<()> {
    let limit = call_byte_budget(rules);
    if bytes > limit {
        return Err(StoreError::ResponseTooLarge {
            what: what.to_owned(),
            bytes,
            limit,
        });
    }
    Ok(())
}

/// `Date.parse(updatedAt)` of a stored record, if it has a readable one.
pub fn updated_at_ms(json: &str) -> Option<i64> {
    top_level_string(json, "updatedAt").and_then(|text| parse_iso_date_ms(&text))
}

/// The `updatedAt` text of a stored record, if it has a string one.
pub fn updated_at_of(json: &str) -> Option<String> {
    top_level_string(json, "updatedAt")
}

/// What a conditional `set` requires of the stored record (`ifUpdatedAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `ifUpdatedAt: null`: no record is stored.
    Absent,
    /// A record is stored and its `updatedAt` is exactly this text.
    UpdatedAt(String),
    /// A record is stored and it has no string `updatedAt` (`update` of a
    /// record written without one; not part of the public options).
    NoUpdatedAt,
}

/// What a conditional write found instead of what it required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// A record, with its `updatedAt` text if it has a string one.
    Record(Option<String>),
}

impl Precondition {
    /// From the binding's arguments: `absent`, `updatedAt` (with the text)
    /// or `noUpdatedAt`, as `index.js` names them.
    pub fn from_binding(mode: &str, updated_at: Option<String>) -> StoreResult<Self> {
        match (mode, updated_at) {
            ("absent", _) => Ok(Precondition::Absent),
            ("updatedAt", Some(text)) => Ok(Precondition::UpdatedAt(text)),
            ("noUpdatedAt", _) => Ok(Precondition::NoUpdatedAt),
            (other, _) => Err(StoreError::InvalidArgument(format!(
                "ifUpdatedAt: unknown condition {other:?}"
            ))),
        }
    }

    /// The two script arguments that carry it: a mode and the expected text.
    pub fn script_args(&self) -> (&'static str, &str) {
        match self {
            Precondition::Absent => ("absent", ""),
            Precondition::UpdatedAt(text) => ("updatedAt", text),
            Precondition::NoUpdatedAt => ("noUpdatedAt", ""),
        }
    }

    /// Whether `found` satisfies it (the scripts apply the same rule).
    pub fn holds(&self, found: &Found) -> bool {
        match (self, found) {
            (Precondition::Absent, Found::Nothing) => true,
            (Precondition::UpdatedAt(expected), Found::Record(Some(stored))) => expected == stored,
            (Precondition::NoUpdatedAt, Found::Record(None)) => true,
            _ => false,
        }
    }

    /// What a conditional-write script found, from its status reply
    /// (`CONDITIONAL_CHECK` in scripts.rs): 0 nothing stored, 2 a record
    /// with `updatedAt` (its text), 3 a record without one.
    pub fn found_from_script(status: i64, updated_at: String) -> Found {
        match status {
            0 => Found::Nothing,
            2 => Found::Record(Some(updated_at)),
            _ => Found::Record(None),
        }
    }

    /// The `STORE_CONFLICT` error for a write of `id` that found `found`.
    pub fn conflict(&self, id: &str, found: &Found) -> StoreError {
        let wanted = match self {
            Precondition::Absent => "no stored record (ifUpdatedAt: null)".to_owned(),
            Precondition::UpdatedAt(text) => format!("updatedAt {text:?}"),
            Precondition::NoUpdatedAt => "a stored record without updatedAt".to_owned(),
        };
        let seen = match found {
            Found::Nothing => "no record is stored".to_owned(),
            Found::Record(Some(text)) => format!("the stored record has updatedAt {text:?}"),
            Found::Record(None) => "the stored record has no updatedAt".to_owned(),
        };
        StoreError::Conflict(format!(
            "conversation {id:?} was not written: expected {wanted}, but {seen} (changed by another writer)"
        ))
    }
}

/// The `userId` of a stored record, if it has a string one.
pub fn owner_of(json: &str) -> Option<String> {
    top_level_string(json, "userId")
}

/// A top-level string member of a stored record, as `JSON.parse` reads it
/// (the last of duplicate keys); `None` when it is missing or not a string.
///
/// Fast path, a few SIMD searches and no parse: in valid JSON a `"<key>":`
/// not right after a backslash can only be a real key (inside a string its
/// quotes are escaped), and a
/// key spelled with a `\u` escape is impossible in text that has none. So
/// one hit, in a text without `\u` that starts with `{` and has no `{`/`[`
/// before the hit, is the one top-level member. Anything else (a nested
/// `userId` in a history message before it, duplicates, escapes) is
/// scanned. Text that is not JSON gets no promise beyond no panic: it is
/// refused by `JSON.parse` when read.
fn top_level_string(json: &str, key: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let pattern = format!("\"{key}\":");
    let last = memchr::memmem::rfind(bytes, pattern.as_bytes());
    // A hit right after a backslash is the end of another key (`a\"userId`);
    // in valid JSON that starts as an object, any other hit starts a key.
    let starts_a_key = |at: usize| bytes.first() == Some(&b'{') && bytes[at - 1] != b'\\';
    // The last hit, when it starts the members that close the record, is
    // the last top-level one but for a later escaped spelling, which is
    // among those members (see `json_scan::closing_members`). Chat records
    // put their history first: the owner checks of a 4 KB page went from
    // 134 to 35 µs of the worker's time, of a 64 KB page from 841 to 41.
    // Tried first when the hit is in the last KiB: the search forward below
    // would cross the whole history first.
    let from_the_end = |at: usize| {
        starts_a_key(at)
            .then(|| json_scan::closing_members(json, at).ok())
            .flatten()
            .map(|members| last_string_member(&members, key))
    };
    let near_end = last.filter(|&at| bytes.len() - at <= OWNER_LOOKUP_BYTES);
    if let Some(found) = near_end.and_then(from_the_end) {
        return found;
    }
    let first = memchr::memmem::find(bytes, pattern.as_bytes());
    if let (Some(at), true) = (first, first == last) {
        let at_top_level = starts_a_key(at) && memchr::memchr2(b'{', b'[', &bytes[1..at]).is_none();
        if at_top_level && memchr::memmem::find(bytes, b"\\u").is_none() {
            if let Some(body) = json[at + pattern.len()..].strip_prefix('"') {
                if let Some(end) = memchr::memchr2(b'"', b'\\', body.as_bytes()) {
                    if body.as_bytes()[end] == b'"' {
                        return Some(body[..end].to_owned());
                    }
                }
            }
        }
    }
    if let Some(found) = last.filter(|_| near_end.is_none()).and_then(from_the_end) {
        return found;
    }
    last_string_member(&object_members(json).ok()?, key)
}

/// The value of the last member named `key`, as `JSON.parse` keeps the last
/// of duplicates, if it is a string.
fn last_string_member(members: &[Member<'_>], key: &str) -> Option<String> {
    members
        .iter()
        .rev()
        .find(|member| member.key_is(key))
        .and_then(Member::string_value)
}

/// A JSON object holding only the named top-level fields of a stored record,
/// in the record's order.
pub fn project_fields(id: &str, json: &str, fields: &[String]) -> StoreResult<String> {
    let members = object_members(json).map_err(|err| StoreError::CorruptRecord {
        id: id.to_owned(),
        reason: err.to_string(),
    })?;
    let picked: Vec<&str> = members
        .iter()
        .filter(|member| fields.iter().any(|field| member.key_is(field)))
        .map(|member| &json[member.span.clone()])
        .collect();
    Ok(format!("{{{}}}", picked.join(",")))
}

/// Paging and shaping of a `listByUser` call, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub offset: usize,
    /// `None`: whole records; `Some`: only these top-level fields.
    pub fields: Option<Vec<String>>,
}

/// Largest page a caller may ask for.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Deepest offset a caller may ask for (keeps one call's work bounded).
pub const MAX_LIST_OFFSET: usize = 10_000;

impl ListQuery {
    pub fn new(
        limit: Option<f64>,
        offset: Option<f64>,
        fields: Option<Vec<String>>,
        default_limit: usize,
    ) -> StoreResult<Self> {
        let limit = match limit {
            None => default_limit,
            Some(value) => whole_number("limit", value, 1, MAX_LIST_LIMIT)?,
        };
        let offset = match offset {
            None => 0,
            Some(value) => whole_number("offset", value, 0, MAX_LIST_OFFSET)?,
        };
        if let Some(fields) = &fields {
            if fields.is_empty() || fields.iter().any(String::is_empty) {
                return Err(StoreError::InvalidArgument(
                    "fields must be a non-empty array of non-empty field names".into(),
                ));
            }
        }
        Ok(ListQuery { limit, offset, fields })
    }
}

fn whole_number(name: &str, value: f64, min: usize, max: usize) -> StoreResult<usize> {
    if value.fract() != 0.0 || value < min as f64 || value > max as f64 {
        return Err(StoreError::InvalidArgument(format!(
            "{name} must be a whole number from {min} to {max}, got {value}"
        )));
    }
    Ok(value as usize)
}

/// `Date.parse` for the ECMAScript date-time string format (ISO 8601 subset),
/// as V8 reads it: date-only forms and forms with `Z` or an offset are exact;
/// a date-time without an offset is read as UTC (V8 would use the host's zone).
/// Returns milliseconds since the epoch, or `None` where `Date.parse` is NaN.
pub fn parse_iso_date_ms(text: &str) -> Option<i64> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let year = match cursor.peek()? {
        sign @ (b'+' | b'-') => {
            cursor.at += 1;
            let year = cursor.digits(6)?;
            if sign == b'-' && year == 0 {
                return None; // "-000000" is excluded by the spec
            }
            if sign == b'-' {
                -year
            } else {
                year
            }
        }
        _ => cursor.digits(4)?,
    };
    let (mut month, mut day) = (1, 1);
    if cursor.eat(b'-') {
        month = cursor.digits(2)?;
        if cursor.eat(b'-') {
            day = cursor.digits(2)?;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms_of_day = 0;
    let mut offset_minutes = 0;
    if matches!(cursor.peek(), Some(b'T' | b't' | b' ')) {
        cursor.at += 1;
        let hour = cursor.digits(2)?;
        if !cursor.eat(b':') {
            return None;
        }
        let minute = cursor.digits(2)?;
        let mut second = 0;
        let mut millis = 0;
        if cursor.eat(b':') {
            second = cursor.digits(2)?;
            if cursor.eat(b'.') {
                let start = cursor.at;
                let fraction = cursor.run_of_digits();
                if fraction.is_empty() {
                    return None;
                }
                let padded = format!("{:0<3}", &fraction[..fraction.len().min(3)]);
                millis = padded.parse::<i64>().ok()?;
                debug_assert!(cursor.at > start);
            }
        }
        let is_midnight_end = hour == 24 && minute == 0 && second == 0 && millis == 0;
        if !(hour < 24 || is_midnight_end) || minute > 59 || second > 59 {
            return None;
        }
        ms_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
        match cursor.peek() {
            Some(b'Z' | b'z') => cursor.at += 1,
            Some(sign @ (b'+' | b'-')) => {
                cursor.at += 1;
                let hours = cursor.digits(2)?;
                cursor.eat(b':');
                let minutes = cursor.digits(2)?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                offset_minutes = (hours * 60 + minutes) * if sign == b'+' { 1 } else { -1 };
            }
            _ => {}
        }
    }
    if cursor.at != text.len() {
        return None;
    }
    let days = days_from_civil(year, month, 1) + (day - 1);
    let ms = days * 86_400_000 + ms_of_day - offset_minutes * 60_000;
    (ms.abs() <= 8_640_000_000_000_000).then_some(ms)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        if matched {
            self.at += 1;
        }
        matched
    }

    /// Exactly `count` ASCII digits.
    fn digits(&mut self, count: usize) -> Option<i64> {
        let slice = self.bytes.get(self.at..self.at + count)?;
        if !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += count;
        Some(slice.iter().fold(0, |acc, digit| acc * 10 + i64::from(digit - b'0')))
    }

    fn run_of_digits(&mut self) -> &str {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or_default()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RecordRules {
        RecordRules {
            excluded_fields: vec!["sdkConversationRef".into()],
            max_record_bytes: 1 << 20,
        }
    }

    #[test]
    fn dates_parse_as_v8_does() {
        // Expected values are what Node 20's Date.parse returns.
        let cases = [
            ("2024-02-30", Some(1_709_251_200_000)),
            ("2024-13-01", None),
            ("2024-01-01T24:00:00Z", Some(1_704_153_600_000)),
            ("2024-01-01T24:00:01Z", None),
            ("2024-01-01T10:00:00.123456Z", Some(1_704_103_200_123)),
            ("2024-01-01t10:00:00z", Some(1_704_103_200_000)),
            ("2024-01-01 10:00:00Z", Some(1_704_103_200_000)),
            ("2024-01-01T10:00Z", Some(1_704_103_200_000)),
            ("2024-01-01T10Z", None),
            ("+002024-01-01T00:00:00Z", Some(1_704_067_200_000)),
            ("-000000-01-01T00:00:00Z", None),
            ("2024-01-01T10:00:00+05:30", Some(1_704_083_400_000)),
            ("2024-01-01T10:00:00+0530", Some(1_704_083_400_000)),
            ("2024", Some(1_704_067_200_000)),
            ("2024-06", Some(1_717_200_000_000)),
            ("2024-01-01T10:00:60Z", None),
            ("2024-02-29T00:00:00.1Z", Some(1_709_164_800_100)),
            ("2023-02-29T00:00:00Z", Some(1_677_628_800_000)),
            ("yesterday", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_iso_date_ms(text), expected, "{text}");
        }
    }

    #[test]
    fn prepares_a_record_verbatim() {
        let json = r#"{"userId":"u1","updatedAt":"2024-01-01T00:00:00.000Z","history":[]}"#.to_string();
        let record = prepare_record("c1", json.clone(), &rules(), 0).unwrap();
        assert_eq!(record.json, json);
        assert_eq!(record.user_id, "u1");
        assert_eq!(record.score, 1_704_067_200_000);
    }

    #[test]
    fn a_missing_updated_at_scores_now() {
        let json = r#"{"a":1,"userId":"u"}"#.to_string();
        let record = prepare_record("c1", json.clone(), &rules(), 7).unwrap();
        assert_eq!(record.json, json);
        assert_eq!(record.score, 7);
    }

    #[test]
    fn ids_have_bounds() {
        assert_eq!(validate_id("").unwrap_err().code(), "STORE_INVALID_ID");
        assert_eq!(
            validate_id(&"x".repeat(MAX_ID_BYTES + 1)).unwrap_err().code(),
            "STORE_INVALID_ID"
        );
        assert!(validate_id(&"x".repeat(MAX_ID_BYTES)).is_ok());
        assert_eq!(validate_user_id("").unwrap_err().code(), "STORE_INVALID_USER_ID");
    }

    #[test]
    fn refuses_bad_records_with_their_codes() {
        let code = |id: &str, json: &str| prepare_record(id, json.into(), &rules(), 0).unwrap_err().code();
        assert_eq!(code("c", "[1]"), "STORE_INVALID_RECORD");
        assert_eq!(code("c", r#"{"a":1}"#), "STORE_INVALID_USER_ID");
        assert_eq!(code("c", r#"{"userId":""}"#), "STORE_INVALID_USER_ID");
        assert_eq!(code("c", r#"{"userId":5}"#), "STORE_INVALID_USER_ID");
        assert_eq!(
            code("c", r#"{"userId":"u","updatedAt":"soon"}"#),
            "STORE_INVALID_UPDATED_AT"
        );
        let small = RecordRules {
            max_record_bytes: 10,
            ..rules()
        };
        let err = prepare_record("c", r#"{"userId":"u","x":"long"}"#.into(), &small, 0).unwrap_err();
        assert_eq!(err.code(), "STORE_RECORD_TOO_LARGE");
    }

    #[test]
    fn finds_the_owner_and_projects_fields() {
        let json = r#"{"history":[{"userId":"nested"}],"userId":"top","title":"t"}"#;
        assert_eq!(owner_of(json).as_deref(), Some("top"));
        assert_eq!(owner_of(r#"{"a":1,"userId":"only"}"#).as_deref(), Some("only"));
        assert_eq!(owner_of(r#"{"userId":"we\"ird"}"#).as_deref(), Some("we\"ird"));
        // A key that ends in `"userId` is not userId.
        assert_eq!(owner_of(r#"{"a\"userId":"v","b":1}"#), None);
        assert_eq!(
            owner_of(r#"{"a\"userId":"v","userId":"real"}"#).as_deref(),
            Some("real")
        );
        assert_eq!(owner_of(r#"{"userId": "spaced"}"#).as_deref(), Some("spaced"));
        assert_eq!(owner_of("not json"), None);
        let fields = vec!["title".to_string(), "userId".to_string()];
        assert_eq!(
            project_fields("c", json, &fields).unwrap(),
            r#"{"userId":"top","title":"t"}"#
        );
    }

    #[test]
    fn preconditions_compare_updated_at_exactly() {
        let stored = |text: &str| Found::Record(Some(text.to_owned()));
        let at = Precondition::UpdatedAt("2024-01-01T00:00:00.000Z".into());
        assert!(at.holds(&stored("2024-01-01T00:00:00.000Z")));
        assert!(!at.holds(&stored("2024-01-01T00:00:00Z")));
        assert!(!at.holds(&Found::Nothing));
        assert!(!at.holds(&Found::Record(None)));
        assert!(Precondition::Absent.holds(&Found::Nothing));
        assert!(!Precondition::Absent.holds(&Found::Record(None)));
        assert!(Precondition::NoUpdatedAt.holds(&Found::Record(None)));
        let err = at.conflict("c1", &stored("2024-02-01T00:00:00.000Z"));
        assert_eq!(err.code(), "STORE_CONFLICT");
        assert!(err.to_string().contains("2024-02-01T00:00:00.000Z"), "{err}");
        assert_eq!(updated_at_of(r#"{"userId":"u","updatedAt":"x"}"#).as_deref(), Some("x"));
    }

    #[test]
    fn stored_values_that_are_not_records_are_refused_naming_the_key() {
        let reason = |bytes: &[u8]| match stored_record("p:conv:c", "c", bytes.to_vec()) {
            Err(StoreError::CorruptRecord { id, reason }) => {
                assert_eq!(id, "c");
                assert!(reason.starts_with("p:conv:c "), "{reason}");
                reason
            }
            other => panic!("{other:?}"),
        };
        assert!(reason(b"{\"userId\":\"u\xff\"}").contains("not UTF-8"));
        assert!(reason(b" [{\"userId\":\"u\"}]").contains("not a JSON object"));
        assert!(reason(b"42").contains("not a JSON object"));
        assert!(reason(b"{\"userId\":5}").contains("no string userId"));
        assert!(reason(b"{\"title\":\"t\"").contains("not valid JSON"));
        let (json, owner) = stored_record("p:conv:c", "c", br#"{"userId":"u"}"#.to_vec()).unwrap();
        assert_eq!((json.as_str(), owner.as_str()), (r#"{"userId":"u"}"#, "u"));
    }

    #[test]
    fn the_call_budget_is_64_largest_records() {
        let rules = rules();
        assert_eq!(call_byte_budget(&rules), 64 << 20);
        assert!(within_budget("get", 64 << 20, &rules).is_ok());
        let err = within_budget("listByUser(\"u\")", (64 << 20) + 1, &rules).unwrap_err();
        assert_eq!(err.code(), "STORE_RESPONSE_TOO_LARGE");
        assert!(
            err.to_string().starts_with("listByUser(\"u\") read 67108865 bytes"),
            "{err}"
        );
    }

    #[test]
    fn list_query_bounds() {
        assert_eq!(ListQuery::new(None, None, None, 50).unwrap().limit, 50);
        assert!(ListQuery::new(Some(0.0), None, None, 50).is_err());
        assert!(ListQuery::new(Some(1.5), None, None, 50).is_err());
        assert!(ListQuery::new(None, Some(-1.0), None, 50).is_err());
        assert!(ListQuery::new(None, None, Some(vec![]), 50).is_err());
    }
}
