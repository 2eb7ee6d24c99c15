// SPDX-License-Identifier: GPL-2.0

//! A volume's data path: serving bios from the pool, filling it, absorbing writes.
//!
//! Every bio is cut into 4 KiB blocks (device-mapper already split it so that it spans
//! at most [`MAX_BLOCKS`] blocks). Each block is looked up in its shard under that
//! shard's mutex, and its data copied while the mutex is held, so a hit needs neither
//! allocation nor any lock but one shard's. Bios that need the backing device (misses,
//! blocks the pool cannot take) become an [`IoOp`] whose bios complete on the shared
//! workqueue, where the pool is updated and the original bio completed.
#![forbid(unsafe_code)]

use crate::cluster::OwnedVolume;
use crate::conn::{AckOutcome, Waiter};
use crate::fvp_kernel::bio::{BioDone, BioStatus, DmBio, Op, OwnedBio};
use crate::fvp_kernel::block::OpenedBdev;
use crate::fvp_kernel::dm::MapResult;
use crate::fvp_kernel::mempool::{Notifier, Notify, PoolArc};
use crate::fvp_kernel::module::UnloadGuard;
use crate::fvp_kernel::pages::CountedPage;
use crate::fvp_kernel::sync::{Completion, NoIoScope};
use crate::logic::abi::{POLICY_WRITE_BACK, POLICY_WRITE_THROUGH};
use crate::logic::cache::{Insert, InsertError, Key, SlotState};
use crate::pool::{shard_of, Pool, PAGE, SHARDS};
use crate::repl::{ProtectedVolume, Replication, PROTECT_MAX_BLOCKS};
use crate::stats::Stats;
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, Mutex};
use kernel::time::Ktime;
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};
use kernel::ThisModule;

/// Most blocks one bio spans: the target's `max_io_len` keeps bios within this many.
pub(crate) const MAX_BLOCKS: u32 = 64;
// A write's blocks fit the replication layer's bound.
const _: () = assert!(MAX_BLOCKS as usize <= PROTECT_MAX_BLOCKS);
const SECTORS_PER_BLOCK: u64 = PAGE / 512;

/// One volume: an `fvp` target's state shared with its in-flight I/O and the destager.
#[pin_data]
pub(crate) struct Volume {
    pub(crate) id: u16,
    pub(crate) pool: Arc<Pool>,
    /// fvp's own reference on the backing device: in-flight I/O may outlive the table.
    pub(crate) backing: OpenedBdev,
    /// The backing device's dev_t: a new table over the same device finds this volume
    /// (and its dirty blocks) by it.
    pub(crate) backing_devt: u32,
    /// The dm device's dev_t (of the table that created or last adopted the volume).
    pub(crate) devt: AtomicU32,
    /// Tables using the volume: 2 during a reload (the old and the new table), 0 once
    /// its device is removed while dirty blocks could not be written back (the volume
    /// is then detached: kept, retried, and adopted by the next table over the same
    /// device). Changed under the pool's volume table lock.
    pub(crate) tables: AtomicU32,
    /// Being unregistered: no table may adopt it any more.
    pub(crate) retiring: AtomicBool,
    /// Held while the volume is detached: unloading the module would lose its blocks.
    pub(crate) unload_guard: UnloadGuard,
    /// `POLICY_*` asked for; the effective one follows from the dirty count.
    requested: AtomicU32,
    /// Sequential streams longer than this many bytes bypass the pool (0: never).
    pub(crate) seq_cutoff: AtomicU64,
    seq_next: AtomicU64,
    seq_bytes: AtomicU64,
    /// Dirty blocks of this volume in the pool.
    pub(crate) dirty: AtomicU64,
    pub(crate) stats: Stats,
    /// Replication to peers (write-back with `peers>0`).
    pub(crate) repl: Option<Arc<Replication>>,
    /// The last destage batch with blocks of this volume failed to write some of them:
    /// status shows `failing`, and flushes fail while they stay dirty.
    failing: AtomicBool,
    /// A write went to the backing device (around the pool) since its last flush: a
    /// replicated volume's flush, which otherwise relies on its peers, must flush the
    /// device for it (its peers do not hold it).
    backing_unflushed: AtomicBool,
    /// What a flush of the backing device waits on, allocated with the volume so that
    /// a flush allocates nothing; one flush of it at a time.
    #[pin]
    flush_waiter: Mutex<Arc<crate::backing::BioWaiter>>,
}

/// Where a block of a bio lies: its key, the byte range of the bio that covers it and
/// the offset of that range within the block.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub(crate) key: Key,
    pub(crate) block: u64,
    pub(crate) bio_off: u32,
    pub(crate) block_off: u32,
    pub(crate) len: u32,
}

impl Span {
    pub(crate) fn full(&self) -> bool {
        self.len as u64 == PAGE
    }
}

/// The blocks a bio covers, given its first sector relative to the target.
pub(crate) struct Spans {
    vid: u16,
    pub(crate) first_block: u64,
    head: u32,
    size: u32,
    pub(crate) count: u32,
}

impl Spans {
    pub(crate) fn new(vid: u16, rel_sector: u64, size: u32) -> Self {
        let byte = rel_sector * 512;
        let head = (byte % PAGE) as u32;
        let count = ((u64::from(head) + u64::from(size)).div_ceil(PAGE)) as u32;
        Self { vid, first_block: byte / PAGE, head, size, count }
    }

    pub(crate) fn get(&self, i: u32) -> Option<Span> {
        let block = self.first_block + u64::from(i);
        let key = Key::new(self.vid, block)?;
        let (bio_off, block_off) = if i == 0 { (0, self.head) } else { (i * PAGE as u32 - self.head, 0) };
        let len = (PAGE as u32 - block_off).min(self.size - bio_off);
        Some(Span { key, block, bio_off, block_off, len })
    }

    /// The blocks covered, in order, into `out`; returns how many.
    fn blocks(&self, out: &mut [u64; MAX_BLOCKS as usize]) -> usize {
        let mut n = 0;
        for i in 0..self.count {
            if let (Some(s), Some(slot)) = (self.get(i), out.get_mut(n)) {
                *slot = s.block;
                n += 1;
            }
        }
        n
    }
}

