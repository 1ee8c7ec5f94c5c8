//! The Circular 10/2021 (TT10) line decoder on arbitrary bytes: every line refused or
//! decoded, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchfloor_model::{decode_tt10, DecodeLimits, Kind, Tt10Context};

fuzz_target!(|data: &[u8]| {
    let ctx = Tt10Context {
        station: "CT_NM01_KT01".into(),
        kind: Kind::Discharge,
        utc_offset_seconds: 7 * 3600,
    };
    let _ = decode_tt10(data, &ctx, Some(1_795_712_400_000), &DecodeLimits::default());
});
