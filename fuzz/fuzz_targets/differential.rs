#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slup_tests::differential::check(data));
