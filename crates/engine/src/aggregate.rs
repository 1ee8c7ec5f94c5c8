//! Incremental, mergeable aggregates.
//!
//! One [`Accumulator`] holds everything every aggregate function needs for one metric over
//! one pane or window, in constant space (plus a [`QuantileSketch`] when a rule asks for a
//! percentile). Accumulators merge associatively, which is what lets sliding windows be
//! built from panes (see [`crate::two_stacks`]) and sessions merge without re-scanning
//! events. Variance and the least-squares slope use Welford/Chan co-moments, so long
//! windows of epoch-scale timestamps keep their precision.

use std::collections::BTreeMap;

/// An aggregate function a rule can apply to a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFn {
    /// Number of values.
    Count,
    /// Sum of values.
    Sum,
    /// Arithmetic mean.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Value with the earliest event time (first to arrive on ties).
    First,
    /// Value with the latest event time (last to arrive on ties).
    Last,
    /// Population standard deviation.
    Stddev,
    /// Rate of change per second, least-squares fit over event time.
    Slope,
    /// The value at this quantile (0..=1), from a sketch with 1 % relative accuracy.
    Percentile(f64),
    /// The VN_AQI NowCast of the last 12 clock-hour means (Decision 1459/QĐ-TCMT), the
    /// latest hour with data counted as c1; `NaN` unless 2 of c1..c3 are present.
    NowCast,
    /// Mean of the latest clock hour with data (the hourly value of SO2, NO2, CO, O3).
    HourMean,
}

impl AggFn {
    /// Parses a function name; `percentile` takes its quantile from `arg` (0..100).
    pub fn parse(name: &str, arg: Option<f64>) -> Result<AggFn, String> {
        let needs_no_arg = |f: AggFn| match arg {
            None => Ok(f),
            Some(_) => Err(format!("`{name}` takes one argument, the metric")),
        };
        match name {
            "count" => needs_no_arg(AggFn::Count),
            "sum" => needs_no_arg(AggFn::Sum),
            "avg" | "mean" => needs_no_arg(AggFn::Avg),
            "min" => needs_no_arg(AggFn::Min),
            "max" => needs_no_arg(AggFn::Max),
            "first" => needs_no_arg(AggFn::First),
            "last" => needs_no_arg(AggFn::Last),
            "stddev" => needs_no_arg(AggFn::Stddev),
            "slope" => needs_no_arg(AggFn::Slope),
            "nowcast" => needs_no_arg(AggFn::NowCast),
            "hour_mean" => needs_no_arg(AggFn::HourMean),
            "percentile" => match arg {
                Some(p) if (0.0..=100.0).contains(&p) => Ok(AggFn::Percentile(p / 100.0)),
                Some(p) => Err(format!("percentile {p} is outside 0..100")),
                None => Err("percentile needs a second argument, e.g. percentile(speed, 95)".into()),
            },
            other => Err(format!(
                "unknown aggregate `{other}` (count, sum, avg, min, max, first, last, stddev, slope, percentile, nowcast, hour_mean)"
            )),
        }
    }
}

/// Running statistics of one metric over a pane or window. Constant size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accumulator {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    first_t: i64,
    first_v: f64,
    last_t: i64,
    last_v: f64,
    /// Event time that `mean_t` is measured from, so seconds stay small and precise.
    anchor: i64,
    mean_t: f64,
    mean_v: f64,
    m2_t: f64,
    m2_v: f64,
    c_tv: f64,
    sketch: Option<Box<QuantileSketch>>,
    hourly: Option<Box<HourlyMeans>>,
}

/// Per clock hour (epoch hour number): sum and count, for NowCast.
pub type HourlyMeans = BTreeMap<i64, (f64, u32)>;

const HOUR_MS: i64 = 3_600_000;

