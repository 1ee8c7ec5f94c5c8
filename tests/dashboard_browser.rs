//! The wall-screen dashboard end to end in headless Chromium (Debian's `chromium`, driven
//! by `playwright-core` from `tests/browser/`; `.ci/run` installs both): `watchfloor demo`
//! starts, two operators of ward Long Hòa log in, the scripted camera fire appears on both
//! screens, the first acknowledges it and the second sees the acknowledgement live.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::{free_port, scratch};

#[test]
fn two_operators_see_an_incident_and_its_acknowledgement_live_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let browser = root.join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "needs Debian's chromium (apt-get install chromium); .ci/run installs it"
    );
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "needs playwright-core (npm ci --prefix tests/browser); .ci/run installs it"
    );
    let data = scratch("browser", "demo");
    let status = Command::new("node")
        .current_dir(&browser)
        .arg("e2e.mjs")
        .arg(env!("CARGO_BIN_EXE_watchfloor"))
        .arg(free_port().to_string())
        .arg(free_port().to_string())
        .arg(&data)
        .arg(data.join("dashboard.png"))
        .status()
        .expect("node must be installed");
    assert!(
        status.success(),
        "the browser test failed (its log is above)"
    );
    assert!(data.join("dashboard.png").exists(), "screenshot taken");
    let audit = std::fs::read_to_string(data.join("audit.ndjson")).unwrap();
    assert!(
        audit.contains("\"action\":\"acknowledge\""),
        "the acknowledgement is audited: {audit}"
    );
}
