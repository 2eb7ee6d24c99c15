// SPDX-License-Identifier: GPL-2.0

//! Destaging: writing dirty blocks back to the backing devices.
//!
//! Each pool runs one destager kthread (not a work item: it never returns, and would
//! hold a worker of the queue where writes and flushes complete). It collects up to
//! [`BATCH`] dirty blocks, sorts them by volume and block, writes each run of adjacent
//! blocks with one bio, waits, and marks the blocks clean unless a write raced them.
//! A failed write leaves its blocks dirty, counts them in the volume's
//! `destage_errors`, marks the volume failing, and the destager retries after
//! [`RETRY_MS`] (docs/target.md, "Errors").
//!
//! One batch or flush pass at a time per pool (`Pool::destage_lock`): a flush's pass
//! then sees every block dirty when it started either written by itself or still dirty,
//! never held by a concurrent destage whose outcome it cannot know.
//! Pacing: above the high watermark (half the pool dirty) or when someone waits
//! (flush, drain, shrink: the `urgent` flag), it runs flat out; between the watermarks
//! it writes one batch every [`PACE_MS`]; below the low watermark (a tenth) it only
//! works while the volumes are idle, so foreground I/O keeps the backing device.
#![forbid(unsafe_code)]

use crate::backing::BioWaiter as Waiter;
use crate::fvp_kernel::bio::OwnedBio;
use crate::fvp_kernel::pages::CountedPage;
use crate::fvp_kernel::sync::sleep_ms;
use crate::fvp_kernel::thread::{StopToken, Thread};
use crate::fvp_kernel::vec;
use crate::logic::cache::Key;
use crate::pool::{Pool, SHARDS};
use crate::stats::Stats;
use crate::volume::Volume;
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::time::Ktime;

/// Blocks per batch.
const BATCH: usize = 64;
/// Blocks per destage bio at most.
const MAX_RUN: usize = 32;
/// Pause between batches when not urgent.
const PACE_MS: u32 = 10;
/// Pause when there is nothing to do.
const IDLE_MS: u32 = 20;
/// Pause after a batch in which a write to a backing device failed: the device is
/// retried, not hammered (`dmsetup message ... retry` retries at once).
const RETRY_MS: u32 = 1000;
/// A drain gives up after this long without writing anything back.
const STALL_MS: u32 = 5000;

/// Starts `pool`'s destager thread (its allocations do no I/O: `Thread` sees to it).
/// It runs until [`Pool::shut_down`].
pub(crate) fn start(pool: &Arc<Pool>) -> Result<Thread> {
    let p = pool.clone();
    Thread::start(c"fvp-destage", move |stop| run(p, stop))
}

/// Where a pass over the pool's shards stands.
#[derive(Default)]
pub(crate) struct Pass {
    cursors: [u32; SHARDS],
    finished: [bool; SHARDS],
}

impl Pass {
    fn complete(&self) -> bool {
        self.finished.iter().all(|&f| f)
    }
}

fn run(pool: Arc<Pool>, stop: &StopToken) {
    let mut cursors = Pass::default();
    // Every wait ends early at a kick (flush, drain, shrink, `retry`, shutdown).
    while !pool.stopping() && !stop.should_stop() {
        pool.reap_detached();
        let counts = pool.counts();
        if counts.dirty == 0 {
            pool.wait_kick(IDLE_MS);
            continue;
        }
        let urgent = pool.urgent.swap(false, Relaxed) || counts.dirty * 2 >= counts.pages;
        let above_low = counts.dirty * 10 >= counts.pages;
        let idle = pool.idle();
        if !urgent && !above_low && !idle {
            pool.wait_kick(IDLE_MS);
            continue;
        }
        if cursors.complete() {
            cursors = Pass::default();
        }
        let r = {
            let mut scratch = pool.destage_lock.lock();
            batch(&pool, &mut scratch, None, &mut cursors)
        };
        pool.batch_finished();
        if r.failed > 0 {
            pool.wait_kick(RETRY_MS);
        } else if r.cleaned == 0 {
            // Nothing could be written (a replicated volume without its lease).
            pool.wait_kick(IDLE_MS);
        } else if !urgent {
            pool.wait_kick(PACE_MS);
        } else {
            // Stay urgent until below the high watermark or nothing is left.
            pool.urgent.store(true, Relaxed);
        }
    }
}

