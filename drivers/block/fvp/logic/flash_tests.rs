// SPDX-License-Identifier: GPL-2.0

//! Tests of the flash format and of [`Journal`] against a reference model with crashes.

use super::*;
use crate::logic::cache::{Cache, Insert};
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec::Vec;

use crate::vec_stores::VecStores;

fn sb(device_blocks: u64) -> Superblock {
    let mut name = [0u8; NAME_LEN];
    name[..5].copy_from_slice(b"pool0");
    Superblock { uuid: [7; 16], name, geometry: Geometry::for_device(device_blocks).unwrap() }
}

#[test]
fn geometry_is_the_largest_that_fits() {
    for blocks in [1034 + 9, 1043, 1044, 5000, 262_144, 262_144 + 129, 1 << 30] {
        let Ok(g) = Geometry::for_device(blocks) else {
            assert!(blocks < Geometry::ENTRY_START + MIN_SLOTS + MIN_SLOTS.div_ceil(ENTRIES_PER_BLOCK));
            continue;
        };
        assert!(g.data_start() + g.slots <= blocks, "{blocks}: {g:?}");
        let bigger = Geometry { device_blocks: blocks, slots: g.slots + 1 };
        assert!(bigger.check().is_err(), "{blocks}: one more slot would fit");
    }
    assert_eq!(Geometry::for_device(100), Err(FormatError::TooSmall));
    assert_eq!(Geometry::for_device(0), Err(FormatError::TooSmall));
    // A 1 GiB device: 262,144 blocks.
    let g = Geometry::for_device(262_144).unwrap();
    assert_eq!(g.entry_blocks(), g.slots.div_ceil(128));
    assert!(g.slots > 262_144 * 99 / 100);
}

#[test]
fn superblock_round_trips_and_checks() {
    let s = sb(10_000);
    let mut a = [0u8; BLOCK];
    s.encode(&mut a);
    assert_eq!(Superblock::decode(&a), Ok(s));
    assert_eq!(Superblock::choose(&a, &a), Ok(s));
    let zero = [0u8; BLOCK];
    assert_eq!(Superblock::choose(&a, &zero), Ok(s));
    assert_eq!(Superblock::choose(&zero, &a), Ok(s));
    assert_eq!(Superblock::choose(&zero, &zero), Err(FormatError::NotAPool));
    let mut bad = a;
    bad[40] ^= 1;
    assert_eq!(Superblock::decode(&bad), Err(FormatError::SuperblockChecksum));
    assert_eq!(Superblock::choose(&bad, &a), Ok(s));
    let mut other = [0u8; BLOCK];
    sb(20_000).encode(&mut other);
    assert_eq!(Superblock::choose(&a, &other), Err(FormatError::CopiesDisagree));
    assert_eq!(s.fits(9_999), Err(FormatError::Geometry));
    assert_eq!(s.fits(10_000), Ok(()));
}

#[test]
fn entries_round_trip_and_belong_to_their_slot_and_pool() {
    let seed = sb(10_000).seed();
    let e = Entry { key: Key::new(3, 77).unwrap(), dirty: true, seq: 42 };
    let mut b = [0u8; ENTRY_BYTES];
    encode_entry(seed, 9, Some(&e), &mut b);
    assert_eq!(decode_entry(seed, 9, &b), Some(e));
    assert_eq!(decode_entry(seed, 10, &b), None, "an entry written to the wrong slot");
    assert_eq!(decode_entry(seed ^ 1, 9, &b), None, "an entry of another pool");
    encode_entry(seed, 9, None, &mut b);
    assert_eq!(b, [0u8; ENTRY_BYTES]);
    assert_eq!(decode_entry(seed, 9, &b), None);
    let records = |v: u16| if v == 3 { Some(100) } else { None };
    assert_eq!(check_entry(9, &e, records), Ok(()));
    let beyond = Entry { key: Key::new(3, 100).unwrap(), ..e };
    assert_eq!(check_entry(9, &beyond, records), Err(FormatError::BlockBeyondVolume { slot: 9 }));
    let unknown = Entry { key: Key::new(4, 1).unwrap(), ..e };
    assert_eq!(check_entry(9, &unknown, records), Err(FormatError::UnknownVolume { slot: 9 }));
    assert_eq!(newer(&e, &e, 9), Err(FormatError::DuplicateEntry { slot: 9 }));
}

#[test]
fn records_round_trip() {
    let seed = sb(10_000).seed();
    let r = VolumeRecord::new(b"/dev/disk/by-id/virtio-backing0", 2_097_152).unwrap();
    let mut b = [0u8; RECORD_BYTES];
    encode_record(seed, 5, Some(&r), &mut b);
    assert_eq!(decode_record(seed, 5, &b), Ok(Some(r)));
    assert_eq!(decode_record(seed, 6, &b), Ok(None));
    assert!(r.matches(b"/dev/disk/by-id/virtio-backing0", 2_097_152));
    assert!(!r.matches(b"/dev/disk/by-id/virtio-backing0", 2_097_160));
    assert!(!r.matches(b"/dev/sdb", 2_097_152));
    assert_eq!(r.blocks(), 262_144);
    assert!(VolumeRecord::new(&[b'x'; IDENTITY_LEN + 1], 8).is_none());
    assert!(VolumeRecord::new(b"", 8).is_none());
    let (block, off) = record_location(VOLUME_RECORDS - 1);
    assert_eq!(block, Geometry::VOLUME_TABLE_START + VOLUME_TABLE_BLOCKS - 1);
    assert_eq!(off + RECORD_BYTES, BLOCK);
}

