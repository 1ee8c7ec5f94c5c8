//! The once-a-second KPI refresh: the shipped indicator set computed for the demo city's
//! thirteen zones and three sector views (every sector, environment, transport), with 1,000
//! and 100,000 open alerts spread over the communes (a storm). The refresh runs on the
//! server's timer, not the engine's task, but it must stay well under its one-second budget.
//! `cargo bench -p watchfloor-benches --bench indicators`

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use watchfloor_city::City;
use watchfloor_indicators::{default_set, AlertFact, Computer, Inputs, View};
use watchfloor_model::{decode_envelope, DecodeLimits, Severity};

const T0: i64 = 1_795_712_400_000;

fn bench(c: &mut Criterion) {
    let city = City::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../alert-rules"))
        .unwrap()
        .unwrap();
    let sectors: Vec<String> = city.sectors.all().iter().map(|s| s.id.clone()).collect();
    let mut inputs = Inputs::default();
    // Every sensor reports once.
    for s in &city.stations {
        let values = match s.kind.as_str() {
            "traffic" => r#"{"speed": 30.0}"#,
            "air" => r#"{"pm25": 40.0, "pm10": 60.0}"#,
            "water_level" => r#"{"water_level": 1.2}"#,
            "discharge" => r#"{"cod": 40.0, "ph": 7.0}"#,
            _ => continue,
        };
        let line = format!(
            r#"{{"source":"{}","kind":"{}","ts":{},"values":{values}}}"#,
            s.id,
            s.kind.as_str(),
            T0
        );
        let mut e = decode_envelope(line.as_bytes(), None, &DecodeLimits::default()).unwrap();
        city.place(&mut e).unwrap();
        inputs.observe(&e);
    }
    let views = vec![
        View {
            name: "*".into(),
            sectors: None,
        },
        View {
            name: "environment".into(),
            sectors: Some(vec!["environment".into()]),
        },
        View {
            name: "transport".into(),
            sectors: Some(vec!["transport".into()]),
        },
    ];
    let communes: Vec<String> = city.zones.communes().map(|z| z.id.clone()).collect();
    let sector_sets: Vec<Vec<String>> = vec![
        vec!["environment".into()],
        vec!["transport".into(), "public_safety".into()],
        vec!["public_safety".into()],
    ];
    for n in [1_000usize, 100_000] {
        let keys: Vec<String> = (0..n)
            .map(|i| city.stations[i % city.stations.len()].id.clone())
            .collect();
        let alerts: Vec<AlertFact> = (0..n)
            .map(|i| AlertFact {
                rule: "storm",
                pack: Some(["discharge", "traffic", "camera"][i % 3]),
                key: &keys[i],
                ward: Some(&communes[i % communes.len()]),
                district: None,
                sectors: &sector_sets[i % 3],
                severity: [Severity::Minor, Severity::Major, Severity::Critical][i % 3],
                fired_at: T0 + i as i64,
                ack_at: (i % 2 == 0).then_some(T0 + i as i64 + 60_000),
                resolved_at: None,
            })
            .collect();
        let mut computer = Computer::new(Arc::new(default_set(&sectors).unwrap()));
        let mut now = T0 + 3_600_000;
        c.bench_function(&format!("indicators_refresh_{n}_alerts"), |b| {
            b.iter(|| {
                now += 1_000;
                computer.compute(&city, &inputs, &alerts, &views, now).len()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
