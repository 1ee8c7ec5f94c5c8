//! The playbook loader on arbitrary text: compiled or refused with `file:line` errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchfloor_playbooks::{Known, Library};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let known = Known {
        rules: vec!["camera_fire_smoke".into(), "flood_level".into()],
        sectors: vec!["environment".into()],
    };
    let _ = Library::from_sources(&[("fuzz.yaml".into(), text)], &known);
});