#[test]
fn ram_per_slot_is_within_budget() {
    // The journal adds this to the index's bytes per slot (docs/flash.md).
    assert!(Journal::<VecStores>::bytes_per_slot() < 1.01);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Damaged superblocks are refused, never misread, and never panic.
    #[test]
    fn damaged_superblock_is_refused(flips in proptest::collection::vec((0usize..BLOCK, 1u8..=255), 1..8)) {
        let s = sb(50_000);
        let mut a = [0u8; BLOCK];
        s.encode(&mut a);
        for (at, x) in flips {
            a[at] ^= x;
        }
        if let Ok(d) = Superblock::decode(&a) {
            prop_assert_eq!(d, s);
        }
    }

    /// Arbitrary bytes never panic the decoders.
    #[test]
    fn arbitrary_metadata_never_panics(bytes in proptest::collection::vec(any::<u8>(), BLOCK), slot in any::<u64>()) {
        let _ = Superblock::decode(&bytes);
        let _ = decode_record(1, (slot % 256) as u32, &bytes);
        let _ = decode_entry(1, slot, &bytes);
    }

    /// A damaged entry reads as free or as itself, never as another entry.
    #[test]
    fn damaged_entry_is_never_misread(at in 0usize..ENTRY_BYTES, x in 1u8..=255, block in 0u64..1 << 40, seq in any::<u64>()) {
        let e = Entry { key: Key::new(1, block).unwrap(), dirty: seq & 1 == 0, seq };
        let mut b = [0u8; ENTRY_BYTES];
        encode_entry(99, 3, Some(&e), &mut b);
        b[at] ^= x;
        prop_assert_eq!(decode_entry(99, 3, &b), None);
    }
}

struct MapIndex(HashMap<SlotId, (Key, bool)>);

impl Index for MapIndex {
    fn live(&self, slot: SlotId) -> Option<(Key, bool)> {
        self.0.get(&slot).copied()
    }

    fn slot_of(&self, key: Key) -> Option<SlotId> {
        self.0.iter().find(|(_, (k, _))| *k == key).map(|(s, _)| *s)
    }
}

#[test]
fn acknowledged_data_is_never_rewritten_in_place() {
    let mut j = Journal::<VecStores>::new(256, RECORDS_DEFAULT).unwrap();
    let k = Key::new(0, 5).unwrap();
    j.begin_write(0).unwrap();
    j.landed(0).unwrap();
    // Uncommitted, but a flush may count on it: not in place either; the old slot is
    // free once the new one landed.
    assert_eq!(j.begin_write(0), Err(JournalError::NotInPlace));
    j.begin_write(2).unwrap();
    j.landed_replacing(2, 0, k).unwrap();
    assert!(j.reusable(0));
    j.begin_write(0).unwrap();
    j.landed_replacing(0, 2, k).unwrap();
    assert!(j.reusable(2));
    let seq = j.begin_phase().unwrap().unwrap();
    assert_eq!(seq, 2);
    assert_eq!(j.begin_write(0), Err(JournalError::NotInPlace));
    let idx = MapIndex(HashMap::from([(0, (k, true))]));
    let mut buf = [0u8; BLOCK];
    j.encode_block(0, 1, &idx, &mut buf);
    assert_eq!(decode_entry(1, 0, &buf[..32]), Some(Entry { key: k, dirty: true, seq: 2 }));
    assert_eq!(j.end_phase(true, &idx, |_| {}), Ok(PhaseOutcome { committed: 1, freed: 0 }));
    assert_eq!(j.begin_write(0), Err(JournalError::NotInPlace));
    // Out of place: slot 1 supersedes 0; 0 is reusable only after two phases.
    j.begin_write(1).unwrap();
    j.landed_replacing(1, 0, k).unwrap();
    let idx = MapIndex(HashMap::from([(1, (k, true))]));
    let seq = j.begin_phase().unwrap().unwrap();
    j.encode_block(0, 1, &idx, &mut buf);
    assert_eq!(decode_entry(1, 0, &buf[..32]), Some(Entry { key: k, dirty: true, seq: seq - 1 }));
    assert_eq!(decode_entry(1, 1, &buf[32..64]), Some(Entry { key: k, dirty: true, seq }));
    j.end_phase(true, &idx, |_| {}).unwrap();
    assert!(!j.reusable(0));
    assert!(j.pending());
    j.begin_phase().unwrap().unwrap();
    j.encode_block(0, 1, &idx, &mut buf);
    assert_eq!(decode_entry(1, 0, &buf[..32]), None);
    assert_eq!(j.end_phase(true, &idx, |_| {}), Ok(PhaseOutcome { committed: 1, freed: 1 }));
    assert!(j.reusable(0));
    assert_eq!(j.records(), 0);
}

