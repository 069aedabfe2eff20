//! A scanner for the top level of a JSON object.
//!
//! The store only ever needs a record's top-level members (`userId`,
//! `updatedAt`, excluded fields, the fields a listing asks for). Building a
//! full tree of a 64 KB chat history to read two strings would be waste, so
//! this walks the top level and skips nested values by matching brackets,
//! jumping over strings. It never panics on malformed text: it reports it.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// The text is valid-looking JSON but not an object (`"array"`, `"string"`, ...).
    NotAnObject(&'static str),
    /// The text is not JSON; the byte offset where scanning gave up.
    Malformed(usize),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::NotAnObject(kind) => write!(f, "expected a JSON object, got {kind}"),
            ScanError::Malformed(at) => write!(f, "not valid JSON (at byte {at})"),
        }
    }
}

/// One top-level member: `raw_key` is the key as written between its quotes
/// (escapes not decoded), `value` the value's JSON text, `span` the byte range
/// from the key's opening quote to the end of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub raw_key: &'a str,
    pub value: &'a str,
    pub span: Range<usize>,
}

impl Member<'_> {
    /// Compares the key with `name`, decoding escapes only when there are any.
    pub fn key_is(&self, name: &str) -> bool {
        if self.raw_key.contains('\\') {
            decode_string_body(self.raw_key).is_some_and(|key| key == name)
        } else {
            self.raw_key == name
        }
    }

    /// The value as a decoded string, or `None` if it is not a JSON string.
    pub fn string_value(&self) -> Option<String> {
        let body = self.value.strip_prefix('"')?.strip_suffix('"')?;
        if body.contains('\\') {
            decode_string_body(body)
        } else {
            Some(body.to_owned())
        }
    }
}

fn decode_string_body(body: &str) -> Option<String> {
    serde_json::from_str::<String>(&format!("\"{body}\"")).ok()
}

/// Splits a JSON object into its top-level members, in document order.
pub fn object_members(text: &str) -> Result<Vec<Member<'_>>, ScanError> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    match bytes.get(pos) {
        Some(b'{') => {}
        Some(b'[') => return Err(ScanError::NotAnObject("an array")),
        Some(b'"') => return Err(ScanError::NotAnObject("a string")),
        Some(b'n') if text[pos..].trim_end() == "null" => return Err(ScanError::NotAnObject("null")),
        Some(b't' | b'f') => return Err(ScanError::NotAnObject("a boolean")),
        Some(b'-' | b'0'..=b'9') => return Err(ScanError::NotAnObject("a number")),
        _ => return Err(ScanError::Malformed(pos)),
    }
    pos = skip_ws(bytes, pos + 1);
    if bytes.get(pos) == Some(&b'}') {
        return finish(bytes, pos + 1, Vec::new());
    }
    closing_members(text, pos)
}

/// The members from the one whose key starts at `pos` to the end of the
/// object, when they close it exactly (only whitespace after the `}`).
///
/// A record's owner is often near its end, after a long history: if
/// `"userId":` found there starts members that close the text exactly, it is
/// a top-level key (a nested one would leave its containers' closers after
/// it), and these are all the members after it, so the last duplicate is
/// among them; the whole record is not scanned.
pub fn closing_members(text: &str, mut pos: usize) -> Result<Vec<Member<'_>>, ScanError> {
    let bytes = text.as_bytes();
    let mut members = Vec::new();
    loop {
        if bytes.get(pos) != Some(&b'"') {
            return Err(ScanError::Malformed(pos));
        }
        let key_start = pos;
        let key_end = skip_string(bytes, pos)?;
        pos = skip_ws(bytes, key_end);
        if bytes.get(pos) != Some(&b':') {
            return Err(ScanError::Malformed(pos));
        }
        let value_start = skip_ws(bytes, pos + 1);
        let value_end = skip_value(bytes, value_start)?;
        members.push(Member {
            raw_key: &text[key_start + 1..key_end - 1],
            value: &text[value_start..value_end],
            span: key_start..value_end,
        });
        pos = skip_ws(bytes, value_end);
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(bytes, pos + 1),
            Some(b'}') => return finish(bytes, pos + 1, members),
            _ => return Err(ScanError::Malformed(pos)),
        }
    }
}

