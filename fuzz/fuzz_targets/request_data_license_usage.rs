#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    slup_core::fuzzing::request_data(slup_core::types::RequestType::LICENSE_USAGE, data)
});
