#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nnunet_rt_fuzz::bundle(data));
