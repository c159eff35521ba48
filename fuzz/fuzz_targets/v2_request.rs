#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| graft_fuzz::v2_request(data));
