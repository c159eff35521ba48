#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| graft_fuzz::predict_upload(data));
