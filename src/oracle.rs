//! Trusted answers for the hand-written parts, shared by the property tests
//! (`cargo test`) and the fuzz targets (`fuzz/`): each `check_*` runs one
//! hand-written function and the oracle on the same input and panics with
//! both answers when they disagree.
//!
//! The oracles: `serde_json` for JSON (top-level members in document order,
//! duplicates kept, the last one winning as in `JSON.parse`), and the
//! standard library for UTF-8/UTF-16. What the hand-written code promises on
//! text that is not JSON is narrower, on purpose: the scanner splits the top
//! level and skips nested values without validating them (records reach it
//! from `JSON.stringify`; on the way out `JSON.parse` checks every byte), so
//! on malformed input it must not panic and must return spans inside the
//! text, but it may accept what `serde_json` refuses inside a nested value.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::json_scan::{object_members, ScanError};
use crate::record::{self, RecordRules, MAX_ID_BYTES};
use crate::text;

/// A JSON object's top-level members as `serde_json` reads them.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// What `serde_json` says a text is.
enum Parsed {
    Object(Vec<(String, Value)>),
    NotAnObject,
    /// Not JSON to `serde_json` (or nested past its recursion limit, or
    /// holding a lone surrogate escape, which `JSON.parse` would accept):
    /// the hand-written code owes no particular answer, only no panic.
    Unknown,
}

fn parse(text: &str) -> Parsed {
    match serde_json::from_str::<Members>(text) {
        Ok(Members(members)) => Parsed::Object(members),
        Err(_) => match serde_json::from_str::<Value>(text) {
            Ok(_) => Parsed::NotAnObject,
            Err(_) => Parsed::Unknown,
        },
    }
}

