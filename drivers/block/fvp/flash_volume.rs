// SPDX-License-Identifier: GPL-2.0

//! A volume over a flash pool: its data path and its dm target.
//!
//! Cached data is read from, and written to, the pool's device with clones of the
//! volume's bio (no copy) at the slot the index names. Nothing acknowledged is ever
//! overwritten in place: a write goes to a free slot, and the index maps the block to
//! it once the data landed (`Journal::landed_replacing`). Reads whose every block is
//! cached are sent from `map`; everything else runs in a work item ([`FlashOp`]),
//! which may wait for room, for a commit, or for its own bios.
#![forbid(unsafe_code)]

use crate::backing::{BioWaiter, IoBatch};
use crate::cluster::OwnedVolume;
use crate::conn::BatchWait;
use crate::flash_pool::FlashPool;
use crate::fvp_kernel::bio::{BioDone, BioStatus, DmBio, Op, OwnedBio, RemapTag};
use crate::fvp_kernel::block::OpenedBdev;
use crate::fvp_kernel::dm::MapResult;
use crate::fvp_kernel::mempool::PoolArc;
use crate::fvp_kernel::pages::CountedPage;
use crate::fvp_kernel::sync::{alloc_retry, Completion, NoIoScope};
use crate::logic::abi::{self, POLICY_WRITE_BACK, POLICY_WRITE_THROUGH};
use crate::logic::cache::{Insert, Key, SlotId, SlotState};
use crate::logic::flash::JournalError;
use crate::repl::{ProtectedVolume, Replication};
use crate::stats::Stats;
use crate::volume::{Spans, MAX_BLOCKS};
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{AcqRel, Relaxed},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::time::Ktime;
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

const SECTORS: u64 = crate::backing::BLOCK_BYTES / 512;

/// How long [`FlashVolume::flush_sync`] waits for a replicated volume's lease (ms).
const FLUSH_SYNC_LEASE_MS: u32 = 30_000;

/// A volume over a flash pool.
#[pin_data]
pub(crate) struct FlashVolume {
    /// Its record in the pool (the volume part of every key).
    pub(crate) id: u16,
    pub(crate) pool: Arc<FlashPool>,
    pub(crate) backing: OpenedBdev,
    pub(crate) backing_devt: u32,
    /// The dm device of the table that created it.
    pub(crate) devt: AtomicU32,
    /// Tables using it: 2 during a reload.
    pub(crate) tables: AtomicU32,
    requested: AtomicU32,
    /// Dirty blocks of this volume in the pool (changed under the pool's state mutex).
    pub(crate) dirty: AtomicU64,
    pub(crate) stats: Stats,
    failing: AtomicBool,
    #[pin]
    flush_waiter: Mutex<Arc<BioWaiter>>,
    /// Replication to peers (write-back with `peers>0`; see docs/flash.md).
    pub(crate) repl: Option<Arc<Replication>>,
    /// `repl`'s version snapshot taken before the destage batch in flight.
    destage_snapshot: AtomicU64,
    /// A page and a waiter to read a dirty block back for its peers (`copy_dirty`).
    #[pin]
    copy_io: Mutex<(CountedPage, Arc<IoBatch>)>,
}

impl FlashVolume {
    pub(crate) fn new(
        id: u16,
        pool: Arc<FlashPool>,
        backing: OpenedBdev,
        backing_devt: u32,
        devt: u32,
        policy: u32,
        dirty: u64,
        repl: Option<Arc<Replication>>,
    ) -> Result<Arc<Self>> {
        let waiter = BioWaiter::try_new()?;
        let copy_io = (CountedPage::alloc()?, IoBatch::new()?);
        Ok(Arc::pin_init(
            pin_init!(FlashVolume {
                id,
                pool,
                backing,
                backing_devt,
                devt: AtomicU32::new(devt),
                tables: AtomicU32::new(1),
                requested: AtomicU32::new(policy),
                dirty: AtomicU64::new(dirty),
                stats: Stats::new(),
                failing: AtomicBool::new(false),
                flush_waiter <- new_mutex!(waiter, "fvp::FlashVolume::flush_waiter"),
                repl,
                destage_snapshot: AtomicU64::new(0),
                copy_io <- new_mutex!(copy_io, "fvp::FlashVolume::copy_io"),
            }),
            GFP_KERNEL,
        )?)
    }

    pub(crate) fn requested(&self) -> u32 {
        self.requested.load(Relaxed)
    }

    /// Write-back stays in force while dirty blocks remain.
    pub(crate) fn effective(&self) -> u32 {
        if let Some(r) = &self.repl {
            // Replicated: write-back only while every peer holds the writes.
            return if matches!(r.state(), abi::REPL_PROTECTED | abi::REPL_REPROTECTING) {
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
            self.pool.kick_destager(true);
        }
    }

    pub(crate) fn health(&self) -> &'static str {
        if self.pool.state.lock().failed() {
            "failed"
        } else if self.failing.load(Relaxed) {
            "failing"
        } else {
            "ok"
        }
    }

    /// Whether the destager may write this volume's blocks back: a replicated volume
    /// writes nothing without the lease, nor while a host may hold an orphan of its
    /// earlier incarnation (that orphan is written to the backing device first, and
    /// the pool's dirty copy, at least as new, must land after it).
    pub(crate) fn may_destage(&self) -> bool {
        self.repl.as_ref().is_none_or(|r| r.may_destage() && !r.reads_held())
    }