fn finish<'a>(bytes: &[u8], pos: usize, members: Vec<Member<'a>>) -> Result<Vec<Member<'a>>, ScanError> {
    let end = skip_ws(bytes, pos);
    if end == bytes.len() {
        Ok(members)
    } else {
        Err(ScanError::Malformed(end))
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening quote; returns the index just past the closing one.
/// Most of a chat record is text inside strings, so this jumps with a SIMD
/// search for the next quote or backslash instead of walking bytes.
fn skip_string(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    let mut at = pos + 1;
    while let Some(offset) = bytes.get(at..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
        at += offset;
        if bytes[at] == b'"' {
            return Ok(at + 1);
        }
        at += 2; // a backslash escapes the next byte
    }
    Err(ScanError::Malformed(pos))
}

/// Returns the index just past the value that starts at `pos`.
fn skip_value(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    match bytes.get(pos) {
        Some(b'"') => skip_string(bytes, pos),
        Some(b'{' | b'[') => skip_container(bytes, pos),
        Some(_) => {
            let end = bytes[pos..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .map_or(bytes.len(), |offset| pos + offset);
            let token = &bytes[pos..end];
            let is_literal = matches!(token, b"true" | b"false" | b"null");
            let is_number = token.first().is_some_and(|b| *b == b'-' || b.is_ascii_digit())
                && token
                    .iter()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            if is_literal || is_number {
                Ok(end)
            } else {
                Err(ScanError::Malformed(pos))
            }
        }
        None => Err(ScanError::Malformed(pos)),
    }
}

/// Skips a nested object or array by matching brackets (strings jumped over).
fn skip_container(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    let mut open: Vec<u8> = Vec::with_capacity(8);
    let mut at = pos;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = skip_string(bytes, at)?;
                continue;
            }
            b'{' => open.push(b'}'),
            b'[' => open.push(b']'),
            b'}' | b']' => {
                if open.pop() != Some(byte) {
                    return Err(ScanError::Malformed(at));
                }
                if open.is_empty() {
                    return Ok(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Err(ScanError::Malformed(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_top_level_members_and_skips_nesting() {
        let text = r#" {"a":1,"b":{"c":[1,"}]",{"d":null}]},"e":"x\"y","f":true} "#;
        let members = object_members(text).unwrap();
        let keys: Vec<_> = members.iter().map(|m| m.raw_key).collect();
        assert_eq!(keys, ["a", "b", "e", "f"]);
        assert_eq!(members[1].value, r#"{"c":[1,"}]",{"d":null}]}"#);
        assert_eq!(members[2].string_value().as_deref(), Some("x\"y"));
        assert_eq!(&text[members[3].span.clone()], r#""f":true"#);
    }

    #[test]
    fn closing_members_are_the_object_s_last_ones_only() {
        let text = r#"{"h":[{"k":1}],"userId":"u","n":{"m":2}} "#;
        let at = text.find(r#""userId""#).unwrap();
        let members = closing_members(text, at).unwrap();
        let keys: Vec<_> = members.iter().map(|m| m.raw_key).collect();
        assert_eq!(keys, ["userId", "n"]);
        // Members of a nested object leave its parent's closer behind.
        let nested = r#"{"h":{"userId":"n","k":1}}"#;
        let at = nested.find(r#""userId""#).unwrap();
        assert!(matches!(closing_members(nested, at), Err(ScanError::Malformed(_))));
        let in_array = r#"{"h":[{"userId":"n"}]}"#;
        let at = in_array.find(r#""userId""#).unwrap();
        assert!(matches!(closing_members(in_array, at), Err(ScanError::Malformed(_))));
    }

    #[test]
    fn decodes_escaped_keys() {
        let members = object_members(r#"{"user\u0049d":"u1"}"#).unwrap();
        assert!(members[0].key_is("userId"));
    }

    #[test]
    fn names_what_is_not_an_object() {
        assert_eq!(object_members("[1]"), Err(ScanError::NotAnObject("an array")));
        assert_eq!(object_members("null"), Err(ScanError::NotAnObject("null")));
        assert_eq!(object_members("\"s\""), Err(ScanError::NotAnObject("a string")));
        assert_eq!(object_members("12"), Err(ScanError::NotAnObject("a number")));
    }

    #[test]
    fn rejects_malformed_text_without_panicking() {
        for text in [
            "",
            "{",
            "{\"a\"",
            "{\"a\":}",
            "{\"a\":[1}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{\"a\":\"",
            "{\"a\":\"\\",
        ] {
            assert!(matches!(object_members(text), Err(ScanError::Malformed(_))), "{text:?}");
        }
    }
}