struct Entry {
    key: Key,
    shard: usize,
    slot: u32,
    gen: u16,
    page: Option<CountedPage>,
    /// For replicated volumes: the version snapshot taken before the destage began.
    snapshot: u64,
    /// The volume the block belonged to when it was scanned. Held, not looked up by
    /// id later: ids are reused, and a volume removed meanwhile (its drain failed)
    /// must not have its block written to the device of the next volume with its id.
    volume: Arc<Volume>,
}

/// What destage batches work in: allocated with the pool, reserved for every volume as
/// it is added, reused by every batch, so that write-back allocates nothing and makes
/// progress however short memory is. It is what `Pool::destage_lock` guards: holding
/// the lock is what lets a batch run.
pub(crate) struct Scratch {
    /// The batch's blocks (capacity [`BATCH`]).
    entries: KVec<Entry>,
    /// Each run of entries `(first, last)`, whether its bio was submitted, and whether
    /// it was held back (a replicated volume's lease ended); run `i` waits on
    /// `waiters[i]` (capacity [`BATCH`]).
    runs: KVec<(usize, usize, bool, bool)>,
    /// Per volume of the pool: whether its blocks may be written back now (a replicated
    /// volume needs the lease), and its replication version snapshot. Capacity: the
    /// pool's volume table.
    gates: KVec<(Arc<Volume>, bool, u64)>,
    /// One per run of a batch at most ([`BATCH`]), reused.
    waiters: KVec<Arc<Waiter>>,
}

impl Scratch {
    pub(crate) fn new() -> Result<Self> {
        let mut waiters = KVec::with_capacity(BATCH, GFP_KERNEL)?;
        for _ in 0..BATCH {
            waiters.push(Waiter::try_new()?, GFP_KERNEL)?;
        }
        Ok(Self {
            entries: KVec::with_capacity(BATCH, GFP_KERNEL)?,
            runs: KVec::with_capacity(BATCH, GFP_KERNEL)?,
            gates: KVec::new(),
            waiters,
        })
    }

    /// How many volume slots the gates have room for.
    pub(crate) fn gate_room(&self) -> usize {
        self.gates.capacity()
    }

    /// Takes `spare` (empty) as the gates' buffer if it has more room. Called under the
    /// destage lock, where no batch runs, so the gates are empty.
    pub(crate) fn offer_gates(&mut self, spare: KVec<(Arc<Volume>, bool, u64)>) {
        if spare.capacity() > self.gates.capacity() && self.gates.is_empty() {
            self.gates = spare;
        }
    }

    /// Drops what the last batch held (volume references, pages).
    fn clear(&mut self) {
        vec::clear(&mut self.entries);
        vec::clear(&mut self.runs);
        vec::clear(&mut self.gates);
    }
}

/// Fills `gates` (see [`Scratch::gates`]).
fn volume_gates(pool: &Arc<Pool>, gates: &mut KVec<(Arc<Volume>, bool, u64)>) {
    pool.for_each_volume(|v| {
        let (ok, snap) = match &v.repl {
            Some(r) => (r.may_destage(), r.destage_snapshot()),
            None => (true, 0),
        };
        // Cannot fail: `Pool::add_volume` reserved a gate for every volume slot.
        let _ = gates.push((v.clone(), ok, snap), GFP_NOWAIT);
    });
}

/// What a batch or a pass achieved.
#[derive(Default, Clone, Copy)]
pub(crate) struct Outcome {
    /// Blocks written back and now clean.
    pub(crate) cleaned: usize,
    /// Blocks whose write failed (or could not be issued): still dirty.
    pub(crate) failed: usize,
    /// Dirty blocks of the volume asked for that were not written: its replication
    /// holds destaging back (no lease), or a destage of an older copy is in flight.
    pub(crate) skipped: usize,
}