    /// Before a destage batch (see `Replication::destaged`).
    pub(crate) fn take_destage_snapshot(&self) {
        if let Some(r) = &self.repl {
            self.destage_snapshot.store(r.destage_snapshot(), Relaxed);
        }
    }

    /// `block` was written back by the batch: its peers may drop their replicas.
    pub(crate) fn replica_destaged(&self, block: u64) {
        if let Some(r) = &self.repl {
            r.destaged(block, self.destage_snapshot.load(Relaxed));
        }
    }

    /// Whether a write may go to the backing device now: a replicated volume's lease is
    /// checked right before (the waits before it may have outlasted it: a peer may
    /// have taken the volume over and written newer blocks).
    fn may_write_backing(&self) -> bool {
        self.repl.as_ref().is_none_or(|r| r.cluster.holds_lease() && r.state() != abi::REPL_FENCED)
    }

    /// A peer took the volume over: fenced, I/O fails until the table is recreated.
    fn fenced(&self) -> bool {
        self.repl.as_ref().is_some_and(|r| r.state() == abi::REPL_FENCED)
    }

    /// This host was fenced by a majority: a peer writes the volume's acknowledged
    /// blocks to the backing device, so every block the pool holds of it may be older.
    /// Drops them all without writing. Sleeps.
    pub(crate) fn fence(&self) {
        if let Some(r) = &self.repl {
            r.fence();
        }
        let _one = self.pool.destage_lock.lock();
        let n = self.pool.purge(self, |_| true);
        pr_warn!("flash volume {}: fenced: {} dirty blocks dropped (a peer writes them)\n", self.id, n);
    }

    /// Writes back every block dirty now, then flushes the backing device. `EIO` if
    /// the write-back fails or may not run (no lease, pool stopping). Sleeps.
    pub(crate) fn flush_sync(&self) -> Result {
        self.pool.kick_destager(true);
        // A write-back that fails from now on fails the call (not one before it); so
        // does a pool whose journal failed (its blocks can never be written back) or
        // that is going away, and a lease missing for FLUSH_SYNC_LEASE_MS (a short gap
        // is waited through, as the RAM destager waits for the next tick).
        let errors = Stats::get(&self.stats.destage_errors);
        let mut held_ms = 0;
        loop {
            let mut verdict = None;
            let woken = self.pool.destage_ended.wait_timeout_ms(1000, || {
                verdict = if self.dirty.load(Relaxed) == 0 {
                    Some(true)
                } else if Stats::get(&self.stats.destage_errors) != errors
                    || self.pool.journal_failed.load(Relaxed)
                    || self.pool.stopping()
                    || self.fenced()
                {
                    Some(false)
                } else {
                    None
                };
                verdict.is_some()
            });
            match verdict {
                Some(true) => return self.flush_backing(),
                Some(false) => return Err(EIO),
                None => {}
            }
            if !woken {
                self.pool.kick_destager(true);
            }
            if self.may_destage() {
                held_ms = 0;
            } else {
                held_ms += 1000;
                if held_ms >= FLUSH_SYNC_LEASE_MS {
                    return Err(EIO);
                }
            }
        }
    }

    /// Copies dirty `block` from the flash device into `buf`. Sleeps.
    fn read_dirty(&self, block: u64, buf: &mut [u8]) -> bool {
        let Some(key) = Key::new(self.id, block) else { return false };
        let (slot, epoch) = {
            let st = self.pool.state.lock();
            match st.cache.peek(key) {
                Some((slot, SlotState::Dirty)) => (slot, self.pool.begin_read(&st)),
                _ => return false,
            }
        };
        let io = self.copy_io.lock();
        let (page, batch) = &*io;
        let read = crate::flash_pool::block_io(
            &self.pool.shared,
            self.pool.dev.bdev(),
            batch,
            false,
            false,
            &mut [(self.pool.geometry.data_block(u64::from(slot)), page.clone_ref())].into_iter(),
        );
        self.pool.end_read(epoch);
        if !read {
            // Its peers are told it is clean (dropped) while it is not: the pool's
            // device is failing, and its commits fail with it (docs/flash.md).
            pr_err!("flash volume {}: reading dirty block {} back for its peers failed\n", self.id, block);
            return false;
        }
        page.read(0, buf)
    }

    /// A hit remapped by `read` completed (in its completion context): its slots may
    /// be reused.
    pub(crate) fn hit_ended(&self, tag: RemapTag, ok: bool) {
        self.pool.end_read(tag.tag.get() - 1);
        if ok {
            self.stats.read_latency.record_since(tag.start);
        } else {
            Stats::add(&self.stats.io_errors, 1);
        }
    }

    /// A dirty block was written back (under the pool's state mutex).
    pub(crate) fn destaged_one(&self) {
        self.dirty.fetch_sub(1, Relaxed);
        Stats::add(&self.stats.destaged, 1);
        if self.failing.swap(false, Relaxed) {
            pr_info!("flash volume {}: writes to the backing device succeed again\n", self.id);
        }
    }

    pub(crate) fn destage_failed(&self) {
        Stats::add(&self.stats.destage_errors, 1);
        if !self.failing.swap(true, Relaxed) {
            pr_err!(
                "flash volume {}: writing dirty blocks back failed: they stay dirty in the pool and are retried\n",
                self.id
            );
        }
    }

