//! The rule loader on arbitrary text: a rule file is compiled or refused with `file:line`
//! errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchfloor_engine::{LookupTables, RuleSet};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = RuleSet::from_sources(&[("fuzz.yaml".into(), text)], LookupTables::default());
});
