//! Fuzz target `service_stream`; the body is `eventbus::fuzzing::service_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::service_stream(data));
