//! The log's promises: what was synced comes back in order after a reopen; a torn tail
//! is cut off and writing goes on after it; damage elsewhere is refused; checkpoints
//! delete old segments but keep the one before; the waker follows durability.

use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchfloor-wal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bodies(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("reading {i}").into_bytes()).collect()
}

/// Where each segment in `dir` begins, oldest first.
fn first_seqs(dir: &std::path::Path) -> Vec<u64> {
    segment::list(dir)
        .unwrap()
        .iter()
        .map(|s| s.first_seq)
        .collect()
}

fn append_all(wal: &mut Wal, bodies: &[Vec<u8>]) -> u64 {
    wal.append(bodies.iter().map(Vec::as_slice)).unwrap()
}

#[test]
fn synced_records_come_back_in_order_and_sequences_continue() {
    let dir = scratch("roundtrip");
    let (mut wal, recovered) = Wal::open(&dir).unwrap();
    assert!(recovered.records.is_empty());
    assert_eq!(append_all(&mut wal, &bodies(0..100)), 100);
    assert_eq!(append_all(&mut wal, &bodies(100..150)), 150);
    wal.sync().unwrap();
    assert_eq!(wal.durable(), 150);
    assert_eq!(wal.stats().records.load(Ordering::Relaxed), 150);
    drop(wal);
    let (mut wal, recovered) = Wal::open(&dir).unwrap();
    let seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=150).collect::<Vec<_>>());
    assert_eq!(recovered.records[41].body, b"reading 41");
    assert_eq!(append_all(&mut wal, &bodies(0..1)), 151);
}

#[test]
fn a_torn_tail_is_cut_off_and_writing_goes_on_after_it() {
    let dir = scratch("torn");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    append_all(&mut wal, &bodies(0..10));
    wal.sync().unwrap();
    drop(wal);
    let segment = segment::list(&dir).unwrap().pop().unwrap().path;
    let full = std::fs::metadata(&segment).unwrap().len();
    // A crash in the middle of the last record's write.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(full - 3).unwrap();
    drop(file);
    let (mut wal, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(recovered.records.len(), 9);
    assert_eq!(recovered.truncated_bytes, (segment::HEADER + 9 - 3) as u64);
    // Sequence 10 was never durable: it is handed out again.
    assert_eq!(append_all(&mut wal, &bodies(20..21)), 10);
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(recovered.records.len(), 10);
    assert_eq!(recovered.records[9].body, b"reading 20");
}

#[test]
fn a_flipped_bit_ends_the_last_segment_there() {
    let dir = scratch("bitflip");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    append_all(&mut wal, &bodies(0..10));
    wal.sync().unwrap();
    drop(wal);
    let segment = segment::list(&dir).unwrap().pop().unwrap().path;
    let mut bytes = std::fs::read(&segment).unwrap();
    let record = segment::HEADER + 9; // "reading N" is 9 bytes
    bytes[record * 5 + segment::HEADER + 2] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let (_, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(
        recovered.records.len(),
        5,
        "records after the damage are dropped"
    );
}

#[test]
fn damage_in_an_older_segment_is_refused() {
    let dir = scratch("corrupt");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    append_all(&mut wal, &bodies(0..10));
    wal.checkpointed(3).unwrap();
    append_all(&mut wal, &bodies(10..20));
    wal.sync().unwrap();
    drop(wal);
    let first = segment::list(&dir).unwrap().remove(0).path;
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    match Wal::open(&dir) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn checkpoints_delete_old_segments_but_keep_the_one_before() {
    let dir = scratch("rotate");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    append_all(&mut wal, &bodies(0..10)); // 1..=10 in segment 1
    wal.checkpointed(10).unwrap(); // new segment from 11
    append_all(&mut wal, &bodies(10..20)); // 11..=20
    wal.checkpointed(15).unwrap(); // new segment from 21; segment 1 still the newest covered
    append_all(&mut wal, &bodies(20..30)); // 21..=30
    wal.sync().unwrap();
    let firsts = first_seqs(&dir);
    assert_eq!(firsts, vec![1, 11, 21]);
    wal.checkpointed(30).unwrap(); // new segment from 31: 21..=30 is covered and kept
    wal.sync().unwrap();
    let firsts = first_seqs(&dir);
    assert_eq!(firsts, vec![21, 31]);
    assert_eq!(wal.stats().segments_deleted.load(Ordering::Relaxed), 2);
    drop(wal);
    let (mut wal, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(recovered.records.first().unwrap().seq, 21);
    assert_eq!(recovered.records.last().unwrap().seq, 30);
    assert_eq!(append_all(&mut wal, &bodies(0..1)), 31);
}

#[test]
fn a_second_checkpoint_right_after_the_first_keeps_the_redelivery_tail() {
    let dir = scratch("tail");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    wal.keep_tail(12);
    append_all(&mut wal, &bodies(0..10)); // 1..=10
    wal.checkpointed(10).unwrap(); // new segment from 11
    append_all(&mut wal, &bodies(10..20)); // 11..=20
    wal.checkpointed(20).unwrap(); // new segment from 21
    append_all(&mut wal, &bodies(20..22)); // 21..=22
                                           // A clean stop: a checkpoint right after the last one. Without the tail only 21..=22
                                           // would be left to recognise a broker's redeliveries.
    wal.checkpointed(22).unwrap();
    wal.sync().unwrap();
    let firsts = first_seqs(&dir);
    assert_eq!(
        firsts,
        vec![11, 21, 23],
        "the last 12 records up to 22 are 11..=22"
    );
    drop(wal);
    let (_, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(recovered.records.len(), 12);
    assert_eq!(recovered.records.first().unwrap().seq, 11);
}

#[test]
fn an_empty_newest_segment_keeps_its_place_in_the_sequence() {
    let dir = scratch("empty-newest");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    append_all(&mut wal, &bodies(0..5));
    wal.checkpointed(5).unwrap();
    wal.checkpointed(5).unwrap(); // nothing new: no second empty segment
    wal.sync().unwrap();
    drop(wal);
    let firsts = first_seqs(&dir);
    assert_eq!(firsts, vec![1, 6]);
    let (mut wal, recovered) = Wal::open(&dir).unwrap();
    assert_eq!(recovered.records.len(), 5);
    assert_eq!(append_all(&mut wal, &bodies(0..1)), 6);
}

#[test]
fn the_waker_is_called_once_records_are_durable_without_waiting_for_a_window() {
    let dir = scratch("waker");
    let (mut wal, _) = Wal::open(&dir).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let durable = wal.durable_handle();
    wal.on_durable(move || {
        let _ = tx.send(durable.load(Ordering::Acquire));
    });
    let last = append_all(&mut wal, &bodies(0..10));
    // No sync asked: the writer makes the group durable on its own, then wakes.
    let seen = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(seen, last, "woken only once durable");
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}