impl Accumulator {
    /// An empty accumulator; `with_sketch` keeps a quantile sketch for percentiles.
    pub fn new(with_sketch: bool) -> Self {
        Accumulator {
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first_t: i64::MAX,
            first_v: f64::NAN,
            last_t: i64::MIN,
            last_v: f64::NAN,
            anchor: 0,
            mean_t: 0.0,
            mean_v: 0.0,
            m2_t: 0.0,
            m2_v: 0.0,
            c_tv: 0.0,
            sketch: with_sketch.then(|| Box::new(QuantileSketch::default())),
            hourly: None,
        }
    }

    /// The same accumulator, also keeping clock-hour means for [`AggFn::NowCast`].
    pub fn with_hourly(mut self) -> Self {
        self.hourly = Some(Box::default());
        self
    }

    /// Number of values taken.
    #[inline]
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Adds one value observed at event time `ts` (epoch ms).
    #[inline]
    pub fn add(&mut self, ts: i64, v: f64) {
        if self.n == 0 {
            self.anchor = ts;
        }
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if ts < self.first_t {
            self.first_t = ts;
            self.first_v = v;
        }
        if ts >= self.last_t {
            self.last_t = ts;
            self.last_v = v;
        }
        let inv_n = 1.0 / self.n as f64;
        let t = (ts - self.anchor) as f64 * 0.001;
        let dt = t - self.mean_t;
        let dv = v - self.mean_v;
        self.mean_t += dt * inv_n;
        self.mean_v += dv * inv_n;
        self.m2_t += dt * (t - self.mean_t);
        let dv_new = v - self.mean_v;
        self.m2_v += dv * dv_new;
        self.c_tv += dt * dv_new;
        if let Some(sketch) = &mut self.sketch {
            sketch.add(v);
        }
        if let Some(hourly) = &mut self.hourly {
            let slot = hourly.entry(ts.div_euclid(HOUR_MS)).or_insert((0.0, 0));
            slot.0 += v;
            slot.1 += 1;
        }
    }

    /// Folds `newer` (values later in event time, or unordered) into `self`.
    pub fn merge(&mut self, newer: &Accumulator) {
        if newer.n == 0 {
            return;
        }
        if self.n == 0 {
            let (keep_sketch, keep_hourly) = (self.sketch.is_some(), self.hourly.is_some());
            *self = newer.clone();
            if !keep_sketch {
                self.sketch = None;
            }
            if !keep_hourly {
                self.hourly = None;
            }
            return;
        }
        let (na, nb) = (self.n as f64, newer.n as f64);
        let n = na + nb;
        let newer_mean_t = newer.mean_t + (newer.anchor - self.anchor) as f64 / 1000.0;
        let dt = newer_mean_t - self.mean_t;
        let dv = newer.mean_v - self.mean_v;
        let w = na * nb / n;
        self.mean_t += dt * nb / n;
        self.mean_v += dv * nb / n;
        self.m2_t += newer.m2_t + dt * dt * w;
        self.m2_v += newer.m2_v + dv * dv * w;
        self.c_tv += newer.c_tv + dt * dv * w;
        self.n += newer.n;
        self.sum += newer.sum;
        self.min = self.min.min(newer.min);
        self.max = self.max.max(newer.max);
        if newer.first_t < self.first_t {
            self.first_t = newer.first_t;
            self.first_v = newer.first_v;
        }
        if newer.last_t >= self.last_t {
            self.last_t = newer.last_t;
            self.last_v = newer.last_v;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.sketch, &newer.sketch) {
            mine.merge(theirs);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.hourly, &newer.hourly) {
            for (hour, (sum, n)) in theirs.iter() {
                let slot = mine.entry(*hour).or_insert((0.0, 0));
                slot.0 += sum;
                slot.1 += n;
            }
        }
    }

