//! Fuzz target `nic_checksum`: see [`vswitch_fuzz::nic_checksum`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::nic_checksum::run(data));
