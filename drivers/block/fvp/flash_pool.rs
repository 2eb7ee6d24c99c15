// SPDX-License-Identifier: GPL-2.0

//! Flash pools: a persistent cache on a block device (an SSD, an NVMe namespace),
//! whose format and commit protocol are `logic::flash` (see `docs/flash.md`).
//!
//! The kernel only carries out what the logic decides. One index (`Cache`, in holding
//! mode) and one `Journal` describe every slot, behind the pool's state mutex, which
//! no thread holds across I/O. Three kinds of thread use them:
//! - volume I/O (`flash_volume.rs`), which writes data to free slots and reads it back;
//! - the commit thread, which runs the journal's phases: a flush of the device, then
//!   the changed entry blocks written with FUA. A flush of a volume waits for a phase
//!   begun after it arrived;
//! - the destager, which writes dirty blocks back to their volumes' backing devices.
//!
//! A slot that leaves the index may still be read by a bio in flight: it is reused
//! only after every read begun before its release ended (a read epoch, flipped by
//! each commit).
#![forbid(unsafe_code)]

use crate::backing::IoBatch;
use crate::flash_volume::FlashVolume;
use crate::fvp_kernel::bio::{BlockDevice, OwnedBio};
use crate::fvp_kernel::block::{self, OpenedBdev};
use crate::fvp_kernel::mempool::ObjectPool;
use crate::fvp_kernel::pages::{truncate_vec, CountedPage, PageArray};
use crate::fvp_kernel::sync::{alloc_retry, WaitQueue};
use crate::fvp_kernel::thread::{StopToken, Thread};
use crate::logic::abi;
use crate::logic::cache::{Cache, Key, SlotId, SlotState};
use crate::logic::flash::{
    self, FormatError, Geometry, Journal, Superblock, VolumeRecord, BLOCK, ENTRIES_PER_BLOCK, ENTRY_BYTES,
    VOLUME_RECORDS, VOLUME_TABLE_BLOCKS,
};
use crate::pool::KStores;
use crate::shared::Shared;
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, Mutex};
use kernel::{new_condvar, new_mutex};

/// Sectors per block.
const SECTORS: u64 = BLOCK as u64 / 512;
/// Entry blocks written per batch of a commit (pages kept by the commit thread).
const COMMIT_PAGES: usize = 16;
/// A commit runs at least this often while entries wait (ms).
const COMMIT_INTERVAL_MS: u32 = 1000;
/// Dirty blocks written back per destage batch.
const DESTAGE_BATCH: usize = 32;
/// Bios of one flash pool's volumes waiting for room or a commit, at most.
const OPS_RESERVE: u32 = 64;

/// The pool's mutable state.
pub(crate) struct FlashState {
    pub(crate) cache: Cache<KStores>,
    pub(crate) journal: Journal<KStores>,
    /// The volume records, as on the device.
    pub(crate) records: KVec<Option<VolumeRecord>>,
    /// Commit cycles begun and ended: a flush needs `ended > begun` as it arrived.
    pub(crate) begun: u64,
    pub(crate) ended: u64,
    /// Someone waits for a commit.
    pub(crate) commit_wanted: bool,
    /// A fill landed since the last phase began: its data came from a backing device's
    /// volatile cache, which the phase flushes before an entry may say clean.
    pub(crate) fill_landed: bool,
    /// Slots released that a read in flight may still be reading, per read epoch:
    /// reused once the epoch's reads ended (see [`FlashPool::release_reads`]).
    unhold: [KVec<u64>; 2],
}

impl FlashState {
    /// The journal stopped after a failed commit: writes and flushes fail.
    pub(crate) fn failed(&self) -> bool {
        self.journal.failed()
    }
}

/// A flash pool.
#[pin_data]
pub(crate) struct FlashPool {
    pub(crate) name: [u8; abi::NAME_LEN],
    pub(crate) path: [u8; abi::PATH_LEN],
    pub(crate) uuid: [u8; 16],
    pub(crate) seed: u32,
    pub(crate) geometry: Geometry,
    pub(crate) dev: OpenedBdev,
    pub(crate) shared: Arc<Shared>,
    pub(crate) ops: ObjectPool<crate::flash_volume::FlashOp>,
    #[pin]
    pub(crate) state: Mutex<FlashState>,
    /// Notified when a commit cycle ends (flushes, writes waiting for room).
    #[pin]
    pub(crate) committed: CondVar,
    /// Wakes the commit thread.
    #[pin]
    commit_kick: CondVar,
    /// Reads in flight per epoch; `epoch` is the current one (changed under `state`).
    readers: [AtomicU32; 2],
    pub(crate) epoch: AtomicU32,
    #[pin]
    readers_done: WaitQueue,
    /// Held by each destage batch; writes around the pool that could race one take it.
    #[pin]
    pub(crate) destage_lock: Mutex<()>,
    #[pin]
    destage_kick: CondVar,
    #[pin]
    destage_kicked: Mutex<bool>,
    /// Woken after each destage batch (`FlashVolume::flush_sync` waits on it).
    #[pin]
    pub(crate) destage_ended: WaitQueue,
    /// Volumes by record index.
    #[pin]
    volumes: Mutex<KVec<Option<Arc<FlashVolume>>>>,
    #[pin]
    threads: Mutex<KVec<Thread>>,
    stop: AtomicBool,
    /// Write every dirty block back (until none is left).
    urgent: AtomicBool,
    pub(crate) evictions: AtomicU64,
    commits: AtomicU64,
    /// A commit failed (the journal takes nothing more): for waits that cannot take
    /// the state mutex.
    pub(crate) journal_failed: AtomicBool,
}

