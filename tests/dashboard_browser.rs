//! The wall-screen dashboard end to end in headless Chromium (Debian's `chromium`, driven
//! by `playwright-core` from `tests/browser/`; `.ci/run` installs both): `watchfloor demo`
//! starts, two operators of ward Long Hòa log in, the scripted camera fire appears on both
//! screens, the first acknowledges it and the second sees the acknowledgement live; a
//! department centre and a commune centre each show their own title, indicators and
//! alerts, and the commune's data-quality ranking holds its own stations only; the fire's
//! playbook checklist is on both operators' screens, a step done by one is seen done live
//! by the other, and nobody outside the ward sees or acts on the run.

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
    for shot in [
        "dashboard.png",
        "department-centre.png",
        "commune-centre.png",
        "commune-quality.png",
        "playbook-checklist.png",
        "drill-report.png",
    ] {
        assert!(data.join(shot).exists(), "screenshot {shot} taken");
    }
    // The acknowledgement is in the demo's incident store, audited, after the demo stopped.
    let url = format!("sqlite:{}", data.join("incidents.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (audit, acknowledged) = runtime.block_on(async {
        let store = watchfloor_store::Store::open(&url).await.unwrap();
        let audit = store.audit(0, 1000).await.unwrap();
        let page = store
            .query(&watchfloor_store::AlertQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        (
            audit,
            page.alerts.into_iter().filter(|a| a.ack.is_some()).count(),
        )
    });
    assert!(
        audit
            .iter()
            .any(|a| a.action == "acknowledge" && a.by == "long-hoa-operator-1"),
        "the acknowledgement is audited: {audit:?}"
    );
    assert_eq!(acknowledged, 1, "one alert acknowledged in the store");
    // The playbook step done from the screen, and the viewer's refused attempt, audited.
    assert!(
        audit.iter().any(|a| a.action == "playbook step"
            && a.by == "long-hoa-operator-1"
            && a.target.ends_with("/dispatch")),
        "the dispatch step done from the screen is audited: {audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "playbook step refused" && a.by == "wall-display"),
        "the viewer's refused action is audited: {audit:?}"
    );
}
