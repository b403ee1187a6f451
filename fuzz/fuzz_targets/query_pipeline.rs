//! cargo-fuzz target: any bytes as a query to the fixture zones (rampart::fuzz::query_pipeline).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart::fuzz::query_pipeline(data));
