// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the peer side of replication: the rules of `logic/replica.rs` (`on_open`,
//! `accepts_changes`, `keeps_incoming`, `drops`, `may_take_over`, `on_orphan`,
//! `may_confirm`, `LeaseWatch`, `block_sector`, `check_device`, `block_within`,
//! `admits_store`, `record_outlived`) applied, as `drivers/block/fvp/replica.rs`
//! applies them, to a small replica store driven by a sequence of events: requests from
//! owners, lease changes, and the recovery thread's takeovers and orphan writes.
//!
//! # Input
//!
//! Events back to back; the run stops at the first incomplete one. Each starts with an
//! opcode byte, taken modulo 12 (`fvp_fuzz::replica_events`, which also encodes the
//! seeds):
//!
//! | op | event | argument bytes |
//! |---|---|---|
//! | 0 | VOLUME_OPEN | key `k`, `e`: epoch `e & 7` (0: the owner's probe); the owner's device `(e >> 3) & 3`: 0 this host's (`LOCAL` of the name), 1 another uuid, 2 another size, 3 this host's but its path does not open |
//! | 1 | REPLICATE | key, block, version |
//! | 2 | DROP_RANGE | key, first (a block), count (a block), version |
//! | 3 | DESTAGED | key, `n`, then `(n & 3) + 1` × (block, version) |
//! | 4 | VOLUME_CLOSE | key |
//! | 5 | the lease changes | `l`: `(l & 0x7f) % 3` = 0 lost, 1 held (with its start, or a new one if it was not held), 2 lost and regained since (a new start); bit 7: the ticker observes it now (else the change is unseen until the next observation) |
//! | 6 | fenced by a majority | none: the lease is lost; the ticker observes it and untrusts every store |
//! | 7 | takeover begins | `o`: owner `1 + (o & 3)`; bit 2: its majority fence held long enough (`takeover_ready`, which also needs the lease) |
//! | 8 | orphan writing begins | none |
//! | 9 | the batch taken out is written | `f`, device size: namespace `i` (0..=5) fails with an I/O error if bit `i` of `f` is set; bit 7: the condition to write no longer holds |
//! | 10 | `block_sector` alone | block u64, block size u32, device sectors u64 (little-endian) |
//! | 11 | an owner restarts | `o`: owner `1 + (o & 3)` connects as a later incarnation; its volume ids so far are dead |
//!
//! - key `k`: owner `1 + (k & 3)`, volume id `(k >> 2) & 3`, volume name `(k >> 4) & 1`.
//! - block: a byte below 0x80 is block `b & 0x0f`; from 0x80, a u64 follows.
//! - version: a byte below 0xff is itself; 0xff, a u64 follows.
//! - device size: a byte `d` below 0xff is `8 × d` sectors (`d` blocks of 4 KiB); 0xff, a
//!   u64 follows.
//!
//! Lease starts are fresh: a new start is larger than every earlier one
//! (`Membership::lease_held_since` is a time). Owners follow their own rules, so requests
//! a real owner never sends are skipped: a volume id names one volume (its first name
//! is kept), and once an owner sent a request for a volume name under another id, the
//! earlier id is dead (volume ids are random per incarnation). One batch is out at a
//! time (one recovery thread).
//!
//! # Checks
//!
//! Beyond "no panic", after every event:
//! - a replica's version never decreases while its store exists and holds it; replicas
//!   disappear only by a drop, the store's reset or close, or its write;
//! - a DROP_RANGE or DESTAGED of version `v` removes exactly the replicas of its blocks
//!   not newer than `v` (never a newer one) and nothing else; a REPLICATE keeps the newer
//!   version;
//! - no store taken out for a takeover or an orphan write is untrusted, checked against
//!   the lease's history (held, with the same start, since the store was opened), and an
//!   orphan written is one: a request of its owner for its name under another id came
//!   after it was opened;
//! - an accepted VOLUME_OPEN (not a probe) or VOLUME_CLOSE leaves no trusted orphan with
//!   replicas, and no write of its owner's stores running (`may_confirm`);
//! - `block_sector` is what checked (128-bit) arithmetic gives: `Some(s)` only with
//!   `s + sectors per block <= device size`; every block written lies on the device;
//! - the replica count the kernel keeps matches the replicas held, and no volume has
//!   two stores (in the store set or taken out);
//! - every store was opened for this host's device of its name (`check_device`), and
//!   holds no block past that device's end;
//! - after an owner's restart, no takeover record of its earlier incarnations is left,
//!   and stores plus records never exceed `admits_store`'s bounds.
//!
//! `FVP_FUZZ_TRACE=1` prints each event, its answer and the stores after it.

