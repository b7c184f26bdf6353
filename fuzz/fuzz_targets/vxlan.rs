//! Fuzz target `vxlan`: see [`vswitch_fuzz::vxlan`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::vxlan::run(data));
