//! Fuzz target `json_to_avro`; the body is `eventbus::fuzzing::json_to_avro`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::json_to_avro(data));
