//! The drill script loader on arbitrary text: compiled or refused with `file:line` errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchfloor_drills::{spec::compile, Known};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let known = Known {
        stations: vec!["CT-CAM-02".into()],
        rules: vec!["camera_fire_smoke".into()],
        steps: Vec::new(),
        zones: vec!["long_hoa".into()],
    };
    let _ = compile("fuzz.yaml", &text, &known);
});
