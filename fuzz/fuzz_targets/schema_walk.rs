//! Fuzz target `schema_walk`; the body is `eventbus::fuzzing::schema_walk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::schema_walk(data));