    fn flash_sector(&self, slot: SlotId) -> u64 {
        self.pool.geometry.data_block(u64::from(slot)) * SECTORS
    }

    /// Flushes the backing device (writes sent around the pool).
    pub(crate) fn flush_backing(&self) -> Result {
        let waiter = self.flush_waiter.lock();
        crate::backing::flush_bdev(&self.pool.shared.bioset, self.backing.bdev(), &waiter)
    }

    /// Maps one bio; `rel_sector` is relative to the target.
    pub(crate) fn map(self: &Arc<Self>, rel_sector: u64, bio: DmBio) -> MapResult {
        if self.fenced() {
            // A peer took the volume over: the device must be removed and created again.
            bio.complete(BioStatus::IOERR);
            return MapResult::submitted();
        }
        let size = bio.size();
        let now = Ktime::ktime_get();
        let kind = match bio.op() {
            Op::Read => {
                Stats::add(&self.stats.reads, 1);
                Stats::add(&self.stats.read_bytes, u64::from(size));
                return self.read(rel_sector, bio, now);
            }
            Op::Write if size == 0 => Kind::Flush,
            Op::Write => {
                Stats::add(&self.stats.writes, 1);
                Stats::add(&self.stats.write_bytes, u64::from(size));
                if bio.is_preflush() {
                    Kind::Flush
                } else {
                    Kind::Write
                }
            }
            Op::Discard => Kind::Discard,
            // Write-zeroes is not offered (the block layer writes zeroes instead).
            Op::WriteZeroes | Op::Flush | Op::Other => return bio.remap(self.backing.bdev(), rel_sector),
        };
        FlashOp::queue(self, kind, rel_sector, bio, now);
        MapResult::submitted()
    }

    /// A read whose every block is cached goes to the flash device from here: the bio
    /// itself when its blocks sit in consecutive slots (one block, say), clones of it
    /// otherwise.
    fn read(self: &Arc<Self>, rel_sector: u64, bio: DmBio, start: Ktime) -> MapResult {
        let spans = Spans::new(self.id, rel_sector, bio.size());
        let mut slots = [0 as SlotId; MAX_BLOCKS as usize];
        let epoch = {
            let mut st = self.pool.state.lock();
            for i in 0..spans.count {
                let hit = spans.get(i).and_then(|s| st.cache.lookup(s.key));
                match hit {
                    Some(slot) => slots[i as usize] = slot,
                    None => {
                        drop(st);
                        FlashOp::queue(self, Kind::Read, rel_sector, bio, start);
                        return MapResult::submitted();
                    }
                }
            }
            self.pool.begin_read(&st)
        };
        Stats::add(&self.stats.read_hits, u64::from(spans.count));
        let n = spans.count as usize;
        let consecutive = slots[..n].windows(2).all(|w| w[1] == w[0].wrapping_add(1));
        if let (true, Some(first)) = (consecutive, spans.get(0)) {
            // The read epoch ends in `hit_ended`, when the bio completes.
            let sector = self.flash_sector(slots[0]) + u64::from(first.block_off / 512);
            if let Some(tag) = core::num::NonZeroU32::new(epoch + 1) {
                return bio.remap_tagged(self.pool.dev.bdev(), sector, tag, start);
            }
        }
        let op = FlashOp::new(self, Kind::ReadHit, rel_sector, bio, start);
        op.epoch.store(epoch, Relaxed);
        {
            let guard = op.bio.lock();
            if let Some(bio) = guard.as_ref() {
                for i in 0..spans.count {
                    let Some(s) = spans.get(i) else { continue };
                    let sector = self.flash_sector(slots[i as usize]) + u64::from(s.block_off / 512);
                    op.clone_to(bio, true, s.bio_off, s.len, sector);
                }
            }
        }
        op.put();
        MapResult::submitted()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every block cached: sent from `map`, finished in the work item.
    ReadHit,
    Read,
    Write,
    Flush,
    Discard,
}

/// What a write does with each of its blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// To a free slot, from the bio.
    New,
    /// Around the pool, to the backing device.
    Direct,
}

/// A bio of a flash volume that needs more than a look-up.
#[pin_data]
pub(crate) struct FlashOp {
    volume: Arc<FlashVolume>,
    kind: Kind,
    rel_sector: u64,
    start: Ktime,
    #[pin]
    bio: Mutex<Option<DmBio>>,
    /// Bios in flight, plus one while they are being submitted.
    pending: AtomicU32,
    failed: AtomicBool,
    /// The read epoch of slots it reads (`u32::MAX`: none).
    epoch: AtomicU32,
    #[pin]
    done: Completion,
    #[pin]
    work: Work<FlashOp>,
}

impl_has_work! {
    impl HasWork<Self> for FlashOp { self.work }
}

type FlashOpRef = PoolArc<FlashOp>;

impl FlashOp {
    fn new(volume: &Arc<FlashVolume>, kind: Kind, rel_sector: u64, bio: DmBio, start: Ktime) -> FlashOpRef {
        let init = pin_init!(FlashOp {
            volume: volume.clone(),
            kind,
            rel_sector,
            start,
            bio <- new_mutex!(Some(bio), "fvp::FlashOp::bio"),
            pending: AtomicU32::new(1),
            failed: AtomicBool::new(false),
            epoch: AtomicU32::new(u32::MAX),
            done <- Completion::new(),
            work <- new_work!("fvp::FlashOp::work"),
        });
        match volume.pool.ops.alloc(init) {
            Ok(op) => op,
            Err(never) => match never {},
        }
    }