    /// The value of `f` over everything taken; `NaN` when empty (except count and sum).
    pub fn value(&self, f: AggFn) -> f64 {
        if self.n == 0 {
            return match f {
                AggFn::Count | AggFn::Sum => 0.0,
                _ => f64::NAN,
            };
        }
        match f {
            AggFn::Count => self.n as f64,
            AggFn::Sum => self.sum,
            AggFn::Avg => self.sum / self.n as f64,
            AggFn::Min => self.min,
            AggFn::Max => self.max,
            AggFn::First => self.first_v,
            AggFn::Last => self.last_v,
            AggFn::Stddev => (self.m2_v.max(0.0) / self.n as f64).sqrt(),
            AggFn::Slope => {
                if self.m2_t > 0.0 {
                    self.c_tv / self.m2_t
                } else {
                    0.0
                }
            }
            AggFn::Percentile(q) => self
                .sketch
                .as_ref()
                .map_or(f64::NAN, |sketch| sketch.quantile(q)),
            AggFn::NowCast => self.hourly.as_ref().map_or(f64::NAN, |hourly| {
                let latest = self.last_t.div_euclid(HOUR_MS);
                let means: Vec<Option<f64>> = (0..12)
                    .map(|i| hourly.get(&(latest - i)).map(|(s, n)| s / f64::from(*n)))
                    .collect();
                nowcast(&means)
            }),
            AggFn::HourMean => self.hourly.as_ref().map_or(f64::NAN, |hourly| {
                hourly
                    .get(&self.last_t.div_euclid(HOUR_MS))
                    .map_or(f64::NAN, |(s, n)| s / f64::from(*n))
            }),
        }
    }
}

/// NowCast (Decision 1459/QĐ-TCMT) over hourly means `c[0]` = c1 (latest) … c12; a missing
/// hour weighs 0. `NaN` unless at least 2 of c1..c3 are present.
pub fn nowcast(c: &[Option<f64>]) -> f64 {
    if c.iter().take(3).filter(|v| v.is_some()).count() < 2 {
        return f64::NAN;
    }
    let present = c.iter().take(12).flatten();
    let (lo, hi) = present.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    let ratio = if hi > 0.0 { lo / hi } else { 1.0 };
    let w = if ratio > 0.5 { ratio } else { 0.5 };
    let (mut num, mut den) = (0.0, 0.0);
    for (i, v) in c.iter().take(12).enumerate() {
        if let Some(v) = v {
            let weight = w.powi(i as i32);
            num += weight * v;
            den += weight;
        }
    }
    num / den
}

/// Values closer to zero than this count as zero in the sketch.
const SKETCH_MIN: f64 = 1e-9;
/// Relative accuracy of [`QuantileSketch`].
pub const SKETCH_RELATIVE_ACCURACY: f64 = 0.01;
const SKETCH_OFFSET: i32 = 100_000;

/// A mergeable quantile sketch with bounded relative error (the DDSketch scheme):
/// values fall into logarithmic buckets of ratio γ = (1+α)/(1−α), α = 1 %.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantileSketch {
    buckets: BTreeMap<i32, u64>,
    count: u64,
}

impl QuantileSketch {
    fn gamma_ln() -> f64 {
        ((1.0 + SKETCH_RELATIVE_ACCURACY) / (1.0 - SKETCH_RELATIVE_ACCURACY)).ln()
    }

    fn bucket_of(v: f64) -> i32 {
        let magnitude = v.abs();
        if magnitude < SKETCH_MIN {
            return 0;
        }
        let index = (magnitude.ln() / Self::gamma_ln()).ceil() as i32;
        let ordered = SKETCH_OFFSET + index;
        if v > 0.0 {
            ordered
        } else {
            -ordered
        }
    }

