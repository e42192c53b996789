#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| embedlog::__fuzz::read_only_dir(data));