    fn queue(volume: &Arc<FlashVolume>, kind: Kind, rel_sector: u64, bio: DmBio, start: Ktime) {
        let op = Self::new(volume, kind, rel_sector, bio, start);
        let shared = volume.pool.shared.clone();
        let _ = shared.wq.enqueue(op);
    }

    /// Sends bytes `[off, off + len)` of `bio` to the flash device (`flash`) or the
    /// backing device at `sector`.
    fn clone_to(self: &FlashOpRef, bio: &DmBio, flash: bool, off: u32, len: u32, sector: u64) {
        let v = &self.volume;
        let bdev = if flash { v.pool.dev.bdev() } else { v.backing.bdev() };
        match bio.clone_range(&v.pool.shared.bioset, bdev, off, len, sector) {
            Ok(clone) => self.submit(clone),
            Err(_) => self.failed.store(true, Relaxed),
        }
    }

    fn submit(self: &FlashOpRef, bio: OwnedBio) {
        self.pending.fetch_add(1, Relaxed);
        bio.submit(self.clone());
    }

    /// Sends one whole block from `page` (write) or into it.
    fn page_io(self: &FlashOpRef, write: bool, flash: bool, sector: u64, page: &CountedPage) {
        let v = &self.volume;
        let bdev = if flash { v.pool.dev.bdev() } else { v.backing.bdev() };
        match OwnedBio::new(&v.pool.shared.bioset, bdev, write, sector, 1) {
            Ok(mut b) => {
                if b.add_page(page.clone_ref()) {
                    self.submit(b);
                } else {
                    self.failed.store(true, Relaxed);
                }
            }
            Err(_) => self.failed.store(true, Relaxed),
        }
    }

    /// Drops the submission reference: the last one finishes a hit read in the work
    /// item, or wakes the work item waiting in [`FlashOp::wait_io`].
    fn put(self: FlashOpRef) {
        if self.pending.fetch_sub(1, AcqRel) == 1 {
            // The slots read are no longer in use: here, not in the work item, so that
            // a commit never waits for work items (they may be waiting for it).
            self.end_read();
            if self.kind == Kind::ReadHit {
                let shared = self.volume.pool.shared.clone();
                let _ = shared.wq.enqueue(self);
            } else {
                self.done.complete();
            }
        }
    }

    /// Starts a round of bios waited for by [`FlashOp::wait_io`].
    fn begin_io(&self) {
        self.pending.store(1, Relaxed);
        self.done.reinit();
    }

    /// Waits for the round's bios; whether all succeeded so far.
    fn wait_io(self: &FlashOpRef) -> bool {
        self.clone().put();
        self.done.wait();
        !self.failed.load(Relaxed)
    }

    fn end_read(&self) {
        let e = self.epoch.swap(u32::MAX, Relaxed);
        if e != u32::MAX {
            self.volume.pool.end_read(e);
        }
    }

    fn complete(&self, ok: bool) {
        if let Some(bio) = self.bio.lock().take() {
            let write = self.kind != Kind::Read && self.kind != Kind::ReadHit;
            if !ok {
                Stats::add(&self.volume.stats.io_errors, 1);
            } else if write {
                self.volume.stats.write_latency.record_since(self.start);
            } else {
                self.volume.stats.read_latency.record_since(self.start);
            }
            bio.complete(if ok { BioStatus::OK } else { BioStatus::IOERR });
        }
    }

    fn spans(&self) -> Option<Spans> {
        let size = self.bio.lock().as_ref()?.size();
        Some(Spans::new(self.volume.id, self.rel_sector, size))
    }

