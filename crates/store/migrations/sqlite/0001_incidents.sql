-- Alerts as operators see them (the latest state of each), their timelines, the audit log.
-- Times are epoch milliseconds. Keep in step with ../postgres/0001_incidents.sql.
CREATE TABLE alerts (
    alert_id      TEXT PRIMARY KEY,
    rule          TEXT NOT NULL,
    key           TEXT NOT NULL,
    state         TEXT NOT NULL,
    severity      TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    fired_at      BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    resolved_at   BIGINT,
    value         DOUBLE PRECISION,
    message       TEXT NOT NULL,
    labels        TEXT NOT NULL,
    ward          TEXT,
    district      TEXT,
    kind          TEXT,
    lat           DOUBLE PRECISION,
    lon           DOUBLE PRECISION,
    ack_by        TEXT,
    ack_at        BIGINT,
    ack_note      TEXT,
    assignee      TEXT
);
CREATE INDEX alerts_fired ON alerts (fired_at, alert_id);
CREATE INDEX alerts_ward_fired ON alerts (ward, fired_at);
CREATE INDEX alerts_district_fired ON alerts (district, fired_at);
CREATE INDEX alerts_open ON alerts (state) WHERE state <> 'resolved';
CREATE INDEX alerts_recently_resolved ON alerts (updated_at) WHERE state = 'resolved';

CREATE TABLE alert_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    event       TEXT NOT NULL,
    by_account  TEXT,
    detail      TEXT NOT NULL,
    -- Engine transitions carry a key so that one replayed after a restart is stored once.
    dedup       TEXT UNIQUE
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, seq);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    by_account  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
