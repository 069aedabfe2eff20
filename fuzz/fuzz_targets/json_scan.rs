//! The top-level scanner against serde_json, on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_conversation_store::fuzzing;

fuzz_target!(|text: &str| {
    fuzzing::check_scan(text);
});