    /// A read with blocks missing: cached blocks from the flash device, the others
    /// from the backing device, filled into free slots when there is room.
    fn run_read(self: &FlashOpRef) {
        let v = &self.volume;
        let pool = &v.pool;
        let Some(spans) = self.spans() else { return };
        // The backing device may be older than an orphan a host still holds.
        if v.repl.as_ref().is_some_and(|r| r.reads_held() && r.wait_readable().is_err()) {
            self.complete(false);
            return;
        }
        let n = spans.count as usize;
        // Pages for fills, before the lock (none: the blocks are read uncached).
        let mut pages: KVec<CountedPage> = KVec::new();
        if pages.reserve(n, GFP_KERNEL).is_ok() {
            for _ in 0..n {
                match CountedPage::alloc() {
                    Ok(p) => {
                        let _ = pages.push(p, GFP_KERNEL);
                    }
                    Err(_) => break,
                }
            }
        }
        let mut hit = [None::<SlotId>; MAX_BLOCKS as usize];
        let mut fill = [None::<(SlotId, u16)>; MAX_BLOCKS as usize];
        let mut fills = 0;
        {
            let mut guard = pool.state.lock();
            let st = &mut *guard;
            let mut hits = 0;
            for i in 0..n {
                let Some(s) = spans.get(i as u32) else { continue };
                if let Some(slot) = st.cache.lookup(s.key) {
                    hit[i] = Some(slot);
                    hits += 1;
                } else if st.cache.peek(s.key).is_none() && fills < pages.len() && !st.failed() {
                    if let Ok(ins) = st.cache.insert(s.key, Insert::Filling) {
                        if st.journal.begin_write(ins.slot).is_ok() {
                            fill[i] = Some((ins.slot, ins.gen));
                            fills += 1;
                        } else {
                            st.cache.fill_failed(ins.slot, s.key, ins.gen);
                        }
                    }
                }
            }
            if hits > 0 {
                self.epoch.store(pool.begin_read(st), Relaxed);
            }
            Stats::add(&v.stats.read_hits, hits);
            Stats::add(&v.stats.read_misses, n as u64 - hits);
        }
        self.begin_io();
        {
            let guard = self.bio.lock();
            let Some(bio) = guard.as_ref() else { return };
            let mut page_i = 0;
            let mut i = 0;
            while i < n {
                let Some(s) = spans.get(i as u32) else { break };
                if let Some(slot) = hit[i] {
                    let sector = v.flash_sector(slot) + u64::from(s.block_off / 512);
                    self.clone_to(bio, true, s.bio_off, s.len, sector);
                    i += 1;
                } else if fill[i].is_some() {
                    self.page_io(false, false, s.block * SECTORS, &pages[page_i]);
                    page_i += 1;
                    i += 1;
                } else {
                    // A run of blocks read around the pool.
                    let mut j = i;
                    while j + 1 < n && hit[j + 1].is_none() && fill[j + 1].is_none() {
                        j += 1;
                    }
                    let Some(last) = spans.get(j as u32) else { break };
                    let len = last.bio_off + last.len - s.bio_off;
                    let sector = s.block * SECTORS + u64::from(s.block_off / 512);
                    self.clone_to(bio, false, s.bio_off, len, sector);
                    i = j + 1;
                }
            }
        }
        let ok = self.wait_io();
        self.end_read();
        {
            let mut guard = self.bio.lock();
            if let Some(bio) = guard.as_mut() {
                let mut page_i = 0;
                for (i, f) in fill.iter().enumerate().take(n) {
                    if f.is_none() {
                        continue;
                    }
                    if let Some(s) = spans.get(i as u32) {
                        bio.copy_from_counted(s.bio_off, &pages[page_i], s.block_off, s.len);
                    }
                    page_i += 1;
                }
            }
        }
        self.complete(ok);
        if fills == 0 {
            return;
        }
        // The fills land in their slots after the read completed.
        self.failed.store(!ok, Relaxed);
        if ok {
            self.begin_io();
            let mut page_i = 0;
            for f in fill.iter().take(n) {
                if let Some((slot, _)) = f {
                    self.page_io(true, true, v.flash_sector(*slot), &pages[page_i]);
                    page_i += 1;
                }
            }
        }
        let written = ok && self.wait_io();
        let mut guard = pool.state.lock();
        let st = &mut *guard;
        for (i, f) in fill.iter().enumerate().take(n) {
            let (Some((slot, gen)), Some(s)) = (*f, spans.get(i as u32)) else { continue };
            if written && st.cache.fill_complete(slot, s.key, gen) {
                st.fill_landed = true;
                let _ = st.journal.landed(slot);
                continue;
            }
            if !written {
                st.cache.fill_failed(slot, s.key, gen);
            }
            // Never readable: its slot may be reused at once.
            if st.journal.abandon(slot).is_ok() {
                st.cache.unhold(slot);
            }
        }
    }

