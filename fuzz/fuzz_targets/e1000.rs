//! Fuzz target `e1000`: see [`vswitch_fuzz::e1000`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::e1000::run(data));
