#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slup_tests::flash_image::check(data));
