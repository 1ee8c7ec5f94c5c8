-- Keep in step with the other backend's 0002. Sectors of each alert (issue 12): the sector ids with a space on each side
-- (' environment transport '), so one sector is matched with LIKE '% id %'. Alerts stored
-- before this migration have none: all-sector accounts see them, sector accounts do not.
ALTER TABLE alerts ADD COLUMN sectors TEXT NOT NULL DEFAULT '';

-- Data quality ("đúng, đủ, sạch, sống") per station and local day (UTC+7, 'YYYY-MM-DD'):
-- the counts the index is computed from, written as the day goes on (the latest write
-- of a day holds the whole day). Stations with no messages that day have no row; their
-- expected readings still count (đủ = 0).
CREATE TABLE quality_daily (
    station      TEXT NOT NULL,
    day          TEXT NOT NULL,
    messages     BIGINT NOT NULL,
    accepted     BIGINT NOT NULL,
    valid        BIGINT NOT NULL,
    duplicates   BIGINT NOT NULL,
    rejected     BIGINT NOT NULL,
    on_time      BIGINT NOT NULL,
    delay_median_ms BIGINT,
    PRIMARY KEY (station, day)
);

-- Indicator values per local day, zone and sector view ('*' every sector, else the
-- sorted sector ids joined by '+'): the day's latest value of each indicator (for daily
-- and live indicators, the value at the day's end), written as the day goes on; daily
-- reports read them.
CREATE TABLE indicator_daily (
    day          TEXT NOT NULL,
    indicator    TEXT NOT NULL,
    zone         TEXT NOT NULL,
    view         TEXT NOT NULL,
    value        DOUBLE PRECISION,
    band         TEXT,
    PRIMARY KEY (day, indicator, zone, view)
);