impl Outcome {
    fn add(&mut self, o: Outcome) {
        self.cleaned += o.cleaned;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// Destages one batch (of `only` volume, or of any). `pass` remembers where each
/// shard's scan stopped. `scratch` is the pool's, so the caller holds its destage lock.
fn batch(pool: &Arc<Pool>, scratch: &mut Scratch, only: Option<u16>, pass: &mut Pass) -> Outcome {
    let o = batch_in(pool, scratch, only, pass);
    scratch.clear();
    o
}

fn batch_in(pool: &Arc<Pool>, scratch: &mut Scratch, only: Option<u16>, pass: &mut Pass) -> Outcome {
    let Scratch { entries, runs, gates, waiters } = scratch;
    let Some(zero) = Key::new(0, 0) else { return Outcome::default() };
    let mut skipped = 0;
    let mut found = [(0u32, zero); BATCH];
    // Snapshots before any destage of this batch begins (see `Replication::destaged`).
    volume_gates(pool, gates);
    for s in 0..SHARDS {
        if entries.len() >= BATCH {
            break;
        }
        if pass.finished[s] {
            continue;
        }
        let mut guard = pool.shard(s).lock();
        let shard = &mut *guard;
        let room = BATCH - entries.len();
        let (n, next) = shard.cache.dirty_scan(pass.cursors[s], &mut found[..room]);
        pass.cursors[s] = next;
        if next >= shard.cache.slots() {
            pass.finished[s] = true;
        }
        for &(slot, key) in &found[..n] {
            if only.is_some_and(|v| v != key.volume()) {
                continue;
            }
            // Volumes not in the table yet are skipped until the next batch.
            let Some((volume, ok, snapshot)) = gates.iter().find(|g| g.0.id == key.volume()) else {
                skipped += 1;
                continue;
            };
            if !*ok {
                skipped += 1;
                continue;
            }
            let Some(gen) = shard.cache.begin_destage(slot) else {
                skipped += 1;
                continue;
            };
            let page = shard.pages.get(slot).map(|p| p.counted());
            // Cannot fail: capacity for BATCH entries was reserved.
            let entry = Entry { key, shard: s, slot, gen, page, snapshot: *snapshot, volume: volume.clone() };
            let _ = entries.push(entry, GFP_NOWAIT);
        }
    }
    if entries.is_empty() {
        return Outcome { skipped, ..Outcome::default() };
    }
    entries.sort_unstable_by_key(|e| e.key);

    // One bio per run of adjacent blocks of one volume.
    let mut i = 0;
    while i < entries.len() {
        let mut j = i;
        while j + 1 < entries.len()
            && j + 1 - i < MAX_RUN
            && entries[j + 1].key.volume() == entries[i].key.volume()
            && entries[j + 1].key.block() == entries[j].key.block() + 1
        {
            j += 1;
        }
        // At most BATCH runs: one waiter each, and room in `runs`.
        let Some(waiter) = waiters.get(runs.len()) else { break };
        // The lease is checked again at each submission, not only before the batch:
        // the batch may have waited long (docs/replication.md, "Stalls and fencing").
        let held = entries[i].volume.repl.as_ref().is_some_and(|r| !r.may_destage());
        let submitted = !held && submit_run(pool, &mut entries[i..=j], waiter);
        let _ = runs.push((i, j, submitted, held), GFP_NOWAIT);
        i = j + 1;
    }
    let mut ok_mask = [false; BATCH];
    let mut held_mask = [false; BATCH];
    for (r, &(a, b, submitted, held)) in runs.iter().enumerate() {
        let ok = submitted && waiters.get(r).is_some_and(|w| w.wait());
        for k in a..=b {
            ok_mask[k] = ok;
            held_mask[k] = held;
        }
    }
    let mut o = finish(pool, entries, |k| ok_mask[k], |k| held_mask[k]);
    o.skipped += skipped;
    o
}

/// Submits the write of one run, to be waited for on `waiter`; `false` if it could not
/// be submitted.
fn submit_run(pool: &Arc<Pool>, run: &mut [Entry], waiter: &Arc<Waiter>) -> bool {
    let Some(first) = run.first() else { return false };
    let volume = &first.volume;
    let sector = first.key.block() * (crate::pool::PAGE / 512);
    let Ok(mut bio) = OwnedBio::new(&pool.shared.bioset, volume.backing.bdev(), true, sector, run.len() as u16) else {
        return false;
    };
    for e in run.iter_mut() {
        let Some(page) = e.page.take() else { return false };
        if !bio.add_page(page) {
            return false;
        }
    }
    waiter.reset();
    bio.submit(waiter.clone());
    true
}

/// Ends the destage of every entry (sorted by key); counts what became clean and what
/// failed, and records each volume's failures.
fn finish(pool: &Arc<Pool>, entries: &[Entry], ok: impl Fn(usize) -> bool, held: impl Fn(usize) -> bool) -> Outcome {
    let mut cleaned = 0;
    let mut failed = 0;
    let mut not_written = 0;
    // Per volume (entries are sorted, so a volume's entries are adjacent): how many of
    // its writes succeeded and failed, told to it once per run of its entries.
    let mut run: Option<(&Arc<Volume>, usize, usize)> = None;
    let account = |r: Option<(&Arc<Volume>, usize, usize)>| {
        if let Some((v, good, bad)) = r {
            v.destage_result(good, bad);
        }
    };
    for (k, e) in entries.iter().enumerate() {
        let success = ok(k);
        if held(k) {
            // Not written (the lease ended): stays dirty, and is no device failure.
            let mut shard = pool.shard(e.shard).lock();
            shard.cache.end_destage(e.slot, e.gen, false);
            not_written += 1;
            continue;
        }
        if run.is_none_or(|(v, _, _)| !Arc::ptr_eq(v, &e.volume)) {
            account(run.take());
            run = Some((&e.volume, 0, 0));
        }
        if let Some((_, good, bad)) = run.as_mut() {
            if success {
                *good += 1;
            } else {
                *bad += 1;
            }
        }
        if !success {
            failed += 1;
        }
        let was_clean = {
            let mut shard = pool.shard(e.shard).lock();
            shard.cache.end_destage(e.slot, e.gen, success)
        };
        if was_clean {
            cleaned += 1;
            let v = &e.volume;
            v.dirty.fetch_sub(1, Relaxed);
            Stats::add(&v.stats.destaged, 1);
            if let Some(r) = &v.repl {
                r.destaged(e.key.block(), e.snapshot);
            }
        }
    }
    account(run);
    Outcome { cleaned, failed, skipped: not_written }
}

/// One pass over the pool writing back `volume`'s dirty blocks. No other destage runs
/// meanwhile (it holds the pool's destage lock throughout).
fn pass(volume: &Volume) -> Outcome {
    let mut scratch = volume.pool.destage_lock.lock();
    let mut p = Pass::default();
    let mut total = Outcome::default();
    while !p.complete() {
        total.add(batch(&volume.pool, &mut scratch, Some(volume.id), &mut p));
    }
    total
}

/// Writes back the blocks of `volume` that are dirty now, so that every write
/// completed before the call is on the backing device; blocks written after the call
/// started may remain dirty. `EIO` if any block dirty at the start may not be on the
/// backing device: a write of it failed (the volume is failing), or it could not be
/// written (a replicated volume without its lease). Sleeps.
pub(crate) fn flush_dirty(volume: &Volume) -> Result {
    // One pass suffices: while it holds the destage lock no other destage is in
    // flight, so each block dirty at the start is visited by it and written, or was
    // cleaned before it got there.
    let o = pass(volume);
    if o.failed > 0 || o.skipped > 0 {
        return Err(EIO);
    }
    Ok(())
}

/// Writes back every dirty block of `volume` until none is left (no writes may arrive:
/// the device is suspended or write-through). Sleeps.
pub(crate) fn drain(volume: &Volume) -> Result {
    let mut stalled_since: Option<Ktime> = None;
    let mut failing = 0;
    while volume.dirty.load(Relaxed) > 0 {
        let o = pass(volume);
        if o.failed > 0 && o.cleaned == 0 {
            // The backing device refuses writes: retry a few times, then give up
            // (the blocks stay dirty; the caller reports it). A timed back-off: nothing
            // signals that the device works again.
            failing += 1;
            if failing > 3 {
                pr_err!("volume {}: {} dirty blocks cannot be written back\n", volume.id, volume.dirty.load(Relaxed));
                return Err(EIO);
            }
            sleep_ms(RETRY_MS / 10);
            continue;
        }
        failing = 0;
        if o.cleaned > 0 {
            stalled_since = None;
            continue;
        }
        // Nothing could be written: a replicated volume without its lease (or a volume
        // not in the table yet). Give up after STALL_MS without progress.
        let since = *stalled_since.get_or_insert_with(Ktime::ktime_get);
        if (Ktime::ktime_get() - since).to_ms() > i64::from(STALL_MS) {
            pr_err!("volume {}: {} dirty blocks cannot be written back\n", volume.id, volume.dirty.load(Relaxed));
            return Err(EIO);
        }
        match &volume.repl {
            // The lease changes at a ticker pass: wait for the next one.
            Some(r) => r.wait_next_tick(),
            None => sleep_ms(1),
        }
    }
    Ok(())
}
