//! The "đúng, đủ, sạch, sống" data-quality index (issue 12) on a scripted day, 27 November
//! 2026 (local), against values computed by hand here. Four stations of the shipped
//! registry (cadence 300 s: 288 readings expected a day):
//! - CT-AIR-01 (Long Hòa) sends 80 % of its cadence: a reading every 375 s, 231 readings;
//! - CT-AIR-02 (Bùi Hữu Nghĩa) sends every reading, 12 of them twice (duplicates), and 6
//!   stale readings the engine refuses as late: 306 messages;
//! - CT-AIR-03 (Trà Nóc) sends every reading 10 minutes after measuring it;
//! - CT-DIS-09 (Long Hòa) is calibrating (status 01) for its first 96 readings.
//!
//! Everything else arrives 2 s after measurement.

mod server_support;

use serde_json::{json, Value};

use server_support::*;

const DAY_READINGS: i64 = 288;
const CADENCE: i64 = 300_000;

fn air(source: &str, ts: i64) -> String {
    json!({"source": source, "kind": "air", "ts": ts, "values": {"pm25": 20.0, "pm10": 35.0}})
        .to_string()
}

fn discharge(ts: i64, status: &str) -> String {
    json!({"source": "CT-DIS-09", "kind": "discharge", "ts": ts, "status": status, "values": {"ph": 7.2, "cod": 25.0}}).to_string()
}

async fn scripted_day(h: &Harness) {
    // In measurement order, as the stations' messages reach the pipeline.
    let mut timed: Vec<(i64, String, Option<i64>)> = Vec::new();
    for i in 0..231 {
        let ts = T0 + i * 375_000;
        timed.push((ts, air("CT-AIR-01", ts), Some(ts + 2_000)));
    }
    for i in 0..DAY_READINGS {
        let ts = T0 + i * CADENCE;
        timed.push((ts, air("CT-AIR-02", ts), Some(ts + 2_000)));
        if i % 24 == 0 {
            timed.push((ts, air("CT-AIR-02", ts), Some(ts + 3_000)));
        }
        timed.push((ts, air("CT-AIR-03", ts), Some(ts + 600_000)));
        let status = if i < 96 { "01" } else { "00" };
        timed.push((ts, discharge(ts, status), Some(ts + 2_000)));
    }
    timed.sort_by_key(|(ts, _, _)| *ts);
    let mut lines: Vec<(String, Option<i64>)> = timed.into_iter().map(|(_, l, r)| (l, r)).collect();
    // Six stale readings of CT-AIR-02 at the end of the day: a day behind, refused as late.
    let end = T0 + (DAY_READINGS - 1) * CADENCE;
    for i in 0..6 {
        lines.push((air("CT-AIR-02", T0 + 1_000 + i * 1_000), Some(end + 10_000)));
    }
    for chunk in lines.chunks(200) {
        h.feed_received(chunk.to_vec()).await;
    }
}

fn row<'a>(rows: &'a Value, level: &str, id: &str) -> &'a Value {
    rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["level"] == level && r["id"] == id)
        .unwrap_or_else(|| panic!("no {level} {id} in {rows}"))
}

/// Rounds like the server (four decimals for shares).
fn r4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn assert_index(r: &Value, dung: f64, du: f64, sach: f64, song: f64, what: &str) {
    assert_eq!(r["dung"].as_f64(), Some(r4(dung)), "{what} đúng: {r}");
    assert_eq!(r["du"].as_f64(), Some(r4(du)), "{what} đủ: {r}");
    assert_eq!(r["sach"].as_f64(), Some(r4(sach)), "{what} sạch: {r}");
    assert_eq!(r["song"].as_f64(), Some(r4(song)), "{what} sống: {r}");
    assert_eq!(
        r["index"].as_f64(),
        Some(r1(100.0 * (dung + du + sach + song) / 4.0)),
        "{what} index: {r}"
    );
}

