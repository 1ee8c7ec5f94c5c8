-- Keep in step with the other backend's 0003. Scenario playbooks (issue 14).

-- Each playbook version a run pinned: the file's text, so a run goes on with its version
-- after a restart even when the file was edited since.
CREATE TABLE playbook_versions (
    playbook     TEXT NOT NULL,
    version      TEXT NOT NULL,
    file         TEXT NOT NULL,
    text         TEXT NOT NULL,
    PRIMARY KEY (playbook, version)
);

-- Every run: its state as JSON (steps, due times, who did what), with the columns the
-- screens filter on. next_due is the earliest due time of its open steps.
CREATE TABLE playbook_runs (
    id           TEXT PRIMARY KEY,
    playbook     TEXT NOT NULL,
    version      TEXT NOT NULL,
    alert_id     TEXT,
    zone         TEXT,
    sectors      TEXT NOT NULL DEFAULT '',
    exercise     TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    next_due     BIGINT,
    state        TEXT NOT NULL
);
CREATE INDEX playbook_runs_alert ON playbook_runs (alert_id);
CREATE INDEX playbook_runs_finished ON playbook_runs (finished_at);

-- A run's timeline, one line per change, numbered within the run.
CREATE TABLE playbook_events (
    run          TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    step         TEXT,
    event        TEXT NOT NULL,
    actor        TEXT,
    value        TEXT,
    note         TEXT,
    PRIMARY KEY (run, seq)
);
CREATE INDEX playbook_events_at ON playbook_events (at);

-- What the runs asked to be done (notifications, severity raises), recorded in the same
-- transaction as the change that asked, carried out afterwards, marked when done: after a
-- crash the ones not marked are carried out again with the same id.
CREATE TABLE playbook_outbox (
    id           TEXT PRIMARY KEY,
    run          TEXT NOT NULL,
    effect       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    done_at      BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX playbook_outbox_pending ON playbook_outbox (done_at);
