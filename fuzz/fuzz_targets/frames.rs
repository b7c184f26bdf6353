//! Fuzz target `frames`: see [`vswitch_fuzz::frames`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::frames::run(data));