#[tokio::test]
async fn a_scripted_day_gives_the_index_computed_by_hand() {
    let h = harness(&shipped_rules());
    scripted_day(&h).await;
    let (status, q) = h
        .call("GET", "/api/quality?date=2026-11-27", "admin", Value::Null)
        .await;
    assert_eq!(status, 200, "{q}");
    let expected = DAY_READINGS as f64;

    // Stations.
    let a = row(&q, "station", "CT-AIR-01");
    assert_eq!(
        (a["messages"].as_u64(), a["accepted"].as_u64()),
        (Some(231), Some(231)),
        "{a}"
    );
    assert_index(a, 1.0, 231.0 / expected, 1.0, 1.0, "CT-AIR-01");
    assert_eq!(a["delay_median_s"].as_f64(), Some(2.0));
    let b = row(&q, "station", "CT-AIR-02");
    assert_eq!(
        (b["messages"].as_u64(), b["accepted"].as_u64()),
        (Some(306), Some(288)),
        "{b}"
    );
    assert_index(b, 1.0, 1.0, 1.0 - 18.0 / 306.0, 1.0, "CT-AIR-02");
    let c = row(&q, "station", "CT-AIR-03");
    assert_index(c, 1.0, 1.0, 1.0, 0.0, "CT-AIR-03");
    assert_eq!(c["delay_median_s"].as_f64(), Some(600.0), "{c}");
    let d = row(&q, "station", "CT-DIS-09");
    assert_index(d, 192.0 / 288.0, 1.0, 1.0, 1.0, "CT-DIS-09");

    // Long Hòa pools CT-AIR-01 and CT-DIS-09 with its silent stations that have a
    // cadence: four traffic sensors (60 s: 1,440 readings each expected). Its cameras have
    // no cadence and sent nothing: not counted.
    let lh = row(&q, "commune", "long_hoa");
    assert_eq!(lh["stations"].as_u64(), Some(6), "{lh}");
    let lh_expected = 2.0 * expected + 4.0 * 1440.0;
    assert_index(
        lh,
        (231.0 + 192.0) / (231.0 + 288.0),
        (231.0 + 288.0) / lh_expected,
        1.0,
        1.0,
        "long_hoa",
    );

    // The environment sector: ten air and ten discharge stations, four of them speaking.
    let env = row(&q, "sector", "environment");
    assert_eq!(env["stations"].as_u64(), Some(20), "{env}");
    let accepted = 231.0 + 288.0 + 288.0 + 288.0;
    assert_index(
        env,
        (231.0 + 288.0 + 288.0 + 192.0) / accepted,
        accepted / (20.0 * expected),
        1.0 - 18.0 / (231.0 + 306.0 + 288.0 + 288.0),
        (231.0 + 288.0 + 0.0 + 288.0) / accepted,
        "environment",
    );
    // The city's median delay is the median of its stations' medians: 2, 2, 600, 2 → 2 s.
    assert_eq!(
        row(&q, "city", "city")["delay_median_s"].as_f64(),
        Some(2.0)
    );

    // Scoped: the transport department sees none of these stations; Long Hòa's operator
    // its own two only; the worst station comes first.
    let (_, t) = h
        .call(
            "GET",
            "/api/quality?date=2026-11-27&level=station",
            "transport-department",
            Value::Null,
        )
        .await;
    assert!(
        t["rows"].as_array().unwrap().iter().all(|r| r["id"]
            .as_str()
            .unwrap()
            .starts_with("CT-TR")
            || r["id"].as_str().unwrap().starts_with("CT-CAM")),
        "{t}"
    );
    let (_, l) = h
        .call(
            "GET",
            "/api/quality?date=2026-11-27&level=station",
            "long-hoa-operator",
            Value::Null,
        )
        .await;
    let ids: Vec<&str> = l["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"CT-AIR-01") && ids.contains(&"CT-DIS-09") && !ids.contains(&"CT-AIR-02"),
        "{ids:?}"
    );
    let indices: Vec<f64> = l["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["index"].as_f64())
        .collect();
    assert!(
        indices.windows(2).all(|w| w[0] <= w[1]),
        "worst first: {indices:?}"
    );

    // The province's export: the same figures as CSV, for the day and for the month.
    let (status, _) = h
        .call("GET", "/api/quality?month=2026-13", "admin", Value::Null)
        .await;
    assert_eq!(status, 400);
    let csv = h
        .text("/api/quality?date=2026-11-27&format=csv", "admin")
        .await;
    let header = csv.lines().next().unwrap();
    assert_eq!(header, "period,level,id,name,stations,messages,accepted,expected,dung,du,sach,song,delay_median_s,index");
    let line = csv
        .lines()
        .find(|l| l.contains(",station,CT-AIR-02,"))
        .unwrap();
    assert!(
        line.starts_with("2026-11-27,station,CT-AIR-02,")
            && line.contains(",306,288,288,1,1,0.9412,1,"),
        "{line}"
    );
    let month = h
        .text("/api/quality?month=2026-11&format=csv", "admin")
        .await;
    let line = month
        .lines()
        .find(|l| l.contains(",station,CT-AIR-01,"))
        .unwrap();
    assert!(
        line.starts_with("2026-11,station,CT-AIR-01,") && line.contains(",231,231,"),
        "{line}"
    );
}
