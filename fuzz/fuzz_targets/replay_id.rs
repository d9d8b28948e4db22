//! Fuzz target `replay_id`; the body is `eventbus::fuzzing::replay_id`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::replay_id(data));
