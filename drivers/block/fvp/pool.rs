// SPDX-License-Identifier: GPL-2.0

//! RAM pools: pages from the page allocator, indexed by `logic::cache`, shared by the
//! volumes that name the pool in their table.
//!
//! A pool is split into [`SHARDS`] independent caches, each behind its own mutex, chosen
//! by a hash of the block's key: I/O to different blocks rarely meets on a lock, and no
//! lock is global. Shards use mutexes rather than spinlocks because resizing allocates
//! while holding them; the I/O path only holds one for a lookup and a 4 KiB copy.
#![forbid(unsafe_code)]

use crate::fvp_kernel::mempool::ObjectPool;
use crate::fvp_kernel::pages::{self, PageArray};
use crate::fvp_kernel::sync::{signal_pending, NoIoScope};
use crate::fvp_kernel::thread::Thread;
use crate::logic::abi;
use crate::logic::cache::{Cache, Key, OutOfMemory, SlotState, Store, Stores};
use crate::shared::Shared;
use crate::volume::{IoOp, Volume};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, Mutex};
use kernel::{new_condvar, new_mutex};

/// Shards per pool (a power of two).
pub(crate) const SHARDS: usize = 16;
/// Pages added or released per shard lock hold while resizing, so I/O keeps flowing.
const RESIZE_STEP: u32 = 1024;
/// Bytes per page, and per cached block.
pub(crate) const PAGE: u64 = crate::backing::BLOCK_BYTES;

/// `KVec` as the cache's metadata store.
pub(crate) struct KArray<T>(KVec<T>);

impl<T> Deref for KArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> DerefMut for KArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Copy> Store<T> for KArray<T> {
    fn try_extend(&mut self, n: usize, value: T) -> Result<(), OutOfMemory> {
        self.0.extend_with(n, value, GFP_KERNEL).map_err(|_| OutOfMemory)
    }

    fn truncate_to(&mut self, len: usize) {
        pages::truncate_vec(&mut self.0, len);
    }
}

/// The kernel's family of metadata arrays.
pub(crate) struct KStores;

impl Stores for KStores {
    type Array<T: Copy> = KArray<T>;
    fn empty<T: Copy>() -> KArray<T> {
        KArray(KVec::new())
    }
}

/// One shard: its index and the pages its slots refer to (slot `i` is page `i`).
pub(crate) struct Shard {
    pub(crate) cache: Cache<KStores>,
    pub(crate) pages: PageArray,
}

/// Totals over a pool's shards.
#[derive(Default)]
pub(crate) struct PoolCounts {
    pub(crate) pages: u64,
    pub(crate) free: u64,
    pub(crate) clean: u64,
    pub(crate) dirty: u64,
    pub(crate) busy: u64,
    pub(crate) metadata_bytes: u64,
}

/// `IoOp`s kept in reserve: as many bios as can wait for the backing device or peers
/// at once before new ones wait for them. Each `IoOp` ends without needing another,
/// and `map` takes its `IoOp` before it submits anything, so a wait for one never holds
/// back bios of its own on `current->bio_list` (what a bio set's rescuer is for).
const OPS_RESERVE: u32 = 128;

/// A RAM pool.
#[pin_data]
pub(crate) struct Pool {
    pub(crate) name: [u8; abi::NAME_LEN],
    pub(crate) shared: Arc<Shared>,
    /// Every bio a volume of this pool cannot remap at once gets an [`IoOp`] from here:
    /// a reserve guarantees one without failing the bio when memory is short.
    pub(crate) ops: ObjectPool<IoOp>,
    shards: KVec<Pin<KBox<Mutex<Shard>>>>,
    /// Serialises resizes and destruction.
    #[pin]
    resize: Mutex<()>,
    /// Volumes by id (the id is part of every key).
    #[pin]
    volumes: Mutex<KVec<Option<Arc<Volume>>>>,
    target_bytes: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// When a volume last saw foreground I/O (ns, monotonic).
    last_io: AtomicU64,
    /// Set when the pool is being destroyed: the destager exits.
    stop: AtomicBool,
    /// A volume may be detached (removed with dirty blocks): the destager unregisters
    /// it once they are written back.
    detached: AtomicBool,
    /// The destager thread, until [`Pool::shut_down`] stops it.
    #[pin]
    destager: Mutex<Option<Thread>>,
    /// Set by anyone who wants dirty data written back now (flush, drain, shrink).
    pub(crate) urgent: AtomicBool,
    /// Held by each destage batch and by each flush or drain pass: one at a time. It
    /// guards what the batches work in, allocated once.
    #[pin]
    pub(crate) destage_lock: Mutex<crate::destage::Scratch>,
    /// Set by [`Pool::kick`] (a `retry` message, the pool's destruction) to end the
    /// destager's wait after a failed write early.
    #[pin]
    kicked: Mutex<bool>,
    #[pin]
    kick: CondVar,
    /// Destage batches finished: a shrink waiting for dirty slots to be written back
    /// waits on `batch_done` for the next one.
    #[pin]
    batches: Mutex<u64>,
    #[pin]
    batch_done: CondVar,
}

