//! Fuzz target `csb`: see [`vswitch_fuzz::csb`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::csb::run(data));