#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use fvp_fuzz::replica_events::{Device, Event, Key, Lease};
use fvp_logic::placement::host_bit;
use fvp_logic::replica::{self as rules, DeviceIdentity, LeaseWatch, OpenVerdict, OrphanVerdict};
use libfuzzer_sys::fuzz_target;

/// The kernel's block size (`backing::BLOCK_BYTES`).
const BLOCK_BYTES: u32 = 4096;

/// This host's shared devices, by volume name: 16 blocks of 4 KiB with a uuid, and a
/// device of 2^40 sectors without one.
const LOCAL: [DeviceIdentity; 2] =
    [DeviceIdentity { sectors: 128, uuid: [0xa5; 16] }, DeviceIdentity { sectors: 1 << 40, uuid: [0; 16] }];

/// This host's view of the device of volume name `name` (`Cluster::local_device`), and
/// the owner's, as `device` says.
fn devices(name: u8, device: Device) -> (Option<DeviceIdentity>, DeviceIdentity) {
    let local = LOCAL[usize::from(name & 1)];
    match device {
        Device::Same => (Some(local), local),
        Device::OtherUuid => (Some(local), DeviceIdentity { uuid: [0x5a; 16], ..local }),
        Device::OtherSize => (Some(local), DeviceIdentity { sectors: local.sectors + 8, ..local }),
        Device::NotHere => (None, local),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Errno {
    Estale,
    Enoent,
    Eagain,
    Einval,
    Eio,
    Enospc,
    /// ENODEV or EMEDIUMTYPE: the owner's device is not this host's.
    Device,
}

/// `replica.rs`'s `Namespace`, plus what the checks need.
#[derive(Debug)]
struct Namespace {
    owner: u32,
    volume_id: u32,
    name: u8,
    epoch: u64,
    /// The owner's incarnation when it opened the store.
    incarnation: u64,
    device_blocks: u64,
    blocks: BTreeMap<u64, u64>,
    trusted: bool,
    owner_yielded: bool,
    orphan: bool,
    /// Target only: this incarnation of the store (new at each create and reset).
    uid: u64,
    /// Target only: the lease when the store was opened, and how many times it had
    /// changed then.
    opened_lease: Option<u64>,
    opened_change: u64,
    /// Target only: a request of the owner for this name under another id came since the
    /// store was opened.
    orphaned: bool,
}

enum BatchKind {
    /// `recover_owner`; `yielded`: the owner was told (the lease alone is needed).
    Takeover { yielded: bool },
    /// `recover_orphans`, begun with the lease started at `since`.
    Orphans { since: Option<u64> },
}

struct Batch {
    kind: BatchKind,
    spaces: Vec<Namespace>,
    owners: u64,
    taken: Option<u64>,
}

/// `replica.rs`'s `ReplicaStore`, and the world around it.
struct Peer {
    spaces: Vec<Namespace>,
    /// Takeover records: owner, volume id, the owner's incarnation.
    recovered: Vec<(u32, u32, u64)>,
    /// Each owner's incarnation (index: host id).
    incarnation: [u64; 5],
    count: u64,
    recovering: u64,
    lease: LeaseWatch,
    /// What `Membership::lease_held_since` would answer now.
    actual: Option<u64>,
    last_start: u64,
    /// Times `actual` changed.
    changes: u64,
    next_uid: u64,
    out: Option<Batch>,
}

fn sub(count: &mut u64, n: u64) {
    *count = count.checked_sub(n).expect("replica count below zero");
}

/// `block_sector` by 128-bit arithmetic.
fn expect_sector(block: u64, block_size: u32, sectors: u64) -> Option<u64> {
    if block_size < 512 || !block_size.is_multiple_of(512) {
        return None;
    }
    let per = u128::from(block_size / 512);
    let first = u128::from(block) * per;
    let end = first + per;
    (end <= u128::from(u64::MAX) && end <= u128::from(sectors)).then_some(first as u64)
}

fn check_sector(block: u64, block_size: u32, sectors: u64) -> Option<u64> {
    let s = rules::block_sector(block, block_size, sectors);
    assert_eq!(s, expect_sector(block, block_size, sectors), "block_sector({block}, {block_size}, {sectors})");
    if let Some(s) = s {
        let end = s.checked_add(u64::from(block_size / 512)).expect("block_sector: the end overflows");
        assert!(end <= sectors);
    }
    s
}

impl Peer {
    fn new() -> Peer {
        Peer {
            spaces: Vec::new(),
            recovered: Vec::new(),
            incarnation: [1; 5],
            count: 0,
            recovering: 0,
            lease: LeaseWatch::new(),
            actual: None,
            last_start: 0,
            changes: 0,
            next_uid: 0,
            out: None,
        }
    }

    fn uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    /// Held without interruption (the same start) since `n` was opened.
    fn lease_trusts(&self, n: &Namespace) -> bool {
        n.opened_lease.is_some() && n.opened_change == self.changes
    }

    fn set_lease(&mut self, lease: Option<u64>) {
        if lease != self.actual {
            self.changes += 1;
            self.actual = lease;
        }
    }

    fn new_start(&mut self) -> Option<u64> {
        self.last_start += 1;
        Some(self.last_start)
    }

    fn observe_lease(&mut self) {
        let since = self.actual;
        let before = self.lease;
        let interrupted = self.lease.observe(since);
        assert_eq!(interrupted, since.is_none() || since != before.since());
        assert_eq!(self.lease.since(), since);
        if interrupted {
            self.untrust_all();
        }
    }

    fn untrust_all(&mut self) {
        for n in self.spaces.iter_mut().filter(|n| n.trusted) {
            n.trusted = false;
        }
    }

    fn taken_over(&self, owner: u32, volume_id: u32) -> bool {
        self.recovered.iter().any(|&(o, v, _)| (o, v) == (owner, volume_id))
    }

    /// `owner_connected`.
    fn restart(&mut self, owner: u32) {
        let i = owner as usize;
        self.incarnation[i] += 1;
        let now = self.incarnation[i];
        self.recovered.retain(|&(o, _, inc)| !(o == owner && rules::record_outlived(inc, now)));
    }

    fn open(&mut self, owner: u32, volume_id: u32, name: u8, epoch: u64, device: Device) -> Result<(), Errno> {
        let (local, offered) = devices(name, device);
        let incarnation = self.incarnation[owner as usize];
        let taken_over = self.taken_over(owner, volume_id);
        let owner_records = self.recovered.iter().filter(|r| r.0 == owner).count();
        let all_records = self.recovered.len();
        if !taken_over && epoch != 0 {
            self.resolve_orphans(owner, volume_id, name)?;
        }
        let found = self.spaces.iter().position(|n| n.owner == owner && n.volume_id == volume_id);
        match rules::on_open(found.map(|i| self.spaces[i].epoch), taken_over, epoch) {
            OpenVerdict::TakenOver => {
                if let Some(i) = found {
                    self.spaces[i].owner_yielded = true;
                }
                Err(Errno::Estale)
            }
            OpenVerdict::Unchanged => Ok(()),
            OpenVerdict::NotHeld => Err(Errno::Enoent),
            OpenVerdict::Reset => {
                let device_blocks = rules::check_device(local, offered, BLOCK_BYTES).map_err(|_| Errno::Device)?;
                let Some(i) = found else { return Err(Errno::Einval) };
                let uid = self.uid();
                let (lease, change) = (self.actual, self.changes);
                let n = &mut self.spaces[i];
                let dropped = n.blocks.len() as u64;
                n.blocks.clear();
                sub(&mut self.count, dropped);
                n.epoch = epoch;
                n.incarnation = incarnation;
                n.device_blocks = device_blocks;
                n.name = name;
                n.trusted = true;
                n.uid = uid;
                (n.opened_lease, n.opened_change, n.orphaned) = (lease, change, false);
                Ok(())
            }
            OpenVerdict::Create => {
                let device_blocks = rules::check_device(local, offered, BLOCK_BYTES).map_err(|_| Errno::Device)?;
                let mine = self.spaces.iter().filter(|n| n.owner == owner).count();
                if !rules::admits_store(mine + owner_records, self.spaces.len() + all_records) {
                    return Err(Errno::Enospc);
                }
                let uid = self.uid();
                self.spaces.push(Namespace {
                    owner,
                    volume_id,
                    name,
                    epoch,
                    incarnation,
                    device_blocks,
                    blocks: BTreeMap::new(),
                    trusted: true,
                    owner_yielded: false,
                    orphan: false,
                    uid,
                    opened_lease: self.actual,
                    opened_change: self.changes,
                    orphaned: false,
                });
                Ok(())
            }
        }
    }

    fn find_trusted(&mut self, owner: u32, volume_id: u32) -> Result<&mut Namespace, Errno> {
        self.spaces
            .iter_mut()
            .find(|n| n.owner == owner && n.volume_id == volume_id && rules::accepts_changes(n.trusted))
            .ok_or(Errno::Enoent)
    }

    fn store(&mut self, owner: u32, volume_id: u32, block: u64, version: u64) -> Result<(), Errno> {
        let n = self.find_trusted(owner, volume_id)?;
        if !rules::block_within(block, n.device_blocks) {
            return Err(Errno::Einval);
        }
        let added = match n.blocks.get_mut(&block) {
            Some(v) => {
                if rules::keeps_incoming(Some(*v), version) {
                    *v = version;
                }
                false
            }
            None => {
                assert!(rules::keeps_incoming(None, version));
                n.blocks.insert(block, version);
                true
            }
        };
        self.count += u64::from(added);
        Ok(())
    }

    fn drop_range(&mut self, owner: u32, volume_id: u32, first: u64, count: u64, version: u64) -> Result<(), Errno> {
        let end = first.checked_add(count).ok_or(Errno::Einval)?;
        let n = self.find_trusted(owner, volume_id)?;
        let mut removed = 0;
        // The kernel's walk: one lower-bound lookup per replica in the range.
        let mut from = first;
        while let Some((&block, &held)) = n.blocks.range(from..).next() {
            if block >= end {
                break;
            }
            if rules::drops(held, version) {
                n.blocks.remove(&block);
                removed += 1;
            }
            from = block + 1;
        }
        sub(&mut self.count, removed);
        Ok(())
    }

    fn drop_entries(&mut self, owner: u32, volume_id: u32, entries: &[(u64, u64)]) -> Result<(), Errno> {
        let n = self.find_trusted(owner, volume_id)?;
        let mut removed = 0;
        for &(block, version) in entries {
            if n.blocks.get(&block).is_some_and(|&held| rules::drops(held, version)) {
                n.blocks.remove(&block);
                removed += 1;
            }
        }
        sub(&mut self.count, removed);
        Ok(())
    }

    fn close(&mut self, owner: u32, volume_id: u32, name: u8) -> Result<(), Errno> {
        if self.taken_over(owner, volume_id) {
            return Err(Errno::Estale);
        }
        self.resolve_orphans(owner, volume_id, name)?;
        let Some(i) = self.spaces.iter().position(|n| n.owner == owner && n.volume_id == volume_id) else {
            return Ok(());
        };
        let removed = self.spaces.remove(i);
        sub(&mut self.count, removed.blocks.len() as u64);
        Ok(())
    }

    fn resolve_orphans(&mut self, owner: u32, volume_id: u32, name: u8) -> Result<(), Errno> {
        let mut to_write = 0u64;
        let mut i = 0;
        while i < self.spaces.len() {
            let n = &mut self.spaces[i];
            if n.owner != owner || n.volume_id == volume_id || n.name != name {
                i += 1;
                continue;
            }
            n.orphaned = true;
            match rules::on_orphan(n.trusted, n.blocks.len() as u64) {
                OrphanVerdict::Drop => {
                    assert!(n.blocks.is_empty());
                    self.spaces.remove(i);
                    continue;
                }
                OrphanVerdict::WriteFirst => {
                    assert!(n.trusted && !n.blocks.is_empty());
                    n.orphan = true;
                    to_write += 1;
                }
                OrphanVerdict::Keep => assert!(!n.trusted),
            }
            i += 1;
        }
        let recovering = self.recovering & host_bit(owner) != 0;
        if rules::may_confirm(to_write, recovering) {
            Ok(())
        } else {
            Err(Errno::Eagain)
        }
    }

    fn take_where(&mut self, pick: impl Fn(&Namespace) -> bool) -> (Vec<Namespace>, u64, Option<u64>) {
        let taken = self.lease.since();
        let mut out = Vec::new();
        let mut owners = 0;
        let mut i = 0;
        while i < self.spaces.len() {
            if pick(&self.spaces[i]) {
                let n = self.spaces.remove(i);
                owners |= host_bit(n.owner);
                out.push(n);
            } else {
                i += 1;
            }
        }
        self.recovering |= owners;
        (out, owners, taken)
    }

    /// `recover_lost_owners` for one owner, up to the stores taken out.
    fn begin_takeover(&mut self, owner: u32, fence_ready: bool) {
        self.observe_lease();
        let owners = self.spaces.iter().filter(|n| n.trusted).fold(0, |m, n| m | host_bit(n.owner));
        let yielded = self.spaces.iter().filter(|n| n.trusted && n.owner_yielded).fold(0, |m, n| m | host_bit(n.owner));
        if owners & host_bit(owner) == 0 {
            return;
        }
        let has_yielded = yielded & host_bit(owner) != 0;
        // `may_recover`: takeover_ready (which needs the lease), or told and the lease.
        let ready = self.actual.is_some() && (fence_ready || has_yielded);
        if !ready {
            return;
        }
        let (spaces, owners, taken) = self.take_where(|n| n.owner == owner && rules::may_take_over(n.trusted, ready));
        for n in &spaces {
            assert!(
                self.lease_trusts(n),
                "an untrusted store was taken over: {n:?} (lease {:?}, {} changes)",
                self.actual,
                self.changes
            );
            if !self.recovered.iter().any(|&(o, v, _)| (o, v) == (n.owner, n.volume_id)) {
                self.recovered.push((n.owner, n.volume_id, n.incarnation));
            }
        }
        self.out = Some(Batch { kind: BatchKind::Takeover { yielded: has_yielded }, spaces, owners, taken });
    }

    /// `recover_orphans`, up to the stores taken out.
    fn begin_orphans(&mut self) {
        let since = self.actual;
        self.observe_lease();
        if since.is_none() {
            return;
        }
        let (spaces, owners, taken) = self.take_where(|n| n.orphan && n.trusted);
        if owners == 0 {
            return;
        }
        for n in &spaces {
            assert!(self.lease_trusts(n), "an untrusted orphan was taken out: {n:?}");
            assert!(n.orphaned, "a store no request made an orphan was taken out: {n:?}");
        }
        self.out = Some(Batch { kind: BatchKind::Orphans { since }, spaces, owners, taken });
    }

    /// The rest of `recover_owner` or `recover_orphans`: each namespace written (and
    /// dropped) or put back.
    fn finish(&mut self, fail: u8, sectors: u64) {
        let Some(batch) = self.out.take() else { return };
        let cond = fail & 0x80 == 0;
        for (i, n) in batch.spaces.into_iter().enumerate() {
            let still_ready = match batch.kind {
                BatchKind::Takeover { yielded } => self.actual.is_some() && (cond || yielded),
                BatchKind::Orphans { since } => self.actual.is_some() && self.actual == since && cond,
            };
            match write_namespace(&n, still_ready, i < 6 && fail & (1 << i) != 0, sectors) {
                Ok(()) => sub(&mut self.count, n.blocks.len() as u64),
                Err(_) => self.put_back(n, batch.taken),
            }
        }
        self.recovering &= !batch.owners;
    }

    fn put_back(&mut self, mut n: Namespace, taken: Option<u64>) {
        let trusted = self.lease.still_trusted(taken);
        if n.trusted && !trusted {
            n.trusted = false;
        }
        self.spaces.push(n);
    }

    fn held(&self) -> impl Iterator<Item = &Namespace> {
        self.spaces.iter().chain(self.out.iter().flat_map(|b| b.spaces.iter()))
    }
}

/// `write_namespace`: every replica at its sector, the condition checked before each.
fn write_namespace(n: &Namespace, still_ready: bool, io_error: bool, sectors: u64) -> Result<(), Errno> {
    let mut last_end = 0u64;
    for &block in n.blocks.keys() {
        if !still_ready {
            return Err(Errno::Eagain);
        }
        let Some(s) = check_sector(block, BLOCK_BYTES, sectors) else { continue };
        // Blocks in order land in order, without overlapping.
        assert!(s >= last_end);
        last_end = s + u64::from(BLOCK_BYTES / 512);
    }
    if io_error {
        return Err(Errno::Eio);
    }
    Ok(())
}

/// The owners' side: which requests a real owner can send.
#[derive(Default)]
struct Owners {
    /// The name each volume id was first used with.
    names: HashMap<(u32, u32), u8>,
    /// The live id of each owner's volume name.
    live: HashMap<(u32, u8), u32>,
    /// Ids superseded by another of the same name.
    dead: HashSet<(u32, u32)>,
}

impl Owners {
    /// The name to use for a request naming `key`, or `None` if no owner sends it.
    fn named(&mut self, key: Key) -> Option<u8> {
        let id = (key.owner, key.volume);
        if self.dead.contains(&id) {
            return None;
        }
        let name = *self.names.entry(id).or_insert(key.name);
        if let Some(old) = self.live.insert((key.owner, name), key.volume) {
            if old != key.volume {
                self.dead.insert((key.owner, old));
            }
        }
        Some(name)
    }

    fn sends(&self, key: Key) -> bool {
        !self.dead.contains(&(key.owner, key.volume))
    }

    /// `owner` restarted: every volume id it used is dead (new ones are random).
    fn restart(&mut self, owner: u32) {
        let used: Vec<(u32, u32)> = self.names.keys().filter(|&&(o, _)| o == owner).copied().collect();
        self.dead.extend(used);
        self.live.retain(|&(o, _), _| o != owner);
    }
}

type Snapshot = HashMap<u64, BTreeMap<u64, u64>>;

fn snapshot(p: &Peer) -> Snapshot {
    p.held().map(|n| (n.uid, n.blocks.clone())).collect()
}

fn store_of(p: &Peer, owner: u32, volume_id: u32) -> Option<&Namespace> {
    p.spaces.iter().find(|n| n.owner == owner && n.volume_id == volume_id)
}

/// After a request of `owner` for `name` under `volume_id` was confirmed.
fn check_confirmed(p: &Peer, owner: u32, volume_id: u32, name: u8) {
    for n in &p.spaces {
        if n.owner == owner && n.name == name && n.volume_id != volume_id {
            assert!(!n.trusted || n.blocks.is_empty(), "confirmed with a trusted orphan left: {n:?}");
        }
    }
    assert!(!p.out.as_ref().is_some_and(|b| b.spaces.iter().any(|n| n.owner == owner)), "confirmed during a write");
    assert_eq!(p.recovering & host_bit(owner), 0);
}

/// `FVP_FUZZ_TRACE=1` in the environment: print each event, its answer and the stores
/// after it (to read a crash input).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FVP_FUZZ_TRACE").is_some())
}

impl Peer {
    fn trace(&self, event: &Event, answer: Option<Result<(), Errno>>) {
        eprintln!("{event:?} -> {answer:?}");
        eprintln!(
            "  lease {:?} (watch {:?}, {} changes), recovered {:?}, recovering {:#x}",
            self.actual,
            self.lease.since(),
            self.changes,
            self.recovered,
            self.recovering
        );
        let out = self.out.iter().flat_map(|b| b.spaces.iter().map(|n| ("out", n)));
        for (place, n) in self.spaces.iter().map(|n| ("set", n)).chain(out) {
            eprintln!(
                "  {place} owner {} volume {} name {} epoch {} trusted {} orphan {} yielded {}: {:?}",
                n.owner, n.volume_id, n.name, n.epoch, n.trusted, n.orphan, n.owner_yielded, n.blocks
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Peer::new();
    let mut owners = Owners::default();
    let mut before = snapshot(&p);
    for event in Event::decode_all(data) {
        // The store a drop names, if it may change, and its replicas before.
        let mut dropping: Option<(u64, BTreeMap<u64, u64>)> = None;
        let mut answer = None;
        match &event {
            Event::Open { key, epoch, device } => {
                let Some(name) = owners.named(*key) else { continue };
                let r = p.open(key.owner, key.volume, name, *epoch, *device);
                if r == Err(Errno::Device) {
                    assert_ne!(*device, Device::Same, "refused the device this host has");
                }
                answer = Some(r);
                if r.is_ok() && *epoch != 0 {
                    check_confirmed(&p, key.owner, key.volume, name);
                }
                if r.is_ok() {
                    let n = store_of(&p, key.owner, key.volume).expect("an accepted open leaves a store");
                    if *epoch != 0 {
                        assert_eq!(n.epoch, *epoch);
                    }
                }
            }
            Event::Replicate { key, block, version } => {
                if !owners.sends(*key) {
                    continue;
                }
                let old = store_of(&p, key.owner, key.volume)
                    .filter(|n| n.trusted && *block < n.device_blocks)
                    .map(|n| n.blocks.get(block).copied());
                let r = p.store(key.owner, key.volume, *block, *version);
                answer = Some(r);
                assert_eq!(r.is_ok(), old.is_some(), "REPLICATE taken iff a trusted store and the block on its device");
                if let Some(old) = old {
                    let now = store_of(&p, key.owner, key.volume).unwrap().blocks[block];
                    assert_eq!(now, old.map_or(*version, |o| o.max(*version)));
                }
            }
            Event::DropRange { key, first, count, version } => {
                if !owners.sends(*key) {
                    continue;
                }
                let target =
                    store_of(&p, key.owner, key.volume).filter(|n| n.trusted).map(|n| (n.uid, n.blocks.clone()));
                let r = p.drop_range(key.owner, key.volume, *first, *count, *version);
                answer = Some(r);
                let end = first.checked_add(*count);
                match (&target, end) {
                    (_, None) => assert_eq!(r, Err(Errno::Einval)),
                    (None, Some(_)) => assert_eq!(r, Err(Errno::Enoent)),
                    (Some((uid, old)), Some(end)) => {
                        assert_eq!(r, Ok(()));
                        let now = &store_of(&p, key.owner, key.volume).unwrap().blocks;
                        let expect: BTreeMap<u64, u64> = old
                            .iter()
                            .filter(|&(b, &v)| !((*first..end).contains(b) && v <= *version))
                            .map(|(&b, &v)| (b, v))
                            .collect();
                        assert_eq!(now, &expect, "DROP_RANGE {first}+{count} at {version}");
                        dropping = Some((*uid, old.clone()));
                    }
                }
            }
            Event::Destaged { key, entries } => {
                if !owners.sends(*key) {
                    continue;
                }
                let target =
                    store_of(&p, key.owner, key.volume).filter(|n| n.trusted).map(|n| (n.uid, n.blocks.clone()));
                let r = p.drop_entries(key.owner, key.volume, entries);
                answer = Some(r);
                assert_eq!(r.is_ok(), target.is_some());
                if let Some((uid, old)) = target {
                    let now = &store_of(&p, key.owner, key.volume).unwrap().blocks;
                    // Dropped iff some entry of the block is at least its version.
                    let expect: BTreeMap<u64, u64> = old
                        .iter()
                        .filter(|&(b, &v)| !entries.iter().any(|&(eb, ev)| eb == *b && v <= ev))
                        .map(|(&b, &v)| (b, v))
                        .collect();
                    assert_eq!(now, &expect, "DESTAGED {entries:?}");
                    dropping = Some((uid, old));
                }
            }
            Event::Close { key } => {
                let Some(name) = owners.named(*key) else { continue };
                let r = p.close(key.owner, key.volume, name);
                answer = Some(r);
                if r.is_ok() {
                    check_confirmed(&p, key.owner, key.volume, name);
                    assert!(store_of(&p, key.owner, key.volume).is_none());
                }
            }
            Event::Lease { lease, observe } => {
                let l = match lease {
                    Lease::Lost => None,
                    Lease::Held if p.actual.is_some() => p.actual,
                    Lease::Held | Lease::Renewed => p.new_start(),
                };
                p.set_lease(l);
                if *observe {
                    p.observe_lease();
                }
            }
            Event::Fenced => {
                p.set_lease(None);
                p.observe_lease();
                p.untrust_all();
                assert!(p.spaces.iter().all(|n| !n.trusted));
            }
            Event::Takeover { owner, ready } => {
                if p.out.is_none() {
                    p.begin_takeover(*owner, *ready);
                }
            }
            Event::Orphans => {
                if p.out.is_none() {
                    p.begin_orphans();
                }
            }
            Event::Finish { fail, sectors } => p.finish(*fail, *sectors),
            Event::Sector { block, block_size, sectors } => {
                check_sector(*block, *block_size, *sectors);
                check_sector(*block, BLOCK_BYTES, *sectors);
            }
            Event::Restart { owner } => {
                owners.restart(*owner);
                p.restart(*owner);
                let now = p.incarnation[*owner as usize];
                assert!(p.recovered.iter().all(|&(o, _, inc)| o != *owner || inc >= now), "an outlived record kept");
            }
        }

        if trace() {
            p.trace(&event, answer);
        }

        // Versions never decrease; replicas disappear only by a drop (checked above) or
        // with their store.
        let now = snapshot(&p);
        for (uid, blocks) in &now {
            let Some(old) = before.get(uid) else { continue };
            let dropped_here = dropping.as_ref().is_some_and(|(d, _)| d == uid);
            for (b, v) in old {
                match blocks.get(b) {
                    Some(n) => assert!(n >= v, "block {b}: version {v} went back to {n}"),
                    None => assert!(dropped_here, "block {b} vanished from a store without a drop"),
                }
            }
        }
        assert_eq!(p.count, p.held().map(|n| n.blocks.len() as u64).sum::<u64>(), "replica count");
        let mut ids = HashSet::new();
        assert!(p.held().all(|n| ids.insert((n.owner, n.volume_id))), "two stores of one volume");
        for n in p.held() {
            let local = LOCAL[usize::from(n.name & 1)];
            assert_eq!(n.device_blocks, local.sectors / 8, "a store for another device: {n:?}");
            assert!(n.blocks.keys().all(|&b| b < n.device_blocks), "a replica past the device's end: {n:?}");
        }
        for owner in 1..=4u32 {
            let slots = p.held().filter(|n| n.owner == owner).count() + p.recovered.iter().filter(|r| r.0 == owner).count();
            assert!(slots <= rules::STORES_PER_OWNER_MAX, "owner {owner}: {slots} slots");
        }
        before = now;
    }
});