/// How a destage batch ended: every block stays dirty unless `Written`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Destaged {
    Written,
    /// An I/O failed (counted, retried).
    Failed,
    /// A replicated volume of the batch lost the lease meanwhile (retried later).
    Held,
}

/// What opening found, for `FVP_IOC_FLASH_OPEN`.
pub(crate) struct Opened {
    pub(crate) pool: Arc<FlashPool>,
    pub(crate) found: flash::Recovery,
}

fn format_error(e: FormatError, path: &[u8]) -> Error {
    pr_err!(
        "flash pool on {:?}: refused: {}\n",
        kernel::str::BStr::from_bytes(&path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())]),
        e.message()
    );
    EINVAL
}

/// What a commit cycle keeps between cycles, allocated once.
struct CommitScratch {
    blocks: KVec<u64>,
    pages: KVec<CountedPage>,
    buf: KVec<u8>,
    freed: KVec<u64>,
    batch: Arc<IoBatch>,
}

impl CommitScratch {
    /// `records`: the journal's (every slot a phase frees had one).
    fn new(entry_blocks: u64, records: usize) -> Result<Self> {
        let mut pages = KVec::with_capacity(COMMIT_PAGES, GFP_KERNEL)?;
        for _ in 0..COMMIT_PAGES {
            pages.push(CountedPage::alloc()?, GFP_KERNEL)?;
        }
        let mut buf = KVec::new();
        buf.extend_with(BLOCK, 0u8, GFP_KERNEL)?;
        Ok(Self {
            blocks: KVec::with_capacity(usize::try_from(entry_blocks).map_err(|_| EINVAL)?, GFP_KERNEL)?,
            pages,
            buf,
            freed: KVec::with_capacity(records, GFP_KERNEL)?,
            batch: IoBatch::new()?,
        })
    }
}

/// Reads or writes whole blocks of `bdev` from or to `pages`, waiting.
pub(crate) fn block_io(
    shared: &Shared,
    bdev: &BlockDevice,
    batch: &Arc<IoBatch>,
    write: bool,
    fua: bool,
    ios: &mut dyn Iterator<Item = (u64, CountedPage)>,
) -> bool {
    batch.start();
    for (block, page) in ios {
        match OwnedBio::new(&shared.bioset, bdev, write, block * SECTORS, 1) {
            Ok(mut bio) => {
                if fua {
                    bio.set_fua();
                }
                if bio.add_page(page) {
                    batch.submit(bio);
                } else {
                    batch.fail();
                }
            }
            Err(_) => batch.fail(),
        }
    }
    batch.wait()
}

/// Flushes `bdev`'s volatile cache, waiting.
pub(crate) fn flush_dev(shared: &Shared, bdev: &BlockDevice, batch: &Arc<IoBatch>) -> bool {
    batch.start();
    match OwnedBio::new_flush(&shared.bioset, bdev) {
        Ok(bio) => batch.submit(bio),
        Err(_) => batch.fail(),
    }
    batch.wait()
}

/// One phase of the journal: begin, flush the device, write the entry blocks with FUA,
/// end. `access` runs its argument on the journal and the index (under the pool's
/// mutex, or directly while the pool is being opened); it is never held across I/O.
/// Freed slots are left in `scratch.freed`. Returns `Ok(false)` when nothing waited,
/// `Err` when a write failed (the journal is failed).
fn run_phase(
    shared: &Shared,
    bdev: &BlockDevice,
    seed: u32,
    entry_start: u64,
    scratch: &mut CommitScratch,
    access: &mut dyn FnMut(&mut dyn FnMut(&mut Journal<KStores>, &mut Cache<KStores>, &mut bool)),
    flush_backings: &mut dyn FnMut() -> bool,
) -> Result<bool> {
    let mut begun = Err(EIO);
    let mut fills = false;
    truncate_vec(&mut scratch.blocks, 0);
    truncate_vec(&mut scratch.freed, 0);
    let blocks = &mut scratch.blocks;
    access(&mut |journal, _, fill_landed| {
        fills = core::mem::take(fill_landed);
        begun = match journal.begin_phase() {
            Ok(None) => Ok(false),
            Ok(Some(_)) => {
                let mut cursor = 0;
                while let Some(b) = journal.next_phase_block(&mut cursor) {
                    // Capacity is every entry block: never allocates.
                    let _ = blocks.push(b, GFP_NOWAIT);
                }
                Ok(true)
            }
            Err(_) => Err(EIO),
        };
    });
    if !begun? {
        return Ok(false);
    }
    // Data landed before `begin_phase` must be on the media before any entry naming it.
    let mut ok = flush_dev(shared, bdev, &scratch.batch) && (!fills || flush_backings());
    let mut done = 0;
    while ok && done < scratch.blocks.len() {
        let n = (scratch.blocks.len() - done).min(COMMIT_PAGES);
        for i in 0..n {
            let b = scratch.blocks[done + i];
            let buf = &mut scratch.buf;
            access(&mut |journal, cache, _| journal.encode_block(b, seed, &*cache, buf));
            scratch.pages[i].write(0, &scratch.buf);
        }
        let blocks = &scratch.blocks[done..done + n];
        let pages = &scratch.pages;
        let mut ios = blocks.iter().enumerate().map(|(i, &b)| (entry_start + b, pages[i].clone_ref()));
        ok = block_io(shared, bdev, &scratch.batch, true, true, &mut ios);
        done += n;
    }
    let freed = &mut scratch.freed;
    let mut ended = Ok(());
    access(&mut |journal, cache, _| {
        ended = journal
            .end_phase(ok, &*cache, |s| {
                let _ = freed.push(u64::from(s), GFP_NOWAIT);
            })
            .map(|_| ())
            .map_err(|_| EIO);
    });
    ended.map(|_| true)
}