#[test]
fn the_newest_entry_of_a_block_is_zeroed_last() {
    let mut j = Journal::<VecStores>::new(256, RECORDS_DEFAULT).unwrap();
    let k = Key::new(0, 9).unwrap();
    let none = MapIndex(HashMap::new());
    j.begin_write(0).unwrap();
    j.landed(0).unwrap();
    j.begin_phase().unwrap();
    j.end_phase(true, &MapIndex(HashMap::from([(0, (k, true))])), |_| {}).unwrap();
    // Slot 1 supersedes 0 and becomes durable; 0 waits to be zeroed.
    j.begin_write(1).unwrap();
    j.landed_replacing(1, 0, k).unwrap();
    let idx = MapIndex(HashMap::from([(1, (k, true))]));
    j.begin_phase().unwrap();
    j.end_phase(true, &idx, |_| {}).unwrap();
    // The block is evicted before 0 was zeroed: 1 is held, 0 goes first.
    j.release(1, k).unwrap();
    let seq = j.begin_phase().unwrap().unwrap();
    let mut buf = [0u8; BLOCK];
    j.encode_block(0, 1, &none, &mut buf);
    assert_eq!(decode_entry(1, 0, &buf[..32]), None);
    assert_eq!(decode_entry(1, 1, &buf[32..64]), Some(Entry { key: k, dirty: true, seq: seq - 1 }));
    j.end_phase(true, &none, |_| {}).unwrap();
    assert!(j.reusable(0));
    assert!(!j.reusable(1));
    j.begin_phase().unwrap();
    j.encode_block(0, 1, &none, &mut buf);
    assert_eq!(decode_entry(1, 1, &buf[32..64]), None);
    j.end_phase(true, &none, |_| {}).unwrap();
    assert!(j.reusable(1));
    assert_eq!(j.records(), 0);
}

#[test]
fn a_failed_commit_stops_the_journal() {
    let mut j = Journal::<VecStores>::new(256, RECORDS_DEFAULT).unwrap();
    let none = MapIndex(HashMap::new());
    j.begin_write(3).unwrap();
    j.landed(3).unwrap();
    j.begin_phase().unwrap();
    assert_eq!(j.begin_phase(), Err(JournalError::Phase));
    assert_eq!(j.end_phase(false, &none, |_| {}), Err(JournalError::Failed));
    assert!(j.failed());
    assert_eq!(j.begin_write(4), Err(JournalError::Failed));
    assert_eq!(j.begin_phase(), Err(JournalError::Failed));
}

#[test]
fn records_are_bounded() {
    let mut j = Journal::<VecStores>::new(64, 4).unwrap();
    let key = |s: SlotId| Key::new(0, u64::from(s)).unwrap();
    let mut idx = MapIndex(HashMap::new());
    for s in 0..5 {
        j.begin_write(s).unwrap();
        j.landed(s).unwrap();
        idx.0.insert(s, (key(s), true));
    }
    j.begin_phase().unwrap();
    j.end_phase(true, &idx, |_| {}).unwrap();
    for s in 0..4 {
        j.begin_write(10 + s).unwrap();
        j.landed_replacing(10 + s, s, key(s)).unwrap();
    }
    j.begin_write(14).unwrap();
    assert_eq!(j.landed_replacing(14, 4, key(4)), Err(JournalError::Full));
    assert_eq!(j.release(4, key(4)), Err(JournalError::Full));
    for s in 0..4 {
        idx.0.remove(&s);
        idx.0.insert(10 + s, (key(s), true));
    }
    j.begin_phase().unwrap();
    j.end_phase(true, &idx, |_| {}).unwrap();
    j.begin_phase().unwrap();
    j.end_phase(true, &idx, |_| {}).unwrap();
    assert_eq!(j.records(), 0);
    j.landed_replacing(14, 4, key(4)).unwrap();
}

/// Found by the `flash_image` fuzz target: an entry numbered near `u64::MAX` made the
/// commit numbers overflow after recovery. It is refused as corruption.
#[test]
fn impossible_commit_numbers_are_refused() {
    let e = Entry { key: Key::new(0, 1).unwrap(), dirty: true, seq: u64::MAX - 1 };
    assert_eq!(check_entry(4, &e, |_| Some(100)), Err(FormatError::SeqOutOfRange { slot: 4 }));
    let ok = Entry { seq: MAX_SEQ, ..e };
    assert_eq!(check_entry(4, &ok, |_| Some(100)), Ok(()));
    let mut cache = Cache::<VecStores>::new(1);
    cache.set_holding();
    cache.grow(256).unwrap();
    let mut journal = Journal::<VecStores>::new(256, 8).unwrap();
    let entry = |slot: SlotId| Ok(if slot == 4 { Some(e) } else { None });
    assert_eq!(recover(256, &mut cache, &mut journal, entry, |_, _| {}), Err(FormatError::SeqOutOfRange { slot: 4 }));
}

#[test]
fn first_seq_after_recovery_is_above_every_superseded_rewrite() {
    for max in [0u64, 1, 2, 5, 6, 1000, 1001] {
        let n = first_seq_after(max);
        assert_eq!(n % 2, 0);
        assert!(n - 1 > max, "{max} -> {n}");
    }
}

