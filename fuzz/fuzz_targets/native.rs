#![no_main]

use libfuzzer_sys::fuzz_target;
use overreach::decode::Format;

fuzz_target!(|data: &[u8]| overreach_fuzz::decode(data, Format::Native));
