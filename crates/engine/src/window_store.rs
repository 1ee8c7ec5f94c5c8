//! Window state of every (rule, key), stored key-major: all the windows of one key sit in
//! one small vector, so the rules an event touches share a block of memory instead of each
//! probing its own hash map. Panes keep their accumulator inline when a rule reads one
//! metric, so a typical tumbling window allocates nothing.

use crate::aggregate::Accumulator;
use crate::two_stacks::PaneQueue;

/// Accumulators of one pane or session: one per metric (plus an event counter).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum PaneAccs {
    One(Accumulator),
    Many(Box<[Accumulator]>),
}

impl PaneAccs {
    pub(crate) fn from_template(template: &[Accumulator]) -> Self {
        match template {
            [one] => PaneAccs::One(one.clone()),
            many => PaneAccs::Many(many.into()),
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [Accumulator] {
        match self {
            PaneAccs::One(one) => std::slice::from_mut(one),
            PaneAccs::Many(many) => many,
        }
    }

    pub(crate) fn as_slice(&self) -> &[Accumulator] {
        match self {
            PaneAccs::One(one) => std::slice::from_ref(one),
            PaneAccs::Many(many) => many,
        }
    }

    pub(crate) fn into_boxed(self) -> Box<[Accumulator]> {
        match self {
            PaneAccs::One(one) => Box::new([one]),
            PaneAccs::Many(many) => many,
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct OpenPane {
    pub(crate) start: i64,
    pub(crate) accs: PaneAccs,
}

/// Panes not yet closed, earliest first; the earliest is kept inline.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct OpenPanes {
    first: Option<OpenPane>,
    rest: Vec<OpenPane>,
}

impl OpenPanes {
    /// The pane starting at `start`, created from `template` if needed.
    pub(crate) fn entry(&mut self, start: i64, template: &[Accumulator]) -> &mut PaneAccs {
        let fresh = || OpenPane {
            start,
            accs: PaneAccs::from_template(template),
        };
        match &self.first {
            None => {
                return &mut self.first.insert(fresh()).accs;
            }
            Some(first) if first.start == start => {}
            Some(first) if start < first.start => {
                let later = self.first.replace(fresh()).expect("checked");
                self.rest.insert(0, later);
            }
            Some(_) => {
                let i = self.rest.partition_point(|p| p.start < start);
                if self.rest.get(i).is_none_or(|p| p.start != start) {
                    self.rest.insert(i, fresh());
                }
                return &mut self.rest[i].accs;
            }
        }
        &mut self.first.as_mut().expect("present").accs
    }

    /// Start of the earliest open pane.
    pub(crate) fn earliest(&self) -> Option<i64> {
        self.first.as_ref().map(|p| p.start)
    }

    /// Removes and returns the earliest open pane.
    pub(crate) fn pop_earliest(&mut self) -> Option<OpenPane> {
        let first = self.first.take()?;
        if !self.rest.is_empty() {
            self.first = Some(self.rest.remove(0));
        }
        Some(first)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Session {
    pub(crate) start: i64,
    pub(crate) last: i64,
    pub(crate) accs: PaneAccs,
}

/// What sliding (hopping) windows keep after their panes close.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sliding {
    /// Closed panes still inside the window.
    pub(crate) queue: Option<PaneQueue>,
    /// End of the next pane to close.
    pub(crate) cursor: i64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum WindowState {
    Panes {
        open: OpenPanes,
        /// Hopping windows only (kept out of line so tumbling state stays small).
        sliding: Option<Box<Sliding>>,
        /// The close time whose timer is live; others are stale.
        scheduled: i64,
    },
    Sessions {
        sessions: Vec<Session>,
        scheduled: i64,
    },
}

impl WindowState {
    pub(crate) fn scheduled(&self) -> i64 {
        match self {
            WindowState::Panes { scheduled, .. } | WindowState::Sessions { scheduled, .. } => {
                *scheduled
            }
        }
    }
}

/// Every (rule, key) window state, grouped by key.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WindowStore {
    by_key: Vec<Vec<(u32, WindowState)>>,
    count: usize,
}

impl WindowStore {
    fn slot(&mut self, key: u32) -> &mut Vec<(u32, WindowState)> {
        let k = key as usize;
        if self.by_key.len() <= k {
            self.by_key.resize_with(k + 1, Vec::new);
        }
        &mut self.by_key[k]
    }

    /// The state of (rule, key), created by `make` if absent.
    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: u32,
        rule: u32,
        make: impl FnOnce() -> WindowState,
    ) -> &mut WindowState {
        let slot = self.slot(key);
        let i = match slot.binary_search_by_key(&rule, |(r, _)| *r) {
            Ok(i) => i,
            Err(i) => {
                slot.reserve_exact(1);
                slot.insert(i, (rule, make()));
                self.count += 1;
                i
            }
        };
        &mut self.slot(key)[i].1
    }

    /// The state of (rule, key), if any.
    pub(crate) fn get_mut(&mut self, key: u32, rule: u32) -> Option<&mut WindowState> {
        let slot = self.by_key.get_mut(key as usize)?;
        let i = slot.binary_search_by_key(&rule, |(r, _)| *r).ok()?;
        Some(&mut slot[i].1)
    }

    /// Drops the state of (rule, key).
    pub(crate) fn remove(&mut self, key: u32, rule: u32) {
        if let Some(slot) = self.by_key.get_mut(key as usize) {
            if let Ok(i) = slot.binary_search_by_key(&rule, |(r, _)| *r) {
                slot.remove(i);
                self.count -= 1;
            }
        }
    }

    /// Renumbers rules after a reload: `map` gives a rule's new index, or `None` to drop
    /// its state.
    pub(crate) fn remap(&mut self, map: impl Fn(u32) -> Option<u32>) {
        let mut count = 0;
        for slot in &mut self.by_key {
            let old = std::mem::take(slot);
            *slot = old
                .into_iter()
                .filter_map(|(r, state)| map(r).map(|n| (n, state)))
                .collect();
            slot.sort_by_key(|(r, _)| *r);
            count += slot.len();
        }
        self.count = count;
    }

    /// Number of (rule, key) states held.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_panes_stay_sorted_whatever_the_arrival_order() {
        let template = [Accumulator::new(false)];
        let mut panes = OpenPanes::default();
        for start in [20, 10, 30, 10, 0, 20] {
            panes.entry(start, &template).as_mut_slice()[0].add(start, 1.0);
        }
        let mut order = Vec::new();
        while let Some(p) = panes.pop_earliest() {
            order.push((p.start, p.accs.as_slice()[0].count()));
        }
        assert_eq!(order, vec![(0, 1), (10, 2), (20, 2), (30, 1)]);
        assert!(panes.is_empty());
    }

    #[test]
    fn store_keeps_rules_apart_per_key() {
        let mut store = WindowStore::default();
        let sessions = || WindowState::Sessions {
            sessions: Vec::new(),
            scheduled: 7,
        };
        store.get_or_insert_with(3, 5, sessions);
        store.get_or_insert_with(3, 1, sessions);
        store.get_or_insert_with(0, 5, sessions);
        assert_eq!(store.len(), 3);
        assert_eq!(store.get_mut(3, 1).unwrap().scheduled(), 7);
        store.remove(3, 1);
        assert!(store.get_mut(3, 1).is_none());
        assert!(store.get_mut(3, 5).is_some());
        assert!(store.get_mut(9, 5).is_none());
        assert_eq!(store.len(), 2);
    }
}