impl Volume {
    pub(crate) fn new(
        id: u16,
        pool: Arc<Pool>,
        backing: OpenedBdev,
        backing_devt: u32,
        devt: u32,
        policy: u32,
        seq_cutoff: u64,
        repl: Option<Arc<Replication>>,
        module: &'static ThisModule,
    ) -> Result<Arc<Self>> {
        let waiter = crate::backing::BioWaiter::try_new()?;
        Arc::pin_init(
            pin_init!(Volume {
                id,
                pool,
                backing,
                backing_devt,
                devt: AtomicU32::new(devt),
                tables: AtomicU32::new(1),
                retiring: AtomicBool::new(false),
                unload_guard: UnloadGuard::new(module),
                requested: AtomicU32::new(policy),
                seq_cutoff: AtomicU64::new(seq_cutoff),
                seq_next: AtomicU64::new(u64::MAX),
                seq_bytes: AtomicU64::new(0),
                dirty: AtomicU64::new(0),
                stats: Stats::new(),
                repl,
                failing: AtomicBool::new(false),
                backing_unflushed: AtomicBool::new(false),
                flush_waiter <- new_mutex!(waiter, "fvp::Volume::flush_waiter"),
            }),
            GFP_KERNEL,
        )
    }

    /// Records what a destage batch achieved for this volume: `good` blocks written,
    /// `bad` failed (still dirty).
    pub(crate) fn destage_result(&self, good: usize, bad: usize) {
        if bad == 0 {
            if good > 0 && self.failing.swap(false, Relaxed) {
                pr_info!("volume {}: writes to the backing device succeed again\n", self.id);
            }
            return;
        }
        Stats::add(&self.stats.destage_errors, bad as u64);
        if !self.failing.swap(true, Relaxed) {
            pr_err!(
                "volume {}: writing dirty blocks back failed ({} blocks): they stay dirty and are retried; flushes fail until then\n",
                self.id,
                bad
            );
        }
    }

