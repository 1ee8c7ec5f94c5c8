//! Two-Stacks sliding-window aggregation over panes: amortised O(1) push, pop and query
//! for any associative merge, so a 1-hour window sliding every minute costs the same per
//! event as a 1-minute one.

use crate::aggregate::Accumulator;

/// A FIFO of pane aggregates (one accumulator per metric) that can answer
/// "merge of everything in the queue" without re-merging every pane.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PaneQueue {
    /// Older panes, each entry the merge of itself and every newer pane in `front`.
    front: Vec<Box<[Accumulator]>>,
    /// Newer panes as pushed.
    back: Vec<Box<[Accumulator]>>,
    /// Merge of everything in `back`.
    back_total: Box<[Accumulator]>,
    empty: Box<[Accumulator]>,
}

fn merge_into(older: &mut [Accumulator], newer: &[Accumulator]) {
    for (a, b) in older.iter_mut().zip(newer) {
        a.merge(b);
    }
}

impl PaneQueue {
    /// An empty queue whose panes look like `empty` (one accumulator per metric).
    pub fn new(empty: Box<[Accumulator]>) -> Self {
        PaneQueue {
            front: Vec::new(),
            back: Vec::new(),
            back_total: empty.clone(),
            empty,
        }
    }

    /// Number of panes held.
    pub fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    /// True when no pane is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the newest pane.
    pub fn push(&mut self, pane: Box<[Accumulator]>) {
        merge_into(&mut self.back_total, &pane);
        self.back.push(pane);
    }

    /// Drops the oldest pane.
    pub fn pop(&mut self) {
        if self.front.is_empty() {
            while let Some(mut pane) = self.back.pop() {
                if let Some(newer) = self.front.last() {
                    merge_into(&mut pane, newer);
                }
                self.front.push(pane);
            }
            self.back_total = self.empty.clone();
        }
        self.front.pop();
    }

    /// The merge of every pane held, oldest first.
    pub fn total(&self) -> Box<[Accumulator]> {
        match self.front.last() {
            None => self.back_total.clone(),
            Some(older) => {
                let mut total = older.clone();
                merge_into(&mut total, &self.back_total);
                total
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggFn;

    #[test]
    fn matches_recompute_over_a_sliding_range() {
        let empty: Box<[Accumulator]> = vec![Accumulator::new(false)].into_boxed_slice();
        let mut queue = PaneQueue::new(empty.clone());
        let values: Vec<f64> = (0..40).map(|i| ((i * 7919) % 23) as f64).collect();
        let width = 6;
        for (i, v) in values.iter().enumerate() {
            let mut pane = empty.clone();
            pane[0].add(i as i64 * 1000, *v);
            queue.push(pane);
            if queue.len() > width {
                queue.pop();
            }
            let lo = (i + 1).saturating_sub(width);
            let window = &values[lo..=i];
            let total = queue.total();
            let max = window.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(total[0].value(AggFn::Max), max);
            assert_eq!(total[0].value(AggFn::First), window[0]);
            assert_eq!(total[0].value(AggFn::Sum), window.iter().sum::<f64>());
        }
    }

    #[test]
    fn empty_until_a_pane_is_pushed_and_again_once_all_are_popped() {
        let empty: Box<[Accumulator]> = vec![Accumulator::new(false)].into_boxed_slice();
        let mut queue = PaneQueue::new(empty.clone());
        assert!(queue.is_empty());
        queue.push(empty.clone());
        queue.push(empty.clone());
        assert!(!queue.is_empty());
        assert_eq!(queue.len(), 2);
        queue.pop();
        assert!(!queue.is_empty(), "one left");
        queue.pop();
        assert!(queue.is_empty());
    }
}
