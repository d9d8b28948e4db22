//! Fuzz target `topics_folder`; the body is `eventbus::fuzzing::topics_folder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventbus::fuzzing::topics_folder(data));
