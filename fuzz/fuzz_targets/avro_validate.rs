//! Fuzz target `avro_validate`; the body is `eventbus::fuzzing::avro_validate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::avro_validate(data));
