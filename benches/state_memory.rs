//! Measures engine state bytes per (rule, key) for a tumbling aggregate with a counting
//! allocator. `cargo bench -p watchfloor-benches --bench state_memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use watchfloor_benches::{engine, events_a, BASE_MS};
use watchfloor_engine::lookup::LookupTables;
use watchfloor_engine::{Emitted, RuleSet};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn tumbling_rules(n: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: mean_{i}\n    match: {{ kind: air, metric: pm25 }}\n    window: {{ type: tumbling, size: 1m }}\n    aggregates: {{ mean: avg(pm25) }}\n    condition: mean > 1000\n    severity: minor\n"
        ));
    }
    RuleSet::from_sources(&[("m.yaml".into(), yaml)], LookupTables::new()).unwrap()
}

/// Live bytes held by an engine with `rules` tumbling rules after `keys` keys each sent
/// one event into an open window.
fn live_bytes(rules: usize, keys: usize) -> isize {
    let events = events_a(keys, keys, 60_000);
    assert!(
        events.iter().all(|e| e.ts < BASE_MS + 60_000),
        "all in one window"
    );
    let before = LIVE.load(Ordering::Relaxed);
    let mut e = engine(tumbling_rules(rules));
    let mut out = Emitted::default();
    for ev in &events {
        e.process(ev, &mut out).unwrap();
    }
    assert_eq!(e.window_state_count(), rules * keys);
    let after = LIVE.load(Ordering::Relaxed);
    drop(e);
    after - before
}

fn main() {
    let keys = 100_000;
    let one = live_bytes(1, keys);
    let two = live_bytes(2, keys);
    let eleven = live_bytes(11, keys);
    println!("keys: {keys}");
    println!("engine bytes with 1 tumbling rule:   {one} ({:.1} per key, including the key name and per-source state)", one as f64 / keys as f64);
    println!("engine bytes with 2 tumbling rules:  {two}");
    println!("engine bytes with 11 tumbling rules: {eleven}");
    println!(
        "state per (rule, key), tumbling avg: {:.1} bytes (from 1→2 rules), {:.1} bytes (from 1→11 rules)",
        (two - one) as f64 / keys as f64,
        (eleven - one) as f64 / (10 * keys) as f64
    );
}