    /// A write: whole blocks to free slots (write-back, or over a dirty block),
    /// partial ones merged with their cached copy, the rest around the pool.
    fn run_write(self: &FlashOpRef, fua: bool) {
        let v = &self.volume;
        let pool = &v.pool;
        let Some(spans) = self.spans() else { return };
        let n = spans.count as usize;
        let mut wb = v.requested() == POLICY_WRITE_BACK;
        if let Some(r) = &v.repl {
            match replicated_mode(r, &spans) {
                Ok(replicate) => wb = replicate,
                Err(_) => {
                    self.complete(false);
                    return;
                }
            }
        }
        let mut plan = [Plan::Direct; MAX_BLOCKS as usize];
        let mut new_slot = [0 as SlotId; MAX_BLOCKS as usize];
        let mut conflict;
        loop {
            let mut guard = pool.state.lock();
            let st = &mut *guard;
            if st.failed() {
                drop(guard);
                self.complete(false);
                return;
            }
            let mut took: u64 = 0;
            let mut short = false;
            conflict = false;
            for i in 0..n {
                let Some(s) = spans.get(i as u32) else { continue };
                if !s.full() {
                    // The target's logical block size is a block: never happens.
                    drop(guard);
                    pr_err!("flash volume {}: a write of part of a block\n", v.id);
                    self.complete(false);
                    return;
                }
                let cached = st.cache.peek(s.key);
                plan[i] = match cached {
                    Some((_, SlotState::Dirty)) => Plan::New,
                    Some((_, SlotState::Clean)) if wb => Plan::New,
                    Some((_, SlotState::Filling)) => {
                        // The fill reads older data: orphan it.
                        st.cache.remove(s.key);
                        if wb {
                            Plan::New
                        } else {
                            Plan::Direct
                        }
                    }
                    None if wb => Plan::New,
                    _ => Plan::Direct,
                };
                if plan[i] == Plan::Direct {
                    conflict |= st.cache.backing_write_conflict(s.key);
                    continue;
                }
                match st.cache.take_free() {
                    Some(slot) => {
                        new_slot[i] = slot;
                        took |= 1 << i;
                    }
                    None => {
                        short = true;
                        break;
                    }
                }
            }
            // A clean copy of a block written around the pool goes first (its entry
            // is zeroed by the next commit); `Full` waits for a commit.
            if !short {
                for i in 0..n {
                    let Some(s) = spans.get(i as u32) else { continue };
                    if plan[i] == Plan::Direct && drop_clean(pool, st, s.key).is_err() {
                        short = true;
                        break;
                    }
                }
            }
            if short {
                for (i, &slot) in new_slot.iter().enumerate().take(n) {
                    if took & (1 << i) != 0 {
                        st.cache.untake(slot);
                    }
                }
                pool.want_commit(st);
                drop(guard);
                pool.kick_destager(false);
                pool.wait_next_commit();
                continue;
            }
            let mut refused = false;
            for i in 0..n {
                if plan[i] == Plan::New && st.journal.begin_write(new_slot[i]).is_err() {
                    // A free slot is FREE in the journal: a bug if not.
                    refused = true;
                }
            }
            if refused {
                for i in 0..n {
                    if plan[i] == Plan::New {
                        let _ = st.journal.abandon(new_slot[i]);
                        st.cache.untake(new_slot[i]);
                    }
                }
                drop(guard);
                pr_err!("flash volume {}: the journal refused a free slot\n", v.id);
                self.complete(false);
                return;
            }
            break;
        }
        // The data, to the flash device and around the pool. A write around the pool
        // that could race a write-back of the same block waits for the batch.
        let ordered = if conflict { Some(pool.destage_lock.lock()) } else { None };
        if plan[..n].contains(&Plan::Direct) && !v.may_write_backing() {
            drop(ordered);
            for i in 0..n {
                if plan[i] == Plan::New {
                    let mut st = pool.state.lock();
                    let _ = st.journal.abandon(new_slot[i]);
                    st.cache.untake(new_slot[i]);
                }
            }
            self.complete(false);
            return;
        }
        self.begin_io();
        {
            let guard = self.bio.lock();
            if let Some(bio) = guard.as_ref() {
                let mut i = 0;
                while i < n {
                    let Some(s) = spans.get(i as u32) else { break };
                    match plan[i] {
                        Plan::New => self.clone_to(bio, true, s.bio_off, s.len, v.flash_sector(new_slot[i])),
                        Plan::Direct => {
                            let mut j = i;
                            while j + 1 < n && plan[j + 1] == Plan::Direct {
                                j += 1;
                            }
                            if let Some(last) = spans.get(j as u32) {
                                let len = last.bio_off + last.len - s.bio_off;
                                let sector = s.block * SECTORS + u64::from(s.block_off / 512);
                                self.clone_to(bio, false, s.bio_off, len, sector);
                            }
                            i = j;
                        }
                    }
                    i += 1;
                }
            }
        }
        let ok = self.wait_io();
        drop(ordered);
        // The index maps the blocks to their new slots.
        let mut written = 0;
        for i in 0..n {
            let Some(s) = spans.get(i as u32) else { continue };
            if plan[i] != Plan::New {
                continue;
            }
            loop {
                let mut guard = pool.state.lock();
                let st = &mut *guard;
                let slot = new_slot[i];
                if !ok {
                    let _ = st.journal.abandon(slot);
                    st.cache.untake(slot);
                    break;
                }
                let was_dirty = match st.cache.peek(s.key) {
                    Some((o, state @ (SlotState::Clean | SlotState::Dirty))) => {
                        match st.journal.landed_replacing(slot, o, s.key) {
                            Ok(()) => state == SlotState::Dirty,
                            Err(JournalError::Full) if !st.failed() => {
                                pool.want_commit(st);
                                drop(guard);
                                pool.wait_next_commit();
                                continue;
                            }
                            Err(_) => {
                                pr_err!("flash volume {}: journal refused a landed write\n", v.id);
                                let _ = st.journal.abandon(slot);
                                st.cache.untake(slot);
                                self.failed.store(true, Relaxed);
                                break;
                            }
                        }
                    }
                    _ => {
                        let _ = st.journal.landed(slot);
                        false
                    }
                };
                match st.cache.install(slot, s.key, Insert::Dirty) {
                    Ok(ins) => {
                        if let Some(r) = ins.replaced {
                            pool.unhold_if_free(st, r);
                        }
                        if !was_dirty {
                            v.dirty.fetch_add(1, Relaxed);
                        }
                        written += 1;
                    }
                    Err(_) => {
                        pr_err!("flash volume {}: index refused a landed write\n", v.id);
                        self.failed.store(true, Relaxed);
                    }
                }
                break;
            }
        }
        Stats::add(&v.stats.write_hits, written);
        // Copies that a fill read while the write was in flight go. Then, a version of a
        // block written around the pool may still have an entry on the flash device
        // (superseded, or released by `drop_clean`): until it is zeroed, a power cut
        // could bring it back and write it back over this write.
        let mut ok = ok
            && self.settle_direct(&spans, &plan, |pool, st, key| drop_clean(pool, st, key).is_ok())
            && self.settle_direct(&spans, &plan, |_, st, key| !st.journal.has_record(key));
        ok &= !self.failed.load(Relaxed);
        if ok {
            if let Some(r) = &v.repl {
                ok = self.protect(r, &spans, &plan, &new_slot, wb);
            }
        }
        if ok && fua {
            ok = pool.wait_commit().is_ok() && (!plan[..n].contains(&Plan::Direct) || v.flush_backing().is_ok());
        }
        self.complete(ok);
    }

