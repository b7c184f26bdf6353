//! Fuzz target `pvh_elf`: see [`vswitch_fuzz::pvh_elf`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::pvh_elf::run(data));
