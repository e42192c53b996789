#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| embedlog::__fuzz::inspect_segment(data));