impl FlashPool {
    /// `FVP_IOC_FLASH_OPEN`: opens the pool on `path` (NUL-terminated) as `name`,
    /// rebuilding its index from the device, and starts its threads. Sleeps.
    pub(crate) fn open(name: [u8; abi::NAME_LEN], path: [u8; abi::PATH_LEN], shared: Arc<Shared>) -> Result<Opened> {
        let devt = block::lookup_devt(&path)?;
        let dev = OpenedBdev::open_exclusive(devt)?;
        let device_blocks = dev.bdev().nr_sectors() / SECTORS;
        let batch = IoBatch::new()?;
        // The superblock copies and the volume table.
        let head = 2 + VOLUME_TABLE_BLOCKS;
        let mut pages = KVec::with_capacity(head as usize, GFP_KERNEL)?;
        for _ in 0..head {
            pages.push(CountedPage::alloc()?, GFP_KERNEL)?;
        }
        if device_blocks < head
            || !block_io(
                &shared,
                dev.bdev(),
                &batch,
                false,
                false,
                &mut (0..head).map(|b| (b, pages[b as usize].clone_ref())),
            )
        {
            pr_err!("flash pool: cannot read the superblock\n");
            return Err(EIO);
        }
        let mut a = KVec::new();
        a.extend_with(BLOCK, 0u8, GFP_KERNEL)?;
        let mut b = KVec::new();
        b.extend_with(BLOCK, 0u8, GFP_KERNEL)?;
        pages[0].read(0, &mut a);
        pages[1].read(0, &mut b);
        let sb = Superblock::choose(&a, &b).map_err(|e| format_error(e, &path))?;
        sb.fits(device_blocks).map_err(|e| format_error(e, &path))?;
        let seed = sb.seed();
        let g = sb.geometry;
        let mut records = KVec::with_capacity(VOLUME_RECORDS as usize, GFP_KERNEL)?;
        for i in 0..VOLUME_RECORDS {
            let (block, at) = flash::record_location(i);
            pages[block as usize].read(0, &mut a);
            let rec = flash::decode_record(seed, i, &a[at..]).map_err(|e| format_error(e, &path))?;
            records.push(rec, GFP_KERNEL)?;
        }
        drop(pages);

        // Every entry block, kept while recovery runs (it reads entries more than once).
        let entry_blocks = g.entry_blocks();
        let mut entries = PageArray::new();
        entries.grow(usize::try_from(entry_blocks).map_err(|_| EINVAL)?)?;
        let mut at = 0;
        while at < entry_blocks {
            let n = (entry_blocks - at).min(64);
            let mut ios = (at..at + n).filter_map(|i| {
                let p = entries.get(i as u32)?.counted();
                Some((Geometry::ENTRY_START + i, p))
            });
            if !block_io(&shared, dev.bdev(), &batch, false, false, &mut ios) {
                pr_err!("flash pool: cannot read the entries\n");
                return Err(EIO);
            }
            at += n;
        }
        let slots = u32::try_from(g.slots).map_err(|_| EINVAL)?;
        let mut cache = Cache::<KStores>::new(0x5eed_f1a5);
        cache.set_holding();
        cache.grow(slots).map_err(|_| ENOMEM)?;
        let mut journal = Journal::<KStores>::new(g.slots, flash::records_for(g.slots)).map_err(|_| ENOMEM)?;
        let mut scratch = CommitScratch::new(entry_blocks, flash::records_for(g.slots))?;
        let mut entry_buf = [0u8; ENTRY_BYTES];
        let record_blocks = |v: u16| records.get(usize::from(v)).copied().flatten().map(|r| r.blocks());
        let mut phase_failed = false;
        let found = flash::recover(
            g.slots,
            &mut cache,
            &mut journal,
            |slot| {
                let s = u64::from(slot);
                let page = entries.get((s / ENTRIES_PER_BLOCK) as u32).ok_or(FormatError::Geometry)?;
                page.counted().read((s % ENTRIES_PER_BLOCK) as u32 * ENTRY_BYTES as u32, &mut entry_buf);
                match flash::decode_entry(seed, s, &entry_buf) {
                    None => Ok(None),
                    Some(e) => flash::check_entry(s, &e, record_blocks).map(|_| Some(e)),
                }
            },
            |journal, cache| {
                let mut no_fills = false;
                let r = run_phase(
                    &shared,
                    dev.bdev(),
                    seed,
                    Geometry::ENTRY_START,
                    &mut scratch,
                    &mut |f| f(journal, cache, &mut no_fills),
                    &mut || true,
                );
                if r.is_err() {
                    phase_failed = true;
                }
                for &s in scratch.freed.iter() {
                    cache.unhold(s as SlotId);
                }
            },
        )
        .map_err(|e| format_error(e, &path))?;
        drop(entries);
        if phase_failed || journal.failed() {
            pr_err!("flash pool: writing the entries failed during recovery\n");
            return Err(EIO);
        }
        let mut volumes = KVec::with_capacity(VOLUME_RECORDS as usize, GFP_KERNEL)?;
        for _ in 0..VOLUME_RECORDS {
            volumes.push(None, GFP_KERNEL)?;
        }
        let words = usize::try_from(g.slots.div_ceil(64)).map_err(|_| EINVAL)?;
        let mut unhold0 = KVec::new();
        unhold0.extend_with(words, 0u64, GFP_KERNEL)?;
        let mut unhold1 = KVec::new();
        unhold1.extend_with(words, 0u64, GFP_KERNEL)?;
        let state = FlashState {
            cache,
            journal,
            records,
            begun: 0,
            ended: 0,
            commit_wanted: false,
            fill_landed: false,
            unhold: [unhold0, unhold1],
        };
        let ops = ObjectPool::new(OPS_RESERVE)?;
        let pool = Arc::pin_init(
            pin_init!(FlashPool {
                name,
                path,
                uuid: sb.uuid,
                seed,
                geometry: g,
                dev,
                shared,
                ops,
                state <- new_mutex!(state, "fvp::FlashPool::state"),
                committed <- new_condvar!("fvp::FlashPool::committed"),
                commit_kick <- new_condvar!("fvp::FlashPool::commit_kick"),
                readers: [AtomicU32::new(0), AtomicU32::new(0)],
                epoch: AtomicU32::new(0),
                readers_done <- WaitQueue::new(),
                destage_lock <- new_mutex!((), "fvp::FlashPool::destage_lock"),
                destage_kick <- new_condvar!("fvp::FlashPool::destage_kick"),
                destage_kicked <- new_mutex!(false, "fvp::FlashPool::destage_kicked"),
                destage_ended <- WaitQueue::new(),
                volumes <- new_mutex!(volumes, "fvp::FlashPool::volumes"),
                threads <- new_mutex!(KVec::new(), "fvp::FlashPool::threads"),
                stop: AtomicBool::new(false),
                urgent: AtomicBool::new(false),
                evictions: AtomicU64::new(0),
                commits: AtomicU64::new(0),
                journal_failed: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )?;
        let committer = {
            let p = pool.clone();
            Thread::start(c"fvp_commit", move |stop| p.commit_loop(stop, scratch))?
        };
        pool.threads.lock().push(committer, GFP_KERNEL)?;
        let destager = {
            let p = pool.clone();
            Thread::start(c"fvp_fdestage", move |stop| p.destage_loop(stop))
        };
        match destager {
            Ok(t) => pool.threads.lock().push(t, GFP_KERNEL)?,
            Err(e) => {
                pool.shut_down();
                return Err(e);
            }
        }
        Ok(Opened { pool, found })
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Stops the threads after a last commit (pool close, module unload). Volumes
    /// are gone; dirty blocks stay on the device, committed.
    pub(crate) fn shut_down(&self) {
        self.stop.store(true, Relaxed);
        {
            let _st = self.state.lock();
            self.commit_kick.notify_all();
        }
        self.kick_destager(false);
        let threads = core::mem::take(&mut *self.threads.lock());
        drop(threads);
    }

    // ---- Reads in flight and slot reuse.

    /// Registers a read of slots just looked up (under `state`): returns its epoch,
    /// to give to [`FlashPool::end_read`] when its bios ended.
    pub(crate) fn begin_read(&self, _st: &FlashState) -> u32 {
        let e = self.epoch.load(Relaxed) & 1;
        self.readers[e as usize].fetch_add(1, AcqRel);
        e
    }

    pub(crate) fn end_read(&self, epoch: u32) {
        if self.readers[(epoch & 1) as usize].fetch_sub(1, AcqRel) == 1 {
            self.readers_done.wake_all();
        }
    }

    /// `slot` left the index and its entry is zero: it is reused once the reads that
    /// may be reading it ended (see [`FlashPool::release_reads`]).
    pub(crate) fn defer_unhold(&self, st: &mut FlashState, slot: SlotId) {
        let e = (self.epoch.load(Relaxed) & 1) as usize;
        let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        // At most one pending unhold per slot, in the newest epoch: a bit left in the
        // older one could unhold the slot after it was reused and released again.
        if let Some(x) = st.unhold[e ^ 1].get_mut(w) {
            *x &= !bit;
        }
        if let Some(x) = st.unhold[e].get_mut(w) {
            *x |= bit;
        }
    }

    /// Unholds `slot` if the journal says its entry is zero (a write landed over a
    /// block never committed, an orphaned destage ended, an eviction).
    pub(crate) fn unhold_if_free(&self, st: &mut FlashState, slot: SlotId) {
        if st.journal.reusable(slot) {
            self.defer_unhold(st, slot);
        }
    }

    /// Flips the read epoch, waits for the reads of the old one, and unholds the
    /// slots released during it. Commit thread only.
    fn release_reads(&self) {
        let old = {
            let _st = self.state.lock();
            self.epoch.fetch_add(1, AcqRel) & 1
        };
        while !self.readers_done.wait_timeout_ms(1000, || self.readers[old as usize].load(Acquire) == 0) {}
        let mut guard = self.state.lock();
        let st = &mut *guard;
        for w in 0..st.unhold[old as usize].len() {
            let mut bits = core::mem::take(&mut st.unhold[old as usize][w]);
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                let slot = (w * 64) as SlotId + bit;
                if st.journal.reusable(slot) {
                    st.cache.unhold(slot);
                }
            }
        }
    }

    // ---- Commits.

    /// Asks for a commit now.
    pub(crate) fn want_commit(&self, st: &mut FlashState) {
        if !st.commit_wanted {
            st.commit_wanted = true;
            self.commit_kick.notify_all();
        }
    }

    /// Waits until a commit begun after this call ended. `EIO` if the journal failed.
    /// Takes and releases the state mutex; the caller holds nothing.
    pub(crate) fn wait_commit(&self) -> Result {
        let mut st = self.state.lock();
        let need = st.begun + 1;
        while st.ended < need && !st.failed() {
            self.want_commit(&mut st);
            if self.stopping() {
                return Err(EIO);
            }
            let _ = self.committed.wait_interruptible_timeout(&mut st, kernel::time::msecs_to_jiffies(1000));
        }
        if st.failed() {
            Err(EIO)
        } else {
            Ok(())
        }
    }

    /// Waits for the next commit to end (room in the records, held slots back), at
    /// most a second.
    pub(crate) fn wait_next_commit(&self) {
        let mut st = self.state.lock();
        let seen = st.ended;
        self.want_commit(&mut st);
        if st.ended == seen && !self.stopping() {
            let _ = self.committed.wait_interruptible_timeout(&mut st, kernel::time::msecs_to_jiffies(1000));
        }
    }

    fn commit_loop(self: Arc<Self>, stop: &StopToken, mut scratch: CommitScratch) {
        loop {
            {
                let mut st = self.state.lock();
                if !st.commit_wanted && !stop.should_stop() && !self.stopping() {
                    let _ = self
                        .commit_kick
                        .wait_interruptible_timeout(&mut st, kernel::time::msecs_to_jiffies(COMMIT_INTERVAL_MS));
                }
                st.commit_wanted = false;
                st.begun += 1;
            }
            let last = stop.should_stop() || self.stopping();
            let r = run_phase(
                &self.shared,
                self.dev.bdev(),
                self.seed,
                Geometry::ENTRY_START,
                &mut scratch,
                &mut |f| {
                    let mut guard = self.state.lock();
                    let st = &mut *guard;
                    f(&mut st.journal, &mut st.cache, &mut st.fill_landed)
                },
                &mut || self.flush_backings(),
            );
            if let Ok(true) = r {
                self.commits.fetch_add(1, Relaxed);
            }
            {
                let mut guard = self.state.lock();
                let st = &mut *guard;
                for &s in scratch.freed.iter() {
                    self.defer_unhold(st, s as SlotId);
                }
                if r.is_err() {
                    self.journal_failed.store(true, Relaxed);
                    pr_err!(
                        "flash pool {}: writing the metadata failed: the pool takes no more writes or flushes; reopen it\n",
                        abi::name_str(&self.name)
                    );
                }
            }
            // Flushes wait for this, not for reads in flight (slots come back after).
            {
                let mut st = self.state.lock();
                st.ended += 1;
                self.committed.notify_all();
            }
            self.release_reads();
            self.make_room();
            {
                let _st = self.state.lock();
                self.committed.notify_all();
            }
            if last {
                return;
            }
        }
    }

    /// Keeps some slots free ahead of writes: evicts clean blocks while fewer than
    /// 1/64 of the slots are free (their entries are zeroed by the next commit).
    fn make_room(&self) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let want = (self.geometry.slots / 64).max(64);
        let mut evicted = 0;
        while u64::from(st.cache.counts().free) + evicted < want && st.journal.has_room() {
            let Some((slot, key)) = st.cache.evict() else { break };
            if st.journal.release(slot, key).is_err() {
                // Cannot happen with room checked; keep the slot held rather than lose it.
                pr_err!("flash pool: releasing an evicted slot failed\n");
                break;
            }
            self.unhold_if_free(st, slot);
            self.evictions.fetch_add(1, Relaxed);
            evicted += 1;
        }
        if evicted > 0 {
            st.commit_wanted = true;
        }
        if st.cache.counts().clean == 0 && st.cache.counts().dirty > 0 && u64::from(st.cache.counts().free) < want {
            drop(guard);
            self.kick_destager(false);
        }
    }

    /// Flushes every attached volume's backing device (fills committed as clean).
    fn flush_backings(&self) -> bool {
        let Ok(batch) = IoBatch::new() else { return false };
        let mut i = 0;
        loop {
            let v = {
                let volumes = self.volumes.lock();
                match volumes.iter().skip(i).position(|v| v.is_some()) {
                    Some(j) => {
                        i += j;
                        volumes[i].clone()
                    }
                    None => return true,
                }
            };
            if let Some(v) = v {
                if !flush_dev(&self.shared, v.backing.bdev(), &batch) {
                    return false;
                }
            }
            i += 1;
        }
    }

    // ---- Write-back.

    /// Wakes the destager; `urgent`: write every dirty block back now.
    pub(crate) fn kick_destager(&self, urgent: bool) {
        if urgent {
            self.urgent.store(true, Relaxed);
        }
        *self.destage_kicked.lock() = true;
        self.destage_kick.notify_all();
    }

    fn destage_loop(self: Arc<Self>, stop: &StopToken) {
        let Ok(batch) = IoBatch::new() else { return };
        let mut cursor: SlotId = 0;
        let mut picked: KVec<(SlotId, Key, u16)> = KVec::new();
        let mut found = [(0 as SlotId, Key::new(0, 0).unwrap_or_else(|| unreachable!())); DESTAGE_BATCH];
        let _ = picked.reserve(DESTAGE_BATCH, GFP_KERNEL);
        while !stop.should_stop() && !self.stopping() {
            {
                let mut kicked = self.destage_kicked.lock();
                if !*kicked {
                    let _ =
                        self.destage_kick.wait_interruptible_timeout(&mut kicked, kernel::time::msecs_to_jiffies(100));
                }
                *kicked = false;
            }
            if stop.should_stop() || self.stopping() {
                break;
            }
            let _one = self.destage_lock.lock();
            truncate_vec(&mut picked, 0);
            // The volumes, before the state mutex (the order everywhere: volumes, then
            // state).
            let Ok(mut volumes) = KVec::<Option<Arc<FlashVolume>>>::with_capacity(VOLUME_RECORDS as usize, GFP_KERNEL)
            else {
                continue;
            };
            for v in self.volumes.lock().iter() {
                // Within the capacity: never allocates.
                let _ = volumes.push(v.clone(), GFP_KERNEL);
            }
            let volume = |i: u16| volumes.get(usize::from(i)).cloned().flatten();
            let mut held = false;
            {
                let mut guard = self.state.lock();
                let st = &mut *guard;
                let c = st.cache.counts();
                if c.dirty == 0 {
                    self.urgent.store(false, Relaxed);
                    drop(guard);
                    self.destage_ended.wake_all();
                    continue;
                }
                // Dirty blocks are durable here: they are written back when asked
                // (flush message, write-through), when they fill half the pool, or when
                // writes need the room.
                let slots = self.geometry.slots;
                let pressing = u64::from(c.dirty) * 2 > slots || u64::from(c.free + c.clean) * 16 < slots;
                if !(pressing || self.urgent.load(Relaxed)) {
                    continue;
                }
                let (n, next) = st.cache.dirty_scan(cursor, &mut found);
                cursor = if n == 0 || next >= st.cache.slots() { 0 } else { next };
                for &(slot, key) in &found[..n] {
                    if !st.journal.destageable(slot) {
                        continue;
                    }
                    // A replicated volume writes nothing without the lease, nor before
                    // the orphans of its earlier incarnation are written (`may_destage`).
                    match volume(key.volume()) {
                        Some(v) if v.may_destage() => {}
                        Some(_) => {
                            held = true;
                            continue;
                        }
                        None => continue,
                    }
                    if picked.len() >= DESTAGE_BATCH {
                        break;
                    }
                    // Room first: a destage begun must be ended.
                    if picked.push((slot, key, 0), GFP_NOWAIT).is_err() {
                        break;
                    }
                    match st.cache.begin_destage(slot) {
                        Some(gen) => {
                            if let Some(last) = picked.last_mut() {
                                last.2 = gen;
                            }
                        }
                        None => {
                            let n = picked.len() - 1;
                            truncate_vec(&mut picked, n);
                        }
                    }
                }
                if picked.is_empty() && n > 0 && !held {
                    // Entries not durable yet: a commit makes them destageable.
                    self.want_commit(st);
                }
            }
            if picked.is_empty() {
                self.destage_ended.wake_all();
                continue;
            }
            // Replication's version snapshots, before any write of the batch begins
            // (see `Replication::destaged`).
            for v in volumes.iter().flatten() {
                v.take_destage_snapshot();
            }
            let outcome = self.destage(&batch, &picked, &volume);
            let good = outcome == Destaged::Written;
            let mut cleaned = [false; DESTAGE_BATCH];
            let mut guard = self.state.lock();
            let st = &mut *guard;
            for (i, &(slot, key, gen)) in picked.iter().enumerate() {
                if st.cache.end_destage(slot, gen, good) {
                    st.journal.cleaned(slot);
                    cleaned[i] = true;
                    if let Some(v) = volume(key.volume()) {
                        v.destaged_one();
                    }
                } else {
                    // An orphan (superseded or released while destaging) is held now,
                    // whether the write back succeeded or not.
                    self.unhold_if_free(st, slot);
                }
                if outcome == Destaged::Failed {
                    if let Some(v) = volume(key.volume()) {
                        v.destage_failed();
                    }
                }
            }
            drop(guard);
            // Peers may drop their replicas of these (after a backing flush).
            for (i, &(_, key, _)) in picked.iter().enumerate() {
                if cleaned[i] {
                    if let Some(v) = volume(key.volume()) {
                        v.replica_destaged(key.block());
                    }
                }
            }
            self.destage_ended.wake_all();
        }
        self.destage_ended.wake_all();
    }

    /// Reads `picked` slots from the flash device and writes them to their volumes'
    /// backing devices, then flushes those. All or nothing: a failed batch leaves every
    /// block dirty, to be retried.
    fn destage(
        &self,
        batch: &Arc<IoBatch>,
        picked: &[(SlotId, Key, u16)],
        volume: &dyn Fn(u16) -> Option<Arc<FlashVolume>>,
    ) -> Destaged {
        let mut pages: KVec<CountedPage> =
            alloc_retry(|| KVec::with_capacity(picked.len(), GFP_KERNEL).map_err(|_| ENOMEM));
        for _ in picked {
            // Within the capacity: never allocates.
            let _ = pages.push(alloc_retry(CountedPage::alloc), GFP_KERNEL);
        }
        let mut reads = picked
            .iter()
            .zip(pages.iter())
            .map(|(&(slot, _, _), p)| (self.geometry.data_block(u64::from(slot)), p.clone_ref()));
        if !block_io(&self.shared, self.dev.bdev(), batch, false, false, &mut reads) {
            return Destaged::Failed;
        }
        // The reads may have waited: a replicated volume's lease is checked again
        // before anything reaches its backing device (a peer may have taken it over).
        if picked.iter().any(|&(_, key, _)| volume(key.volume()).is_some_and(|v| !v.may_destage())) {
            return Destaged::Held;
        }
        batch.start();
        for (&(_, key, _), p) in picked.iter().zip(pages.iter()) {
            let Some(v) = volume(key.volume()) else {
                batch.fail();
                continue;
            };
            match OwnedBio::new(&self.shared.bioset, v.backing.bdev(), true, key.block() * SECTORS, 1) {
                Ok(mut bio) => {
                    if bio.add_page(p.clone_ref()) {
                        batch.submit(bio);
                    } else {
                        batch.fail();
                    }
                }
                Err(_) => batch.fail(),
            }
        }
        if !batch.wait() {
            return Destaged::Failed;
        }
        // Durable on the backing devices before their entries may say clean.
        for (i, &(_, key, _)) in picked.iter().enumerate() {
            if picked[..i].iter().any(|&(_, k, _)| k.volume() == key.volume()) {
                continue;
            }
            let Some(v) = volume(key.volume()) else { return Destaged::Failed };
            if !flush_dev(&self.shared, v.backing.bdev(), batch) {
                return Destaged::Failed;
            }
        }
        Destaged::Written
    }

    // ---- Volumes.

    pub(crate) fn volume_count(&self) -> u32 {
        self.volumes.lock().iter().filter(|v| v.is_some()).count() as u32
    }

    /// The record of the backing device `identity` of `sectors`, written to the device
    /// first if new. `EBUSY` if a volume uses it; `EINVAL` if the pool records that
    /// identity with another size (a different device); `ENOSPC` if all are in use.
    pub(crate) fn attach(
        self: &Arc<Self>,
        identity: &[u8],
        sectors: u64,
        devt: u32,
        make: impl FnOnce(u16, u64) -> Result<Arc<FlashVolume>>,
    ) -> Result<Arc<FlashVolume>> {
        let rec = VolumeRecord::new(identity, sectors).ok_or(EINVAL)?;
        // Volumes first, then the state (the order everywhere).
        let mut volumes = self.volumes.lock();
        let (index, known) = {
            let st = self.state.lock();
            let mut free = None;
            let mut found = None;
            for (i, r) in st.records.iter().enumerate() {
                match r {
                    Some(r) if r.identity() == identity => {
                        if r.sectors != sectors {
                            pr_err!(
                                "flash pool {}: it holds blocks of {:?} with {} sectors; that device now has {}: refused (a different device?)\n",
                                abi::name_str(&self.name),
                                kernel::str::BStr::from_bytes(identity),
                                r.sectors,
                                sectors
                            );
                            return Err(EINVAL);
                        }
                        found = Some(i);
                    }
                    None if free.is_none() => free = Some(i),
                    _ => {}
                }
            }
            match (found, free) {
                (Some(i), _) => (i, true),
                (None, Some(i)) => (i, false),
                (None, None) => return Err(ENOSPC),
            }
        };
        if let Some(Some(v)) = volumes.get(index) {
            // A reload of the same device shares the volume.
            if v.devt.load(Relaxed) == devt {
                v.tables.fetch_add(1, Relaxed);
                return Ok(v.clone());
            }
            return Err(EBUSY);
        }
        if !known {
            self.write_record(index as u32, &rec)?;
            self.state.lock().records[index] = Some(rec);
        }
        // Dirty blocks the pool holds for it (after a reboot, say).
        let mut dirty = 0;
        {
            let st = self.state.lock();
            for slot in 0..st.cache.slots() {
                if st.cache.state_of(slot) == Some(SlotState::Dirty)
                    && st.cache.key_of(slot).is_some_and(|k| usize::from(k.volume()) == index)
                {
                    dirty += 1;
                }
            }
        }
        let v = make(index as u16, dirty)?;
        volumes[index] = Some(v.clone());
        Ok(v)
    }

    /// Writes record `index` (its whole table block, with FUA after a flush) before
    /// any entry may name it.
    fn write_record(&self, index: u32, rec: &VolumeRecord) -> Result {
        let (block, at) = flash::record_location(index);
        let mut buf = KVec::new();
        buf.extend_with(BLOCK, 0u8, GFP_KERNEL)?;
        {
            let st = self.state.lock();
            let first = (block - Geometry::VOLUME_TABLE_START) as u32 * (BLOCK / flash::RECORD_BYTES) as u32;
            for j in 0..(BLOCK / flash::RECORD_BYTES) as u32 {
                let i = first + j;
                let r = if i == index { Some(rec) } else { st.records.get(i as usize).and_then(|r| r.as_ref()) };
                let off = j as usize * flash::RECORD_BYTES;
                flash::encode_record(self.seed, i, r, &mut buf[off..off + flash::RECORD_BYTES]);
            }
        }
        let _ = at;
        let page = CountedPage::alloc()?;
        page.write(0, &buf);
        let batch = IoBatch::new()?;
        if !block_io(&self.shared, self.dev.bdev(), &batch, true, true, &mut [(block, page)].into_iter()) {
            return Err(EIO);
        }
        Ok(())
    }

    /// A table of `volume` is gone; with the last one, the volume goes too. Its blocks
    /// stay in the pool (and on the device), dirty ones included: a table over the
    /// same device takes them on.
    /// Returns whether it was the last.
    pub(crate) fn detach(&self, volume: &FlashVolume) -> bool {
        let mut volumes = self.volumes.lock();
        if volume.tables.fetch_sub(1, Relaxed) == 1 {
            if let Some(v) = volumes.get_mut(usize::from(volume.id)) {
                *v = None;
            }
            return true;
        }
        false
    }

    /// Drops the blocks of volume `id` that `pred` (given the state) selects: their
    /// entries are zeroed by the next commit, their slots reused after it. Dirty ones
    /// are lost to the backing device: the caller knows why that is right. Returns how
    /// many dirty blocks went. Sleeps (waits for commits when the records are full).
    pub(crate) fn purge(&self, volume: &FlashVolume, pred: impl Fn(SlotState) -> bool) -> u64 {
        let mut dirty = 0;
        let mut slot: SlotId = 0;
        loop {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            if slot >= st.cache.slots() || st.failed() {
                if dirty > 0 || slot > 0 {
                    self.want_commit(st);
                }
                return dirty;
            }
            let (Some(key), Some(state)) = (st.cache.key_of(slot), st.cache.state_of(slot)) else {
                slot += 1;
                continue;
            };
            if key.volume() != volume.id || !pred(state) {
                slot += 1;
                continue;
            }
            match state {
                SlotState::Clean | SlotState::Dirty => match st.journal.release(slot, key) {
                    Ok(()) => {
                        st.cache.remove(key);
                        self.unhold_if_free(st, slot);
                        if state == SlotState::Dirty {
                            volume.dirty.fetch_sub(1, Relaxed);
                            dirty += 1;
                        }
                    }
                    Err(flash::JournalError::Full) => {
                        self.want_commit(st);
                        drop(guard);
                        self.wait_next_commit();
                        continue;
                    }
                    Err(_) => {}
                },
                _ => {
                    st.cache.remove(key);
                }
            }
            slot += 1;
        }
    }

    /// The volume over `backing_devt`, if any.
    pub(crate) fn volume_over(&self, backing_devt: u32) -> Option<Arc<FlashVolume>> {
        self.volumes.lock().iter().flatten().find(|v| v.backing_devt == backing_devt).cloned()
    }

    /// Whether `devt` is the dm device of one of this pool's volumes.
    pub(crate) fn serves(&self, devt: u32) -> bool {
        self.volumes.lock().iter().flatten().any(|v| v.devt.load(Relaxed) == devt)
    }

    /// For `FVP_IOC_FLASH_INFO`.
    pub(crate) fn info(&self, info: &mut abi::FlashInfo) {
        info.name = self.name;
        info.path = self.path;
        info.uuid = self.uuid;
        info.volumes = self.volume_count();
        let st = self.state.lock();
        let c = st.cache.counts();
        info.state = if st.failed() { abi::FLASH_FAILED } else { abi::FLASH_OK };
        info.records = st.records.iter().filter(|r| r.is_some()).count() as u32;
        info.slots = self.geometry.slots;
        info.free_slots = u64::from(c.free);
        info.clean_blocks = u64::from(c.clean);
        info.dirty_blocks = u64::from(c.dirty);
        info.held_slots = u64::from(c.held);
        info.commits = self.commits.load(Relaxed);
        // The journal's byte per slot and two bitmaps per entry block; the two unhold
        // bitmaps (a bit per slot each).
        let journal_bytes = self.geometry.slots + self.geometry.entry_blocks().div_ceil(64) * 16;
        info.metadata_bytes = st.cache.metadata_bytes() as u64 + journal_bytes + self.geometry.slots.div_ceil(64) * 16;
        info.evictions = self.evictions.load(Relaxed);
    }
}