    /// `failing` while writes of dirty blocks to the backing device fail, else `ok`.
    pub(crate) fn health(&self) -> &'static str {
        if self.failing.load(Relaxed) {
            "failing"
        } else {
            "ok"
        }
    }

    pub(crate) fn requested(&self) -> u32 {
        self.requested.load(Relaxed)
    }

    /// Write-back stays in force while dirty data remains after a switch to
    /// write-through: the dirty blocks are still only in the pool.
    pub(crate) fn effective(&self) -> u32 {
        if let Some(r) = &self.repl {
            // Replicated: write-back only while every peer holds the writes.
            return if matches!(r.state(), crate::logic::abi::REPL_PROTECTED | crate::logic::abi::REPL_REPROTECTING) {
                POLICY_WRITE_BACK
            } else {
                POLICY_WRITE_THROUGH
            };
        }
        if self.requested() == POLICY_WRITE_BACK || self.dirty.load(Relaxed) > 0 {
            POLICY_WRITE_BACK
        } else {
            POLICY_WRITE_THROUGH
        }
    }

    pub(crate) fn set_policy(&self, policy: u32) {
        self.requested.store(policy, Relaxed);
        if policy == POLICY_WRITE_THROUGH {
            self.pool.make_urgent();
        }
    }

    /// Whether this bio continues a sequential stream beyond the cutoff.
    fn sequential(&self, rel_sector: u64, size: u32) -> bool {
        let cutoff = self.seq_cutoff.load(Relaxed);
        if cutoff == 0 {
            return false;
        }
        // Racy by design: concurrent streams only blur a heuristic.
        let run = if self.seq_next.load(Relaxed) == rel_sector {
            self.seq_bytes.load(Relaxed) + u64::from(size)
        } else {
            u64::from(size)
        };
        self.seq_bytes.store(run, Relaxed);
        self.seq_next.store(rel_sector + u64::from(size / 512), Relaxed);
        run > cutoff
    }

    fn backing_sector(block: u64) -> u64 {
        block * SECTORS_PER_BLOCK
    }

    /// Maps one bio; `rel_sector` is its first sector relative to the target.
    pub(crate) fn map(self: &Arc<Self>, rel_sector: u64, bio: DmBio) -> MapResult {
        let size = bio.size();
        // One clock read per bio: the latency histograms and the destager's idle gate.
        let now = Ktime::ktime_get();
        self.pool.touch(now);
        if self.repl.as_ref().is_some_and(|r| r.state() == crate::logic::abi::REPL_FENCED) {
            // Taken over by a peer: this host's view of the volume is stale.
            bio.complete(BioStatus::IOERR);
            return MapResult::submitted();
        }
        match bio.op() {
            Op::Read => {
                Stats::add(&self.stats.reads, 1);
                Stats::add(&self.stats.read_bytes, u64::from(size));
                if self.sequential(rel_sector, size) && self.can_bypass(rel_sector, size, false) {
                    Stats::add(&self.stats.bypassed, 1);
                    return bio.remap(self.backing.bdev(), rel_sector);
                }
                self.read(rel_sector, bio, now)
            }
            Op::Write if size == 0 => self.flush(bio),
            Op::Write => {
                Stats::add(&self.stats.writes, 1);
                Stats::add(&self.stats.write_bytes, u64::from(size));
                if bio.is_preflush() {
                    return self.flush(bio);
                }
                if self.repl.is_some() {
                    return IoOp::start_replicated(self, OpKind::Write, rel_sector, bio, now);
                }
                if self.sequential(rel_sector, size) && self.can_bypass(rel_sector, size, true) {
                    Stats::add(&self.stats.bypassed, 1);
                    return IoOp::start_through(self, rel_sector, bio);
                }
                if self.requested() == POLICY_WRITE_BACK && !bio.is_fua() {
                    self.write_back(rel_sector, bio, now)
                } else {
                    // `start_through` orders it after write-backs of dirty blocks in
                    // the range; it updates them in place there.
                    IoOp::start_through(self, rel_sector, bio)
                }
            }
            Op::WriteZeroes | Op::Discard if self.repl.is_some() => {
                IoOp::start_replicated(self, OpKind::Through, rel_sector, bio, now)
            }
            Op::WriteZeroes => IoOp::start_through(self, rel_sector, bio),
            Op::Discard if u64::from(size) > 4096 * PAGE => {
                // Dropping a huge range scans the whole pool: not in `map`, in a worker
                // (ordered after write-backs, like write-zeroes).
                IoOp::start_through(self, rel_sector, bio)
            }
            Op::Discard => {
                // Data after a discard is undefined: a stale copy racing in is harmless
                // (later writes around the pool are ordered after it).
                self.invalidate(rel_sector, size);
                bio.remap(self.backing.bdev(), rel_sector)
            }
            Op::Flush | Op::Other => bio.remap(self.backing.bdev(), rel_sector),
        }
    }

    /// Bypassing is only safe when the pool holds nothing newer than the backing
    /// device in the range; clean copies are dropped for a write.
    fn can_bypass(&self, rel_sector: u64, size: u32, write: bool) -> bool {
        let spans = Spans::new(self.id, rel_sector, size);
        for i in 0..spans.count {
            let Some(s) = spans.get(i) else { return false };
            let mut shard = self.pool.shard(shard_of(s.key)).lock();
            match shard.cache.peek(s.key) {
                None => {}
                Some((_, SlotState::Clean)) => {
                    if write {
                        shard.cache.remove(s.key);
                    }
                }
                Some(_) => return false,
            }
        }
        true
    }

    fn read(self: &Arc<Self>, rel_sector: u64, mut bio: DmBio, start: Ktime) -> MapResult {
        let spans = Spans::new(self.id, rel_sector, bio.size());
        let mut missing: u64 = 0;
        for i in 0..spans.count {
            let Some(s) = spans.get(i) else { return bio.remap(self.backing.bdev(), rel_sector) };
            let mut guard = self.pool.shard(shard_of(s.key)).lock();
            let shard = &mut *guard;
            match shard.cache.lookup(s.key) {
                Some(slot) => {
                    if let Some(page) = shard.pages.get(slot) {
                        bio.copy_from_page(s.bio_off, page, s.block_off, s.len);
                    }
                }
                None => missing |= 1 << i,
            }
        }
        let hits = u64::from(spans.count) - u64::from(missing.count_ones());
        Stats::add(&self.stats.read_hits, hits);
        if missing == 0 {
            bio.complete(BioStatus::OK);
            self.stats.read_latency.record_since(start);
            return MapResult::submitted();
        }
        Stats::add(&self.stats.read_misses, u64::from(missing.count_ones()));
        if self.repl.as_ref().is_some_and(|r| r.reads_held()) {
            // The backing device may be older than an orphan a host still holds.
            return IoOp::start_replicated(self, OpKind::Read, rel_sector, bio, start);
        }
        IoOp::start_read(self, rel_sector, bio, &spans, missing, start)
    }

    fn write_back(self: &Arc<Self>, rel_sector: u64, bio: DmBio, start: Ktime) -> MapResult {
        let spans = Spans::new(self.id, rel_sector, bio.size());
        let mut direct: u64 = 0;
        for i in 0..spans.count {
            let Some(s) = spans.get(i) else { return bio.remap(self.backing.bdev(), rel_sector) };
            if !self.absorb(&bio, &s) {
                direct |= 1 << i;
            }
        }
        if direct == 0 {
            bio.complete(BioStatus::OK);
            self.stats.write_latency.record_since(start);
            return MapResult::submitted();
        }
        IoOp::start_direct_write(self, rel_sector, bio, &spans, direct, start)
    }

    /// Puts one block of a write-back write into the pool. `false` if it must go to
    /// the backing device instead (partial block not cached, or no room).
    fn absorb(&self, bio: &DmBio, s: &Span) -> bool {
        let mut guard = self.pool.shard(shard_of(s.key)).lock();
        let shard = &mut *guard;
        let slot = match shard.cache.peek(s.key) {
            Some((slot, SlotState::Clean | SlotState::Dirty)) => {
                let was_dirty = shard.cache.state_of(slot) == Some(SlotState::Dirty);
                shard.cache.write_hit(slot);
                if !was_dirty {
                    self.dirty.fetch_add(1, Relaxed);
                }
                slot
            }
            found => {
                if let Some((_, SlotState::Filling)) = found {
                    // The fill in flight reads older data: it must not be installed,
                    // and its page is busy. Orphan it and take a fresh slot.
                    shard.cache.remove(s.key);
                }
                if !s.full() {
                    return false;
                }
                match shard.cache.insert(s.key, Insert::Dirty) {
                    Ok(ins) => {
                        if ins.evicted.is_some() {
                            Stats::add(&self.stats.evictions, 1);
                            self.pool.evictions.fetch_add(1, Relaxed);
                        }
                        self.dirty.fetch_add(1, Relaxed);
                        ins.slot
                    }
                    Err(_) => return false,
                }
            }
        };
        if let Some(page) = shard.pages.get(slot) {
            bio.copy_to_page(s.bio_off, page, s.block_off, s.len);
        }
        Stats::add(&self.stats.write_hits, 1);
        true
    }

    /// Before a write-through (or FUA) write goes to the backing device: the pool must
    /// keep no copy older than it. Dirty blocks are updated in place (they stay dirty
    /// and are destaged again); clean and filling ones are dropped. The write's
    /// completion drops clean and filling copies once more (see [`IoOp`]), for fills
    /// that read the old data while the write was in flight.
    fn write_through(&self, rel_sector: u64, bio: &DmBio) {
        let spans = Spans::new(self.id, rel_sector, bio.size());
        for i in 0..spans.count {
            let Some(s) = spans.get(i) else { break };
            let mut guard = self.pool.shard(shard_of(s.key)).lock();
            let shard = &mut *guard;
            match shard.cache.peek(s.key) {
                Some((slot, SlotState::Dirty)) => {
                    shard.cache.write_hit(slot);
                    if let Some(page) = shard.pages.get(slot) {
                        bio.copy_to_page(s.bio_off, page, s.block_off, s.len);
                    }
                }
                Some(_) => {
                    shard.cache.remove(s.key);
                }
                None => {}
            }
        }
    }

    /// Copies cached `block` into `buf` (a page) if the pool holds it readable, or
    /// only if it is dirty. Takes the block's shard lock.
    pub(crate) fn copy_cached(&self, block: u64, buf: &mut [u8], dirty_only: bool) -> bool {
        let Some(key) = Key::new(self.id, block) else { return false };
        let guard = self.pool.shard(shard_of(key)).lock();
        match guard.cache.peek(key) {
            Some((slot, SlotState::Dirty)) => guard.pages.get(slot).is_some_and(|p| p.counted().read(0, buf)),
            Some((slot, SlotState::Clean)) if !dirty_only => {
                guard.pages.get(slot).is_some_and(|p| p.counted().read(0, buf))
            }
            _ => false,
        }
    }

    /// Appends this volume's dirty blocks, blocks being destaged included, to `out`
    /// (reserved for `max`) until it holds `max`, scanning from `cursor` (shard, slot)
    /// on and advancing it; the scan is over when `cursor.0` reaches [`SHARDS`].
    pub(crate) fn dirty_blocks(&self, cursor: &mut (usize, u32), out: &mut KVec<u64>, max: usize) {
        let Some(zero) = Key::new(0, 0) else { return };
        let mut found = [(0u32, zero); 32];
        while cursor.0 < SHARDS && out.len() < max {
            let room = (max - out.len()).min(found.len());
            let guard = self.pool.shard(cursor.0).lock();
            let (n, next) = guard.cache.dirty_scan_all(cursor.1, &mut found[..room]);
            let end = next >= guard.cache.slots();
            drop(guard);
            for &(_, key) in &found[..n] {
                if key.volume() == self.id {
                    // Cannot fail: the caller reserved `max`.
                    let _ = out.push(key.block(), GFP_KERNEL);
                }
            }
            *cursor = if end { (cursor.0 + 1, 0) } else { (cursor.0, next) };
        }
    }

    /// Drops clean and filling copies in the range (a write to the backing device just
    /// completed there); dirty blocks hold newer data and stay.
    fn drop_stale(&self, rel_sector: u64, size: u32) {
        let spans = Spans::new(self.id, rel_sector, size);
        for i in 0..spans.count {
            let Some(s) = spans.get(i) else { break };
            let mut shard = self.pool.shard(shard_of(s.key)).lock();
            if let Some((_, SlotState::Clean | SlotState::Filling)) = shard.cache.peek(s.key) {
                shard.cache.remove(s.key);
            }
        }
    }

    /// Whether a write of the range to the backing device must wait for write-backs:
    /// one of its blocks is dirty in the pool (a destage of an older version may be in
    /// flight, or start before the write lands) or was removed while being destaged.
    /// `mask`: only the blocks whose bit is set (all for `u64::MAX`).
    /// `dirty_counts`: false when the write's dirty blocks go to the pool, not to the
    /// backing device (a write-back write): only orphans then conflict.
    fn backing_write_conflict(&self, rel_sector: u64, size: u32, mask: u64, dirty_counts: bool) -> bool {
        let spans = Spans::new(self.id, rel_sector, size);
        if spans.count > 4096 {
            // A huge discard or write-zeroes: ordering it is cheaper than looking.
            return true;
        }
        (0..spans.count).filter(|&i| i >= 64 || mask & (1 << i) != 0).any(|i| {
            spans.get(i).is_some_and(|s| {
                let shard = self.pool.shard(shard_of(s.key)).lock();
                if dirty_counts {
                    shard.cache.backing_write_conflict(s.key)
                } else {
                    shard.cache.orphan_in_flight(s.key)
                }
            })
        })
    }

    /// Before a write of the range goes to the backing device around the pool: drops
    /// clean copies, updates dirty ones in place (a write) or drops them too (discard,
    /// write-zeroes). The caller holds the destage lock if any block was dirty.
    fn before_backing_write(&self, rel_sector: u64, bio: &DmBio) {
        if bio.op() == Op::Write {
            self.write_through(rel_sector, bio);
        } else {
            self.invalidate(rel_sector, bio.size());
        }
    }

    /// Drops every cached block in the range (discards, write-zeroes). A huge range
    /// is cheaper to handle with one pass over the pool.
    fn invalidate(&self, rel_sector: u64, size: u32) {
        let first = rel_sector * 512 / PAGE;
        let last = (rel_sector * 512 + u64::from(size)).div_ceil(PAGE);
        let vid = self.id;
        if last - first > 4096 {
            self.pool.purge(self, |block, _| block >= first && block < last);
            return;
        }
        for block in first..last {
            let Some(key) = Key::new(vid, block) else { break };
            let mut shard = self.pool.shard(shard_of(key)).lock();
            if let Some((_, state)) = shard.cache.peek(key) {
                shard.cache.remove(key);
                if state == SlotState::Dirty {
                    self.dirty.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// An empty flush: with dirty data in the pool (or write-back in force), every
    /// write completed before it must reach the backing device first.
    fn flush(self: &Arc<Self>, bio: DmBio) -> MapResult {
        if bio.size() == 0 && self.repl.as_ref().is_some_and(|r| r.state() == crate::logic::abi::REPL_PROTECTED) {
            // Every write completed so far into the pool is held by all peers: that is
            // the durability replicated write-back promises (docs/replication.md).
            // Writes that went to the backing device instead (partial blocks, a full
            // pool) are durable only once the device is flushed.
            if !self.backing_unflushed.load(Acquire) {
                bio.complete(BioStatus::OK);
                return MapResult::submitted();
            }
            IoOp::new(self, OpKind::FlushBacking, 0, bio, Ktime::ktime_get(), 0).put();
            return MapResult::submitted();
        }
        if bio.size() == 0 && self.dirty.load(Relaxed) == 0 && self.requested() == POLICY_WRITE_THROUGH {
            return bio.remap(self.backing.bdev(), 0);
        }
        IoOp::start_flush(self, bio)
    }

    /// Unregisters the volume (its last table is gone and nothing is dirty): from the
    /// cluster, whose peers then drop its replicas, and from the pool. Sleeps.
    pub(crate) fn retire(self: &Arc<Self>) {
        if let Some(r) = &self.repl {
            r.cluster.remove_volume(r.volume_id);
            // Drained: the peers' replicas are no longer needed.
            if self.dirty.load(Relaxed) == 0 {
                r.close();
            }
        }
        self.pool.remove_volume(self);
        // May be the module's last reference, dropped by the destager: module exit
        // stops every destager before the code goes away.
        self.unload_guard.release();
    }

    /// `discard-dirty`: drops every dirty block of the volume, on the operator's word
    /// (meant for blocks the backing device refuses); the device keeps its older data
    /// for them. Returns how many. Sleeps (waits for a destage batch in flight).
    pub(crate) fn discard_dirty(&self) -> u64 {
        let destaging = self.pool.destage_lock.lock();
        self.drop_dirty(&destaging)
    }

    /// Drops every dirty block of the volume; returns how many. `_destaging` is the
    /// pool's `destage_lock`: with no batch in flight, a later batch's failure is not
    /// cleared by mistake.
    pub(crate) fn drop_dirty(&self, _destaging: &Guard<'_, crate::destage::Scratch, MutexBackend>) -> u64 {
        let n = self.pool.purge(self, |_, state| state == SlotState::Dirty);
        self.failing.store(false, Relaxed);
        n
    }

    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    /// This host was fenced by a majority: a peer writes the volume's acknowledged
    /// blocks to the backing device, so every cached block here may be stale. Drop them
    /// all without writing, and fail I/O until the table is reloaded.
    pub(crate) fn fence(&self) {
        if let Some(r) = &self.repl {
            r.fence();
        }
        self.pool.purge(self, |_, _| true);
    }

    /// Makes every write completed so far durable on the backing device: writes back
    /// the blocks dirty now, then flushes the device. Sleeps.
    pub(crate) fn flush_sync(&self) -> Result {
        crate::destage::flush_dirty(self)?;
        self.flush_backing()
    }

    /// Flushes the backing device's volatile cache; writes that went to it before
    /// the call are durable once it returns `Ok`. Sleeps.
    pub(crate) fn flush_backing(&self) -> Result {
        let was = self.backing_unflushed.swap(false, AcqRel);
        let r = crate::backing::flush_bdev(&self.pool.shared.bioset, self.backing.bdev(), &self.flush_waiter.lock());
        if r.is_err() && was {
            self.backing_unflushed.store(true, Release);
        }
        r
    }

    /// Writes back every dirty block (the device is suspended), then flushes. Sleeps.
    pub(crate) fn drain_sync(&self) -> Result {
        crate::destage::drain(self)?;
        self.flush_backing()
    }
}

/// A block of a read miss being filled into the pool.
struct Fill {
    span: Span,
    shard: usize,
    slot: u32,
    gen: u16,
    page: CountedPage,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write,
    /// The whole bio goes to the backing device; stale copies are dropped after.
    Through,
    Flush,
    /// A replicated volume's flush in `protected`: only the backing device's cache,
    /// for the writes that went to it (see `Volume::backing_unflushed`).
    FlushBacking,
}

/// A reference to an [`IoOp`], from the module's reserve of them.
pub(crate) type OpRef = PoolArc<IoOp>;

/// A bio waiting for fvp's own I/O to the backing device.
#[pin_data]
pub(crate) struct IoOp {
    volume: Arc<Volume>,
    kind: OpKind,
    start: Ktime,
    /// The bio's first sector relative to the target, and its size.
    range: (u64, u32),
    #[pin]
    state: Mutex<OpState>,
    /// Bios in flight, plus one while they are being submitted.
    pending: AtomicU32,
    failed: AtomicBool,
    /// A peer did not acknowledge a block: the write is made durable on the backing
    /// device before it completes.
    repl_failed: AtomicBool,
    /// Peers that refused a replica for want of the volume's store (host mask).
    refused_by: AtomicU64,
    /// The replication peer set's generation the write was sent under (`u64::MAX`: not
    /// a replicated write-back write).
    repl_gen: AtomicU64,
    /// For a write-back write: the blocks (bit i: the bio's i-th) the pool could not
    /// take, which go to the backing device.
    direct: u64,
    /// Completed when the last reference is dropped (every bio of the op ended): an
    /// ordered op waits for it before it lets write-backs run again.
    #[pin]
    settled: Completion,
    #[pin]
    work: Work<IoOp>,
    /// Replicated writes run here first (they sleep: network, waiting for a lease).
    #[pin]
    send_work: Work<IoOp, 1>,
}

struct OpState {
    bio: Option<DmBio>,
    fills: KVec<Fill>,
}

impl_has_work! {
    impl HasWork<Self> for IoOp { self.work }
    impl HasWork<Self, 1> for IoOp { self.send_work }
}

impl IoOp {
    /// A new operation owning `bio`, from the module's reserve (`Shared::ops`). Called
    /// from `map` (process context, which may sleep): if memory is short it waits for
    /// fvp's operations in flight to end and give theirs back, rather than fail the
    /// bio: device-mapper would complete a requeued bio with an error, and memory
    /// reclaim writing back through fvp would see it.
    fn new(volume: &Arc<Volume>, kind: OpKind, rel_sector: u64, bio: DmBio, start: Ktime, direct: u64) -> OpRef {
        let range = (rel_sector, bio.size());
        let init = pin_init!(IoOp {
            volume: volume.clone(),
            kind,
            start,
            range,
            state <- new_mutex!(OpState { bio: Some(bio), fills: KVec::new() }, "fvp::IoOp::state"),
            pending: AtomicU32::new(1),
            failed: AtomicBool::new(false),
            repl_failed: AtomicBool::new(false),
            refused_by: AtomicU64::new(0),
            repl_gen: AtomicU64::new(u64::MAX),
            direct,
            settled <- Completion::new(),
            work <- new_work!("fvp::IoOp::work"),
            send_work <- new_work!("fvp::IoOp::send_work"),
        });
        match volume.pool.ops.alloc(init) {
            Ok(op) => op,
            Err(never) => match never {},
        }
    }

    fn submit(self: &OpRef, bio: OwnedBio) {
        if self.kind != OpKind::Read {
            // Before the bio: a flush that finds the flag clear was asked for before
            // this write was submitted, so need not cover it.
            self.volume.backing_unflushed.store(true, Release);
        }
        self.pending.fetch_add(1, Relaxed);
        bio.submit(self.clone());
    }

    /// Drops the submission reference; the last one queues the completion work.
    /// AcqRel: the completion must see every store (`failed`, `repl_failed`, fills)
    /// that the other references made before dropping theirs.
    fn put(self: OpRef) {
        if self.pending.fetch_sub(1, AcqRel) == 1 {
            self.settled.complete_all();
            let shared = self.volume.pool.shared.clone();
            let _ = shared.wq.enqueue::<_, 0>(self);
        }
    }

    fn start_read(
        volume: &Arc<Volume>,
        rel_sector: u64,
        bio: DmBio,
        spans: &Spans,
        missing: u64,
        start: Ktime,
    ) -> MapResult {
        let op = IoOp::new(volume, OpKind::Read, rel_sector, bio, start, 0);
        op.read_blocks(spans, missing);
        op.put();
        MapResult::submitted()
    }

    fn run_held_read(self: OpRef) {
        let volume = self.volume.clone();
        if volume.repl.as_ref().is_some_and(|r| r.wait_readable().is_err()) {
            self.failed.store(true, Relaxed);
        } else {
            let (rel_sector, size) = self.range;
            let spans = Spans::new(volume.id, rel_sector, size);
            let all = if spans.count >= 64 { u64::MAX } else { (1u64 << spans.count) - 1 };
            // Blocks cached meanwhile are copied, the others filled or read.
            self.read_blocks(&spans, all);
        }
        self.put();
    }

    /// Serves the blocks of `missing` (bit i: the bio's i-th) of a read: from the pool
    /// if they are there now, else filled into it from the backing device, else read
    /// straight into the bio.
    fn read_blocks(self: &OpRef, spans: &Spans, missing: u64) {
        let op = self;
        let volume = &self.volume;
        let pool = &volume.pool;
        let mut direct: u64 = 0;
        {
            let mut state = op.state.lock();
            let state = &mut *state;
            // Room for every fill now, so that recording one cannot fail later.
            let can_fill = {
                let _noio = NoIoScope::enter();
                state.fills.reserve(missing.count_ones() as usize, GFP_KERNEL).is_ok()
            };
            let Some(bio) = state.bio.as_mut() else { return };
            for i in 0..spans.count {
                if missing & (1 << i) == 0 {
                    continue;
                }
                let Some(s) = spans.get(i) else { continue };
                let shard_i = shard_of(s.key);
                let mut guard = pool.shard(shard_i).lock();
                let shard = &mut *guard;
                match shard.cache.peek(s.key) {
                    Some((slot, SlotState::Clean | SlotState::Dirty)) => {
                        // Filled or written since the first look.
                        if let Some(page) = shard.pages.get(slot) {
                            bio.copy_from_page(s.bio_off, page, s.block_off, s.len);
                        }
                    }
                    Some(_) => direct |= 1 << i,
                    None if !can_fill => direct |= 1 << i,
                    None => match shard.cache.insert(s.key, Insert::Filling) {
                        Ok(ins) => {
                            if ins.evicted.is_some() {
                                Stats::add(&volume.stats.evictions, 1);
                                pool.evictions.fetch_add(1, Relaxed);
                            }
                            let Some(page) = shard.pages.get(ins.slot).map(|p| p.counted()) else {
                                shard.cache.fill_failed(ins.slot, s.key, ins.gen);
                                direct |= 1 << i;
                                continue;
                            };
                            let fill = Fill { span: s, shard: shard_i, slot: ins.slot, gen: ins.gen, page };
                            // Cannot fail: capacity was reserved above.
                            let _ = state.fills.push(fill, GFP_KERNEL);
                        }
                        Err(InsertError::Full | InsertError::AlreadyPresent(_)) => direct |= 1 << i,
                    },
                }
            }
            // Fills: one bio per run of consecutive blocks, reading whole blocks.
            let mut i = 0;
            while i < state.fills.len() {
                let first = state.fills[i].span.block;
                let mut j = i;
                while j + 1 < state.fills.len() && state.fills[j + 1].span.block == state.fills[j].span.block + 1 {
                    j += 1;
                }
                let n = (j - i + 1) as u16;
                match OwnedBio::new(&pool.shared.bioset, volume.backing.bdev(), false, Volume::backing_sector(first), n)
                {
                    Ok(mut b) => {
                        for f in &state.fills[i..=j] {
                            b.add_page(f.page.clone_ref());
                        }
                        op.submit(b);
                    }
                    Err(_) => op.failed.store(true, Relaxed),
                }
                i = j + 1;
            }
            // Blocks the pool could not take: read straight into the bio.
            op.submit_direct(bio, spans, direct);
        }
    }

    /// Sends the bio's blocks in `mask` to the backing device, one clone per run.
    fn submit_direct(self: &OpRef, bio: &DmBio, spans: &Spans, mask: u64) {
        let mut i = 0;
        while i < spans.count {
            if mask & (1 << i) == 0 {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < spans.count && mask & (1 << (j + 1)) != 0 {
                j += 1;
            }
            let (Some(a), Some(b)) = (spans.get(i), spans.get(j)) else { break };
            let len = b.bio_off + b.len - a.bio_off;
            let sector = Volume::backing_sector(a.block) + u64::from(a.block_off / 512);
            let pool = &self.volume.pool;
            match bio.clone_range(&pool.shared.bioset, self.volume.backing.bdev(), a.bio_off, len, sector) {
                Ok(clone) => self.submit(clone),
                Err(_) => self.failed.store(true, Relaxed),
            }
            i = j + 1;
        }
    }

    fn start_direct_write(
        volume: &Arc<Volume>,
        rel_sector: u64,
        bio: DmBio,
        spans: &Spans,
        direct: u64,
        start: Ktime,
    ) -> MapResult {
        let op = IoOp::new(volume, OpKind::Write, rel_sector, bio, start, direct);
        if volume.backing_write_conflict(rel_sector, op.range.1, direct, false) {
            // A direct block removed while being destaged: after that destage.
            return op.start_ordered();
        }
        {
            let state = op.state.lock();
            if let Some(bio) = state.bio.as_ref() {
                op.submit_direct(bio, spans, direct);
            }
        }
        op.put();
        MapResult::submitted()
    }

    fn start_flush(volume: &Arc<Volume>, bio: DmBio) -> MapResult {
        IoOp::new(volume, OpKind::Flush, 0, bio, Ktime::ktime_get(), 0).put();
        MapResult::submitted()
    }

    /// Sends the whole bio to the backing device; on completion, drops copies that a
    /// fill may have read while it was in flight.
    fn start_through(volume: &Arc<Volume>, rel_sector: u64, bio: DmBio) -> MapResult {
        let size = bio.size();
        if volume.backing_write_conflict(rel_sector, size, u64::MAX, true) {
            return IoOp::new(volume, OpKind::Through, rel_sector, bio, Ktime::ktime_get(), 0).start_ordered();
        }
        let op = IoOp::new(volume, OpKind::Through, rel_sector, bio, Ktime::ktime_get(), 0);
        {
            let state = op.state.lock();
            if let Some(bio) = state.bio.as_ref() {
                volume.before_backing_write(rel_sector, bio);
                match bio.clone_range(&volume.pool.shared.bioset, volume.backing.bdev(), 0, size, rel_sector) {
                    Ok(clone) => op.submit(clone),
                    Err(_) => op.failed.store(true, Relaxed),
                }
            }
        }
        op.put();
        MapResult::submitted()
    }
}

impl IoOp {
    /// A write to the backing device that would race a write-back of its blocks (see
    /// `Volume::backing_write_conflict`): it runs in `send_work`, under the pool's
    /// destage lock, so that no write-back is in flight from before it is issued until
    /// it completed. A write-back of a stale copy landing after it would leave the disk
    /// older than a completed (possibly FUA) write; one landing last after a
    /// write-zeroes or discard would bring removed data back for good.
    fn start_ordered(self: OpRef) -> MapResult {
        let shared = self.volume.pool.shared.clone();
        let _ = shared.wq.enqueue::<_, 1>(self);
        MapResult::submitted()
    }

    fn run_ordered(self: &OpRef) {
        let volume = &self.volume;
        let (rel_sector, size) = self.range;
        let _one = volume.pool.destage_lock.lock();
        {
            let state = self.state.lock();
            if let Some(bio) = state.bio.as_ref() {
                if self.kind == OpKind::Write {
                    // A write-back write's blocks the pool could not take.
                    self.submit_direct(bio, &Spans::new(volume.id, rel_sector, size), self.direct);
                } else {
                    volume.before_backing_write(rel_sector, bio);
                    match bio.clone_range(&volume.pool.shared.bioset, volume.backing.bdev(), 0, size, rel_sector) {
                        Ok(clone) => self.submit(clone),
                        Err(_) => self.failed.store(true, Relaxed),
                    }
                }
            }
        }
        self.clone().put();
        // Its bios ended: write-backs may run again (they write what the pool holds
        // now, which is at least as new).
        self.settled.wait();
    }

    /// A write (or discard) to a replicated volume, or a read whose misses must wait
    /// (`Replication::reads_held`): all of it runs in `send_work`, which may sleep.
    fn start_replicated(volume: &Arc<Volume>, kind: OpKind, rel_sector: u64, bio: DmBio, start: Ktime) -> MapResult {
        let op = IoOp::new(volume, kind, rel_sector, bio, start, 0);
        let shared = volume.pool.shared.clone();
        let _ = shared.wq.enqueue::<_, 1>(op);
        MapResult::submitted()
    }

    fn waiter(self: &OpRef) -> Waiter {
        self.pending.fetch_add(1, Relaxed);
        Waiter::Write(Notifier::new(self.clone()))
    }

    fn run_replicated(self: &OpRef) {
        let volume = &self.volume;
        let Some(repl) = volume.repl.as_ref() else { return };
        let (rel_sector, size) = self.range;
        let spans = Spans::new(volume.id, rel_sector, size);
        let writable = loop {
            let writable = repl.wait_writable();
            // Write-through (degraded), discards and write-zeroes: peers first drop what
            // they hold of the range, so a takeover cannot replay it. Done before the
            // ordering locks below: it may wait for a silent peer to be fenced.
            let through = match writable {
                Ok(true) => self.kind != OpKind::Write,
                Ok(false) => true,
                Err(_) => false,
            };
            if !through {
                break writable;
            }
            if repl.drop_range_at_peers(spans.first_block, u64::from(spans.count)).is_err() {
                break Err(EIO);
            }
            // The drop may have waited: the lease is checked again before the write
            // goes out (docs/replication.md, "Stalls and fencing").
            if repl.cluster.holds_lease() {
                break writable;
            }
        };
        // Writes that go to the backing device around the pool wait for write-backs of
        // their blocks (see `start_ordered`). A write-back write sends only the blocks
        // the pool refuses, which conflict only through an orphan (rare: a partial
        // block whose older copy is still being written back after a discard).
        let write_back = matches!(writable, Ok(true)) && self.kind == OpKind::Write;
        let ordered = volume.backing_write_conflict(rel_sector, size, u64::MAX, !write_back);
        let one = if ordered { Some(volume.pool.destage_lock.lock()) } else { None };
        let state = self.state.lock();
        let Some(bio) = state.bio.as_ref() else { return };
        match writable {
            Err(_) => self.failed.store(true, Relaxed),
            Ok(true) if self.kind == OpKind::Write => {
                // Replicated write-back: into the pool, then to every peer.
                let mut absorbed = [0u64; MAX_BLOCKS as usize];
                let (mut na, mut nd) = (0, 0);
                let mut direct_blocks = [0u64; MAX_BLOCKS as usize];
                let mut direct: u64 = 0;
                for i in 0..spans.count {
                    let Some(s) = spans.get(i) else { continue };
                    if volume.absorb(bio, &s) {
                        absorbed[na] = s.block;
                        na += 1;
                    } else {
                        direct |= 1 << i;
                        direct_blocks[nd] = s.block;
                        nd += 1;
                    }
                }
                self.submit_direct(bio, &spans, direct);
                let copy = |block: u64, buf: &mut [u8]| volume.copy_cached(block, buf, false);
                match repl.send_write(&absorbed[..na], &direct_blocks[..nd], copy, || self.waiter()) {
                    Some(gen) => {
                        self.repl_gen.store(gen, Relaxed);
                        repl.replicated_writes.fetch_add(na as u64, Relaxed);
                    }
                    None => self.repl_failed.store(true, Relaxed),
                }
            }
            Ok(_) => {
                // Write-through (degraded), discards and write-zeroes; the peers dropped
                // their replicas of the range above.
                volume.before_backing_write(rel_sector, bio);
                match bio.clone_range(&volume.pool.shared.bioset, volume.backing.bdev(), 0, size, rel_sector) {
                    Ok(clone) => self.submit(clone),
                    Err(_) => self.failed.store(true, Relaxed),
                }
            }
        }
        drop(state);
        self.clone().put();
        if one.is_some() {
            // Ordered: no write-back until its bios (and peers' ACKs) are in.
            self.settled.wait();
        }
    }
}

impl WorkItem<1> for IoOp {
    type Pointer = OpRef;

    fn run(this: OpRef) {
        // On the I/O path: reclaim must not wait for I/O (see `NoIoScope`).
        let _noio = NoIoScope::enter();
        if this.kind == OpKind::Read {
            this.run_held_read();
        } else if this.volume.repl.is_some() {
            this.run_replicated();
        } else {
            this.run_ordered();
        }
    }
}

/// A peer's answer for one block (or drop) of a replicated write, each holding one
/// reference of its pending count.
impl Notify<AckOutcome> for IoOp {
    fn notify(this: OpRef, outcome: AckOutcome) {
        match outcome {
            AckOutcome::Stored => {}
            AckOutcome::Failed => this.repl_failed.store(true, Relaxed),
            AckOutcome::Refused { peer } => {
                this.refused_by.fetch_or(crate::logic::placement::host_bit(peer), Relaxed);
                this.repl_failed.store(true, Relaxed);
            }
        }
        this.put();
    }
}

impl BioDone for IoOp {
    type Ref = OpRef;

    fn bio_done(this: OpRef, status: BioStatus) {
        if !status.is_ok() {
            this.failed.store(true, Relaxed);
        }
        this.put();
    }
}

impl WorkItem for IoOp {
    type Pointer = OpRef;

    fn run(this: OpRef) {
        let _noio = NoIoScope::enter();
        let volume = &this.volume;
        if this.kind == OpKind::FlushBacking && volume.flush_backing().is_err() {
            this.failed.store(true, Relaxed);
        }
        if this.kind == OpKind::Flush {
            if let Some(r) = &volume.repl {
                // Nothing may reach the backing device without the lease.
                if r.wait_writable().is_err() {
                    this.failed.store(true, Relaxed);
                }
            }
            if volume.flush_sync().is_err() {
                this.failed.store(true, Relaxed);
            }
        }
        let gen = this.repl_gen.load(Relaxed);
        if gen != u64::MAX && volume.repl.as_ref().is_some_and(|r| r.peer_set_gen() != gen) {
            // A peer it counted was dropped (and may have been emptied) since the send.
            this.repl_failed.store(true, Relaxed);
        }
        if this.repl_failed.load(Relaxed) && !this.failed.load(Relaxed) {
            // Fewer replicas than the policy demands: the write completes only once a
            // new peer set holds its blocks, or the backing device does.
            let mut blocks = [0u64; MAX_BLOCKS as usize];
            let n = Spans::new(volume.id, this.range.0, this.range.1).blocks(&mut blocks);
            let durable = volume
                .repl
                .as_ref()
                .is_some_and(|r| r.protect_failed_write(&**volume, &blocks[..n], this.refused_by.load(Relaxed)));
            if !durable {
                this.failed.store(true, Relaxed);
            }
        }
        if matches!(this.kind, OpKind::Write | OpKind::Through) {
            // A fill that read the old data while the write was in flight must not
            // install it: drop clean and filling copies (filling ones are orphaned).
            volume.drop_stale(this.range.0, this.range.1);
        }
        let ok = !this.failed.load(Relaxed);
        let mut state = this.state.lock();
        let state = &mut *state;
        let Some(mut bio) = state.bio.take() else { return };
        for f in state.fills.iter() {
            if ok {
                bio.copy_from_counted(f.span.bio_off, &f.page, f.span.block_off, f.span.len);
            }
            let mut shard = volume.pool.shard(f.shard).lock();
            if ok {
                shard.cache.fill_complete(f.slot, f.span.key, f.gen);
            } else {
                shard.cache.fill_failed(f.slot, f.span.key, f.gen);
            }
        }
        if !ok {
            Stats::add(&volume.stats.io_errors, 1);
        }
        bio.complete(if ok { BioStatus::OK } else { BioStatus::IOERR });
        match this.kind {
            OpKind::Read => volume.stats.read_latency.record_since(this.start),
            OpKind::Write | OpKind::Through => volume.stats.write_latency.record_since(this.start),
            OpKind::Flush | OpKind::FlushBacking => {}
        }
    }
}

/// What replication needs of the volume it protects (`repl.rs` does not know `Volume`).
impl ProtectedVolume for Volume {
    fn dirty_count(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    fn dirty_blocks(&self, cursor: &mut (usize, u32), out: &mut KVec<u64>, max: usize) {
        Volume::dirty_blocks(self, cursor, out, max)
    }

    fn copy_dirty(&self, block: u64, buf: &mut [u8]) -> bool {
        self.copy_cached(block, buf, true)
    }

    fn fence(&self) {
        Volume::fence(self)
    }

    fn flush_backing(&self) -> Result {
        Volume::flush_backing(self)
    }

    fn flush_sync(&self) -> Result {
        Volume::flush_sync(self)
    }

    fn make_urgent(&self) {
        self.pool.make_urgent()
    }

    fn stopping(&self) -> bool {
        self.pool.stopping()
    }
}

impl OwnedVolume for Volume {
    fn heartbeat(&self) {
        if let Some(r) = &self.repl {
            r.reconcile(self);
        }
    }

    fn replica_hosts(&self) -> u64 {
        self.repl.as_ref().map_or(0, |r| r.replica_hosts())
    }
}
