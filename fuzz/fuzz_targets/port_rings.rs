//! Fuzz target `port_rings`: see [`vswitch_fuzz::port_rings`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::port_rings::run(data));
