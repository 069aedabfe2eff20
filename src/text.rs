//! Converting record text between V8's UTF-16 and Rust's UTF-8 on tokio.
//!
//! Chat records are mostly ASCII with a non-ASCII character every few dozen
//! bytes. The conversions are `encoding_rs`'s (SIMD for the ASCII runs, on
//! x86_64 and aarch64): on the bench's chat records they took 0.6× (to
//! UTF-16) and 0.45× (to UTF-8) the time of the loops this module had, which
//! were most of the worker thread's time per `get` and `set` (perf).

/// UTF-8 → UTF-16, for a two-byte V8 string.
pub fn utf8_to_utf16(text: &str) -> Vec<u16> {
    // UTF-16 never needs more units than UTF-8 has bytes.
    let mut units = vec![0; text.len()];
    let written = encoding_rs::mem::convert_str_to_utf16(text, &mut units);
    units.truncate(written);
    units
}

/// UTF-16 → UTF-8; `None` for unpaired surrogates (which `JSON.stringify`
/// never produces: it escapes them).
pub fn utf16_to_utf8(units: &[u16]) -> Option<String> {
    // Three bytes per unit at most (a surrogate pair: four for two).
    let mut text = "\0".repeat(units.len() * 3);
    let written = encoding_rs::mem::convert_utf16_to_str(units, &mut text);
    text.truncate(written);
    // The conversion writes U+FFFD for an unpaired surrogate: only text with
    // one needs the (as costly) validity pass.
    if text.contains(REPLACEMENT_CHARACTER) && encoding_rs::mem::utf16_valid_up_to(units) != units.len() {
        return None;
    }
    Some(text)
}

const REPLACEMENT_CHARACTER: char = '\u{FFFD}';

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: [&str; 6] = [
        "",
        "plain ascii text that is longer than eight bytes",
        "café naïve résumé — “quoted” über déjà-vu 東京 👍 and more ascii after it",
        "👍👍👍",
        "a\u{0}b\u{7f}c\u{80}d",
        "{\"userId\":\"u1\",\"history\":[{\"content\":\"hé 👋\"}]}",
    ];

    #[test]
    fn matches_std_both_ways() {
        for sample in SAMPLES {
            let units: Vec<u16> = sample.encode_utf16().collect();
            assert_eq!(utf8_to_utf16(sample), units, "{sample}");
            assert_eq!(utf16_to_utf8(&units).as_deref(), Some(sample), "{sample}");
        }
    }

    #[test]
    fn refuses_unpaired_surrogates() {
        assert_eq!(utf16_to_utf8(&[0x61, 0xD800, 0x62]), None);
        assert_eq!(utf16_to_utf8(&[0xDC00]), None);
    }
}