/// What becomes of a volume when one of its tables is destroyed.
pub(crate) enum Released {
    /// Another table (a reload's) still uses it.
    InUse,
    /// Clean: unregister it now.
    Retire,
    /// Dirty blocks could not be written back: kept, retried, adoptable.
    Detached,
}

/// The shard of `key` (a multiplicative hash spreads neighbouring blocks).
pub(crate) fn shard_of(key: Key) -> usize {
    let h = (key.block() ^ (u64::from(key.volume()) << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 60) as usize & (SHARDS - 1)
}

impl Pool {
    /// Creates an empty pool and starts its destager; `grow` gives it memory.
    pub(crate) fn new(name: [u8; abi::NAME_LEN], shared: Arc<Shared>) -> Result<Arc<Pool>> {
        let mut shards = KVec::with_capacity(SHARDS, GFP_KERNEL)?;
        for i in 0..SHARDS {
            let shard = Shard { cache: Cache::new(0x5eed_0000 + i as u64), pages: PageArray::new() };
            shards.push(KBox::pin_init(new_mutex!(shard, "fvp::Pool::shard"), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let scratch = crate::destage::Scratch::new()?;
        let ops = ObjectPool::new(OPS_RESERVE)?;
        let pool = Arc::pin_init(
            pin_init!(Pool {
                name,
                shared,
                ops,
                shards,
                resize <- new_mutex!((), "fvp::Pool::resize"),
                volumes <- new_mutex!(KVec::new(), "fvp::Pool::volumes"),
                target_bytes: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                last_io: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                detached: AtomicBool::new(false),
                destager <- new_mutex!(None, "fvp::Pool::destager"),
                urgent: AtomicBool::new(false),
                destage_lock <- new_mutex!(scratch, "fvp::Pool::destage_lock"),
                kicked <- new_mutex!(false, "fvp::Pool::kicked"),
                kick <- new_condvar!("fvp::Pool::kick"),
                batches <- new_mutex!(0, "fvp::Pool::batches"),
                batch_done <- new_condvar!("fvp::Pool::batch_done"),
            }),
            GFP_KERNEL,
        )?;
        let thread = crate::destage::start(&pool)?;
        *pool.destager.lock() = Some(thread);
        Ok(pool)
    }

    pub(crate) fn shard(&self, i: usize) -> &Mutex<Shard> {
        &self.shards[i & (SHARDS - 1)]
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops the destager and waits for it. Dirty data must be gone already (no volume
    /// uses the pool, and a detached one keeps the module loaded).
    pub(crate) fn shut_down(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.kick();
        let thread = self.destager.lock().take();
        if let Some(mut thread) = thread {
            thread.stop();
        }
        // Module unload: a detached volume with dirty blocks holds the module, so none
        // should be left; say so if one is, rather than lose its blocks silently.
        let left = core::mem::take(&mut *self.volumes.lock());
        for v in left.iter().flatten() {
            let dirty = v.dirty.load(Ordering::Relaxed);
            if dirty > 0 {
                pr_err!("volume {}: {} dirty blocks never written back are lost at unload\n", v.id, dirty);
            }
        }
    }

    /// Ends the destager's current wait now (a retry after a failed write, urgent
    /// work, shutdown).
    pub(crate) fn kick(&self) {
        *self.kicked.lock() = true;
        self.kick.notify_all();
    }

    /// Asks for dirty data to be written back now (flush, drain, shrink, policy switch).
    pub(crate) fn make_urgent(&self) {
        self.urgent.store(true, Ordering::Relaxed);
        self.kick();
    }

    /// The destager finished a batch.
    pub(crate) fn batch_finished(&self) {
        *self.batches.lock() += 1;
        self.batch_done.notify_all();
    }

    /// Waits for the destager's next batch, at most `ms`; `true` if a signal ended it.
    fn wait_batch(&self, ms: u32) -> bool {
        let mut n = self.batches.lock();
        let seen = *n;
        let mut interrupted = false;
        while *n == seen && !interrupted {
            let left = self.batch_done.wait_interruptible_timeout(&mut n, kernel::time::msecs_to_jiffies(ms));
            match left {
                kernel::sync::CondVarTimeoutResult::Timeout => break,
                kernel::sync::CondVarTimeoutResult::Signal { .. } => interrupted = true,
                kernel::sync::CondVarTimeoutResult::Woken { .. } => {}
            }
        }
        interrupted
    }

    /// The destager's wait: `ms`, or until [`Pool::kick`].
    pub(crate) fn wait_kick(&self, ms: u32) {
        let mut kicked = self.kicked.lock();
        if !*kicked && !self.stopping() {
            // A kthread takes no signals: the wait ends by timeout, by a kick, or by
            // `kthread_stop`'s wake-up.
            let _ = self.kick.wait_interruptible_timeout(&mut kicked, kernel::time::msecs_to_jiffies(ms));
        }
        *kicked = false;
    }

    pub(crate) fn target_bytes(&self) -> u64 {
        self.target_bytes.load(Ordering::Relaxed)
    }

    /// Sets the pool's size to `bytes` (a multiple of 4096), growing or shrinking.
    ///
    /// Growing refuses to leave the host with less than 1/8 of its RAM available.
    /// Shrinking evicts clean blocks and waits for dirty ones to be destaged; it never
    /// drops dirty data. A signal interrupts it with `EINTR`, keeping what was reached.
    pub(crate) fn resize(&self, bytes: u64) -> Result {
        if bytes == 0 || bytes % PAGE != 0 {
            return Err(EINVAL);
        }
        let pages_wanted = bytes / PAGE;
        let per_shard = pages_wanted.div_ceil(SHARDS as u64);
        if per_shard > u64::from(crate::logic::cache::MAX_SLOTS) {
            return Err(EINVAL);
        }
        let per_shard = per_shard as u32;
        let _guard = self.resize.lock();
        let current: u64 = self.counts().pages;
        let target_total = u64::from(per_shard) * SHARDS as u64;
        if target_total > current {
            let reserve = pages::total_ram_pages() / 8;
            let available = pages::available_pages();
            if target_total - current + reserve > available {
                return Err(ENOMEM);
            }
        }
        self.target_bytes.store(bytes, Ordering::Relaxed);
        for i in 0..SHARDS {
            self.resize_shard(i, per_shard)?;
        }
        Ok(())
    }

    fn resize_shard(&self, i: usize, target: u32) -> Result {
        loop {
            let (capacity, slots) = {
                let shard = self.shard(i).lock();
                (shard.cache.capacity(), shard.cache.slots())
            };
            if capacity < target {
                // Pages first, without the shard's mutex: `map` takes it, and a thousand
                // page allocations may reclaim for a while. Only resizes change a shard's
                // size, and they are serialised (`self.resize`), so the count holds.
                let add = (target - capacity).min(RESIZE_STEP);
                let new_slots = (capacity + add).saturating_sub(slots);
                let mut batch = PageArray::new();
                {
                    let _noio = NoIoScope::enter();
                    batch.grow(new_slots as usize)?;
                }
                let mut shard = self.shard(i).lock();
                // Under the mutex only the index arrays grow (doubling: rarely) and the
                // hash table is rebuilt when it doubles; reclaim does no I/O meanwhile,
                // which could be I/O to a volume of this pool waiting for the mutex.
                let _noio = NoIoScope::enter();
                let start = shard.pages.len();
                shard.pages.append(&mut batch)?;
                if shard.cache.grow(add).is_err() {
                    shard.pages.truncate(start);
                    return Err(ENOMEM);
                }
                continue;
            }
            let mut shard = self.shard(i).lock();
            let capacity = shard.cache.capacity();
            if capacity < target {
                continue;
            } else if capacity > target || shard.cache.slots() > target {
                // Done only when retiring slots are gone too: their pages are still
                // held until the shrink that releases them truncates the arrays.
                let step = target.max(capacity.saturating_sub(RESIZE_STEP));
                let result = shard.cache.shrink(step);
                if !result.truncated.is_empty() {
                    let len = shard.cache.slots() as usize;
                    shard.pages.truncate(len);
                }
                if !result.is_complete() {
                    // Dirty or filling slots in the way: let the destager (or the fills)
                    // finish, then retry.
                    drop(shard);
                    self.make_urgent();
                    // Fills end without a batch: the timeout catches them.
                    if signal_pending() || self.wait_batch(100) {
                        return Err(EINTR);
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    /// Whether no volume saw I/O in the last few milliseconds (the destager's idle gate).
    pub(crate) fn idle(&self) -> bool {
        let last = self.last_io.load(Ordering::Relaxed);
        let now = kernel::time::Ktime::ktime_get().to_ns() as u64;
        now.saturating_sub(last) > 50_000_000
    }

    /// Notes foreground I/O for the idle gate. Writes the shared timestamp at most
    /// once a millisecond, so I/O on many CPUs does not bounce its cache line.
    pub(crate) fn touch(&self, now: kernel::time::Ktime) {
        let now = now.to_ns() as u64;
        if now.saturating_sub(self.last_io.load(Ordering::Relaxed)) > 1_000_000 {
            self.last_io.store(now, Ordering::Relaxed);
        }
    }

    /// Totals over all shards.
    pub(crate) fn counts(&self) -> PoolCounts {
        let mut t = PoolCounts::default();
        for i in 0..SHARDS {
            let shard = self.shard(i).lock();
            let c = shard.cache.counts();
            t.pages += shard.pages.len() as u64;
            t.free += u64::from(c.free);
            t.clean += u64::from(c.clean);
            t.dirty += u64::from(c.dirty);
            t.busy += u64::from(c.filling);
            t.metadata_bytes += (shard.cache.metadata_bytes() + shard.pages.len() * PageArray::BYTES_PER_PAGE) as u64;
        }
        t
    }

    /// Registers a volume and returns its id.
    pub(crate) fn add_volume(&self, make: impl FnOnce(u16) -> Result<Arc<Volume>>) -> Result<Arc<Volume>> {
        // Room for one more volume's gate in the destage scratch, so that a batch never
        // allocates. Allocated before taking any lock: reclaim may write back through
        // fvp, which needs the destage lock. Volumes are added one at a time (under the
        // registry's `constructing`), so the count read here still holds below.
        let want = self.volumes.lock().len() + 1;
        let spare = KVec::with_capacity(want, GFP_KERNEL)?;
        // The destage lock first, as a batch takes it.
        let mut scratch = self.destage_lock.lock();
        let mut volumes = self.volumes.lock();
        scratch.offer_gates(spare);
        if scratch.gate_room() < volumes.len() + 1 {
            return Err(EAGAIN);
        }
        drop(scratch);
        let id = match volumes.iter().position(|v| v.is_none()) {
            Some(i) => i,
            None => {
                if volumes.len() >= usize::from(u16::MAX) {
                    return Err(ENOSPC);
                }
                volumes.push(None, GFP_KERNEL)?;
                volumes.len() - 1
            }
        };
        let volume = make(id as u16)?;
        volumes[id] = Some(volume.clone());
        Ok(volume)
    }

    /// Unregisters `volume` and drops every block it still has in the pool. Returns how
    /// many of those were dirty (lost: the caller drained first).
    pub(crate) fn remove_volume(&self, volume: &Volume) -> u64 {
        let dropped = self.purge(volume, |_, _| true);
        let mut volumes = self.volumes.lock();
        if let Some(slot) = volumes.get_mut(usize::from(volume.id)) {
            *slot = None;
        }
        dropped
    }

    /// Removes the cached blocks of `volume` for which `pred(block, state)` holds, and
    /// takes the dirty ones off its dirty count (under the shard lock, so a concurrent
    /// write that dirties a block again counts it after this). Returns how many were
    /// dirty.
    pub(crate) fn purge(&self, volume: &Volume, pred: impl Fn(u64, SlotState) -> bool) -> u64 {
        let mut dirty = 0;
        for i in 0..SHARDS {
            let mut shard = self.shard(i).lock();
            for slot in 0..shard.cache.slots() {
                let Some(key) = shard.cache.key_of(slot) else { continue };
                if key.volume() != volume.id {
                    continue;
                }
                let Some(state) = shard.cache.state_of(slot) else { continue };
                if !pred(key.block(), state) {
                    continue;
                }
                shard.cache.remove(key);
                if state == SlotState::Dirty {
                    volume.dirty.fetch_sub(1, Ordering::Relaxed);
                    dirty += 1;
                }
            }
        }
        dirty
    }

    /// The registered volume over backing device `backing_devt`, unless it is retiring.
    pub(crate) fn volume_over(&self, backing_devt: u32) -> Option<Arc<Volume>> {
        let volumes = self.volumes.lock();
        let found =
            volumes.iter().flatten().find(|v| v.backing_devt == backing_devt && !v.retiring.load(Ordering::Relaxed));
        found.cloned()
    }

    /// Whether `devt` is the dm device of one of this pool's volumes.
    pub(crate) fn serves(&self, devt: u32) -> bool {
        self.volumes.lock().iter().flatten().any(|v| v.devt.load(Ordering::Relaxed) == devt)
    }

    /// A new table takes `volume` on (a reload, or a device created again over the
    /// backing device of a detached volume). `false` if it is retiring.
    pub(crate) fn adopt(&self, volume: &Volume, devt: u32) -> bool {
        let _volumes = self.volumes.lock();
        if volume.retiring.load(Ordering::Relaxed) {
            return false;
        }
        volume.tables.fetch_add(1, Ordering::Relaxed);
        volume.devt.store(devt, Ordering::Relaxed);
        // A table holds the module again.
        volume.unload_guard.release();
        true
    }

    /// A table using `volume` is destroyed: what becomes of the volume.
    pub(crate) fn release(&self, volume: &Volume) -> Released {
        let _volumes = self.volumes.lock();
        if volume.tables.fetch_sub(1, Ordering::Relaxed) > 1 {
            return Released::InUse;
        }
        // No table: nothing can dirty a block any more.
        if volume.dirty.load(Ordering::Relaxed) == 0 {
            volume.retiring.store(true, Ordering::Relaxed);
            return Released::Retire;
        }
        self.detached.store(true, Ordering::Relaxed);
        // Unloading the module would lose the blocks: refused until the volume is
        // adopted or retired (both under this lock, so the hold cannot outlive them).
        // The departing table still holds the module, so this cannot fail.
        volume.unload_guard.hold();
        Released::Detached
    }

    /// `FVP_IOC_VOLUME_DISCARD`: drops the dirty blocks of `volume` if it is detached
    /// (`EBUSY` if a table uses it). Returns how many. The volume table's lock is held
    /// throughout, so no table can take the volume on meanwhile; the destage lock is
    /// taken first, as a batch does. Sleeps.
    pub(crate) fn discard_detached(&self, volume: &Volume) -> Result<u64> {
        let destaging = self.destage_lock.lock();
        let _volumes = self.volumes.lock();
        if volume.tables.load(Ordering::Relaxed) != 0 || volume.retiring.load(Ordering::Relaxed) {
            return Err(EBUSY);
        }
        Ok(volume.drop_dirty(&destaging))
    }

    /// Detached volumes whose dirty blocks are all written back (or discarded) now:
    /// marked retiring and returned, for the destager to unregister.
    fn clean_detached(&self) -> KVec<Arc<Volume>> {
        let mut out = KVec::new();
        let volumes = self.volumes.lock();
        let mut left = false;
        for v in volumes.iter().flatten() {
            if v.tables.load(Ordering::Relaxed) != 0 || v.retiring.load(Ordering::Relaxed) {
                continue;
            }
            if v.dirty.load(Ordering::Relaxed) == 0 && out.push(v.clone(), GFP_KERNEL).is_ok() {
                v.retiring.store(true, Ordering::Relaxed);
            } else {
                left = true;
            }
        }
        self.detached.store(left, Ordering::Relaxed);
        out
    }

    /// Unregisters detached volumes that became clean (called by the destager).
    pub(crate) fn reap_detached(&self) {
        if !self.detached.load(Ordering::Relaxed) {
            return;
        }
        for v in self.clean_detached() {
            pr_info!("volume {}: the dirty blocks of the removed volume are written back; unregistered\n", v.id);
            v.retire();
        }
    }

    /// Number of volumes using the pool.
    pub(crate) fn volume_count(&self) -> u32 {
        self.volumes.lock().iter().filter(|v| v.is_some()).count() as u32
    }

    /// Every live volume, for status and stats.
    pub(crate) fn for_each_volume(&self, mut f: impl FnMut(&Arc<Volume>)) {
        for v in self.volumes.lock().iter().flatten() {
            f(v);
        }
    }
}
