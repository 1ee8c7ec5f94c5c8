//! The incident store on both backends, against real databases: SQLite in a file and a
//! private PostgreSQL server (Debian's binaries). Each check runs on both: migrations and
//! the refusal of a newer schema; transitions and operator actions in any order; a
//! replayed transition stored once; history pages by scope, filters and cursor; pruning;
//! text PostgreSQL refuses; the writer's batching, its commit, a database lost mid-run
//! and back (PostgreSQL killed and restarted, the writer's backlog bounded), and a disk
//! that fills up under SQLite and is freed (a 4 MB tmpfs: needs root, as CI has).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use watchfloor_model::Severity;
use watchfloor_store::testing::TestPostgres;
use watchfloor_store::{
    Action, AlertQuery, AlertRow, AuditRow, Change, Entry, Store, StoreError, StoreWriter,
};

fn postgres() -> &'static TestPostgres {
    static PG: OnceLock<TestPostgres> = OnceLock::new();
    PG.get_or_init(TestPostgres::start)
}

fn sqlite_url(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("watchfloor-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    format!("sqlite:{}", dir.join("incidents.db").display())
}

/// Both backends, each with a fresh database named after the test.
async fn both(name: &str) -> Vec<Store> {
    vec![
        Store::open(&sqlite_url(name)).await.unwrap(),
        Store::open(&postgres().database(name)).await.unwrap(),
    ]
}

const T0: i64 = 1_795_712_400_000;

fn row(id: &str, ward: &str, fired_at: i64, severity: Severity) -> AlertRow {
    AlertRow {
        alert_id: id.into(),
        rule: "fire".into(),
        key: format!("CAM-{id}"),
        state: "firing".into(),
        severity,
        fired_at,
        updated_at: fired_at,
        resolved_at: None,
        value: Some(0.9),
        message: format!("fire at {id}"),
        labels: BTreeMap::from([("pack".to_string(), "safety".to_string())]),
        ward: Some(ward.into()),
        // Long Hòa's alerts belong to public safety, the others to transport too.
        sectors: if ward == "long_hoa" {
            vec!["public_safety".into()]
        } else {
            vec!["public_safety".into(), "transport".into()]
        },
        district: Some(
            if ward == "long_hoa" {
                "binh_thuy"
            } else {
                "ninh_kieu"
            }
            .into(),
        ),
        kind: Some("camera".into()),
        location: Some([10.05, 105.75]),
        ack: None,
        assignee: None,
    }
}

fn transition(r: &AlertRow, event: &str) -> Change {
    Change::Transition {
        row: Box::new(r.clone()),
        entry: Entry {
            at: r.updated_at,
            event: event.into(),
            by: None,
            detail: format!("{}: {}", r.severity.as_str(), r.message),
        },
        dedup: format!(
            "{}|{}|{}|{}",
            r.alert_id,
            r.state,
            r.severity.as_str(),
            r.updated_at
        ),
        reopen: false,
    }
}

fn action(id: &str, at: i64, by: &str, action: Action, event: &str, detail: &str) -> Change {
    Change::Action {
        row: None,
        alert_id: id.into(),
        action,
        entry: Entry {
            at,
            event: event.into(),
            by: Some(by.into()),
            detail: detail.into(),
        },
    }
}

#[tokio::test]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    for (i, url) in [sqlite_url("newer"), postgres().database("newer")]
        .into_iter()
        .enumerate()
    {
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            5,
            "{}",
            store.backend()
        );
        store.close().await;
        // Opening again applies nothing and works.
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), 5);
        // A newer Watchfloor migrated it further: this binary must not touch it.
        let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', true, $1, 0)";
        match i {
            0 => {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(insert)
                    .bind(vec![0u8; 48])
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            _ => {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(insert)
                    .bind(vec![0u8; 48])
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
        store.close().await;
        let err = Store::open(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema(9999)), "{err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }
}

#[tokio::test]
async fn transitions_and_actions_in_any_order_keep_everything() {
    for store in both("order").await {
        let b = store.backend();
        let mut a = row("a1", "long_hoa", T0, Severity::Major);
        store.write(&[transition(&a, "fired")], &[]).await.unwrap();
        // Acknowledged, then the engine escalates: the row stays acknowledged, with both.
        store
            .write(
                &[action(
                    "a1",
                    T0 + 10,
                    "op",
                    Action::Acknowledge {
                        by: "op".into(),
                        at: T0 + 10,
                        note: Some("on my way".into()),
                    },
                    "acknowledged",
                    "on my way",
                )],
                &[],
            )
            .await
            .unwrap();
        a.severity = Severity::Critical;
        a.updated_at = T0 + 20;
        store
            .write(&[transition(&a, "escalated")], &[])
            .await
            .unwrap();
        let got = store.alert("a1").await.unwrap().unwrap();
        assert_eq!(got.state, "acknowledged", "{b}");
        assert_eq!(got.severity, Severity::Critical, "{b}");
        assert_eq!(
            got.ack,
            Some(("op".into(), T0 + 10, Some("on my way".into()))),
            "{b}"
        );
        assert_eq!(got.updated_at, T0 + 20, "{b}");
        // Assigned and commented (with a NUL, which PostgreSQL text refuses) in one batch.
        store
            .write(
                &[
                    action(
                        "a1",
                        T0 + 30,
                        "lead",
                        Action::Assign {
                            to: "team-2".into(),
                        },
                        "assigned",
                        "team-2",
                    ),
                    action(
                        "a1",
                        T0 + 40,
                        "lead",
                        Action::Comment,
                        "commented",
                        "smoke\0seen",
                    ),
                ],
                &[AuditRow {
                    at: T0 + 40,
                    by: "lead".into(),
                    action: "comment".into(),
                    target: "a1".into(),
                    detail: serde_json::json!({"n": 1}),
                }],
            )
            .await
            .unwrap();
        // The engine's resolution, then the same transitions replayed after a restart.
        a.state = "resolved".into();
        a.resolved_at = Some(T0 + 50);
        a.updated_at = T0 + 50;
        store
            .write(&[transition(&a, "resolved")], &[])
            .await
            .unwrap();
        let mut replayed = row("a1", "long_hoa", T0, Severity::Major);
        store
            .write(&[transition(&replayed, "fired")], &[])
            .await
            .unwrap();
        replayed.severity = Severity::Critical;
        replayed.updated_at = T0 + 20;
        store
            .write(&[transition(&replayed, "escalated")], &[])
            .await
            .unwrap();

        let got = store.alert("a1").await.unwrap().unwrap();
        assert_eq!(
            got.state, "resolved",
            "{b}: a replayed firing never reopens it"
        );
        assert_eq!(got.resolved_at, Some(T0 + 50), "{b}");
        assert_eq!(got.assignee.as_deref(), Some("team-2"), "{b}");
        assert_eq!(got.updated_at, T0 + 50, "{b}");
        let timeline: Vec<(i64, String, Option<String>, String)> = store
            .timeline("a1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.at, e.event, e.by, e.detail))
            .collect();
        assert_eq!(
            timeline,
            [
                (T0, "fired".into(), None, "major: fire at a1".into()),
                (
                    T0 + 10,
                    "acknowledged".into(),
                    Some("op".into()),
                    "on my way".into()
                ),
                (
                    T0 + 20,
                    "escalated".into(),
                    None,
                    "critical: fire at a1".into()
                ),
                (
                    T0 + 30,
                    "assigned".into(),
                    Some("lead".into()),
                    "team-2".into()
                ),
                (
                    T0 + 40,
                    "commented".into(),
                    Some("lead".into()),
                    "smoke\u{FFFD}seen".into()
                ),
                (
                    T0 + 50,
                    "resolved".into(),
                    None,
                    "critical: fire at a1".into()
                ),
            ],
            "{b}: every line once, in order"
        );
        let audit = store.audit(T0, 10).await.unwrap();
        assert_eq!(audit.len(), 1, "{b}");
        assert_eq!(audit[0].detail["n"], 1, "{b}");
        assert!(store.open_alerts().await.unwrap().is_empty(), "{b}");

        // Resolved at a restart, then firing again (its input came back): open again,
        // still acknowledged, with a line saying so.
        let mut again = row("a1", "long_hoa", T0, Severity::Critical);
        again.updated_at = T0 + 70;
        let reopen = Change::Transition {
            row: Box::new(again),
            entry: Entry {
                at: T0 + 70,
                event: "reopened".into(),
                by: None,
                detail: "fired again".into(),
            },
            dedup: "a1|reopen|critical|70".into(),
            reopen: true,
        };
        store
            .write(std::slice::from_ref(&reopen), &[])
            .await
            .unwrap();
        store.write(&[reopen], &[]).await.unwrap();
        let got = store.alert("a1").await.unwrap().unwrap();
        assert_eq!(got.state, "acknowledged", "{b}");
        assert_eq!(got.resolved_at, None, "{b}");
        let reopened = store
            .timeline("a1")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event == "reopened")
            .count();
        assert_eq!(reopened, 1, "{b}: once");
    }
}

#[tokio::test]
async fn an_action_before_the_alert_row_changes_nothing_else_and_open_alerts_come_back() {
    for store in both("open").await {
        let b = store.backend();
        for i in 0..5 {
            store
                .write(
                    &[transition(
                        &row(&format!("o{i}"), "tan_an", T0 + i, Severity::Minor),
                        "fired",
                    )],
                    &[],
                )
                .await
                .unwrap();
        }
        store
            .write(
                &[action(
                    "o3",
                    T0 + 100,
                    "op",
                    Action::Resolve { at: T0 + 100 },
                    "resolved by hand",
                    "",
                )],
                &[],
            )
            .await
            .unwrap();
        // An action on an alert the store never heard of adds a timeline line only.
        store
            .write(
                &[action("ghost", T0, "op", Action::Comment, "commented", "x")],
                &[],
            )
            .await
            .unwrap();
        assert!(store.alert("ghost").await.unwrap().is_none(), "{b}");
        // With the caller's view of the alert (its firing still queued behind a storm): the
        // row is stored with the action, and the firing written later keeps both.
        let early = row("early", "tan_an", T0 + 50, Severity::Major);
        let ack = Change::Action {
            row: Some(Box::new(early.clone())),
            alert_id: "early".into(),
            action: Action::Acknowledge {
                by: "op".into(),
                at: T0 + 60,
                note: Some("first".into()),
            },
            entry: Entry {
                at: T0 + 60,
                event: "acknowledged".into(),
                by: Some("op".into()),
                detail: "first".into(),
            },
        };
        store.write(&[ack], &[]).await.unwrap();
        store
            .write(&[transition(&early, "fired")], &[])
            .await
            .unwrap();
        let got = store.alert("early").await.unwrap().unwrap();
        assert_eq!(got.state, "acknowledged", "{b}");
        assert_eq!(
            got.ack,
            Some(("op".into(), T0 + 60, Some("first".into()))),
            "{b}"
        );
        assert_eq!(store.timeline("early").await.unwrap().len(), 2, "{b}");
        let open = store.open_alerts().await.unwrap();
        let ids: Vec<&str> = open.iter().map(|(r, _)| r.alert_id.as_str()).collect();
        assert_eq!(
            ids,
            ["o0", "o1", "o2", "o4", "early"],
            "{b}: oldest first, the resolved one gone"
        );
        assert_eq!(open[0].1.len(), 1, "{b}: with its timeline");
        assert_eq!(
            open[0].0,
            row("o0", "tan_an", T0, Severity::Minor),
            "{b}: the row as written"
        );
    }
}

#[tokio::test]
async fn history_pages_by_scope_filter_and_cursor() {
    for store in both("history").await {
        let b = store.backend();
        // 30 alerts, one a minute; every third in Long Hòa; severities cycle.
        let sev = [Severity::Minor, Severity::Major, Severity::Critical];
        let mut changes = Vec::new();
        for i in 0..30i64 {
            let ward = if i % 3 == 0 { "long_hoa" } else { "tan_an" };
            let mut r = row(
                &format!("h{i:02}"),
                ward,
                T0 + i * 60_000,
                sev[i as usize % 3],
            );
            if i % 5 == 0 {
                r.state = "resolved".into();
                r.resolved_at = Some(r.fired_at + 1);
            }
            changes.push(transition(&r, "fired"));
        }
        store.write(&changes, &[]).await.unwrap();
        // All, by pages of 7, newest first, no repeats, no gaps, even with an alert added
        // (newer than all) between pages.
        let mut seen = Vec::new();
        let mut q = AlertQuery {
            limit: 7,
            ..AlertQuery::default()
        };
        loop {
            let page = store.query(&q).await.unwrap();
            seen.extend(page.alerts.iter().map(|a| a.alert_id.clone()));
            if seen.len() == 7 {
                store
                    .write(
                        &[transition(
                            &row("late", "tan_an", T0 + 99 * 60_000, Severity::Minor),
                            "fired",
                        )],
                        &[],
                    )
                    .await
                    .unwrap();
            }
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<String> = (0..30).rev().map(|i| format!("h{i:02}")).collect();
        assert_eq!(seen, expected, "{b}");
        // A ward's day (the scope), majors and worse, open only.
        let q = AlertQuery {
            from: Some(T0),
            to: Some(T0 + 86_400_000),
            wards: vec!["long_hoa".into()],
            min_severity: Some(Severity::Major),
            state: Some("open".into()),
            limit: 100,
            ..AlertQuery::default()
        };
        let ids: Vec<String> = store
            .query(&q)
            .await
            .unwrap()
            .alerts
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        // Long Hòa: 0,3,…,27; major or critical: i%3 ≠ 0 … all long_hoa have i%3 == 0 → minor.
        assert!(ids.is_empty(), "{b}: {ids:?}");
        let q = AlertQuery {
            district: Some("ninh_kieu".into()),
            min_severity: Some(Severity::Critical),
            state: Some("firing".into()),
            to: Some(T0 + 15 * 60_000),
            limit: 100,
            ..AlertQuery::default()
        };
        let ids: Vec<String> = store
            .query(&q)
            .await
            .unwrap()
            .alerts
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        // Critical: i%3 == 2 → 2, 5, 8, 11, 14; resolved: i%5 == 0 → 5 out; before minute 15.
        assert_eq!(ids, ["h14", "h11", "h08", "h02"], "{b}");
        let q = AlertQuery {
            zone: Some("long_hoa".into()),
            from: Some(T0 + 10 * 60_000),
            limit: 3,
            ..AlertQuery::default()
        };
        let page = store.query(&q).await.unwrap();
        let ids: Vec<&str> = page.alerts.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["h27", "h24", "h21"], "{b}");
        assert!(page.next.is_some(), "{b}");
        // Sectors: transport owns the Tân An alerts only (20 of 30, one added: 21);
        // a sector nobody names matches nothing; a sector prefix is not a sector, and `_`
        // in an id is no wildcard.
        for (sectors, expected) in [
            (vec!["transport"], 21),
            (vec!["health", "public_safety"], 31),
            (vec!["health"], 0),
            (vec!["trans"], 0),
        ] {
            let q = AlertQuery {
                sectors: Some(sectors.iter().map(|s| s.to_string()).collect()),
                limit: 100,
                ..AlertQuery::default()
            };
            let found = store.query(&q).await.unwrap().alerts;
            assert_eq!(found.len(), expected, "{b}: {sectors:?}");
            assert!(
                found
                    .iter()
                    .all(|a| a.sectors.iter().any(|s| sectors.contains(&s.as_str()))),
                "{b}"
            );
        }
        assert!(
            matches!(
                store
                    .query(&AlertQuery {
                        cursor: Some("nonsense".into()),
                        ..AlertQuery::default()
                    })
                    .await,
                Err(StoreError::Fatal(_))
            ),
            "{b}"
        );
        // Pruning: resolved before minute 16 go (0, 5, 10, 15), with their timelines.
        assert_eq!(store.prune(T0 + 16 * 60_000).await.unwrap(), 4, "{b}");
        assert!(store.alert("h05").await.unwrap().is_none(), "{b}");
        assert!(store.timeline("h05").await.unwrap().is_empty(), "{b}");
        assert!(store.alert("h20").await.unwrap().is_some(), "{b}");
        assert!(
            store.alert("h01").await.unwrap().is_some(),
            "{b}: open ones stay whatever their age"
        );
    }
}

fn super_row(id: &str, at: i64) -> AlertRow {
    row(id, "tan_an", at, Severity::Minor)
}

#[tokio::test]
async fn the_writer_batches_and_commit_means_committed() {
    for store in both("writer").await {
        let b = store.backend();
        let (writer, task) = StoreWriter::start(store.clone());
        for i in 0..2000 {
            writer.enqueue(
                vec![transition(
                    &row(&format!("w{i}"), "tan_an", T0 + i, Severity::Minor),
                    "fired",
                )],
                vec![],
            );
        }
        // An operator's action on the newest: it does not wait for the queue (it carries the
        // alert's row in case its firing is not written yet).
        let mut ack = action(
            "w1999",
            T0 + 5000,
            "op",
            Action::Acknowledge {
                by: "op".into(),
                at: T0 + 5000,
                note: None,
            },
            "acknowledged",
            "",
        );
        if let Change::Action { row, .. } = &mut ack {
            *row = Some(Box::new(super_row("w1999", T0 + 1999)));
        }
        writer
            .commit(vec![ack], vec![], Duration::from_secs(10))
            .await
            .unwrap();
        // Committed, whatever is still queued.
        assert_eq!(
            store.alert("w1999").await.unwrap().unwrap().state,
            "acknowledged",
            "{b}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while writer.health().backlog.load(Ordering::Relaxed) > 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.open_alerts().await.unwrap().len(), 2000, "{b}");
        assert_eq!(
            store.alert("w1999").await.unwrap().unwrap().state,
            "acknowledged",
            "{b}: the firing written after the action keeps it"
        );
        let h = writer.health();
        assert_eq!(h.backlog.load(Ordering::Relaxed), 0, "{b}");
        assert_eq!(h.written.load(Ordering::Relaxed), 2001, "{b}");
        assert!(
            h.batches.load(Ordering::Relaxed) < 2001,
            "{b}: batched, {} transactions",
            h.batches.load(Ordering::Relaxed)
        );
        drop(writer);
        task.await.unwrap();
    }
}

/// `op` acknowledging alert `id` at `at` with `note` (none when empty).
fn acknowledge(id: &str, at: i64, note: &str) -> Change {
    action(
        id,
        at,
        "op",
        Action::Acknowledge {
            by: "op".into(),
            at,
            note: (!note.is_empty()).then(|| note.into()),
        },
        "acknowledged",
        note,
    )
}

#[tokio::test]
async fn a_database_lost_mid_run_degrades_then_catches_up() {
    let mut pg = TestPostgres::start();
    let url = pg.database("lost");
    let store = Store::open(&url).await.unwrap();
    // At most 80 changes wait for the database; past that the engine's are shed.
    let (writer, _task) = StoreWriter::start_bounded(store.clone(), 80);
    let ack = |id: &str, at: i64| acknowledge(id, at, "");
    writer
        .commit(
            vec![transition(
                &row("l0", "tan_an", T0, Severity::Major),
                "fired",
            )],
            vec![],
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    pg.kill();
    // The engine's path never waits: queueing is immediate while the database is gone.
    let started = std::time::Instant::now();
    for i in 1..=100 {
        writer.enqueue(
            vec![transition(
                &row(&format!("l{i}"), "tan_an", T0 + i, Severity::Minor),
                "fired",
            )],
            vec![],
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    // An operator's action cannot be committed: a retryable error, not a 200.
    let err = writer
        .commit(vec![ack("l0", T0 + 500)], vec![], Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let h = writer.health().clone();
    // The writer says so once its attempt fails (the pool gives up connecting after 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !h.degraded.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.degraded.load(Ordering::Relaxed),
        "degraded while the database is gone"
    );
    assert!(h.last_error.lock().unwrap().is_some());
    assert_eq!(
        h.backlog.load(Ordering::Relaxed),
        81,
        "bounded: 80 queued, the rest shed (and the action that timed out, dropped when reached)"
    );
    assert_eq!(h.shed.load(Ordering::Relaxed), 20);
    // The jobs of the first commit and the 80 queued are numbered 1..=81 (the commit is
    // not numbered); the first shed is 81: nothing from it on may count as durable.
    assert_eq!(h.first_shed_job.load(Ordering::SeqCst), 81);

    pg.restart();
    writer
        .commit(vec![ack("l1", T0 + 600)], vec![], Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!h.degraded.load(Ordering::Relaxed));
    assert_eq!(h.backlog.load(Ordering::Relaxed), 0);
    let open = store.open_alerts().await.unwrap();
    assert_eq!(
        open.len(),
        81,
        "everything queued while the database was gone is stored"
    );
    assert!(h.finished_jobs.load(Ordering::SeqCst) >= 80);
    assert_eq!(
        h.durable_jobs(),
        80,
        "a checkpoint may cover the queued changes, never the shed ones"
    );
    let l0 = store.alert("l0").await.unwrap().unwrap();
    assert_eq!(
        l0.state, "firing",
        "the action answered with an error was not applied later"
    );
    assert_eq!(
        store.alert("l1").await.unwrap().unwrap().state,
        "acknowledged"
    );
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_retryable_error() {
    let started = std::time::Instant::now();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Store::open(&format!("postgres://postgres@127.0.0.1:{port}/watchfloor"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().starts_with("store unavailable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // A SQLite path that cannot be created.
    let err = Store::open("sqlite:/proc/watchfloor/incidents.db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/proc/watchfloor"), "{err}");
}

/// A small file system of its own (tmpfs, unmounted when dropped): the disk that fills.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(name: &str, size: &str) -> SmallDisk {
        let dir =
            std::env::temp_dir().join(format!("watchfloor-disk-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: this test needs root (or CAP_SYS_ADMIN), as the CI machine has",
            dir.display()
        );
        SmallDisk(dir)
    }

    /// Fills what is left with a ballast file.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("ballast")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("ballast")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_degrades_the_writer_and_nothing_answered_is_lost() {
    let disk = SmallDisk::mount("full", "4m");
    let url = format!("sqlite:{}", disk.0.join("incidents.db").display());
    let store = Store::open(&url).await.unwrap();
    let (writer, _task) = StoreWriter::start(store.clone());
    let ack = acknowledge;
    writer
        .commit(
            vec![transition(
                &row("f0", "tan_an", T0, Severity::Major),
                "fired",
            )],
            vec![],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    writer
        .commit(
            vec![ack("f0", T0 + 1, "before")],
            vec![],
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    disk.fill();
    // The engine's path does not wait; the writer finds the disk full and says so.
    let started = std::time::Instant::now();
    for i in 1..=300 {
        writer.enqueue(
            vec![transition(
                &row(&format!("f{i}"), "tan_an", T0 + i, Severity::Minor),
                "fired",
            )],
            vec![],
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    let h = writer.health().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !h.degraded.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        h.degraded.load(Ordering::Relaxed),
        "degraded on a full disk"
    );
    let why = h.last_error.lock().unwrap().clone().unwrap_or_default();
    assert!(
        why.contains("full"),
        "the reason says the disk is full: {why}"
    );
    // An operator's action is refused with a retryable error, not answered and lost.
    let err = writer
        .commit(
            vec![ack("f0", T0 + 2, "while full")],
            vec![],
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");

    disk.free();
    writer
        .commit(
            vec![ack("f1", T0 + 3, "after")],
            vec![],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.backlog.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!h.degraded.load(Ordering::Relaxed));
    assert_eq!(
        store.open_alerts().await.unwrap().len(),
        301,
        "everything queued is stored"
    );
    let f0 = store.alert("f0").await.unwrap().unwrap();
    assert_eq!(f0.state, "acknowledged");
    let notes: Vec<String> = store
        .timeline("f0")
        .await
        .unwrap()
        .iter()
        .map(|e| e.detail.clone())
        .collect();
    assert!(notes.contains(&"before".to_string()), "{notes:?}");
    assert!(
        !notes.contains(&"while full".to_string()),
        "the refused action was not applied later: {notes:?}"
    );
    assert_eq!(
        store.alert("f1").await.unwrap().unwrap().state,
        "acknowledged"
    );
}

#[tokio::test]
async fn playbook_runs_timelines_and_the_outbox_on_both_backends() {
    use watchfloor_store::{OutboxRow, PlaybookVersionRow, RunEventRow, RunRow};
    for url in [sqlite_url("runs"), postgres().database("runs")] {
        let store = Store::open(&url).await.unwrap();
        let version = PlaybookVersionRow {
            playbook: "p".into(),
            version: "v1".into(),
            file: "p.yaml".into(),
            text: "playbook: …".into(),
        };
        let run = |finished_at: Option<i64>| RunRow {
            id: "p:A1".into(),
            playbook: "p".into(),
            version: "v1".into(),
            alert_id: Some("A1".into()),
            zone: Some("long_hoa".into()),
            sectors: " environment ".into(),
            exercise: None,
            started_at: 1_000,
            finished_at,
            next_due: Some(5_000),
            state: "{}".into(),
        };
        let event = |seq: i64| RunEventRow {
            run: "p:A1".into(),
            seq,
            at: 1_000 + seq,
            step: Some("s".into()),
            event: "started".into(),
            actor: None,
            value: Some("\"x\"".into()),
            note: None,
        };
        let outbox = OutboxRow {
            id: "p:A1/s/1".into(),
            run: "p:A1".into(),
            effect: "{}".into(),
            created_at: 1_000,
            done_at: None,
            attempts: 0,
            last_error: None,
        };
        store
            .save_runs(
                std::slice::from_ref(&version),
                &[run(None)],
                &[event(1)],
                std::slice::from_ref(&outbox),
            )
            .await
            .unwrap();
        // The same change again (a retry) and a later one: one version, one run, lines once.
        store
            .save_runs(
                &[version],
                &[run(Some(9_000))],
                &[event(1), event(2)],
                &[outbox],
            )
            .await
            .unwrap();
        assert_eq!(
            store.playbook_versions().await.unwrap().len(),
            1,
            "{}",
            store.backend()
        );
        assert_eq!(
            store.run("p:A1").await.unwrap().unwrap().finished_at,
            Some(9_000)
        );
        assert_eq!(
            store.runs_since(9_001).await.unwrap().len(),
            0,
            "finished before: not restored"
        );
        assert_eq!(store.runs_since(8_000).await.unwrap().len(), 1);
        assert_eq!(
            store
                .run_events("p:A1")
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            store.run_events_between(1_002, 2_000).await.unwrap().len(),
            1
        );
        assert_eq!(store.outbox_pending().await.unwrap().len(), 1);
        store
            .outbox_attempt("p:A1/s/1", None, Some("broker down"))
            .await
            .unwrap();
        let pending = store.outbox_pending().await.unwrap();
        assert_eq!(
            (pending[0].attempts, pending[0].last_error.as_deref()),
            (1, Some("broker down"))
        );
        store
            .outbox_attempt("p:A1/s/1", Some(2_000), None)
            .await
            .unwrap();
        assert!(
            store.outbox_pending().await.unwrap().is_empty(),
            "{}",
            store.backend()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn drills_keep_their_script_progress_and_report_on_both_backends() {
    for store in both("drills").await {
        let mut row = watchfloor_store::DrillRow {
            id: "flood-20261201-0530".into(),
            drill: "flood_gauge".into(),
            file: "drills/flood.yaml".into(),
            text: "drill: {id: flood_gauge}".into(),
            status: "running".into(),
            started_by: "leader".into(),
            started_at: 1_000,
            ended_at: None,
            progress: r#"{"next":0}"#.into(),
            report: None,
        };
        store.save_drill(&row).await.unwrap();
        let older = watchfloor_store::DrillRow {
            id: "fire-1".into(),
            started_at: 500,
            status: "finished".into(),
            ended_at: Some(900),
            ..row.clone()
        };
        store.save_drill(&older).await.unwrap();
        assert_eq!(
            store.open_drills().await.unwrap(),
            vec![row.clone()],
            "{}",
            store.backend()
        );
        // Progress and the end are saved; the pinned script is never rewritten.
        row.status = "aborted".into();
        row.ended_at = Some(2_000);
        row.progress = r#"{"next":7}"#.into();
        row.report = Some(r#"{"outcomes":[]}"#.into());
        store
            .save_drill(&watchfloor_store::DrillRow {
                text: "edited since".into(),
                ..row.clone()
            })
            .await
            .unwrap();
        assert_eq!(store.drill(&row.id).await.unwrap(), Some(row.clone()));
        assert!(store.open_drills().await.unwrap().is_empty());
        let listed: Vec<String> = store
            .drills()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(listed, [row.id.clone(), older.id.clone()], "newest first");
        assert_eq!(store.drill("nope").await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_changes_feed_is_in_commit_order_scoped_and_without_exercises_unless_asked() {
    for store in both("changes").await {
        let b = store.backend();
        assert_eq!(store.last_change().await.unwrap(), 0, "{b}");
        let a = row("a1", "long_hoa", T0, Severity::Major);
        let other = row("b1", "tan_an", T0 + 1, Severity::Minor);
        let drill = row("drill-1~x1", "long_hoa", T0 + 2, Severity::Major);
        store
            .write(&[transition(&a, "fired"), transition(&other, "fired")], &[])
            .await
            .unwrap();
        store
            .write(&[transition(&drill, "fired")], &[])
            .await
            .unwrap();
        // A transition written again (a replay after a restart) is one line.
        store.write(&[transition(&a, "fired")], &[]).await.unwrap();
        store
            .write(
                &[action(
                    "a1",
                    T0 + 5,
                    "op",
                    Action::Comment,
                    "commented",
                    "on it",
                )],
                &[],
            )
            .await
            .unwrap();
        let city = watchfloor_store::AlertQuery::default();
        let all = store.changes(0, 100, &city, false).await.unwrap();
        let got: Vec<(&str, &str)> = all
            .iter()
            .map(|c| (c.alert.alert_id.as_str(), c.event.as_str()))
            .collect();
        assert_eq!(
            got,
            [("a1", "fired"), ("b1", "fired"), ("a1", "commented")],
            "{b}"
        );
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "{b}");
        assert_eq!(all[2].by.as_deref(), Some("op"), "{b}");
        let with = store.changes(0, 100, &city, true).await.unwrap();
        assert_eq!(with.len(), 4, "{b}: the exercise's line when asked for");
        // After a cursor, a page at a time.
        let page = store.changes(all[0].seq, 1, &city, false).await.unwrap();
        assert_eq!(page[0].alert.alert_id, "b1", "{b}");
        assert_eq!(
            store.changes(all[2].seq, 100, &city, false).await.unwrap(),
            vec![],
            "{b}"
        );
        // Scoped by commune and by sector.
        let ward = watchfloor_store::AlertQuery {
            wards: vec!["tan_an".into()],
            ..Default::default()
        };
        let tan_an = store.changes(0, 100, &ward, false).await.unwrap();
        assert_eq!(tan_an.len(), 1, "{b}");
        assert_eq!(tan_an[0].alert.alert_id, "b1", "{b}");
        let transport = watchfloor_store::AlertQuery {
            sectors: Some(vec!["transport".into()]),
            ..Default::default()
        };
        assert_eq!(
            store
                .changes(0, 100, &transport, false)
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );
        assert_eq!(
            store.last_change().await.unwrap(),
            with.last().unwrap().seq,
            "{b}"
        );
    }
}
