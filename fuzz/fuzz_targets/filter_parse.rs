//! Fuzz target `filter_parse`; the body is `eventbus::fuzzing::filter_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::filter_parse(data));