    /// A replicated volume's write landed in the pool: its blocks go to every peer,
    /// and the pool commits them, before the write completes. A write that could not
    /// be replicated waits until its blocks are protected again or written back
    /// (`Replication::protect_failed_write`). In write-through (degraded), blocks that
    /// still went to the pool (over dirty ones) are written back before it completes.
    fn protect(
        self: &FlashOpRef,
        r: &Arc<Replication>,
        spans: &Spans,
        plan: &[Plan; MAX_BLOCKS as usize],
        new_slot: &[SlotId; MAX_BLOCKS as usize],
        wb: bool,
    ) -> bool {
        let v = &self.volume;
        let pool = &v.pool;
        let mut blocks = [0u64; MAX_BLOCKS as usize];
        let mut nb = 0;
        for i in 0..spans.count as usize {
            if let (Plan::New, Some(s)) = (plan[i], spans.get(i as u32)) {
                blocks[nb] = s.block;
                nb += 1;
            }
        }
        if nb == 0 {
            return true;
        }
        if !wb {
            return v.flush_sync().is_ok();
        }
        let batch = alloc_retry(BatchWait::new);
        let page = CountedPage::alloc().ok();
        let sent = {
            let guard = self.bio.lock();
            let Some(bio) = guard.as_ref() else { return false };
            // Under the replication's send lock: a version is sent with the block's
            // newest data. Ours, from the bio, unless a later write replaced it in the
            // pool since: then that one's, from the flash device.
            let copy = |block: u64, buf: &mut [u8]| {
                let Some(i) = (0..spans.count).find(|&i| spans.get(i).is_some_and(|s| s.block == block)) else {
                    return false;
                };
                let Some(s) = spans.get(i) else { return false };
                let ours = pool.state.lock().cache.peek(s.key).is_some_and(|(slot, _)| slot == new_slot[i as usize]);
                match (&page, ours) {
                    (Some(p), true) => bio.copy_to_counted(s.bio_off, p, 0, s.len) && p.read(0, buf),
                    _ => v.read_dirty(block, buf),
                }
            };
            r.send_write(&blocks[..nb], &[], copy, || batch.waiter())
        };
        // Acknowledged writes are committed here too: after a power cut, the pool's
        // copy of every block is at least as new as any acknowledged replica.
        if pool.wait_commit().is_err() {
            return false;
        }
        match sent {
            Some(gen) if batch.wait(r.cluster.timeout_ms()) && r.peer_set_gen() == gen => {
                r.replicated_writes.fetch_add(nb as u64, Relaxed);
                true
            }
            // Hosts that refused (no store) are dropped from the peer set first.
            _ => r.protect_failed_write(&**v, &blocks[..nb], batch.refused()),
        }
    }

    /// For each block written around the pool, waits until `settled` holds for it
    /// (under the state mutex), asking for commits meanwhile; `false` if the pool failed.
    fn settle_direct(
        &self,
        spans: &Spans,
        plan: &[Plan; MAX_BLOCKS as usize],
        mut settled: impl FnMut(&FlashPool, &mut crate::flash_pool::FlashState, crate::logic::cache::Key) -> bool,
    ) -> bool {
        let pool = &self.volume.pool;
        for i in 0..spans.count as usize {
            if plan[i] != Plan::Direct {
                continue;
            }
            let Some(s) = spans.get(i as u32) else { continue };
            loop {
                let mut guard = pool.state.lock();
                if guard.failed() {
                    return false;
                }
                if settled(pool, &mut guard, s.key) {
                    break;
                }
                pool.want_commit(&mut guard);
                drop(guard);
                pool.wait_next_commit();
            }
        }
        true
    }

    /// A flush (and the data of a `REQ_PREFLUSH` write after it).
    fn run_flush(self: &FlashOpRef) {
        let v = &self.volume;
        let mut ok = v.pool.wait_commit().is_ok() && v.flush_backing().is_ok();
        let (size, fua) = match self.bio.lock().as_ref() {
            Some(b) => (b.size(), b.is_fua()),
            None => return,
        };
        if ok && size > 0 {
            self.run_write(fua);
            return;
        }
        ok &= !self.failed.load(Relaxed);
        self.complete(ok);
    }