    fn representative(bucket: i32) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        let gamma_ln = Self::gamma_ln();
        let index = bucket.abs() - SKETCH_OFFSET;
        let gamma = gamma_ln.exp();
        let magnitude = 2.0 * (index as f64 * gamma_ln).exp() / (gamma + 1.0);
        magnitude * f64::from(bucket.signum())
    }

    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        *self.buckets.entry(Self::bucket_of(v)).or_insert(0) += 1;
        self.count += 1;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &QuantileSketch) {
        for (bucket, n) in &other.buckets {
            *self.buckets.entry(*bucket).or_insert(0) += n;
        }
        self.count += other.count;
    }

    /// The value at quantile `q` (0..=1): within 1 % of `sorted[floor(q·(n−1))]`.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return Self::representative(*bucket);
            }
        }
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nowcast_by_hand() {
        // c1..c4 = 40, 20, 30, 10 (latest first): w* = 10/40 = 0.25 -> w = 0.5.
        // (40 + 0.5·20 + 0.25·30 + 0.125·10) / (1 + 0.5 + 0.25 + 0.125) = 58.75 / 1.875.
        let c = [Some(40.0), Some(20.0), Some(30.0), Some(10.0)];
        assert!((nowcast(&c) - 58.75 / 1.875).abs() < 1e-12);
        // Steady air: w* = 30/36 = 0.8333 is used as is; c2 missing weighs 0.
        let w: f64 = 30.0 / 36.0;
        let c = [Some(36.0), None, Some(30.0)];
        let want = (36.0 + w * w * 30.0) / (1.0 + w * w);
        assert!((nowcast(&c) - want).abs() < 1e-12);
        // Fewer than 2 of c1..c3: no NowCast.
        assert!(nowcast(&[Some(36.0), None, None, Some(20.0)]).is_nan());
    }

    #[test]
    fn nowcast_from_clock_hour_means_in_an_accumulator() {
        let hour = 3_600_000;
        let mut older = Accumulator::new(false).with_hourly();
        // Hour 0: mean 10 (two readings); hour 1: mean 20.
        older.add(0, 5.0);
        older.add(1_000, 15.0);
        older.add(hour + 10, 20.0);
        let mut newer = Accumulator::new(false).with_hourly();
        newer.add(2 * hour + 5, 40.0);
        older.merge(&newer);
        // c1 = 40, c2 = 20, c3 = 10: w* = 0.25 -> 0.5.
        let want = (40.0 + 0.5 * 20.0 + 0.25 * 10.0) / 1.75;
        assert!((older.value(AggFn::NowCast) - want).abs() < 1e-12);
        assert!(Accumulator::new(false).value(AggFn::NowCast).is_nan());
        // The latest clock hour's mean.
        assert_eq!(older.value(AggFn::HourMean), 40.0);
    }

    fn acc(points: &[(i64, f64)]) -> Accumulator {
        let mut a = Accumulator::new(true);
        for (t, v) in points {
            a.add(*t, *v);
        }
        a
    }

    #[test]
    fn basic_aggregates() {
        let a = acc(&[(3000, 4.0), (1000, 2.0), (2000, 6.0)]);
        assert_eq!(a.value(AggFn::Count), 3.0);
        assert_eq!(a.value(AggFn::Sum), 12.0);
        assert_eq!(a.value(AggFn::Avg), 4.0);
        assert_eq!(a.value(AggFn::Min), 2.0);
        assert_eq!(a.value(AggFn::Max), 6.0);
        assert_eq!(
            a.value(AggFn::First),
            2.0,
            "earliest event time, not arrival"
        );
        assert_eq!(a.value(AggFn::Last), 4.0);
        let sd = a.value(AggFn::Stddev);
        assert!((sd - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn slope_is_per_second_and_precise_at_epoch_scale() {
        let base = 1_795_000_000_000;
        // Water rising 0.5 m per hour, sampled every 5 minutes.
        let points: Vec<(i64, f64)> = (0..13)
            .map(|i| (base + i * 300_000, 1.2 + 0.5 * (i as f64 * 300.0) / 3600.0))
            .collect();
        let a = acc(&points);
        let per_hour = a.value(AggFn::Slope) * 3600.0;
        assert!((per_hour - 0.5).abs() < 1e-9, "{per_hour}");
        assert_eq!(acc(&[(base, 1.0)]).value(AggFn::Slope), 0.0);
    }

    #[test]
    fn merge_equals_single_pass() {
        let points: Vec<(i64, f64)> = (0..50)
            .map(|i| (1_795_000_000_000 + i * 1000, ((i * 37) % 11) as f64 - 3.5))
            .collect();
        let whole = acc(&points);
        let mut left = acc(&points[..20]);
        left.merge(&acc(&points[20..]));
        for f in [
            AggFn::Count,
            AggFn::Sum,
            AggFn::Avg,
            AggFn::Min,
            AggFn::Max,
            AggFn::First,
            AggFn::Last,
            AggFn::Stddev,
            AggFn::Slope,
            AggFn::Percentile(0.9),
        ] {
            let (a, b) = (whole.value(f), left.value(f));
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "{f:?}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn merging_into_an_empty_pane_keeps_what_it_tracks() {
        let points: Vec<(i64, f64)> = (0..20)
            .map(|i| (1_795_000_000_000 + i * 1000, i as f64))
            .collect();
        let whole = acc(&points);
        // An empty pane with a sketch (a percentile rule's) takes a full one's sketch too.
        let mut empty = Accumulator::new(true);
        empty.merge(&whole);
        assert_eq!(
            empty.value(AggFn::Percentile(0.5)),
            whole.value(AggFn::Percentile(0.5))
        );
        assert!(empty.value(AggFn::Percentile(0.5)).is_finite());
    }

    #[test]
    fn merge_in_either_order_keeps_the_earliest_first_and_the_latest_last() {
        let early = acc(&[(1_795_000_000_000, 1.0), (1_795_000_001_000, 2.0)]);
        let late = acc(&[(1_795_000_005_000, 7.0), (1_795_000_006_000, 8.0)]);
        let mut late_then_early = late.clone();
        late_then_early.merge(&early);
        let mut early_then_late = early.clone();
        early_then_late.merge(&late);
        for merged in [&late_then_early, &early_then_late] {
            assert_eq!(merged.value(AggFn::First), 1.0);
            assert_eq!(merged.value(AggFn::Last), 8.0);
        } // Same timestamp: the first is the one that arrived first (the pane merged into).
        let mut a = acc(&[(1_795_000_000_000, 1.0)]);
        a.merge(&acc(&[(1_795_000_000_000, 2.0)]));
        assert_eq!(a.value(AggFn::First), 1.0);
        assert_eq!(a.value(AggFn::Last), 2.0);
    }

    #[test]
    fn hour_mean_is_the_latest_clock_hours_mean() {
        const T: i64 = 1_795_000_000_000 / HOUR_MS * HOUR_MS; // a clock hour's start
        let mut a = Accumulator::new(false).with_hourly();
        a.add(T - 60_000, 100.0); // the hour before
        a.add(T + 60_000, 10.0);
        a.add(T + 120_000, 20.0);
        assert_eq!(a.value(AggFn::HourMean), 15.0);
    }

    #[test]
    fn percentiles_outside_0_to_100_are_refused() {
        assert!(AggFn::parse("percentile", Some(100.0)).is_ok());
        assert!(AggFn::parse("percentile", Some(0.0)).is_ok());
        assert!(AggFn::parse("percentile", Some(100.5)).is_err());
        assert!(AggFn::parse("percentile", Some(-1.0)).is_err());
        assert!(AggFn::parse("percentile", None).is_err());
    }

    #[test]
    fn empty_values() {
        let a = Accumulator::new(false);
        assert_eq!(a.value(AggFn::Count), 0.0);
        assert!(a.value(AggFn::Avg).is_nan());
        assert!(a.value(AggFn::Percentile(0.5)).is_nan());
    }

    #[test]
    fn sketch_is_within_relative_accuracy() {
        let mut sketch = QuantileSketch::default();
        let mut values: Vec<f64> = (1..=1000).map(|i| (i as f64).powf(1.3) - 300.0).collect();
        for v in &values {
            sketch.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.5, 0.95, 0.99, 1.0] {
            let exact = values[(q * 999.0) as usize];
            let got = sketch.quantile(q);
            assert!(
                (got - exact).abs() <= SKETCH_RELATIVE_ACCURACY * exact.abs() + 1e-9,
                "q={q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn parse_functions() {
        assert_eq!(AggFn::parse("avg", None), Ok(AggFn::Avg));
        assert_eq!(
            AggFn::parse("percentile", Some(95.0)),
            Ok(AggFn::Percentile(0.95))
        );
        assert!(AggFn::parse("percentile", None).is_err());
        assert!(AggFn::parse("median", None).is_err());
        assert!(AggFn::parse("avg", Some(3.0)).is_err());
    }
}
