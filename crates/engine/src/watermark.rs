//! The watermark across input channels (a Kafka partition, an MQTT source; replay has one).
//!
//! Within a channel events arrive in order per source up to the out-of-orderness bound, so
//! a channel's watermark is its slowest source's latest event time less the bound, floored
//! at its freshest event time less the bound and the idle timeout (an offline station does
//! not hold the others back). Across channels the watermark is the minimum over the
//! *active* ones, as in Flink: a partition consumed behind the others (a backlog, a
//! rebalance) holds the windows back instead of having its data refused as late.
//!
//! A channel is idle, and holds nothing back, once the clock is `idle_timeout` past its last
//! arrival. An open channel that has delivered nothing yet (a partition just assigned)
//! holds the watermark where it is until it delivers or goes idle. After a restore every
//! channel counts its silence again from the first clock tick, so a restarted pipeline
//! waits for each partition's backlog. When every channel is idle the stream is silent and
//! the clock moves the floor, so windows still close.

use std::collections::BTreeMap;

/// "Not yet": before the first event or tick.
const NONE: i64 = i64::MIN;

/// Input channels and when each last delivered (clock time).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Channels {
    last_arrival: BTreeMap<u32, i64>,
}

impl Channels {
    /// An event arrived on `channel` at `clock`.
    #[inline]
    pub(crate) fn arrived(&mut self, channel: u32, clock: i64) {
        match self.last_arrival.get_mut(&channel) {
            Some(last) => *last = clock,
            None => {
                self.last_arrival.insert(channel, clock);
            }
        }
    }

    /// A channel that will deliver (a partition assigned): it holds the watermark from now.
    pub(crate) fn open(&mut self, channel: u32, clock: i64) {
        self.last_arrival.insert(channel, clock);
    }

    /// A channel that will not deliver any more (a partition revoked).
    pub(crate) fn close(&mut self, channel: u32) {
        self.last_arrival.remove(&channel);
    }

    /// Channels whose silence is not counted yet start counting at `now` (first tick).
    pub(crate) fn start_counting(&mut self, now: i64) {
        for last in self.last_arrival.values_mut() {
            if *last == NONE {
                *last = now;
            }
        }
    }

    /// After a restore: every channel counts its silence again from the first tick.
    pub(crate) fn restored(&mut self) {
        for last in self.last_arrival.values_mut() {
            *last = NONE;
        }
    }

    fn idle(last: i64, clock: i64, idle: i64) -> bool {
        last == NONE || clock.saturating_sub(last) >= idle
    }