    /// A discard: cached copies of the blocks it covers whole are dropped (dirty ones
    /// too: their data is no longer wanted), then it goes to the backing device.
    fn run_discard(self: &FlashOpRef) {
        let v = &self.volume;
        let pool = &v.pool;
        let Some(size) = self.bio.lock().as_ref().map(|b| b.size()) else { return };
        let first = (self.rel_sector * 512).div_ceil(crate::backing::BLOCK_BYTES);
        let end = (self.rel_sector * 512 + u64::from(size)) / crate::backing::BLOCK_BYTES;
        if let Some(r) = &v.repl {
            // Peers drop their replicas first: a takeover must not write them over it.
            let dropped = r.wait_writable().and_then(|_| r.drop_range_at_peers(first, end.saturating_sub(first)));
            if dropped.is_err() {
                self.complete(false);
                return;
            }
        }
        let mut conflict = false;
        let mut block = first;
        while block < end {
            let Some(key) = crate::logic::cache::Key::new(v.id, block) else { break };
            let mut guard = pool.state.lock();
            let st = &mut *guard;
            conflict |= st.cache.backing_write_conflict(key);
            match st.cache.peek(key) {
                Some((slot, state @ (SlotState::Clean | SlotState::Dirty))) => match st.journal.release(slot, key) {
                    Ok(()) => {
                        st.cache.remove(key);
                        pool.unhold_if_free(st, slot);
                        if state == SlotState::Dirty {
                            v.dirty.fetch_sub(1, Relaxed);
                        }
                    }
                    Err(JournalError::Full) if !st.failed() => {
                        pool.want_commit(st);
                        drop(guard);
                        pool.wait_next_commit();
                        continue;
                    }
                    Err(_) => {}
                },
                Some((_, SlotState::Filling)) => {
                    st.cache.remove(key);
                }
                _ => {}
            }
            block += 1;
        }
        let ordered = if conflict { Some(pool.destage_lock.lock()) } else { None };
        if !v.may_write_backing() {
            drop(ordered);
            self.complete(false);
            return;
        }
        self.begin_io();
        {
            let guard = self.bio.lock();
            if let Some(bio) = guard.as_ref() {
                self.clone_to(bio, false, 0, size, self.rel_sector);
            }
        }
        let ok = self.wait_io();
        drop(ordered);
        self.complete(ok);
    }
}

/// Waits until a write to a replicated volume may proceed: `Ok(true)` replicated
/// write-back, `Ok(false)` write-through (degraded: the peers dropped what they held of
/// the range first, so a takeover cannot write it over this write). Sleeps.
fn replicated_mode(r: &Replication, spans: &Spans) -> Result<bool> {
    loop {
        match r.wait_writable()? {
            true => return Ok(true),
            false => {
                r.drop_range_at_peers(spans.first_block, u64::from(spans.count))?;
                // The drop may have waited: the lease is checked again.
                if r.cluster.holds_lease() {
                    return Ok(false);
                }
            }
        }
    }
}

/// Drops a clean (or filling) copy of `key`; `Err` when the journal's records are
/// full (the caller waits for a commit and retries). A dirty copy stays.
fn drop_clean(pool: &FlashPool, st: &mut crate::flash_pool::FlashState, key: crate::logic::cache::Key) -> Result {
    match st.cache.peek(key) {
        Some((slot, SlotState::Clean)) => {
            st.journal.release(slot, key).map_err(|_| ENOSPC)?;
            st.cache.remove(key);
            pool.unhold_if_free(st, slot);
        }
        Some((_, SlotState::Filling)) => {
            st.cache.remove(key);
        }
        _ => {}
    }
    Ok(())
}

impl BioDone for FlashOp {
    type Ref = FlashOpRef;

    fn bio_done(this: FlashOpRef, status: BioStatus) {
        if !status.is_ok() {
            this.failed.store(true, Relaxed);
        }
        this.put();
    }
}

impl WorkItem for FlashOp {
    type Pointer = FlashOpRef;

    fn run(this: FlashOpRef) {
        let _noio = NoIoScope::enter();
        match this.kind {
            Kind::ReadHit => {
                this.end_read();
                let ok = !this.failed.load(Relaxed);
                this.complete(ok);
            }
            Kind::Read => this.run_read(),
            Kind::Write => {
                let fua = this.bio.lock().as_ref().is_some_and(|b| b.is_fua());
                this.run_write(fua);
            }
            Kind::Flush => this.run_flush(),
            Kind::Discard => this.run_discard(),
        }
    }
}

/// What replication needs of the volume it protects.
impl ProtectedVolume for FlashVolume {
    fn dirty_count(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    fn dirty_blocks(&self, cursor: &mut (usize, u32), out: &mut KVec<u64>, max: usize) {
        let Some(zero) = Key::new(0, 0) else { return };
        let mut found = [(0 as SlotId, zero); 16];
        let st = self.pool.state.lock();
        while out.len() < max && cursor.1 < st.cache.slots() {
            let room = (max - out.len()).min(found.len());
            // Blocks being written back are still dirty: their destage may fail.
            let (n, next) = st.cache.dirty_scan_all(cursor.1, &mut found[..room]);
            for &(_, key) in &found[..n] {
                // Within the capacity the caller reserved: never allocates.
                if key.volume() == self.id && out.push(key.block(), GFP_NOWAIT).is_err() {
                    return;
                }
            }
            cursor.1 = next;
            if n == 0 {
                break;
            }
        }
    }

    fn copy_dirty(&self, block: u64, buf: &mut [u8]) -> bool {
        self.read_dirty(block, buf)
    }

    fn fence(&self) {
        FlashVolume::fence(self)
    }

    fn flush_backing(&self) -> Result {
        FlashVolume::flush_backing(self)
    }

    fn flush_sync(&self) -> Result {
        FlashVolume::flush_sync(self)
    }

    fn make_urgent(&self) {
        self.pool.kick_destager(true)
    }

    fn stopping(&self) -> bool {
        self.pool.stopping()
    }
}

impl OwnedVolume for FlashVolume {
    fn heartbeat(&self) {
        if let Some(r) = &self.repl {
            r.reconcile(self);
        }
    }

    fn replica_hosts(&self) -> u64 {
        self.repl.as_ref().map_or(0, |r| r.replica_hosts())
    }
}
