//! Domain packs end to end: `watchfloor simulate` with a scripted incident scenario
//! (`tests/scenarios/<pack>.toml`), replayed with the shipped rules (`alert-rules/`), must
//! raise exactly the alerts worked out by hand in each scenario's comments: which rule, which
//! key, at which simulated local time (UTC+7, to the minute), which severity, and nothing
//! else (the calibrating station, the value just under the limit, the brief spike).

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::scratch;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Simulates `scenario` with `seed` for `duration`, replays it, and returns the transitions
/// as `HH:MM rule key state severity` lines (local time).
fn run_scenario(scenario: &str, seed: u64, duration: &str) -> Vec<String> {
    support::scenario::simulate_and_replay(root(), scenario, seed, duration)
        .iter()
        .map(|a| {
            let at = chrono::DateTime::parse_from_rfc3339(a["at"].as_str().unwrap()).unwrap()
                + chrono::Duration::hours(7);
            format!(
                "{} {} {} {} {}",
                at.format("%H:%M"),
                a["rule"].as_str().unwrap(),
                a["key"].as_str().unwrap(),
                a["state"].as_str().unwrap(),
                a["severity"].as_str().unwrap()
            )
        })
        .collect()
}

fn assert_alerts(got: &[String], want: &[&str]) {
    let mut got: Vec<&str> = got.iter().map(String::as_str).collect();
    let mut want = want.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "alerts differ from the hand-worked scenario");
}

#[test]
fn discharge_pack() {
    let got = run_scenario("discharge", 1, "7h");
    assert_alerts(
        &got,
        &[
            // CT-DIS-01, COD 1.5 x 150 during 01:00-02:00: the clock hour closes at 02:00.
            "02:00 discharge_cod_hourly_mean CT-DIS-01 firing major",
            "03:00 discharge_cod_hourly_mean CT-DIS-01 resolved major",
            // CT-DIS-03, four hours over 135: fires at 02:00, critical 2 h later, resolves
            // when the first clean hour (05:00-06:00) closes.
            "02:00 discharge_cod_hourly_mean CT-DIS-03 firing major",
            "04:00 discharge_cod_hourly_mean CT-DIS-03 firing critical",
            "06:00 discharge_cod_hourly_mean CT-DIS-03 resolved critical",
            // CT-DIS-04 pH 4.2 at the 03:00 and 03:05 readings; 03:10 is back in range.
            "03:00 discharge_ph_out_of_range CT-DIS-04 firing major",
            "03:10 discharge_ph_out_of_range CT-DIS-04 resolved major",
            // Nothing for CT-DIS-02 (calibrating, status 01) or CT-DIS-05 (97 % of Cmax).
        ],
    );
}

#[test]
fn station_health_pack() {
    let got = run_scenario("station_health", 2, "5h");
    assert_alerts(
        &got,
        &[
            // Last reading 00:55, silent until 01:40: alert 15 min after the last reading.
            "01:10 station_offline_discharge CT-DIS-06 firing minor",
            "01:40 station_offline_discharge CT-DIS-06 resolved minor",
            // Frozen from 01:00 (= the 00:55 values): the 30-min window 00:55-01:25 holds six
            // identical readings; the first one moving again (02:00) is in the window ending 02:05.
            "01:25 discharge_stuck_sensor CT-DIS-07 firing minor",
            "02:05 discharge_stuck_sensor CT-DIS-07 resolved minor",
            // COD -12 and pH 15.2 at 02:00: impossible, and pH out of range as well.
            "02:00 discharge_impossible_value CT-DIS-08 firing minor",
            "02:05 discharge_impossible_value CT-DIS-08 resolved minor",
            "02:00 discharge_ph_out_of_range CT-DIS-08 firing major",
            "02:05 discharge_ph_out_of_range CT-DIS-08 resolved major",
            // Calibrating 01:00-02:10 (14 readings): 12 in the hour ending 02:00; the window
            // ending 02:15 holds 11. CT-DIS-10's 30-minute calibration raises nothing.
            "02:00 discharge_not_measuring CT-DIS-09 firing minor",
            "02:15 discharge_not_measuring CT-DIS-09 resolved minor",
            // Readings of 03:00, 03:05, 03:10, 03:15 each sent twice: the third refused
            // duplicate falls in the window ending 03:15; the window 03:10-04:10 holds two.
            "03:15 discharge_duplicate_timestamps CT-DIS-01 firing minor",
            "04:10 discharge_duplicate_timestamps CT-DIS-01 resolved minor",
        ],
    );
}

