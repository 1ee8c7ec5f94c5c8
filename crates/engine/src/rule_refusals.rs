//! Rule files that must be refused, one problem each, with the message that names it (the
//! line-by-line contract behind `watchfloor rules check`), and the edge values that must
//! be accepted.

use super::*;

const BASE: &str = "  - id: ok\n    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 50\n    severity: minor\n    message: m\n";

fn load(rules: &str, stations: &str) -> Result<RuleSet, RuleErrors> {
    let lookups = LookupTables::from_csv_text("station", stations).unwrap();
    RuleSet::from_sources(
        &[("t.yaml".to_string(), format!("rules:\n{rules}"))],
        lookups,
    )
}

fn refusal(rules: &str) -> String {
    match load(rules, "source,lat,lon\nA,10,105\n") {
        Ok(_) => panic!("accepted:\n{rules}"),
        Err(e) => e.to_string(),
    }
}

fn rule(body: &str) -> String {
    format!("  - id: r\n{body}")
}

#[test]
fn each_problem_is_refused_with_its_reason() {
    let cases: Vec<(String, &str)> = vec![
        (rule("    match: { kind: air }\n    window: { type: tumbling, size: 0s }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "size"),
        (rule("    match: { kind: air }\n    window: { type: sliding, size: 10m, slide: 3m }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "slide"),
        (rule("    match: { kind: air }\n    window: { type: sliding, size: 5m, slide: 10m }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "slide"),
        (rule("    match: { kind: air }\n    window: { type: sliding, size: 7d, slide: 1m }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "10,000 slides"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm-25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "is not a metric name"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: grave\n    message: m\n"), "severity"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    for: 0\n    severity: minor\n    message: m\n"), "for"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm25), q: max(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "value"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    value: p > 2\n    severity: minor\n    message: m\n"), "value"),
        (rule("    match: { kind: air }\n    aggregates: { key: avg(pm25) }\n    condition: key > 1\n    severity: minor\n    message: m\n"), "key"),
        (rule("    match: { kind: air }\n    constants: { p: 3 }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n"), "p"),
        (rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    escalate:\n      - { severity: major }\n    message: m\n"), "after"),
        ("  - id: \"bad id\"\n    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: minor\n    message: m\n".to_string(), "id"),
        (format!("{BASE}{}", rule("    match: { kind: camera }\n    corroborate: { first: ok, then: nowhere, within: 10m, distance: 2km }\n    severity: major\n    message: m\n")), "nowhere"),
        (format!("{BASE}{}", rule("    match: { kind: camera }\n    corroborate: { first: ok, then: ok, within: 10m, distance: 0km }\n    severity: major\n    message: m\n")), "distance"),
        (format!("{BASE}{}", rule("    match: { kind: camera }\n    corroborate: { first: ok, then: ok, within: 10m, distance: 2km }\n    condition: p > 1\n    severity: major\n    message: m\n")), "corroborat"),
        (format!("{BASE}{}{}", rule("    match: { kind: camera }\n    corroborate: { first: ok, then: ok, within: 10m, distance: 2km }\n    severity: major\n    message: m\n"), "  - id: r2\n    match: { kind: camera }\n    corroborate: { first: r, then: ok, within: 10m, distance: 2km }\n    severity: major\n    message: m\n"), "r"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, needle)| {
            let message = refusal(text);
            (!message.contains(needle))
                .then(|| format!("`{needle}` in the refusal of\n{text}→ {message}\n"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn corroboration_needs_station_positions_and_reads_its_distance_in_km() {
    let text = format!("{BASE}{}", rule("    match: { kind: camera }\n    corroborate: { first: ok, then: ok, within: 10m, distance: 2.5km }\n    severity: major\n    message: m\n"));
    let set = load(&text, "source,lat,lon\nA,10,105\n").unwrap();
    let spec = set.rules[1].corroborate.as_ref().unwrap();
    assert_eq!((spec.within_ms, spec.distance_m), (600_000, 2500.0));
    let err = load(&text, "source,lat\nA,10\n").unwrap_err().to_string();
    assert!(err.contains("lon") || err.contains("position"), "{err}");
}

#[test]
fn more_than_one_problem_says_how_many() {
    let text = format!("{}{}", rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: grave\n    message: m\n"), "  - id: s\n    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: awful\n    message: m\n");
    let err = load(&text, "source,lat,lon\nA,10,105\n").unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    let one = load(&rule("    match: { kind: air }\n    aggregates: { p: avg(pm25) }\n    condition: p > 1\n    severity: grave\n    message: m\n"), "source,x\nA,1\n").unwrap_err();
    assert_eq!(one.0.len(), 1);
    assert_ne!(
        err.to_string().lines().count(),
        one.to_string().lines().count()
    );
}

#[test]
fn edge_values_are_accepted() {
    // Exactly 10,000 slides; a window as long as its slide (tumbling in effect).
    for window in [
        "{ type: sliding, size: 10000m, slide: 1m }",
        "{ type: sliding, size: 5m, slide: 5m }",
    ] {
        let text = rule(&format!("    match: {{ kind: air }}\n    window: {window}\n    aggregates: {{ p: avg(pm25) }}\n    condition: p > 1\n    severity: minor\n    message: m\n"));
        load(&text, "source,lat,lon\nA,10,105\n").unwrap_or_else(|e| panic!("{window}: {e}"));
    }
    // `for: 1`, a finite constant, the aggregate named as the value.
    let text = rule("    match: { kind: air }\n    constants: { limit: 2.5 }\n    aggregates: { p: avg(pm25) }\n    condition: p > limit\n    for: 1\n    value: p\n    severity: minor\n    message: m\n");
    let set = load(&text, "source,lat,lon\nA,10,105\n").unwrap();
    assert_eq!(set.rules[0].for_windows, 1);
}
