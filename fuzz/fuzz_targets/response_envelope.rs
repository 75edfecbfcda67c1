#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slup_core::fuzzing::response_envelope(data));
