-- Keep in step with the other backend's 0004. Emergency drills (issue 15).

-- Each drill run (an exercise): the script it pinned (the file's text, so a restart goes
-- on with the same script even when the file was edited), its status, its progress as
-- JSON (clock, speed, pauses, the next action, when each inject went in) and, once it
-- ended, the after-action report as JSON. The exercise's alerts are in alerts, marked by
-- their labels; its playbook runs in playbook_runs.exercise.
CREATE TABLE drills (
    id           TEXT PRIMARY KEY,
    drill        TEXT NOT NULL,
    file         TEXT NOT NULL,
    text         TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_by   TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    progress     TEXT NOT NULL,
    report       TEXT
);

CREATE INDEX drills_started ON drills (started_at);
