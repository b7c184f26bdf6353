//! Fuzz target `vxlan_outer`: see [`vswitch_fuzz::vxlan_outer`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::vxlan_outer::run(data));
