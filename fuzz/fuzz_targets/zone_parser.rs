//! cargo-fuzz target: any bytes as a zone file (rampart::fuzz::zone_parser).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart::fuzz::zone_parser(data));
