//! Red/amber/green bands: which way is better, and the green and amber thresholds.
//!
//! Invariant (checked at load): with `better: higher`, green > amber; with `lower`,
//! green < amber. A value at a threshold takes the better band.

use serde::Serialize;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Higher values are better (compliance %).
    Higher,
    /// Lower values are better (open alerts, AQI).
    Lower,
}

/// The thresholds of an indicator's bands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bands {
    /// Which way is better.
    pub better: Better,
    /// At or beyond this: green.
    pub green: f64,
    /// At or beyond this (and not green): amber; else red.
    pub amber: f64,
}

impl Bands {
    /// The band of `value`: `green`, `amber` or `red`.
    pub fn of(&self, value: f64) -> &'static str {
        let at_least = |threshold: f64| match self.better {
            Better::Higher => value >= threshold,
            Better::Lower => value <= threshold,
        };
        if at_least(self.green) {
            "green"
        } else if at_least(self.amber) {
            "amber"
        } else {
            "red"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_take_the_better_band() {
        let up = Bands {
            better: Better::Higher,
            green: 95.0,
            amber: 80.0,
        };
        assert_eq!(
            [up.of(95.0), up.of(94.9), up.of(80.0), up.of(79.9)],
            ["green", "amber", "amber", "red"]
        );
        let down = Bands {
            better: Better::Lower,
            green: 0.0,
            amber: 3.0,
        };
        assert_eq!(
            [down.of(0.0), down.of(1.0), down.of(3.0), down.of(4.0)],
            ["green", "amber", "amber", "red"]
        );
    }
}