// ---------------------------------------------------------------------------------
// The crash model: a pool of SLOTS slots over a simulated device with a volatile
// write cache. Writes, destages, evictions, discards, flushes and the steps of commits
// interleave at random; at random moments the power is cut: every unflushed sector
// write independently lands or not (later writes to a sector only after earlier
// ones). The recovered pool must serve, for every block, a version at least as new as
// the last flush promised, never torn data, and call clean only what the backing
// device holds.

const SLOTS: u64 = 300;
const KEYS: u64 = 40;
/// Few records, so that `Full` is reached.
const RECORDS: usize = 24;
const SEED: u32 = 0x5eed;
const DISCARDED: u64 = u64::MAX;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A sector write not yet durable; `done` once the device completed it.
#[derive(Clone)]
struct Pending<T> {
    value: T,
    done: bool,
}

struct Device {
    meta: Vec<[u8; SECTOR]>,
    meta_pending: Vec<Vec<Pending<[u8; SECTOR]>>>,
    /// Per data slot and sector: the id of the write whose data it holds (0: none).
    data: Vec<[u64; 8]>,
    data_pending: Vec<[Vec<Pending<u64>>; 8]>,
}

impl Device {
    fn new() -> Self {
        let sectors = (SLOTS.div_ceil(ENTRIES_PER_BLOCK) as usize) * (BLOCK / SECTOR);
        Device {
            meta: vec![[0; SECTOR]; sectors],
            meta_pending: vec![Vec::new(); sectors],
            data: vec![[0; 8]; SLOTS as usize],
            data_pending: (0..SLOTS).map(|_| Default::default()).collect(),
        }
    }

    /// A flush: every completed write becomes durable.
    fn flush(&mut self) {
        for (s, p) in self.meta_pending.iter_mut().enumerate() {
            while p.first().is_some_and(|w| w.done) {
                self.meta[s] = p.remove(0).value;
            }
        }
        for (slot, secs) in self.data_pending.iter_mut().enumerate() {
            for (i, p) in secs.iter_mut().enumerate() {
                while p.first().is_some_and(|w| w.done) {
                    self.data[slot][i] = p.remove(0).value;
                }
            }
        }
    }