impl Parsed {
    /// The top-level member `key` as `JSON.parse` sees it: the last one.
    fn last(&self, key: &str) -> Option<&Value> {
        match self {
            Parsed::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    fn last_string(&self, key: &str) -> Option<&str> {
        self.last(key).and_then(Value::as_str)
    }
}

/// A top-level string member as `JSON.parse` reads it (the last of
/// duplicates), or `None` when `serde_json` cannot say (not JSON to it).
#[cfg(test)]
pub fn expected_top_level_string(text: &str, key: &str) -> Option<Option<String>> {
    let parsed = parse(text);
    match parsed {
        Parsed::Unknown => None,
        _ => Some(parsed.last_string(key).map(str::to_owned)),
    }
}

/// The scanner against `serde_json`: the same members, in order, with the
/// same keys and values; `NotAnObject` for other JSON; spans always inside.
pub fn check_scan(text: &str) {
    let ours = object_members(text);
    if let Ok(members) = &ours {
        for member in members {
            let span = text
                .get(member.span.clone())
                .unwrap_or_else(|| panic!("span off a char boundary: {text:?}"));
            assert!(
                span.starts_with('"') && span.ends_with(member.value),
                "span {span:?} of {text:?}"
            );
        }
    }
    match parse(text) {
        Parsed::Object(expected) => {
            let members = ours.unwrap_or_else(|err| panic!("scanner refused valid JSON ({err}): {text:?}"));
            assert_eq!(members.len(), expected.len(), "member count of {text:?}");
            for (member, (key, value)) in members.iter().zip(&expected) {
                assert!(
                    member.key_is(key),
                    "key {:?} is not {key:?} in {text:?}",
                    member.raw_key
                );
                let ours: Value = serde_json::from_str(member.value)
                    .unwrap_or_else(|err| panic!("value {:?} of {key:?} is not JSON ({err}): {text:?}", member.value));
                assert_eq!(&ours, value, "value of {key:?} in {text:?}");
                assert_eq!(
                    member.string_value().as_deref(),
                    value.as_str(),
                    "string value of {key:?}"
                );
            }
        }
        Parsed::NotAnObject => {
            assert!(matches!(ours, Err(ScanError::NotAnObject(_))), "{ours:?} for {text:?}");
        }
        Parsed::Unknown => {}
    }
}

/// Reading `userId` and `updatedAt` out of a stored record (the listing's
/// and the index's view of its owner) against `JSON.parse`'s answer.
pub fn check_stored_record(text: &str) {
    let parsed = parse(text);
    if matches!(parsed, Parsed::Unknown) {
        let _ = (
            record::owner_of(text),
            record::updated_at_of(text),
            record::updated_at_ms(text),
        );
        return;
    }
    assert_eq!(
        record::owner_of(text).as_deref(),
        parsed.last_string("userId"),
        "owner of {text:?}"
    );
    let updated_at = parsed.last_string("updatedAt");
    assert_eq!(
        record::updated_at_of(text).as_deref(),
        updated_at,
        "updatedAt of {text:?}"
    );
    assert_eq!(
        record::updated_at_ms(text),
        updated_at.and_then(record::parse_iso_date_ms),
        "updatedAt score of {text:?}"
    );
}

/// `prepare_record` (a record on its way in) against `serde_json`'s parse:
/// the owner and score it extracts, the error it gives, the bytes it keeps.
pub fn check_prepare(text: &str) {
    const NOW_MS: i64 = 7;
    let rules = RecordRules {
        excluded_fields: vec!["sdkConversationRef".into()],
        max_record_bytes: 4096,
    };
    let ours = record::prepare_record("c", text.to_owned(), &rules, NOW_MS);
    let parsed = parse(text);
    let expected: Result<(String, i64), &str> = match &parsed {
        Parsed::Unknown => return,
        Parsed::NotAnObject => Err("STORE_INVALID_RECORD"),
        Parsed::Object(_) => match parsed.last("userId") {
            Some(Value::String(owner)) if !owner.is_empty() && owner.len() <= MAX_ID_BYTES => {
                match parsed.last("updatedAt") {
                    None => Ok((owner.clone(), NOW_MS)),
                    Some(Value::String(date)) => record::parse_iso_date_ms(date)
                        .map(|ms| (owner.clone(), ms))
                        .ok_or("STORE_INVALID_UPDATED_AT"),
                    Some(_) => Err("STORE_INVALID_UPDATED_AT"),
                }
            }
            _ => Err("STORE_INVALID_USER_ID"),
        },
    };
    let expected = expected.and_then(|found| {
        if text.len() > rules.max_record_bytes {
            Err("STORE_RECORD_TOO_LARGE")
        } else {
            Ok(found)
        }
    });
    match (ours, expected) {
        (Ok(prepared), Ok((owner, score))) => {
            assert_eq!(prepared.json, text, "bytes kept");
            assert_eq!((prepared.user_id, prepared.score), (owner, score), "{text:?}");
        }
        (Err(err), Err(code)) => assert_eq!(err.code(), code, "{err} for {text:?}"),
        (ours, expected) => panic!("prepare_record gave {ours:?}, serde_json says {expected:?}: {text:?}"),
    }
}

/// UTF-8 → UTF-16 against `str::encode_utf16`.
pub fn check_utf8_to_utf16(text: &str) {
    let expected: Vec<u16> = text.encode_utf16().collect();
    assert_eq!(text::utf8_to_utf16(text), expected, "{text:?}");
}

/// UTF-16 → UTF-8 against `String::from_utf16` (`None` for lone surrogates).
pub fn check_utf16_to_utf8(units: &[u16]) {
    assert_eq!(text::utf16_to_utf8(units), String::from_utf16(units).ok(), "{units:x?}");
}

/// Stored bytes → text against `String::from_utf8`.
pub fn check_utf8_text(bytes: &[u8]) {
    assert_eq!(
        record::utf8_text(bytes.to_vec()),
        String::from_utf8(bytes.to_vec()).ok(),
        "{bytes:x?}"
    );
}

/// Generated JSON for the property tests: documents written with or
/// without whitespace and escapes, keys that collide with `userId` and
/// `updatedAt` at every depth, strings that contain those keys' text,
/// numbers in every JSON form, surrogate pairs, and duplicate keys.
#[cfg(test)]
pub mod generate {
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    pub enum Json {
        Null,
        Bool(bool),
        /// The number's JSON text, in any valid form.
        Number(String),
        Str(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    /// How a document is written: `JSON.stringify`'s compact form, or with
    /// whitespace, non-ASCII as `\u` escapes (astral characters as surrogate
    /// pairs), and keys with an escaped first letter.
    #[derive(Debug, Clone, Copy)]
    pub struct Style {
        pub spaces: bool,
        pub escape_non_ascii: bool,
        pub escape_keys: bool,
    }

    impl Json {
        pub fn write(&self, style: Style) -> String {
            let mut out = String::new();
            self.write_to(&mut out, style);
            out
        }

        fn write_to(&self, out: &mut String, style: Style) {
            let gap = if style.spaces { " " } else { "" };
            match self {
                Json::Null => out.push_str("null"),
                Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
                Json::Number(text) => out.push_str(text),
                Json::Str(text) => write_string(out, text, style.escape_non_ascii, false),
                Json::Array(items) => {
                    out.push('[');
                    for (at, item) in items.iter().enumerate() {
                        if at > 0 {
                            out.push(',');
                        }
                        out.push_str(gap);
                        item.write_to(out, style);
                    }
                    out.push_str(gap);
                    out.push(']');
                }
                Json::Object(members) => {
                    out.push('{');
                    for (at, (key, value)) in members.iter().enumerate() {
                        if at > 0 {
                            out.push(',');
                        }
                        out.push_str(gap);
                        write_string(out, key, style.escape_non_ascii, style.escape_keys);
                        out.push_str(gap);
                        out.push(':');
                        out.push_str(gap);
                        value.write_to(out, style);
                    }
                    out.push_str(gap);
                    out.push('}');
                }
            }
        }

        /// The same object without duplicate top-level keys (the last
        /// kept, as `JSON.parse` would), as every `JSON.stringify` output is.
        pub fn without_duplicate_keys(self) -> Json {
            match self {
                Json::Object(members) => {
                    let mut seen = std::collections::HashSet::new();
                    let mut unique: Vec<_> = members
                        .into_iter()
                        .rev()
                        .filter(|(key, _)| seen.insert(key.clone()))
                        .collect();
                    unique.reverse();
                    Json::Object(unique)
                }
                other => other,
            }
        }
    }

    fn write_string(out: &mut String, text: &str, escape_non_ascii: bool, escape_first: bool) {
        out.push('"');
        for (at, character) in text.chars().enumerate() {
            match character {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || (escape_non_ascii && !c.is_ascii()) || (escape_first && at == 0) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    pub fn style() -> impl Strategy<Value = Style> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(spaces, escape_non_ascii, escape_keys)| Style {
            spaces,
            escape_non_ascii,
            escape_keys,
        })
    }

    /// Keys that matter to the store, often; any text sometimes.
    pub fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just("userId".to_owned()),
            2 => Just("updatedAt".to_owned()),
            2 => Just("history".to_owned()),
            1 => Just("content".to_owned()),
            1 => Just("userid".to_owned()),
            2 => "\\PC{0,6}",
        ]
    }

    /// Strings, including ones holding the text of a key and its value.
    pub fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "\\PC{0,12}",
            1 => any::<String>(),
            1 => Just("\"userId\":\"mallory\"".to_owned()),
            1 => Just("{\"userId\":\"x\",\"updatedAt\":\"2020-01-01\"}".to_owned()),
            1 => Just("[{\\u".to_owned()),
            1 => Just("caf\u{e9} \u{1F44B}\u{10FFFF}".to_owned()),
            2 => date(),
            1 => Just("u1".to_owned()),
        ]
    }

    /// Dates `Date.parse` reads, and some it does not.
    pub fn date() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{4}-(0[1-9]|1[0-2])-[0-2][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}Z",
            "[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?",
            "[+-][0-9]{6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}([+-][0-9]{2}:?[0-9]{2})?",
            Just("soon".to_owned()),
        ]
    }

    /// Every JSON number form: sign, zero, fraction, exponent of either case and sign.
    pub fn number() -> impl Strategy<Value = String> {
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?"
    }

    pub fn value() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            number().prop_map(Json::Number),
            string().prop_map(Json::Str),
        ];
        leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                prop::collection::vec((key(), inner), 0..5).prop_map(Json::Object),
            ]
        })
    }

    /// A record-like object: top-level members drawn from the store's keys,
    /// with values that nest those keys again (history messages).
    pub fn object() -> impl Strategy<Value = Json> {
        prop::collection::vec((key(), value()), 0..8).prop_map(Json::Object)
    }

    /// A record as a store meets it: unique top-level keys, sometimes with
    /// a long member that pushes `userId` past the first kilobyte (where the
    /// Lua lookup stops reading) or a long `userId` that crosses it.
    pub fn stored_record() -> impl Strategy<Value = Json> {
        let padded = (object(), any::<prop::sample::Index>(), 0..1200usize, any::<bool>()).prop_map(
            |(doc, at, length, pad_owner)| match doc {
                Json::Object(mut members) => {
                    if pad_owner {
                        members.push(("userId".to_owned(), Json::Str("u".repeat(length + 1))));
                    } else {
                        let at = at.index(members.len() + 1);
                        members.insert(at, ("title".to_owned(), Json::Str("t".repeat(length))));
                    }
                    Json::Object(members)
                }
                other => other,
            },
        );
        prop_oneof![4 => padded, 1 => deep()].prop_map(Json::without_duplicate_keys)
    }

    /// Values nested `depth` deep inside one member, arrays and objects mixed.
    pub fn deep() -> impl Strategy<Value = Json> {
        (prop::collection::vec(any::<bool>(), 1..120), value()).prop_map(|(kinds, leaf)| {
            let nested = kinds.into_iter().fold(leaf, |inner, as_array| {
                if as_array {
                    Json::Array(vec![Json::Null, inner])
                } else {
                    Json::Object(vec![("userId".to_owned(), inner)])
                }
            });
            Json::Object(vec![
                ("history".to_owned(), nested),
                ("userId".to_owned(), Json::Str("u".into())),
            ])
        })
    }

    /// A document with one edit that usually breaks it: a byte removed, a
    /// structural byte inserted, or the text cut short.
    pub fn broken() -> impl Strategy<Value = String> {
        (
            object(),
            style(),
            any::<prop::sample::Index>(),
            0..3u8,
            prop::sample::select(&b"\"{}[],:\\ x0"[..]),
        )
            .prop_map(|(doc, style, at, edit, byte)| {
                let mut bytes = doc.write(style).into_bytes();
                let at = at.index(bytes.len() + 1);
                match edit {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::generate;
    use super::*;

    /// Thousands of cases per property in `cargo test`; `PROPTEST_CASES=N`
    /// (proptest's own variable) for a longer run.
    fn config() -> ProptestConfig {
        let mut config = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = 2000;
        }
        config
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn scanner_agrees_with_serde_json(doc in generate::object(), style in generate::style()) {
            check_scan(&doc.write(style));
        }

        #[test]
        fn scanner_names_other_json_values(doc in generate::value(), style in generate::style()) {
            check_scan(&doc.write(style));
        }

        #[test]
        fn scanner_skips_deep_nesting(doc in generate::deep(), style in generate::style()) {
            check_scan(&doc.write(style));
        }

        #[test]
        fn broken_json_never_panics_nor_lies_about_valid_parts(text in generate::broken()) {
            check_scan(&text);
            check_stored_record(&text);
            check_prepare(&text);
        }

        #[test]
        fn owner_and_updated_at_agree_with_serde_json(doc in generate::object(), style in generate::style()) {
            let text = doc.write(style);
            check_stored_record(&text);
            check_prepare(&text);
        }

        #[test]
        fn owner_of_deeply_nested_records(doc in generate::deep(), style in generate::style()) {
            check_stored_record(&doc.write(style));
        }

        #[test]
        fn utf8_to_utf16_agrees_with_std(text in any::<String>()) {
            check_utf8_to_utf16(&text);
        }

        #[test]
        fn utf16_to_utf8_agrees_with_std(units in prop::collection::vec(
            prop_oneof![4 => 0x20u16..0x80, 2 => any::<u16>(), 1 => 0xD800u16..0xE000], 0..40)) {
            check_utf16_to_utf8(&units);
        }

        #[test]
        fn valid_utf16_round_trips(text in any::<String>()) {
            let units: Vec<u16> = text.encode_utf16().collect();
            check_utf16_to_utf8(&units);
        }

        #[test]
        fn stored_bytes_are_text_exactly_when_utf8(bytes in prop::collection::vec(
            prop_oneof![3 => 0x20u8..0x80, 1 => any::<u8>()], 0..40)) {
            check_utf8_text(&bytes);
        }
    }

    #[test]
    fn a_hundred_thousand_levels_do_not_overflow_the_stack() {
        let deep = format!(
            "{{\"history\":{}{},\"userId\":\"u\"}}",
            "[{\"a\":".repeat(100_000),
            "1}]".repeat(100_000)
        );
        let members = object_members(&deep).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(record::owner_of(&deep).as_deref(), Some("u"));
    }

    #[test]
    fn owner_is_never_a_nested_or_shadowed_user_id() {
        // Each was answered wrongly by the fast path before it checked for a
        // bracket before the hit, `\u` escapes, and took the last duplicate.
        for (text, owner) in [
            (r#"{"history":[{"userId":"nested"}]}"#, None),
            (r#"{"userId":5,"history":[{"userId":"nested"}]}"#, None),
            (r#"{"history":[{"userId":"nested"}],"userId" : "top"}"#, Some("top")),
            (r#"{"userId":"first","userId":"last"}"#, Some("last")),
            (r#"{"userId":"raw","user\u0049d":"escaped"}"#, Some("escaped")),
            (r#"[{"userId":"in an array"}]"#, None),
            (r#"{"userId": "spaced"}"#, Some("spaced")),
            // The tail path: the last hit must close the record to count.
            (
                r#"{"history":[{"a":1}],"userId":"top","m":{"userId":"nested"}}"#,
                Some("top"),
            ),
            (
                r#"{"history":[{"a":1}],"userId":"raw","user\u0049d":"escaped"}"#,
                Some("escaped"),
            ),
            (r#"{"history":[1],"userId":"a","userId":"b"}"#, Some("b")),
            (r#"{"history":[1],"userId":5}"#, None),
            (r#"{"history":["x\"userId\":\"fake"],"userId":"real"}"#, Some("real")),
            (r#"{"history":["x\"userId\":\"fake"]}"#, None),
            (
                r#"{"history":[1],"note":"ends in \\","userId":"u","n":[{"userId":"x"}]}"#,
                Some("u"),
            ),
        ] {
            assert_eq!(record::owner_of(text).as_deref(), owner, "{text}");
            check_stored_record(text);
        }
    }
}
