#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| embedlog::__fuzz::txn_state_decode(data));