#[test]
fn air_pack() {
    let got = run_scenario("air", 3, "6h");
    assert_alerts(
        &got,
        &[
            // Plume from 01:00: the 15-min window 00:50-01:05 goes from ~16 to 180. The
            // condition last holds for the window ending 01:10; quiet 30 min later.
            "01:05 air_pm25_jump CT-AIR-02 firing minor",
            "01:40 air_pm25_jump CT-AIR-02 resolved minor",
            // SO2 650 for 01:00-03:00: hourly sub-index 150 + 50/250 x 100 = 170, "Xấu", so
            // the alert opens as major. Station and its ward (one station per ward) agree.
            "02:00 air_aqi_station CT-AIR-01 firing major",
            "02:00 air_aqi_ward long_hoa firing major",
            // PM2.5 NowCast at 02:00 (c1 = 180, c2 ~ 16, w = 0.5): ~125 -> sub-index ~183.
            "02:00 air_aqi_station CT-AIR-02 firing major",
            "02:00 air_aqi_ward bui_huu_nghia firing major",
            // At 03:00 CT-AIR-01's SO2 hour is still 650; at 04:00 both are below 95
            // (CT-AIR-02's NowCast c1..c4 = 20, 20, 180, 20 -> ~41, sub-index ~82).
            "04:00 air_aqi_station CT-AIR-01 resolved major",
            "04:00 air_aqi_ward long_hoa resolved major",
            "04:00 air_aqi_station CT-AIR-02 resolved major",
            "04:00 air_aqi_ward bui_huu_nghia resolved major",
            // CT-AIR-03 rising to 40: no jump (< +40), NowCast ~33, sub-index ~66: nothing.
        ],
    );
}

#[test]
fn flood_pack_warns_before_the_level_is_crossed() {
    let got = run_scenario("flood", 4, "8h");
    // Worked by hand from the simulator's model (no noise): level = tide + wave, tide =
    // 1.0 + 0.4 sin(2π h / 12.42) with h the hours since the epoch (0.657 m at 01:00 local
    // on 2026-11-27, rising to 1.399 m at 06:00), wave 0 → 0.9 m linearly 01:00–03:00, held
    // to 04:30, back to 0 at 06:00. CT-HY-01 (gauge can_tho: I/II/III = 1.80/1.90/2.00 m)
    // reports every 5 minutes at :x0:03 and :x5:03; each alarm rule takes the 5-minute
    // window's maximum and fires at the window's end; it clears 5 cm below its level.
    // Readings in the seed-4 file (noise ±0.01 m) are given where they decide.
    assert_alerts(
        &got,
        &[
            // Window 01:05–02:05 (12 readings, the last at 02:00:03): least-squares slope
            // 0.596 m/h, last level 1.250 m → level I in (1.80 − 1.250) / 0.596 h = 55.4 min
            // ≤ 60. The window ending 02:00: 0.590 m/h from 1.198 m → 61.2 min, not yet.
            "02:05 flood_early_warning CT-HY-01 firing major",
            // 1.80 m is crossed at 02:51:40; the 02:55:03 reading is 1.839 → window 02:55–03:00.
            "03:00 flood_alarm_1 CT-HY-01 firing minor",
            // 1.90 m at 03:02:30; 03:05:03 reads 1.899 (nominal 1.908, noise −0.009), 03:10:03
            // reads 1.918 → window 03:10–03:15.
            "03:15 flood_alarm_2 CT-HY-01 firing major",
            // 2.00 m at 03:32:30; 03:35:03 reads 2.018 → window 03:35–03:40, where the early
            // warning clears too (level ≥ level III).
            "03:40 flood_alarm_3 CT-HY-01 firing critical",
            "03:40 flood_early_warning CT-HY-01 resolved major",
            // Falling: below 1.95 at 04:58:10, 05:00:03 reads 1.934 → window 05:00–05:05.
            "05:05 flood_alarm_3 CT-HY-01 resolved critical",
            // Below 1.85 at 05:10:20; 05:10:03 already reads 1.843 → window 05:10–05:15.
            "05:15 flood_alarm_2 CT-HY-01 resolved major",
            // Below 1.75 at 05:22:00; 05:20:03 reads 1.757, 05:25:03 1.732 → window 05:25–05:30.
            "05:30 flood_alarm_1 CT-HY-01 resolved minor",
        ],
    );
    // The early warning leads level I by 55 simulated minutes (02:05 -> 03:00).
    let at = |rule: &str| {
        let line = got
            .iter()
            .find(|l| l.contains(rule) && l.contains("firing"))
            .unwrap();
        let (h, m) = line[..5].split_once(':').unwrap();
        h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()
    };
    assert_eq!(at("flood_alarm_1") - at("flood_early_warning"), 55);
}

