//! Record preparation (owner, updatedAt score, errors) and the owner and
//! updatedAt read from stored records, against serde_json's parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_conversation_store::fuzzing;

fuzz_target!(|text: &str| {
    fuzzing::check_prepare(text);
    fuzzing::check_stored_record(text);
});
