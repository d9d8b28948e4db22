//! Fuzz target `schema_register`; the body is `eventbus::fuzzing::schema_register`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::schema_register(data));