#[test]
fn traffic_pack() {
    let got = run_scenario("traffic", 5, "3h");
    assert_alerts(
        &got,
        &[
            // Slow from 01:00: the 5-min windows ending 01:05 and 01:10 are both under 40 %
            // of free flow, and 10 minutes have passed: fires at 01:10. First clear window
            // is 01:30-01:35.
            "01:10 traffic_congestion CT-TR-01 firing minor",
            "01:35 traffic_congestion CT-TR-01 resolved minor",
            // The camera nearest CT-TR-01 (CT-CAM-03) sees the queue at once, every 2 min
            // until 01:28; quiet 15 min later.
            "01:00 camera_congestion CT-CAM-03 firing minor",
            "01:43 camera_congestion CT-CAM-03 resolved minor",
            // CT-TR-20's 4-minute slowdown: one window under 40 %, shorter than `for: 10m`,
            // so the sensor rule stays quiet; its camera (CT-CAM-17) sees it at 02:00, 02:02.
            "02:00 camera_congestion CT-CAM-17 firing minor",
            "02:17 camera_congestion CT-CAM-17 resolved minor",
        ],
    );
}

#[test]
fn camera_pack_and_fire_corroboration() {
    let got = run_scenario("camera", 6, "3h");
    assert_alerts(
        &got,
        &[
            "01:00 camera_fire_smoke CT-CAM-01 firing major",
            "01:49 camera_fire_smoke CT-CAM-01 resolved major",
            // Smoke at CT-AIR-01 (228 m away) from 01:03: the jump shows in the window
            // ending 01:10, and the two firings 10 minutes apart make one confirmed fire.
            "01:10 air_pm25_jump CT-AIR-01 firing minor",
            "01:45 air_pm25_jump CT-AIR-01 resolved minor",
            "01:10 fire_confirmed CT-CAM-01 firing critical",
            "01:40 fire_confirmed CT-CAM-01 resolved critical",
            // The smoke hour also lifts CT-AIR-01's hourly AQI into "Kém".
            "02:00 air_aqi_station CT-AIR-01 firing minor",
            "02:00 air_aqi_ward long_hoa firing minor",
            "03:00 air_aqi_station CT-AIR-01 resolved minor",
            "03:00 air_aqi_ward long_hoa resolved minor",
            "01:30 camera_road_flooding CT-CAM-06 firing major",
            "02:45 camera_road_flooding CT-CAM-06 resolved major",
            "02:00 camera_wrong_way CT-CAM-05 firing minor",
            "02:10 camera_wrong_way CT-CAM-05 resolved minor",
            // CT-CAM-09's wrong-way at 0.70 is under the 0.85 threshold: nothing.
        ],
    );
}

#[test]
fn a_seeded_day_raises_alerts_from_at_least_four_packs() {
    let dir = scratch("packs", "day");
    let day = dir.join("day.ndjson");
    let bin = env!("CARGO_BIN_EXE_watchfloor");
    let sim = Command::new(bin)
        .current_dir(root())
        .args(["simulate", "--seed", "7", "--duration", "6h", "--output"])
        .arg(&day)
        .output()
        .unwrap();
    assert!(sim.status.success());
    let replay = Command::new(bin)
        .current_dir(root())
        .args(["replay", "--rules", "alert-rules", "--input"])
        .arg(&day)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let packs: std::collections::BTreeSet<String> = String::from_utf8(replay.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["labels"]["pack"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(packs.len() >= 4, "{packs:?}");
    // The same seed gives the same telemetry, byte for byte.
    let again = Command::new(bin)
        .current_dir(root())
        .args([
            "simulate",
            "--seed",
            "7",
            "--duration",
            "6h",
            "--output",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(again.stdout, std::fs::read(&day).unwrap());
}
