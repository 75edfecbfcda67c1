#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slup_core::fuzzing::roundtrip(data));
