#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rkt_fuzz::spdy_frames(data));