    /// The power is cut: what reached the media.
    fn crash(&mut self, rng: &mut Rng) {
        for (s, p) in self.meta_pending.iter_mut().enumerate() {
            let k = rng.below(p.len() as u64 + 1) as usize;
            for w in p.drain(..).take(k) {
                self.meta[s] = w.value;
            }
        }
        for (slot, secs) in self.data_pending.iter_mut().enumerate() {
            for (i, p) in secs.iter_mut().enumerate() {
                let k = rng.below(p.len() as u64 + 1) as usize;
                for w in p.drain(..).take(k) {
                    self.data[slot][i] = w.value;
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A write-back write: the block's newer version, mapped when it lands.
    Write,
    /// A read miss: the backing device's data copied into the pool (Filling slot).
    Fill { gen: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Inflight {
    id: u64,
    key: Key,
    slot: SlotId,
    kind: Kind,
}

/// A write-back in flight: the data `id` of `slot` going to the backing device.
#[derive(Clone, Copy, Debug)]
struct Destage {
    slot: SlotId,
    gen: u16,
    key: Key,
    id: u64,
}

struct Flush {
    /// Phases begun when it arrived: it waits for one more to end.
    need: u64,
    /// The newest acknowledged write of each block when it arrived.
    acked: HashMap<Key, u64>,
    /// `Model::ops` when it arrived.
    arrived: u64,
}

fn tracing() -> bool {
    std::env::var("FLASH_TRACE").is_ok()
}

macro_rules! trace {
    ($($t:tt)*) => { if tracing() { std::eprintln!($($t)*); } };
}

fn new_cache() -> Cache<VecStores> {
    let mut c = Cache::new(7);
    c.set_holding();
    c.grow(SLOTS as u32).unwrap();
    c
}

/// The pool as the kernel will run it: the cache index in holding mode, the journal,
/// the device, and the backing device.
struct Model {
    rng: Rng,
    dev: Device,
    journal: Journal<VecStores>,
    cache: Cache<VecStores>,
    /// The data (write id) each slot holds, as the pool knows it.
    slot_data: Vec<u64>,
    inflight: Vec<Inflight>,
    destages: Vec<Destage>,
    /// Write id -> block.
    writes: HashMap<u64, Key>,
    next_id: u64,
    acked: HashMap<Key, u64>,
    /// What completed flushes promised: at least this version of each block.
    promised: HashMap<Key, u64>,
    /// The backing device's durable version of each block (`DISCARDED`).
    backing: HashMap<Key, u64>,
    flushes: Vec<Flush>,
    phases_begun: u64,
    phase_todo: Vec<u64>,
    phase_issued: Vec<(u64, Vec<usize>)>,
    /// The running phase's device flush is not issued yet.
    phase_unflushed: bool,
    /// Every other seed reads more: more fills, evictions and write-backs.
    read_heavy: bool,
    stats: ModelStats,
    /// Operations so far, and when each block was last discarded: a discard leaves a
    /// block's contents undefined, so flushes that arrived before it promise nothing
    /// for it.
    ops: u64,
    discarded: HashMap<Key, u64>,
}

#[derive(Default, Debug)]
struct ModelStats {
    crashes: u64,
    flushes_completed: u64,
    recovered_dirty: u64,
    recovered_older_than_acked: u64,
    out_of_place: u64,
    fills: u64,
    orphans: u64,
    full: u64,
    recovery_phases: u64,
}

impl Model {
    fn new(seed: u64) -> Self {
        Model {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            dev: Device::new(),
            journal: Journal::new(SLOTS, RECORDS).unwrap(),
            cache: new_cache(),
            slot_data: vec![0; SLOTS as usize],
            inflight: Vec::new(),
            destages: Vec::new(),
            writes: HashMap::new(),
            next_id: 1,
            acked: HashMap::new(),
            promised: HashMap::new(),
            backing: HashMap::new(),
            flushes: Vec::new(),
            phases_begun: 0,
            phase_todo: Vec::new(),
            phase_issued: Vec::new(),
            phase_unflushed: false,
            read_heavy: seed.is_multiple_of(2),
            stats: ModelStats::default(),
            ops: 0,
            discarded: HashMap::new(),
        }
    }

    fn busy(&self, key: Key) -> bool {
        self.inflight.iter().any(|w| w.key == key)
    }

    /// Makes room the way the kernel's cleaner will: evicts a clean block and releases
    /// its entry (the slot comes back after a phase zeroed it).
    fn evict(&mut self) {
        if !self.journal.has_room() {
            self.stats.full += 1;
            return;
        }
        if let Some((slot, key)) = self.cache.evict() {
            self.journal.release(slot, key).unwrap();
            // A block whose entry never reached the device is free at once.
            self.unhold_if_free(slot);
            trace!("evicted block {} slot {slot}", key.block());
        }
    }

    fn issue_data(&mut self, slot: SlotId, id: u64) {
        for p in self.dev.data_pending[slot as usize].iter_mut() {
            p.push(Pending { value: id, done: false });
        }
    }

    fn write(&mut self, key: Key) {
        if self.busy(key) {
            return;
        }
        let Some(slot) = self.cache.take_free() else {
            self.evict();
            return;
        };
        self.journal.begin_write(slot).unwrap();
        let id = self.next_id;
        self.next_id += 1;
        self.writes.insert(id, key);
        self.issue_data(slot, id);
        self.inflight.push(Inflight { id, key, slot, kind: Kind::Write });
        trace!("write {id} block {} -> slot {slot}", key.block());
    }

    fn fill(&mut self, key: Key) {
        if self.busy(key) || self.cache.peek(key).is_some() {
            return;
        }
        let id = self.backing.get(&key).copied().unwrap_or(0);
        if id == 0 || id == DISCARDED {
            return;
        }
        let ins = match self.cache.insert(key, Insert::Filling) {
            Ok(ins) => ins,
            Err(_) => {
                self.evict();
                return;
            }
        };
        self.journal.begin_write(ins.slot).unwrap();
        self.issue_data(ins.slot, id);
        self.inflight.push(Inflight { id, key, slot: ins.slot, kind: Kind::Fill { gen: ins.gen } });
        self.stats.fills += 1;
        trace!("fill {id} block {} -> slot {}", key.block(), ins.slot);
    }

    fn land(&mut self, i: usize) {
        let w = self.inflight[i];
        match w.kind {
            Kind::Write => {
                let old = self.cache.peek(w.key);
                match old {
                    Some((o, SlotState::Clean | SlotState::Dirty)) => {
                        match self.journal.landed_replacing(w.slot, o, w.key) {
                            Ok(()) => self.stats.out_of_place += 1,
                            Err(JournalError::Full) => {
                                self.stats.full += 1;
                                return;
                            }
                            Err(e) => panic!("landed_replacing: {e:?}"),
                        }
                    }
                    // A fill in flight is orphaned: its data is older.
                    Some((_, _)) | None => self.journal.landed(w.slot).unwrap(),
                }
                let ins = self.cache.install(w.slot, w.key, Insert::Dirty).unwrap();
                if let Some(r) = ins.replaced {
                    if self.cache.state_of(r) == Some(SlotState::Free) && self.destages.iter().any(|d| d.slot == r) {
                        self.stats.orphans += 1;
                    }
                    self.unhold_if_free(r);
                }
                self.slot_data[w.slot as usize] = w.id;
                self.acked.insert(w.key, w.id);
                trace!("landed {} block {} slot {} replacing {old:?}", w.id, w.key.block(), w.slot);
            }
            Kind::Fill { gen } => {
                if self.cache.fill_complete(w.slot, w.key, gen) {
                    self.journal.landed(w.slot).unwrap();
                    self.slot_data[w.slot as usize] = w.id;
                    trace!("filled {} block {} slot {}", w.id, w.key.block(), w.slot);
                } else {
                    self.journal.abandon(w.slot).unwrap();
                    self.unhold_if_free(w.slot);
                    trace!("fill {} of block {} slot {} abandoned", w.id, w.key.block(), w.slot);
                }
            }
        }
        self.inflight.swap_remove(i);
        for p in self.dev.data_pending[w.slot as usize].iter_mut() {
            for x in p.iter_mut().filter(|x| x.value == w.id) {
                x.done = true;
            }
        }
    }

    /// A held slot whose entry the journal already zeroed comes back (an orphan that
    /// ended after its zeroing, an abandoned fill).
    fn unhold_if_free(&mut self, slot: SlotId) {
        if self.journal.reusable(slot) {
            self.cache.unhold(slot);
        }
    }

    fn begin_destage(&mut self, key: Key) {
        let Some((slot, SlotState::Dirty)) = self.cache.peek(key) else { return };
        if !self.journal.destageable(slot) {
            return;
        }
        let Some(gen) = self.cache.begin_destage(slot) else { return };
        self.destages.push(Destage { slot, gen, key, id: self.slot_data[slot as usize] });
    }

    fn end_destage(&mut self, i: usize) {
        let d = self.destages.swap_remove(i);
        // Written and the backing device flushed, then clean.
        self.backing.insert(d.key, d.id);
        if self.cache.end_destage(d.slot, d.gen, true) {
            self.journal.cleaned(d.slot);
        } else {
            self.unhold_if_free(d.slot);
        }
        trace!("destaged block {} slot {} write {}", d.key.block(), d.slot, d.id);
    }

    fn discard(&mut self, key: Key) {
        if self.busy(key) {
            return;
        }
        if let Some((slot, state)) = self.cache.peek(key) {
            if !self.journal.has_room() {
                self.stats.full += 1;
                return;
            }
            self.cache.remove(key);
            if state != SlotState::Filling {
                self.journal.release(slot, key).unwrap();
                self.unhold_if_free(slot);
            }
            trace!("discarded block {} slot {slot}", key.block());
        }
        self.backing.insert(key, DISCARDED);
        self.promised.remove(&key);
        self.acked.remove(&key);
        self.discarded.insert(key, self.ops);
    }

    fn flush(&mut self) {
        let need = self.phases_begun + 1;
        self.flushes.push(Flush { need, acked: self.acked.clone(), arrived: self.ops });
        trace!("flush arrives, needs phase {need}");
    }

    fn begin_phase(&mut self) {
        if self.journal.in_phase() {
            return;
        }
        match self.journal.begin_phase().unwrap() {
            None => self.complete_flushes(),
            Some(seq) => {
                self.phases_begun += 1;
                trace!("phase {} begins, seq {seq}", self.phases_begun);
                // The flush of the device, issued after begin_phase, is a step of its
                // own: the power may be cut before it.
                self.phase_unflushed = true;
                let mut cursor = 0;
                while let Some(b) = self.journal.next_phase_block(&mut cursor) {
                    self.phase_todo.push(b);
                }
            }
        }
    }

    fn phase_flush(&mut self) {
        if self.phase_unflushed {
            self.dev.flush();
            self.phase_unflushed = false;
        }
    }

    fn issue_block(&mut self, i: usize) {
        if self.phase_unflushed {
            return;
        }
        let b = self.phase_todo.swap_remove(i);
        let mut buf = [0u8; BLOCK];
        self.journal.encode_block(b, SEED, &self.cache, &mut buf);
        let first = b as usize * (BLOCK / SECTOR);
        let mut sectors = Vec::new();
        for k in 0..BLOCK / SECTOR {
            let mut v = [0u8; SECTOR];
            v.copy_from_slice(&buf[k * SECTOR..(k + 1) * SECTOR]);
            self.dev.meta_pending[first + k].push(Pending { value: v, done: false });
            sectors.push(first + k);
        }
        self.phase_issued.push((b, sectors));
    }

    /// A FUA write completes: durable.
    fn complete_block(&mut self, i: usize) {
        let (_, sectors) = self.phase_issued.swap_remove(i);
        for s in sectors {
            let w = self.dev.meta_pending[s].remove(0);
            self.dev.meta[s] = w.value;
        }
    }

    fn end_phase(&mut self) {
        if !self.journal.in_phase()
            || self.phase_unflushed
            || !self.phase_todo.is_empty()
            || !self.phase_issued.is_empty()
        {
            return;
        }
        let mut freed = Vec::new();
        self.journal.end_phase(true, &self.cache, |s| freed.push(s)).unwrap();
        for s in freed {
            // An orphan still destaging comes back when its destage ends.
            self.cache.unhold(s);
        }
        trace!("phase ends");
        self.complete_flushes();
    }

    fn complete_flushes(&mut self) {
        let done = self.journal.phases_done();
        let idle = !self.journal.in_phase() && !self.journal.pending();
        let mut kept = Vec::new();
        for f in self.flushes.drain(..) {
            if done >= f.need || idle {
                for (k, v) in f.acked {
                    if self.discarded.get(&k).is_some_and(|&d| d >= f.arrived) {
                        continue;
                    }
                    let p = self.promised.entry(k).or_insert(0);
                    *p = (*p).max(v);
                }
                self.stats.flushes_completed += 1;
                trace!("flush completes");
            } else {
                kept.push(f);
            }
        }
        self.flushes = kept;
    }

    fn step(&mut self) {
        let key = Key::new(0, self.rng.below(KEYS)).unwrap();
        let mut op = self.rng.below(100);
        self.ops += 1;
        // Read-heavy seeds turn a third of the writes into fills.
        if self.read_heavy && op < 8 {
            op = 25;
        }
        match op {
            0..=24 => self.write(key),
            25..=29 => self.fill(key),
            30..=52 => {
                if !self.inflight.is_empty() {
                    let i = self.rng.below(self.inflight.len() as u64) as usize;
                    self.land(i);
                }
            }
            53..=57 => self.flush(),
            58..=60 => self.begin_phase(),
            61..=62 => self.phase_flush(),
            63..=72 => {
                if !self.phase_todo.is_empty() {
                    let i = self.rng.below(self.phase_todo.len() as u64) as usize;
                    self.issue_block(i);
                }
            }
            73..=82 => {
                if !self.phase_issued.is_empty() {
                    let i = self.rng.below(self.phase_issued.len() as u64) as usize;
                    self.complete_block(i);
                }
                self.end_phase();
            }
            83..=87 => self.begin_destage(key),
            88..=92 => {
                if !self.destages.is_empty() {
                    let i = self.rng.below(self.destages.len() as u64) as usize;
                    self.end_destage(i);
                }
            }
            93..=97 => self.evict(),
            _ => self.discard(key),
        }
    }

    /// Cuts the power, reads the device back as the kernel would, checks what it
    /// serves, and continues from the recovered pool.
    fn crash_and_recover(&mut self, seed: u64) {
        self.stats.crashes += 1;
        trace!("CRASH");
        let mut rng = Rng(self.rng.next() | 1);
        self.dev.crash(&mut rng);
        // What was in flight is gone with the power.
        self.phase_todo.clear();
        self.phase_issued.clear();
        self.phase_unflushed = false;
        self.inflight.clear();
        self.destages.clear();
        self.flushes.clear();
        // Recovery scan: the newest entry of each block.
        let mut newest: HashMap<Key, (SlotId, Entry)> = HashMap::new();
        let mut stale = Vec::new();
        let mut max_seq = 0;
        for slot in 0..SLOTS as SlotId {
            let (sector, off) = ((slot as usize * ENTRY_BYTES) / SECTOR, (slot as usize * ENTRY_BYTES) % SECTOR);
            let Some(e) = decode_entry(SEED, u64::from(slot), &self.dev.meta[sector][off..off + ENTRY_BYTES]) else {
                continue;
            };
            max_seq = max_seq.max(e.seq);
            match newest.get(&e.key).copied() {
                None => {
                    newest.insert(e.key, (slot, e));
                }
                Some((other, o)) => {
                    let n = newer(&e, &o, u64::from(slot)).unwrap_or_else(|err| panic!("seed {seed}: {err:?}"));
                    if n {
                        newest.insert(e.key, (slot, e));
                        stale.push((other, e.key));
                    } else {
                        stale.push((slot, e.key));
                    }
                }
            }
        }
        for k in 0..KEYS {
            let key = Key::new(0, k).unwrap();
            let promised = self.promised.get(&key).copied().unwrap_or(0);
            let backing = self.backing.get(&key).copied().unwrap_or(0);
            match newest.get(&key) {
                Some(&(slot, e)) => {
                    let data = self.dev.data[slot as usize];
                    let id = data[0];
                    assert!(data.iter().all(|&x| x == id), "seed {seed}: block {k} served torn from slot {slot}: {data:?}");
                    assert_eq!(self.writes.get(&id), Some(&key), "seed {seed}: block {k} served another block's data (write {id}) from slot {slot}");
                    assert!(id >= promised, "seed {seed}: block {k} came back as write {id}, older than the flushed {promised}");
                    if !e.dirty && backing != DISCARDED {
                        assert_eq!(backing, id, "seed {seed}: block {k} clean in slot {slot} but the backing device holds {backing}");
                    }
                    if e.dirty {
                        self.stats.recovered_dirty += 1;
                    }
                    if self.acked.get(&key) != Some(&id) {
                        self.stats.recovered_older_than_acked += 1;
                    }
                }
                None => assert!(
                    backing == DISCARDED || backing >= promised,
                    "seed {seed}: block {k} not in the pool and the backing device holds {backing}, older than the flushed {promised}"
                ),
            }
        }
        // Reopen with `recover`, as the kernel will (on one reopen in 8 with only 3
        // records, so that stale entries exceed them and recovery runs phases). It must
        // map exactly the newest entries found above.
        let records = if self.rng.below(8) == 0 { 3 } else { RECORDS };
        self.journal = Journal::new(SLOTS, records).unwrap();
        self.cache = new_cache();
        let scanned = self.dev.meta.clone();
        let dev = &mut self.dev;
        let entry = |slot: SlotId| {
            let (sector, off) = ((slot as usize * ENTRY_BYTES) / SECTOR, (slot as usize * ENTRY_BYTES) % SECTOR);
            Ok(decode_entry(SEED, u64::from(slot), &scanned[sector][off..off + ENTRY_BYTES]))
        };
        let r = recover(SLOTS, &mut self.cache, &mut self.journal, entry, |j, c| recovery_phase(dev, j, c))
            .unwrap_or_else(|e| panic!("seed {seed}: recovery: {e:?}"));
        assert_eq!((r.live, r.stale as usize, r.max_seq), (newest.len() as u64, stale.len(), max_seq));
        self.stats.recovery_phases += u64::from(r.phases);
        self.acked.clear();
        for (&key, &(slot, e)) in &newest {
            assert_eq!(self.cache.peek(key), Some((slot, if e.dirty { SlotState::Dirty } else { SlotState::Clean })));
            let id = self.dev.data[slot as usize][0];
            self.slot_data[slot as usize] = id;
            self.acked.insert(key, id);
        }
        for k in 0..KEYS {
            let key = Key::new(0, k).unwrap();
            if !newest.contains_key(&key) {
                if let Some(&b) = self.backing.get(&key).filter(|&&b| b != DISCARDED) {
                    self.acked.insert(key, b);
                }
            }
        }
        self.phases_begun = self.journal.phases_done();
    }

    /// Lands every write, ends every destage and commits until nothing waits: then
    /// every slot is mapped or free, and no record remains (nothing leaks).
    fn quiesce(&mut self, seed: u64) {
        let mut rounds = 0;
        while !self.inflight.is_empty() || !self.destages.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "seed {seed}: writes never land");
            while !self.destages.is_empty() {
                self.end_destage(0);
            }
            if !self.inflight.is_empty() {
                let before = self.inflight.len();
                self.land(0);
                if self.inflight.len() == before {
                    self.run_phase();
                }
            }
        }
        for _ in 0..8 {
            self.run_phase();
        }
        assert!(!self.journal.pending(), "seed {seed}: commits never settle");
        assert_eq!(self.journal.records(), 0, "seed {seed}: records left after quiescing");
        let c = self.cache.counts();
        assert_eq!((c.held, c.taken), (0, 0), "seed {seed}: slots held or taken after quiescing: {c:?}");
        assert_eq!(c.free + c.clean + c.dirty, SLOTS as u32, "seed {seed}: {c:?}");
    }

    fn run_phase(&mut self) {
        if !self.journal.in_phase() {
            self.begin_phase();
        }
        self.phase_flush();
        while !self.phase_todo.is_empty() {
            self.issue_block(0);
        }
        while !self.phase_issued.is_empty() {
            self.complete_block(0);
        }
        self.end_phase();
    }
}

/// A whole phase during recovery: the device flushed, the blocks written and durable.
fn recovery_phase(dev: &mut Device, journal: &mut Journal<VecStores>, cache: &mut Cache<VecStores>) {
    journal.begin_phase().unwrap();
    dev.flush();
    let mut cursor = 0;
    while let Some(b) = journal.next_phase_block(&mut cursor) {
        let mut buf = [0u8; BLOCK];
        journal.encode_block(b, SEED, &*cache, &mut buf);
        let first = b as usize * (BLOCK / SECTOR);
        for k in 0..BLOCK / SECTOR {
            dev.meta[first + k].copy_from_slice(&buf[k * SECTOR..(k + 1) * SECTOR]);
        }
    }
    let mut freed = Vec::new();
    journal.end_phase(true, &*cache, |s| freed.push(s)).unwrap();
    for s in freed {
        assert!(cache.unhold(s));
    }
}

fn run_model(seed: u64, steps: u32) -> ModelStats {
    let mut m = Model::new(seed);
    for _ in 0..steps {
        m.step();
        if m.rng.below(200) == 0 {
            m.crash_and_recover(seed);
        }
    }
    m.quiesce(seed);
    m.crash_and_recover(seed);
    m.stats
}

/// `FLASH_SEEDS` (default 3,000) seeds of 1,500 steps each.
#[test]
fn crash_at_any_step_loses_no_flushed_write() {
    let seeds: u64 = std::env::var("FLASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let only: Option<u64> = std::env::var("FLASH_SEED").ok().and_then(|s| s.parse().ok());
    let mut total = ModelStats::default();
    for seed in 1..=seeds {
        if only.is_some_and(|o| o != seed) {
            continue;
        }
        let s = run_model(seed, 1500);
        total.crashes += s.crashes;
        total.flushes_completed += s.flushes_completed;
        total.recovered_dirty += s.recovered_dirty;
        total.recovered_older_than_acked += s.recovered_older_than_acked;
        total.out_of_place += s.out_of_place;
        total.fills += s.fills;
        total.orphans += s.orphans;
        total.full += s.full;
        total.recovery_phases += s.recovery_phases;
    }
    if only.is_some() {
        return;
    }
    std::println!("flash crash model: {seeds} seeds, {total:?}");
    // The paths the property is about were reached.
    assert!(total.crashes > seeds * 5);
    assert!(total.flushes_completed > seeds * 10);
    assert!(total.recovered_dirty > seeds);
    assert!(total.recovered_older_than_acked > 0);
    assert!(total.out_of_place > seeds);
    assert!(total.fills > seeds);
    assert!(total.orphans > 0);
    assert!(total.recovery_phases > 0);
}

#[test]
fn records_scale_with_the_pool_within_bounds() {
    assert_eq!(records_for(0), RECORDS_DEFAULT);
    assert_eq!(records_for(4054), RECORDS_DEFAULT);
    assert_eq!(records_for(65_018), 4063);
    assert_eq!(records_for(262_144), RECORDS_MAX);
    assert_eq!(records_for(u64::MAX), RECORDS_MAX);
    // The journal never takes more than its block encoder can index.
    let j = Journal::<VecStores>::new(64, 1 << 20).unwrap();
    assert_eq!(j.records.len(), RECORDS_MAX);
}
