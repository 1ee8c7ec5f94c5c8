//! Per-day tables: data-quality counts per station (`quality_daily`) and indicator values
//! per zone and sector view (`indicator_daily`), upserted as the day goes on (the latest
//! write of a day holds the whole day) and read back for reports and the province's
//! monthly/annual quality export. Days are the city's local days, `YYYY-MM-DD`.
//!
//! Invariant: an upsert replaces the row of its key, never adds a second one.

use serde::Serialize;

use crate::{on_pool, Store, StoreError};

/// One station's quality counts for one day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct QualityRow {
    /// Station id.
    pub station: String,
    /// Local day.
    pub day: String,
    /// Messages received.
    pub messages: i64,
    /// Readings accepted.
    pub accepted: i64,
    /// Valid readings.
    pub valid: i64,
    /// Duplicates.
    pub duplicates: i64,
    /// Other refusals.
    pub rejected: i64,
    /// On-time readings.
    pub on_time: i64,
    /// Median delay, ms.
    pub delay_median_ms: Option<i64>,
}

/// One indicator's value for one day, zone and sector view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct IndicatorDayRow {
    /// Local day.
    pub day: String,
    /// Indicator id.
    pub indicator: String,
    /// Zone id (`city`, a commune).
    pub zone: String,
    /// Sector view (`*`, or ids joined by `+`).
    pub view: String,
    /// The value.
    pub value: Option<f64>,
    /// Its band.
    pub band: Option<String>,
}

const QUALITY_UPSERT: &str = "INSERT INTO quality_daily (station, day, messages, accepted, valid, duplicates, rejected, on_time, delay_median_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (station, day) DO UPDATE SET \
     messages = excluded.messages, accepted = excluded.accepted, valid = excluded.valid, duplicates = excluded.duplicates, \
     rejected = excluded.rejected, on_time = excluded.on_time, delay_median_ms = excluded.delay_median_ms";
const INDICATOR_UPSERT: &str =
    "INSERT INTO indicator_daily (day, indicator, zone, view, value, band) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, indicator, zone, view) DO UPDATE SET \
     value = excluded.value, band = excluded.band";

impl Store {
    /// Upserts station-days of quality counts, in one transaction.
    pub async fn upsert_quality(&self, rows: &[QualityRow]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(QUALITY_UPSERT)
                    .bind(&r.station).bind(&r.day).bind(r.messages).bind(r.accepted).bind(r.valid)
                    .bind(r.duplicates).bind(r.rejected).bind(r.on_time).bind(r.delay_median_ms)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The quality counts of days `from..=to` (`YYYY-MM-DD`).
    pub async fn quality_days(&self, from: &str, to: &str) -> Result<Vec<QualityRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, QualityRow>("SELECT station, day, messages, accepted, valid, duplicates, rejected, on_time, delay_median_ms FROM quality_daily WHERE day >= $1 AND day <= $2 ORDER BY day, station")
                .bind(from).bind(to).fetch_all(pool).await?
        }))
    }

    /// Upserts indicator day values, in one transaction.
    pub async fn upsert_indicator_days(&self, rows: &[IndicatorDayRow]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(INDICATOR_UPSERT)
                    .bind(&r.day).bind(&r.indicator).bind(&r.zone).bind(&r.view).bind(r.value).bind(&r.band)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The indicator values of `day` in sector view `view`.
    pub async fn indicator_days(
        &self,
        day: &str,
        view: &str,
    ) -> Result<Vec<IndicatorDayRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, IndicatorDayRow>("SELECT day, indicator, zone, view, value, band FROM indicator_daily WHERE day = $1 AND view = $2 ORDER BY zone, indicator")
                .bind(day).bind(view).fetch_all(pool).await?
        }))
    }
}