    /// The watermark the sources allow: `sources` gives each source's channel and latest
    /// event time. `None`: nothing to say yet (no event, or a new channel holds it back).
    pub(crate) fn candidate(
        &self,
        sources: impl Iterator<Item = (u32, i64)>,
        clock: i64,
        bound: i64,
        idle: i64,
    ) -> Option<i64> {
        // Per open channel: (slowest, freshest) latest event time of its sources.
        let mut per: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
        for (channel, max_ts) in sources {
            if !self.last_arrival.contains_key(&channel) {
                continue; // a closed channel's sources hold nothing back
            }
            let (slowest, freshest) = per.entry(channel).or_insert((i64::MAX, NONE));
            *slowest = (*slowest).min(max_ts);
            *freshest = (*freshest).max(max_ts);
        }
        let mut candidate = i64::MAX;
        let mut any_active = false;
        let mut silent_slowest = i64::MAX;
        for (channel, last) in &self.last_arrival {
            let is_idle = Channels::idle(*last, clock, idle);
            let Some((slowest, freshest)) = per.get(channel) else {
                if !is_idle {
                    return None; // delivered nothing yet: wait for it
                }
                continue;
            };
            silent_slowest = silent_slowest.min(*slowest);
            if is_idle {
                continue;
            }
            any_active = true;
            // Lagging sources are floored at the freshest event time seen, not the clock:
            // a backlog worked off after a restart is hours behind the clock and on time.
            let floor = (*freshest)
                .min(clock)
                .saturating_sub(bound)
                .saturating_sub(idle);
            candidate = candidate.min(slowest.saturating_sub(bound).max(floor));
        }
        if any_active {
            return Some(candidate);
        }
        if per.is_empty() && self.last_arrival.is_empty() {
            return None; // no event yet: nothing to hold back, nothing to close
        }
        // Silent everywhere: the clock moves the floor, so windows close.
        let floor = clock.saturating_sub(bound).saturating_sub(idle);
        Some(if silent_slowest == i64::MAX {
            floor
        } else {
            silent_slowest.saturating_sub(bound).max(floor)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: i64 = 1_000;
    const IDLE: i64 = 60_000;

    #[test]
    fn a_partition_behind_the_others_holds_the_watermark_back() {
        let mut c = Channels::default();
        c.arrived(0, 500_000);
        c.arrived(1, 500_000);
        // Partition 1 is consumed 20 minutes behind partition 0: the minimum wins.
        let sources = [(0, 2_000_000), (0, 1_999_000), (1, 800_000)];
        assert_eq!(
            c.candidate(sources.into_iter(), 500_000, B, IDLE),
            Some(799_000)
        );
        // One channel: the old single-stream rule (floor at freshest - bound - idle).
        c.arrived(0, 2_000_000);
        let one = [(0, 2_000_000), (0, 100_000)];
        assert_eq!(
            c.candidate(one.into_iter(), 2_000_000, B, IDLE),
            Some(2_000_000 - B - IDLE)
        );
    }

    #[test]
    fn an_idle_or_closed_partition_holds_nothing_back() {
        let mut c = Channels::default();
        c.arrived(0, 100_000);
        c.arrived(1, 10_000);
        let sources = [(0, 900_000), (1, 50_000)];
        assert_eq!(
            c.candidate(sources.into_iter(), 100_000, B, IDLE),
            Some(899_000)
        );
        c.arrived(1, 100_000);
        assert_eq!(
            c.candidate(sources.into_iter(), 100_000, B, IDLE),
            Some(49_000)
        );
        c.close(1);
        assert_eq!(
            c.candidate(sources.into_iter(), 100_000, B, IDLE),
            Some(899_000)
        );
    }

    #[test]
    fn a_new_partition_holds_until_it_delivers_or_goes_idle() {
        let mut c = Channels::default();
        c.arrived(0, 100_000);
        c.open(1, 100_000);
        let sources = [(0, 900_000)];
        assert_eq!(c.candidate(sources.into_iter(), 100_000, B, IDLE), None);
        assert_eq!(
            c.candidate(sources.into_iter(), 100_000 + IDLE, B, IDLE),
            Some(899_000),
            "idle once the timeout passed (channel 0 idle too: the clock floor is lower)"
        );
    }

    #[test]
    fn after_a_restore_channels_count_silence_from_the_first_tick() {
        let mut c = Channels::default();
        c.arrived(0, 100_000);
        c.arrived(1, 100_000);
        c.restored();
        c.start_counting(5_000_000);
        c.arrived(0, 5_000_000);
        // Channel 0's backlog runs ahead; channel 1 has not delivered since the restart
        // but is not idle: its sources hold the watermark.
        let sources = [(0, 3_000_000), (1, 1_000_000)];
        assert_eq!(
            c.candidate(sources.into_iter(), 5_000_100, B, IDLE),
            Some(999_000)
        );
    }

    #[test]
    fn a_silent_stream_closes_windows_on_the_clock() {
        let mut c = Channels::default();
        c.arrived(0, 100_000);
        let sources = [(0, 100_000)];
        let clock = 100_000 + IDLE + 50_000;
        assert_eq!(
            c.candidate(sources.into_iter(), clock, B, IDLE),
            Some(clock - B - IDLE)
        );
        assert_eq!(
            Channels::default().candidate([].into_iter(), clock, B, IDLE),
            None
        );
    }
}
