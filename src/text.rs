//! Converting record text between V8's UTF-16 and Rust's UTF-8 on tokio.
//!
//! Chat records are mostly ASCII with some other characters. std's
//! char-by-char conversions were most of the worker thread's time on 64 KB
//! records (profiled with perf); these copy runs of ASCII eight units at a
//! time and fall back to std's decoding only for the other characters.

const ASCII_MASK_BYTES: u64 = 0x8080_8080_8080_8080;
const ASCII_MASK_UNITS: u64 = 0xFF80_FF80_FF80_FF80;

/// UTF-8 → UTF-16, for a two-byte V8 string.
pub fn utf8_to_utf16(text: &str) -> Vec<u16> {
    let bytes = text.as_bytes();
    let mut units = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes([
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ]);
            if word & ASCII_MASK_BYTES == 0 {
                units.extend(chunk.iter().map(|&byte| u16::from(byte)));
                at += 8;
                continue;
            }
        }
        if bytes[at] < 0x80 {
            units.push(u16::from(bytes[at]));
            at += 1;
            continue;
        }
        // A multi-byte character: `at` is on a char boundary, as every step
        // above advances by whole ASCII characters.
        let Some(character) = text[at..].chars().next() else {
            break;
        };
        let mut pair = [0u16; 2];
        units.extend_from_slice(character.encode_utf16(&mut pair));
        at += character.len_utf8();
    }
    units
}

/// UTF-16 → UTF-8; `None` for unpaired surrogates (which `JSON.stringify`
/// never produces: it escapes them).
pub fn utf16_to_utf8(units: &[u16]) -> Option<String> {
    let mut text = String::with_capacity(units.len() + units.len() / 8);
    let mut at = 0;
    while at < units.len() {
        if let Some(chunk) = units.get(at..at + 4) {
            let word = chunk.iter().fold(0u64, |word, &unit| (word << 16) | u64::from(unit));
            if word & ASCII_MASK_UNITS == 0 {
                // Four ASCII units: each is its own byte (and char).
                text.extend(chunk.iter().map(|&unit| char::from(unit as u8)));
                at += 4;
                continue;
            }
        }
        let end = units[at..]
            .iter()
            .position(|&unit| unit < 0x80)
            .map_or(units.len(), |offset| at + offset.max(1));
        for decoded in char::decode_utf16(units[at..end].iter().copied()) {
            text.push(decoded.ok()?);
        }
        at = end;
    }
    Some(text)
}

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
