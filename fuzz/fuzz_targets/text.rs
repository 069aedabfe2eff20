//! UTF-8 <-> UTF-16 conversion and stored-bytes decoding against std.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_conversation_store::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::check_utf8_text(data);
    if let Ok(text) = std::str::from_utf8(data) {
        fuzzing::check_utf8_to_utf16(text);
    }
    // The same bytes as UTF-16 code units (little-endian pairs), so lone
    // and split surrogates come up as often as valid pairs.
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    fuzzing::check_utf16_to_utf8(&units);
});
