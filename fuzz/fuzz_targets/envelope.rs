//! The JSON envelope decoder (one envelope or an array of them) on arbitrary bytes: it must
//! refuse or accept, never panic, whatever a station sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchfloor_model::{decode_envelopes, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let _ = decode_envelopes(data, Some(1_795_712_400_000), &DecodeLimits::default());
});
