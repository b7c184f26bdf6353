//! Fuzz target `offload`: see [`vswitch_fuzz::offload`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::offload::run(data));
