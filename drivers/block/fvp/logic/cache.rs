// SPDX-License-Identifier: GPL-2.0

//! The cache index: from a [`Key`] (volume, block) to a slot of a shard's RAM pool.
//!
//! The kernel splits the pool into shards, one [`Cache`] per shard behind its own
//! spinlock. A slot stands for one 4 KiB page that the kernel keeps itself (a `u32` pfn
//! per slot, [`KERNEL_PAGE_REF_BYTES`]); this file holds only the metadata and never
//! allocates on its own: every array is a [`Store`] the caller supplies through
//! [`Stores`] (`KVec` in the kernel, `Vec` in the tests).
//!
//! # Replacement: S3-FIFO
//!
//! New keys enter a small probationary FIFO `S` (10% of the capacity); keys accessed again
//! while in `S` move to the main FIFO `M`, the others are evicted from `S` and leave a
//! fingerprint in a ghost table, so that a quick return sends them straight to `M`.
//! `M` is a CLOCK-like FIFO with reinsertion: its head is evicted only if its 2-bit
//! frequency is zero, else the frequency is decremented and the entry goes back to the
//! tail. Why this rather than LRU:
//!
//! - scan resistance: a sequential scan or any stream of one-hit wonders only churns
//!   `S` and never displaces the working set in `M`;
//! - one-hit wonders are demoted after a short stay in `S` instead of crossing the
//!   whole cache as they do in LRU;
//! - a hit only bumps a saturating 2-bit counter in the slot's own flags byte, where
//!   LRU would move the entry to the front of a shared list (writing its neighbours
//!   and the list head); lookups and hits are O(1) and touch nothing else, and
//!   insertion, which may evict, is amortized O(1).
//!
//! The ghost stays within budget as fingerprints: one `u16` per slot, in sets of four
//! chosen by the key's hash. Evicting `k` from `S` puts `fp(k)` first in its set (the
//! oldest of the four drops out), and a miss on `k` is a ghost hit if the set holds
//! `fp(k)` (the entry is then consumed). Like the paper's FIFO ghost of as many keys,
//! it remembers a key for about as many evictions as there are slots, give or take the
//! luck of its set. Trade-offs: an unrelated key matches with probability about
//! 4 * 2^-16 (a false positive only lets a cold key into `M`, where its zero frequency
//! gets it evicted at its first visit); and keys sharing a set can push each other out
//! (false negatives: one more trip through `S`). Sets rather than a direct-mapped table
//! because with one entry per hash, two hot keys that collide can lock each other out
//! for good under a periodic access pattern, each evicted between the other's eviction
//! and return; that takes five keys in one set here.
//!
//! Filling and Dirty slots are never evicted. They stay in their queue and are skipped:
//! the eviction loop is bounded and returns [`InsertError::Full`] only when no Clean
//! slot exists, at once if there are none at all. With a large share of dirty slots an
//! insertion may step over many of them; the kernel keeps that share bounded by
//! destaging.
//!
//! # Layout and budget
//!
//! Struct of arrays, no padding. Per slot: key `u64` (8), queue links `u32` prev and
//! next (8, also used by the free list), hash chain `u32` (4), generation `u16` (2),
//! flags `u8` (1) = 23 bytes; the hash buckets (`u32`, the largest power of two not
//! above half the slots: at most 2 bytes per slot, load factor 2 to 4), the ghost
//! (2) and the dirty bitmap (1/8) bring it to at most 27.2 bytes, plus the kernel's
//! 4-byte pfn: at most 31.2 bytes per slot and a few hundred bytes per shard, under
//! the 32-byte budget ([`Cache::metadata_bytes`]).
//!
//! The flags byte holds the state (2 bits), the queue the slot is on (2 bits: none,
//! free, `S`, `M`), the frequency (2 bits), the destaging bit and a bit recording that
//! a write raced the destage in progress.
//!
//! # Generations
//!
//! Each slot has a `u16` generation, incremented (wrapping) whenever its contents or
//! owner change: insertion, write ([`Cache::write_hit`]) and removal (including
//! eviction). The kernel drops the shard lock during I/O and carries `(slot, gen)`
//! across it; at completion, a changed generation tells that a write or an
//! invalidation raced the I/O, so a completed fill never installs stale data over a
//! newer write, and a completed destage never marks clean a slot written meanwhile (a
//! write during a destage also sets a flag, so that case is exact even if the
//! generation wrapped around). Fills are protected by the generation only: a stale
//! fill is mistaken for a current one only if the slot changed 65536 times during it.
//!
//! A key removed while its slot is being destaged leaves an *orphan*: the key can no
//! longer be found, but the slot is reused only after [`Cache::end_destage`], so the
//! page the destage reads is not overwritten under it and a slot has at most one destage
//! in flight. A new copy of the same key cannot start destaging before the orphan's
//! destage has ended, so two writes of one block never race to the backing device.

use core::mem::size_of;
use core::ops::{Deref, DerefMut, Range};

/// Index of a slot in a shard's pool.
pub type SlotId = u32;

/// Largest number of slots a [`Cache`] holds (`u32::MAX` means "no slot" inside).
pub const MAX_SLOTS: u32 = u32::MAX - 1;

/// Bytes per slot the kernel spends outside this file (its `u32` pfn array).
pub const KERNEL_PAGE_REF_BYTES: usize = 4;

/// The metadata budget per slot, [`KERNEL_PAGE_REF_BYTES`] included.
pub const BUDGET_BYTES_PER_SLOT: usize = 32;

const NONE: u32 = u32::MAX;

/// Entries per ghost set.
const GHOST_WAYS: usize = 4;

/// An allocation failed (or the requested size is beyond [`MAX_SLOTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// Growable array the cache keeps its metadata in (host: `Vec`, kernel: `KVec`).
pub trait Store<T: Copy>: Deref<Target = [T]> + DerefMut {
    /// Appends `n` copies of `value`; on allocation failure leaves the array unchanged.
    fn try_extend(&mut self, n: usize, value: T) -> Result<(), OutOfMemory>;
    /// Shortens to `len` elements (no-op if already shorter).
    fn truncate_to(&mut self, len: usize);
}

/// The family of arrays a [`Cache`] is built from.
pub trait Stores {
    /// The array type for elements of type `T`.
    type Array<T: Copy>: Store<T>;
    /// A new empty array.
    fn empty<T: Copy>() -> Self::Array<T>;
}

/// What the cache maps: a volume id (top 16 bits) and a block number (low 48 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u64);

impl Key {
    /// Width of the block number.
    pub const BLOCK_BITS: u32 = 48;
    /// Largest block number a key holds.
    pub const MAX_BLOCK: u64 = (1 << Self::BLOCK_BITS) - 1;

    /// The key of `block` on `volume`, or `None` if `block` exceeds [`Key::MAX_BLOCK`].
    pub fn new(volume: u16, block: u64) -> Option<Key> {
        if block > Self::MAX_BLOCK {
            None
        } else {
            Some(Key((u64::from(volume) << Self::BLOCK_BITS) | block))
        }
    }

    /// The volume id.
    pub fn volume(self) -> u16 {
        // The shift leaves exactly 16 bits.
        (self.0 >> Self::BLOCK_BITS) as u16
    }

    /// The block number.
    pub fn block(self) -> u64 {
        self.0 & Self::MAX_BLOCK
    }
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing (also a retired slot, or an orphan waiting for its destage to end).
    Free,
    /// A key whose data is being read from the backing device; not readable yet.
    Filling,
    /// A key whose data matches the backing device.
    Clean,
    /// A key whose data is newer than the backing device.
    Dirty,
}

/// The state a new key is inserted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// A read miss: the kernel reads the block, then calls [`Cache::fill_complete`].
    Filling,
    /// A write-back write of a whole block.
    Dirty,
    /// Data already known to match the backing device (e.g. after a write-through).
    Clean,
}

/// A successful [`Cache::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The slot now holding the key.
    pub slot: SlotId,
    /// The slot's generation, to pass to [`Cache::fill_complete`] for a fill.
    pub gen: u16,
    /// The Clean key evicted to make room: its slot (and page) is `slot`.
    pub evicted: Option<Key>,
}

/// Why [`Cache::insert`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The key is already present, in this slot (possibly still Filling).
    AlreadyPresent(SlotId),
    /// No free slot and no Clean slot to evict.
    Full,
}

/// Slot counts, from [`Cache::counts`].
///
/// `free + filling + clean + dirty + orphaned + held + taken == capacity + retiring`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Slots ready for insertion.
    pub free: u32,
    /// Slots being filled.
    pub filling: u32,
    /// Clean slots.
    pub clean: u32,
    /// Dirty slots, destaging or not.
    pub dirty: u32,
    /// Destages in flight (Dirty slots being destaged, and orphans).
    pub destaging: u32,
    /// Keys in the small queue.
    pub small: u32,
    /// Keys in the main queue.
    pub main: u32,
    /// Slots whose key was removed during a destage, free once it ends.
    pub orphaned: u32,
    /// Slots at or above the capacity still in use (Filling, Dirty or orphans).
    pub retiring: u32,
    /// Released slots held back from reuse (holding mode).
    pub held: u32,
    /// Free slots taken for data written before its key maps to it (holding mode).
    pub taken: u32,
}

/// Why [`Cache::install`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// The slot is not taken.
    NotTaken,
    /// A Clean install of a key that is present (a write landed first): the data is
    /// older, and the slot is still taken.
    AlreadyPresent(SlotId),
}

/// A successful [`Cache::install`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The slot's new generation.
    pub gen: u16,
    /// The slot that held the key before: held now (or an orphan until its destage
    /// ends, then held).
    pub replaced: Option<SlotId>,
}

/// Progress of [`Cache::shrink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shrink {
    /// Free and Clean slots at or above the target released by this call.
    pub released: u32,
    /// Dirty slots and orphans at or above the target: destage them (or wait for
    /// their destage to end), then call `shrink` again.
    pub pending_dirty: u32,
    /// Filling slots at or above the target, released when their fill ends.
    pub pending_filling: u32,
    /// Slots removed from the arrays by this call: the kernel frees their pages.
    /// Empty while anything is pending.
    pub truncated: Range<SlotId>,
}

impl Shrink {
    /// Nothing pending: the arrays have the target length.
    pub fn is_complete(&self) -> bool {
        self.pending_dirty == 0 && self.pending_filling == 0
    }
}

// Flags byte.
const STATE: u8 = 0b11;
const ST_FREE: u8 = 0;
const ST_FILLING: u8 = 1;
const ST_CLEAN: u8 = 2;
const ST_DIRTY: u8 = 3;
const LIST_SHIFT: u32 = 2;
const LIST: u8 = 0b11 << LIST_SHIFT;
const FREQ_SHIFT: u32 = 4;
const FREQ: u8 = 0b11 << FREQ_SHIFT;
const FREQ_MAX: u8 = 3;
const DESTAGING: u8 = 1 << 6;
const REDIRTY: u8 = 1 << 7;
/// On a Filling slot (where REDIRTY has no meaning): its key was removed while the
/// fill was in flight; the slot is released when the fill ends.
const ORPHAN_FILL: u8 = REDIRTY;
/// On a Free slot off every list (where the frequency has no meaning): taken by
/// [`Cache::take_free`]. A Free slot off every list without it is held (or retired).
const TAKEN: u8 = 1 << FREQ_SHIFT;

// Queue numbers, as stored in the flags.
const L_NONE: usize = 0;
const L_FREE: usize = 1;
const L_SMALL: usize = 2;
const L_MAIN: usize = 3;

fn state_bits(f: u8) -> u8 {
    f & STATE
}

fn list_bits(f: u8) -> usize {
    usize::from((f & LIST) >> LIST_SHIFT)
}

fn freq_bits(f: u8) -> u8 {
    (f & FREQ) >> FREQ_SHIFT
}

/// A Filling slot whose key was removed during the fill.
fn is_orphan_fill(f: u8) -> bool {
    state_bits(f) == ST_FILLING && f & ORPHAN_FILL != 0
}

fn with_freq(f: u8, freq: u8) -> u8 {
    (f & !FREQ) | ((freq.min(FREQ_MAX)) << FREQ_SHIFT)
}

/// Slot ids fit in `usize` on every platform the kernel supports.
fn ix(s: u32) -> usize {
    s as usize
}

// Bounds-checked accessors: ids come from the caller, and a bug must not become a panic.
fn rd<T: Copy>(a: &[T], s: u32, default: T) -> T {
    a.get(ix(s)).copied().unwrap_or(default)
}

fn wr<T>(a: &mut [T], s: u32, v: T) {
    if let Some(x) = a.get_mut(ix(s)) {
        *x = v;
    }
}

fn inc(n: &mut u32) {
    *n = n.saturating_add(1);
}

fn dec(n: &mut u32) {
    *n = n.saturating_sub(1);
}

/// Hash buckets for `slots` slots: the largest power of two not above `slots / 2`.
fn buckets_for(slots: u32) -> usize {
    if slots == 0 {
        return 0;
    }
    let half = (slots / 2).max(1);
    1usize << (31 - half.leading_zeros())
}

fn words_for(slots: u32) -> usize {
    ix(slots).div_ceil(64)
}

/// A 64-bit mixer (the splitmix64 finalizer): every input bit affects every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
    /// Clean entries, so that eviction knows where a victim can be found.
    clean: u32,
}

impl List {
    const EMPTY: List = List { head: NONE, tail: NONE, len: 0, clean: 0 };
}

/// The index of one shard: see the module documentation.
pub struct Cache<S: Stores> {
    keys: S::Array<u64>,
    prev: S::Array<u32>,
    next: S::Array<u32>,
    chain: S::Array<u32>,
    gens: S::Array<u16>,
    flags: S::Array<u8>,
    buckets: S::Array<u32>,
    ghost: S::Array<u16>,
    dirty: S::Array<u64>,
    /// Indexed by the `L_*` queue numbers; `L_NONE` is unused.
    lists: [List; 4],
    seed: u64,
    capacity: u32,
    n_filling: u32,
    n_clean: u32,
    n_dirty: u32,
    n_destaging: u32,
    n_orphaned: u32,
    n_retiring: u32,
    /// Holding mode (flash pools): released slots are not reused until
    /// [`Cache::unhold`], since their entry on the device must be zeroed first.
    holding: bool,
    n_held: u32,
    n_taken: u32,
}

impl<S: Stores> Cache<S> {
    /// An empty cache with no slots.
    ///
    /// `seed` keys the hash: the kernel passes a random value so that block numbers
    /// chosen by a guest cannot be made to collide in one hash chain.
    pub fn new(seed: u64) -> Self {
        Cache {
            keys: S::empty(),
            prev: S::empty(),
            next: S::empty(),
            chain: S::empty(),
            gens: S::empty(),
            flags: S::empty(),
            buckets: S::empty(),
            ghost: S::empty(),
            dirty: S::empty(),
            lists: [List::EMPTY; 4],
            seed,
            capacity: 0,
            n_filling: 0,
            n_clean: 0,
            n_dirty: 0,
            n_destaging: 0,
            n_orphaned: 0,
            n_retiring: 0,
            holding: false,
            n_held: 0,
            n_taken: 0,
        }
    }

    /// Switches holding mode on (flash pools), before any slot is used.
    pub fn set_holding(&mut self) {
        self.holding = true;
    }

    /// Whether holding mode is on.
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Usable slots: those below the target of a shrink in progress.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Length of the slot arrays, retiring slots included: the kernel's pfn array
    /// has this many entries.
    pub fn slots(&self) -> u32 {
        u32::try_from(self.flags.len()).unwrap_or(MAX_SLOTS)
    }

    /// Slot counts by state and queue.
    pub fn counts(&self) -> Counts {
        Counts {
            free: self.lists[L_FREE].len,
            filling: self.n_filling,
            clean: self.n_clean,
            dirty: self.n_dirty,
            destaging: self.n_destaging,
            small: self.lists[L_SMALL].len,
            main: self.lists[L_MAIN].len,
            orphaned: self.n_orphaned,
            retiring: self.n_retiring,
            held: self.n_held,
            taken: self.n_taken,
        }
    }

    /// Bytes of metadata: every array's length times its element size, plus the
    /// structure itself (capacities beyond the lengths are the allocator's business).
    pub fn metadata_bytes(&self) -> usize {
        self.keys.len() * size_of::<u64>()
            + self.prev.len() * size_of::<u32>()
            + self.next.len() * size_of::<u32>()
            + self.chain.len() * size_of::<u32>()
            + self.gens.len() * size_of::<u16>()
            + self.flags.len() * size_of::<u8>()
            + self.buckets.len() * size_of::<u32>()
            + self.ghost.len() * size_of::<u16>()
            + self.dirty.len() * size_of::<u64>()
            + size_of::<Self>()
    }

    /// Adds `additional` usable slots, Free.
    ///
    /// Retiring slots of a shrink in progress are taken back first (they still have
    /// their pages); the rest is appended. Returns the appended slots, which need
    /// pages. O(slots) when the hash table doubles (it is rebuilt and the ghost
    /// cleared), else O(added slots) amortised. On failure nothing changes.
    pub fn grow(&mut self, additional: u32) -> Result<Range<SlotId>, OutOfMemory> {
        let old_len = self.slots();
        let target = match self.capacity.checked_add(additional) {
            Some(t) if t <= MAX_SLOTS => t,
            _ => return Err(OutOfMemory),
        };
        let new_len = old_len.max(target);
        let old_buckets = self.buckets.len();
        if new_len > old_len {
            self.extend_arrays(old_len, new_len)?;
        }
        let old_capacity = self.capacity;
        self.capacity = target;
        for s in old_capacity..old_len.min(target) {
            // Flags 0: released. Orphans and pending slots come back by themselves.
            if rd(&self.flags, s, 0xff) == 0 {
                self.link_tail(L_FREE, s);
            }
        }
        for s in old_len..new_len {
            self.link_tail(L_FREE, s);
        }
        self.n_retiring = (target..old_len).filter(|&s| rd(&self.flags, s, 0) != 0).count() as u32;
        // The table is rebuilt only when it doubled (it is a power of two), so growing
        // by steps costs O(slots) in all. Appended slots are Free, in no chain. The
        // ghost's sets move with its length: stale fingerprints only blur a heuristic
        // until then, so it is cleared with the table.
        if self.buckets.len() != old_buckets {
            self.rehash();
            self.ghost.fill(0);
        }
        Ok(old_len..new_len)
    }

    fn extend_arrays(&mut self, old_len: u32, new_len: u32) -> Result<(), OutOfMemory> {
        let old_buckets = self.buckets.len();
        let old_words = self.dirty.len();
        let r = self.try_extend_arrays(ix(new_len - old_len), buckets_for(new_len), words_for(new_len));
        if r.is_err() {
            self.truncate_arrays(ix(old_len), old_buckets, old_words);
        }
        r
    }

    fn try_extend_arrays(&mut self, n: usize, buckets: usize, words: usize) -> Result<(), OutOfMemory> {
        self.keys.try_extend(n, 0)?;
        self.prev.try_extend(n, NONE)?;
        self.next.try_extend(n, NONE)?;
        self.chain.try_extend(n, NONE)?;
        self.gens.try_extend(n, 0)?;
        self.flags.try_extend(n, 0)?;
        self.ghost.try_extend(n, 0)?;
        self.dirty.try_extend(words.saturating_sub(self.dirty.len()), 0)?;
        self.buckets.try_extend(buckets.saturating_sub(self.buckets.len()), NONE)
    }

    fn truncate_arrays(&mut self, len: usize, buckets: usize, words: usize) {
        self.keys.truncate_to(len);
        self.prev.truncate_to(len);
        self.next.truncate_to(len);
        self.chain.truncate_to(len);
        self.gens.truncate_to(len);
        self.flags.truncate_to(len);
        self.ghost.truncate_to(len);
        self.dirty.truncate_to(words);
        self.buckets.truncate_to(buckets);
    }

    /// Shrinks the capacity to `new_capacity` (clamped: this never grows).
    ///
    /// Slots at or above the target retire: never handed out again, released at once
    /// if Free or Clean (Clean keys are dropped), and when they become so otherwise
    /// (a Dirty slot after a successful destage, a Filling slot when its fill ends,
    /// an orphan when its destage ends). Call again until [`Shrink::is_complete`]:
    /// that call truncates the arrays, and the kernel then frees the pages of
    /// [`Shrink::truncated`]. O(retiring slots), plus O(slots) for the final rehash.
    pub fn shrink(&mut self, new_capacity: u32) -> Shrink {
        let len = self.slots();
        let target = new_capacity.min(self.capacity);
        self.capacity = target;
        let (mut released, mut pending_dirty, mut pending_filling) = (0u32, 0u32, 0u32);
        for s in target..len {
            let f = rd(&self.flags, s, 0);
            if list_bits(f) == L_FREE {
                self.unlink(s);
                inc(&mut released);
                continue;
            }
            match state_bits(f) {
                ST_CLEAN => {
                    self.release(s);
                    inc(&mut released);
                }
                ST_FILLING => inc(&mut pending_filling),
                ST_DIRTY => inc(&mut pending_dirty),
                _ if f & DESTAGING != 0 => inc(&mut pending_dirty),
                _ => {}
            }
        }
        self.n_retiring = pending_dirty.saturating_add(pending_filling);
        let truncated = if self.n_retiring == 0 && target < len {
            self.truncate(target);
            target..len
        } else {
            len..len
        };
        Shrink { released, pending_dirty, pending_filling, truncated }
    }

    /// Truncates every array to `len` slots; all slots from `len` on are released.
    fn truncate(&mut self, len: u32) {
        self.truncate_arrays(ix(len), buckets_for(len), words_for(len));
        self.ghost.fill(0);
        // Released slots have no dirty bit, but keep the tail of the bitmap clean anyway.
        let used = len % 64;
        if used != 0 {
            if let Some(w) = self.dirty.last_mut() {
                *w &= (1u64 << used) - 1;
            }
        }
        self.rehash();
    }

    /// Returns the slot holding `key` if it is readable (Clean or Dirty), and counts
    /// the access. A Filling key is not readable: `None`.
    pub fn lookup(&mut self, key: Key) -> Option<SlotId> {
        let s = self.find(key.0)?;
        let f = rd(&self.flags, s, 0);
        match state_bits(f) {
            ST_CLEAN | ST_DIRTY => {
                wr(&mut self.flags, s, with_freq(f, freq_bits(f).saturating_add(1)));
                Some(s)
            }
            _ => None,
        }
    }

    /// The slot and state of `key` (Filling included), without counting an access.
    pub fn peek(&self, key: Key) -> Option<(SlotId, SlotState)> {
        let s = self.find(key.0)?;
        Some((s, decode_state(rd(&self.flags, s, 0))))
    }

    /// Whether a write of `key`'s block that goes around the pool (write-through, FUA,
    /// direct, write-zeroes) could race a write-back of it: the key is Dirty (a destage
    /// may be in flight, or start before that write lands), or a removed copy's destage
    /// is still in flight (an orphan). Such a write must be ordered after write-backs.
    pub fn backing_write_conflict(&self, key: Key) -> bool {
        matches!(self.peek(key), Some((_, SlotState::Dirty))) || self.find_orphan(key.0).is_some()
    }

    /// Whether a destage of a removed copy of `key` is still in flight (an orphan).
    pub fn orphan_in_flight(&self, key: Key) -> bool {
        self.find_orphan(key.0).is_some()
    }

    /// Inserts `key` in `state`, evicting a Clean key if no slot is free.
    ///
    /// The evicted key's slot is reused, so the kernel reuses its page. O(1)
    /// amortized; [`InsertError::Full`] at once if there is no Clean slot at all.
    pub fn insert(&mut self, key: Key, state: Insert) -> Result<Inserted, InsertError> {
        if let Some(s) = self.find(key.0) {
            return Err(InsertError::AlreadyPresent(s));
        }
        let mut evicted = None;
        if self.lists[L_FREE].len == 0 {
            // In holding mode an evicted slot is not free at once: the caller evicts
            // (`evict`) and releases the slot's entry itself.
            if self.holding {
                return Err(InsertError::Full);
            }
            evicted = Some(self.evict_one().ok_or(InsertError::Full)?.1);
        }
        let s = self.pop_head(L_FREE).ok_or(InsertError::Full)?;
        wr(&mut self.keys, s, key.0);
        wr(&mut self.flags, s, ST_FREE);
        self.set_state(
            s,
            match state {
                Insert::Filling => ST_FILLING,
                Insert::Dirty => ST_DIRTY,
                Insert::Clean => ST_CLEAN,
            },
        );
        self.hash_insert(s);
        let queue = if self.take_ghost(key.0) { L_MAIN } else { L_SMALL };
        self.link_tail(queue, s);
        let gen = self.bump_gen(s);
        Ok(Inserted { slot: s, gen, evicted })
    }

    /// Evicts one Clean key: its slot is held (holding mode) or free. The caller
    /// releases the slot's entry on the device. `None` if nothing is Clean.
    pub fn evict(&mut self) -> Option<(SlotId, Key)> {
        self.evict_one()
    }

    /// Takes a free slot for data written before its key maps to it (holding mode:
    /// a flash write lands in a fresh slot, then [`Cache::install`] maps it). `None`
    /// when no slot is free: evict, and wait for held slots to come back.
    pub fn take_free(&mut self) -> Option<SlotId> {
        let s = self.pop_head(L_FREE)?;
        wr(&mut self.flags, s, ST_FREE | TAKEN);
        inc(&mut self.n_taken);
        Some(s)
    }

    fn is_taken(&self, slot: SlotId) -> bool {
        self.flags.get(ix(slot)).is_some_and(|&f| f == ST_FREE | TAKEN)
    }

    /// Gives back a taken slot whose data never mapped (its entry never left zero).
    pub fn untake(&mut self, slot: SlotId) -> bool {
        if !self.is_taken(slot) {
            return false;
        }
        wr(&mut self.flags, slot, 0);
        dec(&mut self.n_taken);
        self.bump_gen(slot);
        self.link_tail(L_FREE, slot);
        true
    }

    /// Maps `key` to the taken `slot`, whose data landed, in `state` (Dirty: a write;
    /// Clean: a fill). A write replaces the key's current slot, which is held (or
    /// orphaned while a destage of it is in flight); a fill of a key already present
    /// is refused, since its data is older.
    pub fn install(&mut self, slot: SlotId, key: Key, state: Insert) -> Result<Installed, InstallError> {
        if !self.is_taken(slot) || state == Insert::Filling {
            return Err(InstallError::NotTaken);
        }
        let replaced = match self.find(key.0) {
            Some(old) if state == Insert::Clean => return Err(InstallError::AlreadyPresent(old)),
            Some(_) => self.remove(key),
            None => None,
        };
        wr(&mut self.flags, slot, ST_FREE);
        dec(&mut self.n_taken);
        wr(&mut self.keys, slot, key.0);
        self.set_state(slot, if state == Insert::Dirty { ST_DIRTY } else { ST_CLEAN });
        self.hash_insert(slot);
        let queue = if self.take_ghost(key.0) { L_MAIN } else { L_SMALL };
        self.link_tail(queue, slot);
        let gen = self.bump_gen(slot);
        Ok(Installed { gen, replaced })
    }

    /// Recovery of a flash pool: maps `key` to the free `slot` its newest entry is in.
    /// `false` if the slot is not on the free list or the key is already present.
    pub fn restore(&mut self, slot: SlotId, key: Key, dirty: bool) -> bool {
        if self.find(key.0).is_some() || !self.take_slot(slot) {
            return false;
        }
        self.install(slot, key, if dirty { Insert::Dirty } else { Insert::Clean }).is_ok()
    }

    /// Recovery of a flash pool: holds the free `slot`, whose stale entry must be
    /// zeroed before reuse. `false` if it is not on the free list.
    pub fn hold(&mut self, slot: SlotId) -> bool {
        if !self.holding || !self.take_slot(slot) {
            return false;
        }
        wr(&mut self.flags, slot, 0);
        dec(&mut self.n_taken);
        inc(&mut self.n_held);
        true
    }

    /// Takes `slot` off the free list (as [`Cache::take_free`] takes the head).
    fn take_slot(&mut self, slot: SlotId) -> bool {
        let Some(&f) = self.flags.get(ix(slot)) else { return false };
        if state_bits(f) != ST_FREE || list_bits(f) != L_FREE || slot >= self.capacity {
            return false;
        }
        self.unlink(slot);
        wr(&mut self.flags, slot, ST_FREE | TAKEN);
        inc(&mut self.n_taken);
        true
    }

    /// A held slot may be reused (its entry on the device is zero): back on the free
    /// list. `false` if the slot is not held.
    pub fn unhold(&mut self, slot: SlotId) -> bool {
        if !self.holding || slot >= self.capacity || self.flags.get(ix(slot)) != Some(&0) || self.n_held == 0 {
            return false;
        }
        // Held slots are off every list; a free-listed slot has its list bits set.
        dec(&mut self.n_held);
        self.link_tail(L_FREE, slot);
        true
    }

    /// Drops `key` whatever its state; returns the slot it was in.
    ///
    /// This is the only way a Dirty key is dropped: the kernel calls it on Dirty
    /// data only when that data is obsolete (discard, overwrite elsewhere). The slot
    /// becomes Free (released if retiring), or an orphan if a destage is in flight.
    pub fn remove(&mut self, key: Key) -> Option<SlotId> {
        let s = self.find(key.0)?;
        let f = rd(&self.flags, s, 0);
        if f & DESTAGING != 0 {
            self.orphan(s);
        } else if state_bits(f) == ST_FILLING {
            // The fill's read is still landing in this slot's page: the slot cannot be
            // reused until it ends. The key goes (a new copy may be inserted elsewhere);
            // the slot stays busy until `fill_complete` or `fill_failed` releases it.
            self.unhash(s);
            self.unlink(s);
            wr(&mut self.flags, s, ST_FILLING | ORPHAN_FILL);
            self.bump_gen(s);
        } else {
            self.release(s);
        }
        Some(s)
    }

    /// The backing read for `(slot, key, gen)` completed: the slot becomes Clean if it
    /// is still that fill. Returns whether the data was installed; `false` means a
    /// write or invalidation raced the fill (the slot keeps the newer state, e.g.
    /// Dirty) or the slot was retiring (then released). A refused completion needs no
    /// action, even if the slot is Filling for the same key again: that is a newer
    /// fill, whose own completion counts.
    pub fn fill_complete(&mut self, slot: SlotId, key: Key, gen: u16) -> bool {
        if self.end_orphan_fill(slot, key) {
            return false;
        }
        if !self.is_fill(slot, key, gen) {
            return false;
        }
        self.set_state(slot, ST_CLEAN);
        if slot >= self.capacity {
            self.release(slot);
            return false;
        }
        true
    }

    /// The backing read for `(slot, key, gen)` failed: removes the key if the slot is
    /// still that fill. Returns whether it did.
    pub fn fill_failed(&mut self, slot: SlotId, key: Key, gen: u16) -> bool {
        if self.end_orphan_fill(slot, key) {
            return false;
        }
        if !self.is_fill(slot, key, gen) {
            return false;
        }
        self.release(slot);
        true
    }

    /// A write-back write to the key in `slot` (Filling, Clean or Dirty): the slot
    /// becomes Dirty and its generation changes (refusing a fill in flight). Returns
    /// the new generation; `None` if the slot holds no key (an orphaned fill does not).
    pub fn write_hit(&mut self, slot: SlotId) -> Option<u16> {
        let f = self.flags.get(ix(slot)).copied()?;
        if state_bits(f) == ST_FREE || is_orphan_fill(f) {
            return None;
        }
        self.set_state(slot, ST_DIRTY);
        let mut f = with_freq(rd(&self.flags, slot, 0), freq_bits(f).saturating_add(1));
        if f & DESTAGING != 0 {
            f |= REDIRTY;
        }
        wr(&mut self.flags, slot, f);
        Some(self.bump_gen(slot))
    }

    /// Starts destaging a Dirty slot: returns its generation, for
    /// [`Cache::end_destage`]. `None` if it is not Dirty, already destaging, or if a
    /// destage of a removed copy of the same key is still in flight.
    pub fn begin_destage(&mut self, slot: SlotId) -> Option<u16> {
        let f = self.flags.get(ix(slot)).copied()?;
        if state_bits(f) != ST_DIRTY || f & DESTAGING != 0 {
            return None;
        }
        if self.find_orphan(rd(&self.keys, slot, 0)).is_some() {
            return None;
        }
        wr(&mut self.flags, slot, (f | DESTAGING) & !REDIRTY);
        inc(&mut self.n_destaging);
        Some(self.gen_of(slot).unwrap_or(0))
    }

    /// Ends the destage started by [`Cache::begin_destage`] with `gen`.
    ///
    /// If it succeeded and the slot was not written meanwhile, the slot becomes Clean
    /// (released if retiring) and this returns `true`. Otherwise it stays Dirty, to be
    /// destaged again. An orphan becomes Free.
    pub fn end_destage(&mut self, slot: SlotId, gen: u16, success: bool) -> bool {
        let Some(f) = self.flags.get(ix(slot)).copied() else {
            return false;
        };
        if f & DESTAGING == 0 {
            return false;
        }
        if state_bits(f) == ST_FREE {
            self.end_orphan(slot);
            return false;
        }
        wr(&mut self.flags, slot, f & !(DESTAGING | REDIRTY));
        dec(&mut self.n_destaging);
        let current = rd(&self.gens, slot, gen.wrapping_add(1));
        if !success || gen != current || f & REDIRTY != 0 || state_bits(f) != ST_DIRTY {
            return false;
        }
        self.set_state(slot, ST_CLEAN);
        if slot >= self.capacity {
            self.release(slot);
        }
        true
    }

    /// Fills `out` with the Dirty slots not being destaged, from `cursor` on, in slot
    /// order. Returns how many, and the cursor to continue from ([`Cache::slots`] when
    /// the end was reached; wrapping around is the caller's business). Reads the
    /// bitmap a word at a time: O(slots / 64) plus the dirty slots visited.
    pub fn dirty_scan(&self, cursor: SlotId, out: &mut [(SlotId, Key)]) -> (usize, SlotId) {
        self.scan_dirty(cursor, out, false)
    }

    /// Like [`Cache::dirty_scan`], but slots being destaged are offered too: their
    /// destage may still fail, so they are dirty until it ends (re-protection must
    /// send them to a new peer).
    pub fn dirty_scan_all(&self, cursor: SlotId, out: &mut [(SlotId, Key)]) -> (usize, SlotId) {
        self.scan_dirty(cursor, out, true)
    }

    fn scan_dirty(&self, cursor: SlotId, out: &mut [(SlotId, Key)], with_destaging: bool) -> (usize, SlotId) {
        let len = self.slots();
        if cursor >= len {
            return (0, len);
        }
        if out.is_empty() {
            return (0, cursor);
        }
        let mut n = 0;
        let mut w = ix(cursor / 64);
        let mut word = self.dirty.get(w).copied().unwrap_or(0) & (!0u64 << (cursor % 64));
        loop {
            while word != 0 {
                let s = (w as u32).wrapping_mul(64).wrapping_add(word.trailing_zeros());
                word &= word - 1;
                if s >= len {
                    return (n, len);
                }
                if !with_destaging && rd(&self.flags, s, 0) & DESTAGING != 0 {
                    continue;
                }
                if let Some(o) = out.get_mut(n) {
                    *o = (s, Key(rd(&self.keys, s, 0)));
                    n += 1;
                }
                if n >= out.len() {
                    return (n, s + 1);
                }
            }
            w += 1;
            match self.dirty.get(w) {
                Some(&x) => word = x,
                None => return (n, len),
            }
        }
    }

    /// The key in `slot`, if it holds one (an orphaned fill does not).
    pub fn key_of(&self, slot: SlotId) -> Option<Key> {
        let f = self.flags.get(ix(slot)).copied()?;
        if state_bits(f) == ST_FREE || is_orphan_fill(f) {
            None
        } else {
            Some(Key(rd(&self.keys, slot, 0)))
        }
    }

    /// The state of `slot`; `None` if there is no such slot.
    pub fn state_of(&self, slot: SlotId) -> Option<SlotState> {
        self.flags.get(ix(slot)).map(|&f| decode_state(f))
    }

    /// The generation of `slot`; `None` if there is no such slot.
    pub fn gen_of(&self, slot: SlotId) -> Option<u16> {
        self.gens.get(ix(slot)).copied()
    }

    // ---- Eviction ----

    fn small_target(&self) -> u32 {
        (self.capacity / 10).max(1)
    }

    /// Evicts one Clean key onto the free list and returns it.
    ///
    /// Bounded: `S` drains into `M` in at most |S| steps, and `M` needs at most four
    /// passes (frequency 3 down to 0) before a Clean entry is evicted, as long as some
    /// queue holds a Clean entry, which the queue choice ensures.
    fn evict_one(&mut self) -> Option<(SlotId, Key)> {
        if self.n_clean == 0 {
            return None;
        }
        let queued = u64::from(self.lists[L_SMALL].len) + u64::from(self.lists[L_MAIN].len);
        let mut budget = queued.saturating_mul(5).saturating_add(1);
        let target = self.small_target();
        while budget > 0 {
            budget -= 1;
            let small = self.lists[L_SMALL];
            let main = self.lists[L_MAIN];
            // Stay on S while it is over target, or if M has nothing to evict.
            let from_small = small.len > 0 && (small.len >= target || main.len == 0 || main.clean == 0);
            let queue = if from_small { L_SMALL } else { L_MAIN };
            let s = self.lists[queue].head;
            if s == NONE {
                return None;
            }
            let f = rd(&self.flags, s, 0);
            let freq = freq_bits(f);
            if state_bits(f) == ST_CLEAN && freq == 0 {
                let key = rd(&self.keys, s, 0);
                if from_small {
                    self.remember(key);
                }
                self.release(s);
                return Some((s, Key(key)));
            }
            self.unlink(s);
            // Leaving S: start afresh in M. In M: age by one pass.
            let freq = if from_small { 0 } else { freq.saturating_sub(1) };
            let f = with_freq(rd(&self.flags, s, 0), freq);
            wr(&mut self.flags, s, f);
            self.link_tail(L_MAIN, s);
        }
        None
    }

    /// The ghost set `key` maps to, and its fingerprint.
    fn ghost_set(&self, key: u64) -> Option<(Range<usize>, u16)> {
        let sets = (self.ghost.len() / GHOST_WAYS) as u64;
        if sets == 0 {
            return None;
        }
        let h = self.hash(key);
        // Range reduction by multiplication: no division, any count up to 2^32.
        let set = (((h & 0xffff_ffff) * sets) >> 32) as usize;
        // Fingerprint from bits the set index does not use; 0 marks an empty entry.
        let fp = ((h >> 48) as u16).max(1);
        let base = set * GHOST_WAYS;
        Some((base..base + GHOST_WAYS, fp))
    }

    /// Records a key evicted from `S`: first in its set, the set's oldest entry (or an
    /// older copy of the same fingerprint) drops out.
    fn remember(&mut self, key: u64) {
        let Some((set, fp)) = self.ghost_set(key) else {
            return;
        };
        let Some(ways) = self.ghost.get_mut(set) else {
            return;
        };
        let end = ways.iter().position(|&g| g == fp).unwrap_or(GHOST_WAYS - 1);
        if let Some(w) = ways.get_mut(..=end) {
            w.rotate_right(1);
        }
        if let Some(first) = ways.first_mut() {
            *first = fp;
        }
    }

    /// Whether `key` is a ghost; a match is consumed.
    fn take_ghost(&mut self, key: u64) -> bool {
        let Some((set, fp)) = self.ghost_set(key) else {
            return false;
        };
        let Some(ways) = self.ghost.get_mut(set) else {
            return false;
        };
        let Some(pos) = ways.iter().position(|&g| g == fp) else {
            return false;
        };
        if let Some(w) = ways.get_mut(pos..) {
            w.rotate_left(1);
            if let Some(last) = w.last_mut() {
                *last = 0;
            }
        }
        true
    }

    // ---- Slot life cycle ----

    fn bump_gen(&mut self, s: u32) -> u16 {
        let g = rd(&self.gens, s, 0).wrapping_add(1);
        wr(&mut self.gens, s, g);
        g
    }

    /// Releases `slot` if it is a fill of `key` whose key was removed meanwhile.
    fn end_orphan_fill(&mut self, slot: u32, key: Key) -> bool {
        let f = rd(&self.flags, slot, 0);
        if state_bits(f) != ST_FILLING || f & ORPHAN_FILL == 0 || rd(&self.keys, slot, !key.0) != key.0 {
            return false;
        }
        self.set_state(slot, ST_FREE);
        wr(&mut self.flags, slot, 0);
        self.bump_gen(slot);
        self.park(slot);
        true
    }

    fn is_fill(&self, slot: u32, key: Key, gen: u16) -> bool {
        match self.flags.get(ix(slot)) {
            Some(&f) => {
                state_bits(f) == ST_FILLING
                    && f & ORPHAN_FILL == 0
                    && rd(&self.keys, slot, !key.0) == key.0
                    && rd(&self.gens, slot, !gen) == gen
            }
            None => false,
        }
    }

    /// Changes a slot's state, keeping the counters and the dirty bitmap in step.
    fn set_state(&mut self, s: u32, new: u8) {
        let f = rd(&self.flags, s, 0);
        let old = state_bits(f);
        if old == new {
            return;
        }
        for (st, up) in [(old, false), (new, true)] {
            let counter = match st {
                ST_FILLING => &mut self.n_filling,
                ST_CLEAN => &mut self.n_clean,
                ST_DIRTY => &mut self.n_dirty,
                _ => continue,
            };
            if up {
                inc(counter);
            } else {
                dec(counter);
            }
        }
        let list = list_bits(f);
        if list != L_NONE {
            if old == ST_CLEAN {
                dec(&mut self.lists[list].clean);
            }
            if new == ST_CLEAN {
                inc(&mut self.lists[list].clean);
            }
        }
        if old == ST_DIRTY || new == ST_DIRTY {
            if let Some(w) = self.dirty.get_mut(ix(s / 64)) {
                let bit = 1u64 << (s % 64);
                if new == ST_DIRTY {
                    *w |= bit;
                } else {
                    *w &= !bit;
                }
            }
        }
        wr(&mut self.flags, s, (f & !STATE) | new);
    }

    /// Frees a slot that holds a key and is not destaging.
    fn release(&mut self, s: u32) {
        self.unhash(s);
        self.unlink(s);
        self.set_state(s, ST_FREE);
        if rd(&self.flags, s, 0) & DESTAGING != 0 {
            dec(&mut self.n_destaging);
        }
        wr(&mut self.flags, s, 0);
        self.bump_gen(s);
        self.park(s);
    }

    /// Puts a slot that became free on the free list (or holds it, in holding mode),
    /// or retires it.
    fn park(&mut self, s: u32) {
        if s >= self.capacity {
            dec(&mut self.n_retiring);
        } else if self.holding {
            inc(&mut self.n_held);
        } else {
            self.link_tail(L_FREE, s);
        }
    }

    /// Drops the key of a destaging slot but keeps the slot (and its hash entry, so a
    /// new copy of the key cannot start destaging) until the destage ends.
    fn orphan(&mut self, s: u32) {
        self.unlink(s);
        self.set_state(s, ST_FREE);
        wr(&mut self.flags, s, DESTAGING);
        self.bump_gen(s);
        inc(&mut self.n_orphaned);
    }

    fn end_orphan(&mut self, s: u32) {
        self.unhash(s);
        wr(&mut self.flags, s, 0);
        dec(&mut self.n_destaging);
        dec(&mut self.n_orphaned);
        self.park(s);
    }

    // ---- Queues ----

    fn link_tail(&mut self, list: usize, s: u32) {
        let Some(l) = self.lists.get(list).copied() else {
            return;
        };
        wr(&mut self.prev, s, l.tail);
        wr(&mut self.next, s, NONE);
        if l.tail == NONE {
            self.lists[list].head = s;
        } else {
            wr(&mut self.next, l.tail, s);
        }
        self.lists[list].tail = s;
        inc(&mut self.lists[list].len);
        let f = rd(&self.flags, s, 0);
        if state_bits(f) == ST_CLEAN {
            inc(&mut self.lists[list].clean);
        }
        // `list` < 4 here (the `get` above), so it fits in the two bits.
        wr(&mut self.flags, s, (f & !LIST) | ((list as u8) << LIST_SHIFT));
    }

    fn unlink(&mut self, s: u32) {
        let f = rd(&self.flags, s, 0);
        let list = list_bits(f);
        if list == L_NONE {
            return;
        }
        let p = rd(&self.prev, s, NONE);
        let n = rd(&self.next, s, NONE);
        if p == NONE {
            self.lists[list].head = n;
        } else {
            wr(&mut self.next, p, n);
        }
        if n == NONE {
            self.lists[list].tail = p;
        } else {
            wr(&mut self.prev, n, p);
        }
        dec(&mut self.lists[list].len);
        if state_bits(f) == ST_CLEAN {
            dec(&mut self.lists[list].clean);
        }
        wr(&mut self.prev, s, NONE);
        wr(&mut self.next, s, NONE);
        wr(&mut self.flags, s, f & !LIST);
    }

    fn pop_head(&mut self, list: usize) -> Option<u32> {
        let s = self.lists.get(list)?.head;
        if s == NONE {
            return None;
        }
        self.unlink(s);
        Some(s)
    }

    // ---- Hash table ----

    fn hash(&self, key: u64) -> u64 {
        mix(key ^ self.seed)
    }

    fn bucket_of(&self, key: u64) -> usize {
        // `buckets.len()` is a power of two (or 0, then every lookup misses).
        (self.hash(key) >> 32) as usize & self.buckets.len().wrapping_sub(1)
    }

    /// Slots in a hash chain: those with a key, and orphans.
    fn is_hashed(f: u8) -> bool {
        let orphan_fill = state_bits(f) == ST_FILLING && f & ORPHAN_FILL != 0;
        (state_bits(f) != ST_FREE && !orphan_fill) || f & DESTAGING != 0
    }

    fn hash_insert(&mut self, s: u32) {
        let b = self.bucket_of(rd(&self.keys, s, 0));
        if let Some(head) = self.buckets.get_mut(b) {
            wr(&mut self.chain, s, *head);
            *head = s;
        }
    }

    fn unhash(&mut self, s: u32) {
        let b = self.bucket_of(rd(&self.keys, s, 0));
        let Some(&head) = self.buckets.get(b) else {
            return;
        };
        let after = rd(&self.chain, s, NONE);
        wr(&mut self.chain, s, NONE);
        if head == s {
            wr(&mut self.buckets, b as u32, after);
            return;
        }
        let mut p = head;
        // Bounded so that a corrupted chain cannot loop forever.
        for _ in 0..self.flags.len() {
            if p == NONE {
                return;
            }
            let n = rd(&self.chain, p, NONE);
            if n == s {
                wr(&mut self.chain, p, after);
                return;
            }
            p = n;
        }
    }

    /// The first hashed slot with `key` for which `want` holds.
    fn find_where(&self, key: u64, want: impl Fn(u8) -> bool) -> Option<u32> {
        let mut s = *self.buckets.get(self.bucket_of(key))?;
        for _ in 0..self.flags.len() {
            if s == NONE {
                return None;
            }
            if rd(&self.keys, s, !key) == key && want(rd(&self.flags, s, 0)) {
                return Some(s);
            }
            s = rd(&self.chain, s, NONE);
        }
        None
    }

    fn find(&self, key: u64) -> Option<u32> {
        self.find_where(key, |f| state_bits(f) != ST_FREE)
    }

    fn find_orphan(&self, key: u64) -> Option<u32> {
        self.find_where(key, |f| state_bits(f) == ST_FREE)
    }

    /// Rebuilds the chains from the keys, after the bucket array changed size.
    fn rehash(&mut self) {
        self.buckets.fill(NONE);
        for s in 0..self.slots() {
            if Self::is_hashed(rd(&self.flags, s, 0)) {
                self.hash_insert(s);
            } else {
                wr(&mut self.chain, s, NONE);
            }
        }
    }
}

fn decode_state(f: u8) -> SlotState {
    match state_bits(f) {
        ST_FILLING => SlotState::Filling,
        ST_CLEAN => SlotState::Clean,
        ST_DIRTY => SlotState::Dirty,
        _ => SlotState::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_filling_key_keeps_its_slot_until_the_fill_ends() {
        let mut c = cache(4);
        let k = Key::new(1, 10).unwrap();
        let fill = c.insert(k, Insert::Filling).unwrap();
        let free_before = c.counts().free;
        assert_eq!(c.remove(k), Some(fill.slot));
        assert_eq!(c.peek(k), None);
        // The slot is still busy: its page receives the fill's data.
        assert_eq!(c.counts().free, free_before);
        assert_eq!(c.counts().filling, 1);
        // A write may insert the key again, in another slot.
        let again = c.insert(k, Insert::Dirty).unwrap();
        assert_ne!(again.slot, fill.slot);
        // The old fill ends: refused, and its slot is free again.
        assert!(!c.fill_complete(fill.slot, k, fill.gen));
        assert_eq!(c.counts().filling, 0);
        assert_eq!(c.counts().free, free_before);
        assert_eq!(c.peek(k), Some((again.slot, SlotState::Dirty)));
        // A failed fill releases an orphan just the same.
        let k2 = Key::new(1, 11).unwrap();
        let f2 = c.insert(k2, Insert::Filling).unwrap();
        c.remove(k2);
        assert!(!c.fill_failed(f2.slot, k2, f2.gen));
        assert_eq!(c.counts().filling, 0);
    }
    #[test]
    fn writes_around_the_pool_conflict_with_dirty_keys_and_orphans() {
        let mut c = cache(4);
        let k = Key::new(1, 10).unwrap();
        assert!(!c.backing_write_conflict(k));
        c.insert(k, Insert::Clean).unwrap();
        assert!(!c.backing_write_conflict(k), "a clean copy is only dropped");
        c.remove(k);
        let d = c.insert(k, Insert::Dirty).unwrap();
        assert!(c.backing_write_conflict(k), "dirty: a destage may start");
        let gen = c.begin_destage(d.slot).unwrap();
        assert!(c.backing_write_conflict(k), "being destaged");
        // A discard removes it mid-destage: the orphan's write is still in flight.
        c.remove(k);
        assert_eq!(c.peek(k), None);
        assert!(c.backing_write_conflict(k), "an orphan's destage is in flight");
        assert!(c.orphan_in_flight(k));
        c.end_destage(d.slot, gen, true);
        assert!(!c.backing_write_conflict(k), "the orphan's destage ended");
        assert!(!c.orphan_in_flight(k));
    }

    use proptest::prelude::*;
    use std::cell::Cell;
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::vec::Vec;

    use crate::vec_stores::VecStores as StdStores;

    type C = Cache<StdStores>;

    fn key(volume: u16, block: u64) -> Key {
        Key::new(volume, block).unwrap()
    }

    fn cache(slots: u32) -> C {
        let mut c = C::new(0x5eed);
        assert_eq!(c.grow(slots), Ok(0..slots));
        check(&c);
        c
    }

    #[test]
    fn holding_mode_keeps_released_slots_until_unheld() {
        let mut c = C::new(1);
        c.set_holding();
        c.grow(4).unwrap();
        let k = key(0, 7);
        // A write lands in a taken slot, then maps.
        let a = c.take_free().unwrap();
        assert_eq!(c.counts().taken, 1);
        assert_eq!(c.peek(k), None);
        assert_eq!(c.install(a, k, Insert::Dirty).unwrap().replaced, None);
        // A newer version replaces it: the old slot is held, not free.
        let b = c.take_free().unwrap();
        assert_eq!(c.install(b, k, Insert::Dirty).unwrap().replaced, Some(a));
        assert_eq!(c.peek(k), Some((b, SlotState::Dirty)));
        assert_eq!((c.counts().held, c.counts().free), (1, 2));
        // A fill of a present key is refused; its slot stays taken until given back.
        let f = c.take_free().unwrap();
        assert_eq!(c.install(f, k, Insert::Clean), Err(InstallError::AlreadyPresent(b)));
        assert!(c.untake(f));
        assert!(!c.untake(f));
        // Eviction holds the victim; insertion never evicts in holding mode.
        c.begin_destage(b).unwrap();
        assert!(c.end_destage(b, c.gen_of(b).unwrap(), true));
        for i in 0..2 {
            c.insert(key(1, i), Insert::Clean).unwrap();
        }
        assert_eq!(c.insert(key(1, 9), Insert::Clean), Err(InsertError::Full));
        let (victim, _) = c.evict().unwrap();
        assert_eq!(c.counts().held, 2);
        assert!(c.unhold(a) && c.unhold(victim));
        assert!(!c.unhold(a), "only held slots");
        assert_eq!(c.counts().held, 0);
        // Recovery places keys at given slots and holds stale ones.
        let mut r = C::new(1);
        r.set_holding();
        r.grow(4).unwrap();
        assert!(r.restore(2, k, true));
        assert!(!r.restore(2, key(0, 8), false), "slot taken");
        assert!(!r.restore(3, k, false), "key present");
        assert!(r.hold(3));
        assert_eq!(r.peek(k), Some((2, SlotState::Dirty)));
        let counts = r.counts();
        assert_eq!((counts.free, counts.dirty, counts.held), (2, 1, 1));
        check(&r);
        check(&c);
    }

    /// Checks every structural invariant from scratch.
    fn check<S: Stores>(c: &Cache<S>) {
        let len = c.flags.len();
        let len32 = len as u32;
        for l in [c.keys.len(), c.prev.len(), c.next.len(), c.chain.len(), c.gens.len(), c.ghost.len()] {
            assert_eq!(l, len);
        }
        assert_eq!(c.buckets.len(), buckets_for(len32));
        assert!(c.buckets.len().is_power_of_two() || len == 0);
        assert_eq!(c.dirty.len(), words_for(len32));
        assert!(c.capacity <= len32);

        // Queues: well linked, flags agree, lengths and Clean counts exact.
        let mut on = vec![L_NONE; len];
        for l in [L_FREE, L_SMALL, L_MAIN] {
            let list = c.lists[l];
            let (mut n, mut clean, mut p, mut s) = (0u32, 0u32, NONE, list.head);
            while s != NONE {
                assert!(n < len32, "cycle in queue {l}");
                let i = s as usize;
                assert_eq!(on[i], L_NONE, "slot {s} on two queues");
                on[i] = l;
                assert_eq!(c.prev[i], p);
                assert_eq!(list_bits(c.flags[i]), l);
                if state_bits(c.flags[i]) == ST_CLEAN {
                    clean += 1;
                }
                n += 1;
                p = s;
                s = c.next[i];
            }
            assert_eq!(list.tail, p);
            assert_eq!(list.len, n);
            assert_eq!(list.clean, clean);
        }

        // Slots.
        let (mut filling, mut clean, mut dirty, mut destaging, mut orphaned, mut retiring) = (0, 0, 0, 0, 0, 0);
        let mut orphan_fills = 0;
        let (mut held, mut taken) = (0, 0);
        for (i, &f) in c.flags.iter().enumerate() {
            let s = i as u32;
            let retired = s >= c.capacity;
            assert_eq!(list_bits(f), on[i], "slot {s}");
            let bit = c.dirty[i / 64] >> (i % 64) & 1;
            assert_eq!(bit == 1, state_bits(f) == ST_DIRTY, "dirty bit of {s}");
            if f & DESTAGING != 0 {
                destaging += 1;
            }
            if state_bits(f) == ST_FILLING && f & ORPHAN_FILL != 0 {
                // A fill whose key was removed: off every queue, unhashed, no frequency,
                // never destaging; busy (and counted Filling) until its fill ends.
                assert_eq!(f, ST_FILLING | ORPHAN_FILL, "orphan fill {s}");
                assert!(!Cache::<S>::is_hashed(f));
                filling += 1;
                orphan_fills += 1;
                retiring += u32::from(retired);
                continue;
            }
            assert!(f & REDIRTY == 0 || f & DESTAGING != 0);
            match state_bits(f) {
                ST_FREE if f == ST_FREE | TAKEN => {
                    assert!(c.holding || !retired, "taken slot {s}");
                    taken += 1;
                }
                ST_FREE => {
                    assert_eq!(f & (FREQ | REDIRTY), 0);
                    if f & DESTAGING != 0 {
                        assert_eq!(on[i], L_NONE);
                        orphaned += 1;
                        retiring += u32::from(retired);
                    } else if on[i] == L_FREE {
                        assert!(!retired, "retiring slot {s} on the free list");
                    } else if c.holding && !retired {
                        held += 1;
                    } else {
                        assert!(retired, "slot {s} lost");
                    }
                }
                st => {
                    assert!(on[i] == L_SMALL || on[i] == L_MAIN);
                    assert!(f & DESTAGING == 0 || st == ST_DIRTY);
                    match st {
                        ST_FILLING => filling += 1,
                        ST_CLEAN => {
                            assert!(!retired, "Clean retiring slot {s}");
                            clean += 1;
                        }
                        _ => dirty += 1,
                    }
                    retiring += u32::from(retired);
                }
            }
        }
        if !len.is_multiple_of(64) {
            assert_eq!(c.dirty[len / 64] >> (len % 64), 0);
        }

        // Hash chains: each hashed slot exactly once, in its bucket; live keys unique.
        let mut seen = vec![false; len];
        let mut live = HashSet::new();
        let mut orphan_keys = HashSet::new();
        for (b, &head) in c.buckets.iter().enumerate() {
            let mut s = head;
            while s != NONE {
                let i = s as usize;
                assert!(!seen[i], "slot {s} hashed twice");
                seen[i] = true;
                assert_eq!(c.bucket_of(c.keys[i]), b);
                if state_bits(c.flags[i]) == ST_FREE {
                    assert!(orphan_keys.insert(c.keys[i]), "two orphans of one key");
                } else {
                    assert!(live.insert(c.keys[i]), "key {:#x} twice", c.keys[i]);
                }
                s = c.chain[i];
            }
        }
        for (i, &f) in c.flags.iter().enumerate() {
            assert_eq!(seen[i], Cache::<S>::is_hashed(f), "slot {i}");
        }

        let k = c.counts();
        assert_eq!(
            (k.filling, k.clean, k.dirty, k.destaging, k.orphaned, k.retiring, k.held, k.taken),
            (filling, clean, dirty, destaging, orphaned, retiring, held, taken)
        );
        assert_eq!(k.small + k.main + orphan_fills, filling + clean + dirty);
        assert_eq!(k.free + k.filling + k.clean + k.dirty + k.orphaned + k.held + k.taken, c.capacity + k.retiring);
    }

    // ---- Unit tests ----

    #[test]
    fn key_packing() {
        let k = key(3, 5);
        assert_eq!((k.volume(), k.block()), (3, 5));
        let k = key(u16::MAX, Key::MAX_BLOCK);
        assert_eq!((k.volume(), k.block()), (u16::MAX, Key::MAX_BLOCK));
        assert_eq!(Key::new(0, 1 << 48), None);
        assert_eq!(Key::new(7, u64::MAX), None);
        assert_ne!(key(1, 0), key(0, 1));
    }

    #[test]
    fn empty_cache_refuses_everything() {
        let mut c = C::new(1);
        check(&c);
        assert_eq!((c.capacity(), c.slots()), (0, 0));
        assert_eq!(c.insert(key(0, 1), Insert::Clean), Err(InsertError::Full));
        assert_eq!(c.lookup(key(0, 1)), None);
        assert_eq!(c.remove(key(0, 1)), None);
        assert_eq!(c.dirty_scan(0, &mut [(0, key(0, 0)); 4]), (0, 0));
        assert_eq!(c.shrink(0), Shrink { released: 0, pending_dirty: 0, pending_filling: 0, truncated: 0..0 });
        check(&c);
    }

    #[test]
    fn bad_slot_ids_are_refused() {
        let mut c = cache(4);
        let k = key(0, 9);
        for s in [4, 5, 1000, u32::MAX - 1, u32::MAX] {
            assert_eq!(c.key_of(s), None);
            assert_eq!(c.state_of(s), None);
            assert_eq!(c.gen_of(s), None);
            assert_eq!(c.write_hit(s), None);
            assert_eq!(c.begin_destage(s), None);
            assert!(!c.end_destage(s, 0, true));
            assert!(!c.fill_complete(s, k, 0));
            assert!(!c.fill_failed(s, k, 0));
            assert_eq!(c.dirty_scan(s, &mut [(0, k); 2]), (0, 4));
        }
        // Free slots hold nothing.
        assert_eq!(c.write_hit(0), None);
        assert_eq!(c.begin_destage(0), None);
        assert!(!c.end_destage(0, 0, true));
        assert!(!c.fill_complete(0, k, 0));
        assert_eq!(c.key_of(0), None);
        assert_eq!(c.state_of(0), Some(SlotState::Free));
        check(&c);
    }

    #[test]
    fn grow_insert_lookup_remove() {
        let mut c = cache(4);
        assert_eq!(c.counts(), Counts { free: 4, ..Counts::default() });
        let k = key(1, 100);
        let ins = c.insert(k, Insert::Clean).unwrap();
        assert_eq!((ins.slot, ins.gen, ins.evicted), (0, 1, None));
        assert_eq!(c.lookup(k), Some(0));
        assert_eq!(c.peek(k), Some((0, SlotState::Clean)));
        assert_eq!(c.key_of(0), Some(k));
        assert_eq!(c.insert(k, Insert::Dirty), Err(InsertError::AlreadyPresent(0)));
        assert_eq!(c.counts(), Counts { free: 3, clean: 1, small: 1, ..Counts::default() });
        check(&c);
        assert_eq!(c.remove(k), Some(0));
        assert_eq!(c.gen_of(0), Some(2));
        assert_eq!(c.lookup(k), None);
        assert_eq!(c.peek(k), None);
        assert_eq!(c.remove(k), None);
        assert_eq!(c.counts(), Counts { free: 4, ..Counts::default() });
        check(&c);
        // Growing again appends and keeps the contents.
        let d = c.insert(key(2, 7), Insert::Dirty).unwrap().slot;
        assert_eq!(c.grow(100), Ok(4..104));
        assert_eq!(c.peek(key(2, 7)), Some((d, SlotState::Dirty)));
        assert_eq!(c.counts().free, 103);
        check(&c);
    }

    #[test]
    fn generation_changes_on_every_change_of_contents() {
        let mut c = cache(2);
        let k = key(0, 1);
        let g0 = c.gen_of(0).unwrap();
        let ins = c.insert(k, Insert::Clean).unwrap();
        assert_ne!(ins.gen, g0);
        assert_eq!(c.lookup(k), Some(0));
        assert_eq!(c.gen_of(0), Some(ins.gen), "a hit is not a change");
        let g2 = c.write_hit(0).unwrap();
        assert_ne!(g2, ins.gen);
        let g3 = c.write_hit(0).unwrap();
        assert_ne!(g3, g2);
        let b = c.begin_destage(0).unwrap();
        assert_eq!(b, g3);
        assert!(c.end_destage(0, b, true));
        assert_eq!(c.gen_of(0), Some(g3), "cleaning is not a change");
        c.remove(k);
        assert_ne!(c.gen_of(0), Some(g3));
    }

    #[test]
    fn fill_completes() {
        let mut c = cache(4);
        let k = key(0, 42);
        let f = c.insert(k, Insert::Filling).unwrap();
        assert_eq!(c.lookup(k), None, "not readable while filling");
        assert_eq!(c.peek(k), Some((f.slot, SlotState::Filling)));
        assert_eq!(c.insert(k, Insert::Filling), Err(InsertError::AlreadyPresent(f.slot)));
        assert!(!c.fill_complete(f.slot, k, f.gen.wrapping_add(1)));
        assert!(!c.fill_complete(f.slot, key(0, 43), f.gen));
        assert!(!c.fill_complete(f.slot + 1, k, f.gen));
        assert_eq!(c.counts().filling, 1);
        assert!(c.fill_complete(f.slot, k, f.gen));
        assert_eq!(c.lookup(k), Some(f.slot));
        assert_eq!(c.state_of(f.slot), Some(SlotState::Clean));
        assert!(!c.fill_complete(f.slot, k, f.gen), "only once");
        assert!(!c.fill_failed(f.slot, k, f.gen), "a clean slot is not dropped by a late failure");
        assert_eq!(c.counts().clean, 1);
        check(&c);
    }

    #[test]
    fn fill_fails() {
        let mut c = cache(4);
        let k = key(0, 42);
        let f = c.insert(k, Insert::Filling).unwrap();
        assert!(!c.fill_failed(f.slot, k, f.gen.wrapping_sub(1)));
        assert!(c.fill_failed(f.slot, k, f.gen));
        assert_eq!(c.peek(k), None);
        assert_eq!(c.counts().free, 4);
        assert!(!c.fill_failed(f.slot, k, f.gen));
        check(&c);
    }

    #[test]
    fn write_during_fill_wins() {
        let mut c = cache(4);
        let k = key(0, 42);
        let f = c.insert(k, Insert::Filling).unwrap();
        let g = c.write_hit(f.slot).unwrap();
        assert_ne!(g, f.gen);
        assert_eq!(c.peek(k), Some((f.slot, SlotState::Dirty)));
        assert_eq!(c.lookup(k), Some(f.slot), "the written data is readable");
        // The read returns the old contents of the block: refused, the slot stays Dirty.
        assert!(!c.fill_complete(f.slot, k, f.gen));
        assert!(!c.fill_failed(f.slot, k, f.gen));
        assert_eq!(c.peek(k), Some((f.slot, SlotState::Dirty)));
        assert_eq!(c.counts().dirty, 1);
        assert_eq!(c.dirty_scan(0, &mut [(0, k); 4]).0, 1);
        check(&c);
    }

    #[test]
    fn removal_during_fill_wins() {
        let mut c = cache(1);
        let (k, other) = (key(0, 42), key(0, 43));
        let f = c.insert(k, Insert::Filling).unwrap();
        assert_eq!(c.remove(k), Some(f.slot));
        // The fill's read still lands in the slot's page: the slot is not reusable.
        assert_eq!(c.insert(other, Insert::Filling), Err(InsertError::Full));
        // Its completion is refused and frees the slot.
        assert!(!c.fill_complete(f.slot, k, f.gen));
        let f2 = c.insert(other, Insert::Filling).unwrap();
        assert_eq!(f2.slot, f.slot);
        assert!(!c.fill_complete(f.slot, k, f.gen));
        assert_eq!(c.peek(other), Some((f.slot, SlotState::Filling)));
        // A new fill of the same key after a failed one: the old completion is refused.
        assert!(c.fill_failed(f2.slot, other, f2.gen));
        let f3 = c.insert(k, Insert::Filling).unwrap();
        assert_eq!(f3.slot, f.slot);
        assert!(!c.fill_complete(f.slot, k, f.gen));
        assert_eq!(c.peek(k), Some((f.slot, SlotState::Filling)));
        assert!(c.fill_complete(f3.slot, k, f3.gen));
        check(&c);
    }

    #[test]
    fn destage_cleans() {
        let mut c = cache(4);
        let k = key(5, 5);
        let s = c.insert(k, Insert::Dirty).unwrap().slot;
        let mut out = [(0, key(0, 0)); 4];
        assert_eq!(c.dirty_scan(0, &mut out), (1, 4));
        assert_eq!(out[0], (s, k));
        let g = c.begin_destage(s).unwrap();
        assert_eq!(c.begin_destage(s), None, "one destage at a time");
        assert_eq!(c.counts().destaging, 1);
        assert_eq!(c.dirty_scan(0, &mut out), (0, 4), "destaging slots are not offered");
        assert_eq!(c.dirty_scan_all(0, &mut out).0, 1, "but are offered to re-protection");
        assert_eq!(c.lookup(k), Some(s), "readable while destaging");
        check(&c);
        assert!(c.end_destage(s, g, true));
        assert_eq!(c.peek(k), Some((s, SlotState::Clean)));
        assert_eq!(c.counts().dirty, 0);
        assert_eq!(c.counts().destaging, 0);
        assert_eq!(c.dirty_scan_all(0, &mut out).0, 0, "clean once destaged");
        assert!(!c.end_destage(s, g, true), "only once");
        assert_eq!(c.begin_destage(s), None, "clean");
        check(&c);
    }

    #[test]
    fn write_during_destage_keeps_dirty() {
        let mut c = cache(4);
        let k = key(5, 5);
        let s = c.insert(k, Insert::Dirty).unwrap().slot;
        let g = c.begin_destage(s).unwrap();
        c.write_hit(s).unwrap();
        check(&c);
        assert!(!c.end_destage(s, g, true));
        assert_eq!(c.peek(k), Some((s, SlotState::Dirty)));
        assert_eq!(c.counts().destaging, 0);
        let g2 = c.begin_destage(s).unwrap();
        assert_ne!(g2, g);
        assert!(c.end_destage(s, g2, true));
        assert_eq!(c.peek(k), Some((s, SlotState::Clean)));
        check(&c);
    }

    #[test]
    fn write_during_destage_detected_even_if_generation_wraps() {
        let mut c = cache(1);
        let s = c.insert(key(0, 0), Insert::Dirty).unwrap().slot;
        let g = c.begin_destage(s).unwrap();
        for _ in 0..65536 {
            c.write_hit(s).unwrap();
        }
        assert_eq!(c.gen_of(s), Some(g));
        assert!(!c.end_destage(s, g, true));
        assert_eq!(c.state_of(s), Some(SlotState::Dirty));
    }

    #[test]
    fn failed_destage_keeps_dirty() {
        let mut c = cache(4);
        let k = key(5, 5);
        let s = c.insert(k, Insert::Dirty).unwrap().slot;
        let g = c.begin_destage(s).unwrap();
        assert!(!c.end_destage(s, g, false));
        assert_eq!(c.peek(k), Some((s, SlotState::Dirty)));
        assert_eq!(c.dirty_scan(0, &mut [(0, k); 1]), (1, s + 1), "offered again");
        let g = c.begin_destage(s).unwrap();
        assert!(c.end_destage(s, g, true));
        check(&c);
    }

    #[test]
    fn removal_during_destage_leaves_an_orphan() {
        let mut c = cache(2);
        let k = key(3, 3);
        let s = c.insert(k, Insert::Dirty).unwrap().slot;
        let g = c.begin_destage(s).unwrap();
        assert_eq!(c.remove(k), Some(s));
        assert_eq!(c.peek(k), None);
        assert_eq!(c.key_of(s), None);
        assert_eq!(c.state_of(s), Some(SlotState::Free));
        let n = c.counts();
        assert_eq!((n.free, n.dirty, n.orphaned, n.destaging), (1, 0, 1, 1));
        check(&c);
        // The orphan's page is not reused while its destage reads it.
        let t = c.insert(k, Insert::Dirty).unwrap().slot;
        assert_ne!(t, s);
        assert_eq!(c.insert(key(3, 4), Insert::Clean), Err(InsertError::Full));
        // The new copy of the key waits for the old destage to end.
        assert_eq!(c.begin_destage(t), None);
        assert_eq!(c.dirty_scan(0, &mut [(0, k); 2]), (1, 2));
        check(&c);
        assert!(!c.end_destage(s, g, true));
        assert_eq!(c.counts().orphaned, 0);
        assert_eq!(c.counts().free, 1);
        assert!(!c.end_destage(s, g, true), "only once");
        let g2 = c.begin_destage(t).unwrap();
        assert!(c.end_destage(t, g2, true));
        assert_eq!(c.insert(key(3, 4), Insert::Clean).map(|i| i.slot), Ok(s));
        check(&c);
    }

    #[test]
    fn eviction_takes_only_clean_slots() {
        let mut c = cache(10);
        for b in 0..10 {
            let st = if b == 6 { Insert::Clean } else { Insert::Dirty };
            c.insert(key(0, b), st).unwrap();
        }
        let clean_slot = c.peek(key(0, 6)).unwrap().0;
        let ins = c.insert(key(0, 100), Insert::Filling).unwrap();
        assert_eq!((ins.slot, ins.evicted), (clean_slot, Some(key(0, 6))));
        check(&c);
        // Only Dirty and Filling left.
        assert_eq!(c.insert(key(0, 101), Insert::Clean), Err(InsertError::Full));
        assert!(c.fill_complete(ins.slot, key(0, 100), ins.gen));
        let ins = c.insert(key(0, 101), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 100)));
        for b in 0..10 {
            if b != 6 {
                assert_eq!(c.peek(key(0, b)).unwrap().1, SlotState::Dirty);
            }
        }
        check(&c);
    }

    #[test]
    fn clean_slot_behind_dirty_ones_is_found() {
        // Small queue under target, main queue all Dirty: the Clean victim is in S.
        let mut c = cache(20);
        for b in 0..19 {
            c.insert(key(0, b), Insert::Dirty).unwrap();
        }
        // Push the Dirty keys into M by forcing an eviction pass.
        c.insert(key(0, 19), Insert::Clean).unwrap();
        let ins = c.insert(key(0, 20), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 19)));
        check(&c);
    }

    #[test]
    fn clean_key_hit_often_in_main_is_found_within_the_bound() {
        // Worst case: one Clean key, in M with frequency 3, behind only Dirty keys. It
        // takes S draining into M and four passes over M: ~4.7 steps per queued key.
        let mut c = cache(20);
        c.insert(key(0, 0), Insert::Clean).unwrap();
        for b in 1..20 {
            c.insert(key(0, b), Insert::Dirty).unwrap();
        }
        assert_eq!(c.insert(key(0, 100), Insert::Dirty).unwrap().evicted, Some(key(0, 0)));
        c.remove(key(0, 100));
        // Back through the ghost, into M.
        let s = c.insert(key(0, 0), Insert::Clean).unwrap().slot;
        assert_eq!(list_bits(c.flags[s as usize]), L_MAIN);
        for _ in 0..5 {
            c.lookup(key(0, 0)).unwrap();
        }
        assert_eq!(freq_bits(c.flags[s as usize]), 3);
        let ins = c.insert(key(0, 200), Insert::Clean).unwrap();
        assert_eq!((ins.slot, ins.evicted), (s, Some(key(0, 0))));
        assert_eq!(c.counts().dirty, 19);
        check(&c);
    }

    #[test]
    fn ghost_sends_returning_keys_to_main() {
        let mut c = cache(10);
        for b in 0..10 {
            c.insert(key(0, b), Insert::Clean).unwrap();
        }
        assert_eq!(c.counts().small, 10);
        let ins = c.insert(key(0, 10), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 0)), "FIFO order in S");
        let ins = c.insert(key(0, 0), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 1)));
        assert_eq!(c.counts().main, 1, "key 0 came back from the ghost into M");
        assert_eq!(list_bits(c.flags[ins.slot as usize]), L_MAIN);
        check(&c);
    }

    #[test]
    fn ghost_sets_keep_the_latest_four() {
        let mut c = cache(64);
        let (set, _) = c.ghost_set(key(0, 0).0).unwrap();
        let same: Vec<Key> = (0..).map(|b| key(0, b)).filter(|k| c.ghost_set(k.0).unwrap().0 == set).take(6).collect();
        for k in &same[..5] {
            c.remember(k.0);
        }
        c.remember(same[4].0);
        assert!(!c.take_ghost(same[0].0), "the oldest dropped out");
        assert!(!c.take_ghost(same[5].0), "never evicted");
        for k in &same[1..5] {
            assert!(c.take_ghost(k.0));
            assert!(!c.take_ghost(k.0), "consumed");
        }
        assert!(c.ghost.iter().all(|&g| g == 0));
    }

    #[test]
    fn accessed_keys_leave_small_for_main() {
        let mut c = cache(10);
        for b in 0..10 {
            c.insert(key(0, b), Insert::Clean).unwrap();
        }
        assert!(c.lookup(key(0, 0)).is_some());
        assert!(c.lookup(key(0, 1)).is_some());
        let ins = c.insert(key(0, 10), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 2)), "accessed keys are skipped");
        assert_eq!(c.counts().main, 2);
        assert!(c.peek(key(0, 0)).is_some() && c.peek(key(0, 1)).is_some());
        check(&c);
    }

    #[test]
    fn main_is_evicted_when_small_is_under_target() {
        // 20 slots: S targets 2.
        let mut c = cache(20);
        for b in 0..20 {
            c.insert(key(0, b), Insert::Clean).unwrap();
        }
        for b in 0..18 {
            c.lookup(key(0, b)).unwrap();
        }
        // S is drained into M down to its target, then its unaccessed head goes.
        let ins = c.insert(key(0, 20), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 18)));
        assert_eq!((c.counts().small, c.counts().main), (2, 18));
        // With S under target, the victim comes from M, in FIFO order, skipping (and
        // aging) keys hit since they entered M.
        c.remove(key(0, 19));
        // Key 18 returns through the ghost: into M, taking the free slot.
        assert_eq!(c.insert(key(0, 18), Insert::Clean).unwrap().evicted, None);
        assert_eq!((c.counts().free, c.counts().small, c.counts().main), (0, 1, 19));
        c.lookup(key(0, 0)).unwrap();
        let ins = c.insert(key(0, 21), Insert::Clean).unwrap();
        assert_eq!(ins.evicted, Some(key(0, 1)));
        assert!(c.peek(key(0, 20)).is_some() && c.peek(key(0, 0)).is_some());
        check(&c);
    }

    #[test]
    fn shrink_waits_for_dirty_and_filling_slots() {
        let mut c = cache(10);
        let mut fill = None;
        for b in 0..10u64 {
            let st = match b {
                8 => Insert::Dirty,
                9 => Insert::Filling,
                _ => Insert::Clean,
            };
            let ins = c.insert(key(0, b), st).unwrap();
            assert_eq!(u64::from(ins.slot), b);
            if b == 9 {
                fill = Some(ins);
            }
        }
        c.remove(key(0, 6));
        let r = c.shrink(6);
        assert_eq!(r, Shrink { released: 2, pending_dirty: 1, pending_filling: 1, truncated: 10..10 });
        assert!(!r.is_complete());
        assert_eq!(c.capacity(), 6);
        assert_eq!(c.slots(), 10);
        assert_eq!(c.peek(key(0, 7)), None, "Clean retiring keys are dropped");
        assert_eq!(c.peek(key(0, 8)).map(|p| p.1), Some(SlotState::Dirty));
        assert_eq!(c.counts().retiring, 2);
        check(&c);
        // Retiring slots are never handed out.
        for b in 100..120 {
            let ins = c.insert(key(0, b), Insert::Clean).unwrap();
            assert!(ins.slot < 6);
        }
        // A fill completing on a retiring slot is not installed; the slot goes.
        let fill = fill.unwrap();
        assert!(!c.fill_complete(fill.slot, key(0, 9), fill.gen));
        assert_eq!(c.peek(key(0, 9)), None);
        check(&c);
        assert_eq!(c.shrink(6), Shrink { released: 0, pending_dirty: 1, pending_filling: 0, truncated: 10..10 });
        // A destaged retiring slot is released at once.
        let g = c.begin_destage(8).unwrap();
        assert!(c.end_destage(8, g, true));
        assert_eq!(c.peek(key(0, 8)), None);
        assert_eq!(c.counts().retiring, 0);
        check(&c);
        let r = c.shrink(6);
        assert_eq!(r, Shrink { released: 0, pending_dirty: 0, pending_filling: 0, truncated: 6..10 });
        assert_eq!((c.capacity(), c.slots()), (6, 6));
        check(&c);
        // Done: calling again is harmless; a larger target does not grow.
        assert_eq!(c.shrink(6).truncated, 6..6);
        assert_eq!(c.shrink(100).truncated, 6..6);
        assert_eq!(c.capacity(), 6);
        check(&c);
    }

    #[test]
    fn shrink_to_zero() {
        let mut c = cache(70);
        for b in 0..70 {
            c.insert(key(1, b), if b % 3 == 0 { Insert::Clean } else { Insert::Dirty }).unwrap();
        }
        let r = c.shrink(0);
        assert_eq!((r.pending_dirty, r.released), (46, 24));
        check(&c);
        let mut out = [(0, key(0, 0)); 100];
        let (n, _) = c.dirty_scan(0, &mut out);
        assert_eq!(n, 46);
        for &(s, _) in &out[..n] {
            let g = c.begin_destage(s).unwrap();
            assert!(c.end_destage(s, g, true));
        }
        assert_eq!(c.shrink(0).truncated, 0..70);
        assert_eq!(c.metadata_bytes(), size_of::<C>());
        check(&c);
        assert_eq!(c.grow(3), Ok(0..3));
        check(&c);
    }

    #[test]
    fn grow_takes_back_retiring_slots() {
        let mut c = cache(10);
        for b in 0..10u64 {
            c.insert(key(0, b), if b == 8 { Insert::Dirty } else { Insert::Clean }).unwrap();
        }
        let r = c.shrink(5);
        assert_eq!((r.released, r.pending_dirty), (4, 1));
        // Back to 7: slots 5 and 6 are free again, without new pages.
        assert_eq!(c.grow(2), Ok(10..10));
        assert_eq!(c.capacity(), 7);
        assert_eq!(c.counts().free, 2);
        assert_eq!(c.counts().retiring, 1);
        check(&c);
        // Past the end: the pending slot is usable again and new ones are appended.
        assert_eq!(c.grow(10), Ok(10..17));
        assert_eq!(c.counts().retiring, 0);
        assert_eq!(c.counts().free, 2 + 2 + 7);
        assert_eq!(c.peek(key(0, 8)), Some((8, SlotState::Dirty)));
        check(&c);
        let g = c.begin_destage(8).unwrap();
        assert!(c.end_destage(8, g, true));
        assert_eq!(c.peek(key(0, 8)), Some((8, SlotState::Clean)), "no longer retiring: kept");
        check(&c);
    }

    #[test]
    fn grow_refuses_too_many_slots() {
        let mut c = cache(1);
        assert_eq!(c.grow(u32::MAX), Err(OutOfMemory));
        assert_eq!(c.grow(MAX_SLOTS), Err(OutOfMemory));
        assert_eq!(c.capacity(), 1);
        check(&c);
    }

    std::thread_local! {
        static ALLOCATIONS_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    struct FailVec<T>(Vec<T>);

    impl<T> Deref for FailVec<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            &self.0
        }
    }

    impl<T> DerefMut for FailVec<T> {
        fn deref_mut(&mut self) -> &mut [T] {
            &mut self.0
        }
    }

    impl<T: Copy> Store<T> for FailVec<T> {
        fn try_extend(&mut self, n: usize, value: T) -> Result<(), OutOfMemory> {
            if n > 0 {
                let left = ALLOCATIONS_LEFT.get();
                if left == 0 {
                    return Err(OutOfMemory);
                }
                ALLOCATIONS_LEFT.set(left - 1);
            }
            self.0.try_extend(n, value)
        }

        fn truncate_to(&mut self, len: usize) {
            self.0.truncate(len);
        }
    }

    struct FailStores;

    impl Stores for FailStores {
        type Array<T: Copy> = FailVec<T>;
        fn empty<T: Copy>() -> FailVec<T> {
            FailVec(Vec::new())
        }
    }

    #[test]
    fn failed_grow_changes_nothing() {
        let mut c = Cache::<FailStores>::new(9);
        c.grow(10).unwrap();
        c.insert(key(0, 1), Insert::Dirty).unwrap();
        c.insert(key(0, 2), Insert::Clean).unwrap();
        let bytes = c.metadata_bytes();
        let counts = c.counts();
        // Nine arrays grow from 10 to 110 slots: fail each allocation in turn.
        for budget in 0..9 {
            ALLOCATIONS_LEFT.set(budget);
            assert_eq!(c.grow(100), Err(OutOfMemory));
            assert_eq!((c.metadata_bytes(), c.counts(), c.capacity()), (bytes, counts, 10));
            check(&c);
        }
        ALLOCATIONS_LEFT.set(9);
        assert_eq!(c.grow(100), Ok(10..110));
        ALLOCATIONS_LEFT.set(usize::MAX);
        assert_eq!(c.peek(key(0, 1)).map(|p| p.1), Some(SlotState::Dirty));
        assert_eq!(c.peek(key(0, 2)).map(|p| p.1), Some(SlotState::Clean));
        check(&c);
    }

    #[test]
    fn dirty_scan_walks_the_bitmap() {
        let mut c = cache(200);
        let dirty = [3u32, 64, 65, 130, 199];
        for b in 0..200u32 {
            let st = if dirty.contains(&b) { Insert::Dirty } else { Insert::Clean };
            assert_eq!(c.insert(key(0, u64::from(b)), st).unwrap().slot, b);
        }
        let mut out = [(0, key(0, 0)); 2];
        assert_eq!(c.dirty_scan(0, &mut out), (2, 65));
        assert_eq!(out, [(3, key(0, 3)), (64, key(0, 64))]);
        let mut out = [(0, key(0, 0)); 10];
        assert_eq!(c.dirty_scan(65, &mut out), (3, 200));
        assert_eq!(&out[..3], &[(65, key(0, 65)), (130, key(0, 130)), (199, key(0, 199))]);
        c.begin_destage(130).unwrap();
        assert_eq!(c.dirty_scan(66, &mut out), (1, 200));
        assert_eq!(out[0].0, 199);
        assert_eq!(c.dirty_scan(4, &mut out[..1]), (1, 65));
        assert_eq!(c.dirty_scan(200, &mut out), (0, 200));
        assert_eq!(c.dirty_scan(7, &mut []), (0, 7));
        assert_eq!(c.dirty_scan(0, &mut out), (4, 200));
    }

    // ---- Property test against a reference model ----

    /// `Orphan`: removed during a destage, free when the destage ends. `FillOrphan`:
    /// removed during a fill, free when that fill (of this key) ends.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum MSlot {
        Free,
        Released,
        Live { key: Key, state: SlotState, destaging: bool, redirty: bool },
        Orphan(Key),
        FillOrphan(Key),
    }

    /// What the cache must hold, slot by slot. It cannot predict the eviction victim,
    /// so it checks the one the cache chose instead.
    #[derive(Default)]
    struct Model {
        slots: Vec<MSlot>,
        gens: Vec<u16>,
        cap: u32,
    }

    impl Model {
        fn find(&self, k: Key) -> Option<u32> {
            self.slots.iter().position(|m| matches!(m, MSlot::Live { key, .. } if *key == k)).map(|s| s as u32)
        }

        fn live(&self, s: u32) -> Option<(Key, SlotState, bool, bool)> {
            match self.slots.get(s as usize) {
                Some(&MSlot::Live { key, state, destaging, redirty }) => Some((key, state, destaging, redirty)),
                _ => None,
            }
        }

        fn set(&mut self, s: u32, m: MSlot) {
            self.slots[s as usize] = m;
        }

        fn bump(&mut self, s: u32) -> u16 {
            let g = &mut self.gens[s as usize];
            *g = g.wrapping_add(1);
            *g
        }

        /// A slot losing its key: Free, or Released if retiring; the generation moves.
        fn drop_key(&mut self, s: u32) {
            self.bump(s);
            self.park(s);
        }

        fn park(&mut self, s: u32) {
            self.set(s, if s < self.cap { MSlot::Free } else { MSlot::Released });
        }

        fn count(&self, f: impl Fn(&MSlot) -> bool) -> u32 {
            self.slots.iter().filter(|m| f(m)).count() as u32
        }

        fn has_state(&self, st: SlotState) -> bool {
            self.slots.iter().any(|m| matches!(m, MSlot::Live { state, .. } if *state == st))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Grow(u32),
        Shrink(u32),
        Insert(u8, u8),
        Lookup(u8),
        Peek(u8),
        Remove(u8),
        WriteHit(u32),
        FillComplete(u16, u8),
        FillFailed(u16, u8),
        BeginDestage(u32),
        EndDestage(u16, bool, u8),
        DirtyScan(u32, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (1u32..10).prop_map(Op::Grow),
            1 => (0u32..10).prop_map(Op::Shrink),
            10 => (any::<u8>(), 0u8..4).prop_map(|(k, s)| Op::Insert(k, s)),
            5 => any::<u8>().prop_map(Op::Lookup),
            1 => any::<u8>().prop_map(Op::Peek),
            3 => any::<u8>().prop_map(Op::Remove),
            4 => any::<u32>().prop_map(Op::WriteHit),
            4 => (any::<u16>(), 0u8..4).prop_map(|(t, c)| Op::FillComplete(t, c)),
            2 => (any::<u16>(), 0u8..4).prop_map(|(t, c)| Op::FillFailed(t, c)),
            4 => any::<u32>().prop_map(Op::BeginDestage),
            4 => (any::<u16>(), any::<bool>(), 0u8..4)
                .prop_map(|(t, ok, c)| Op::EndDestage(t, ok, c)),
            1 => (any::<u32>(), 0u8..5).prop_map(|(c, n)| Op::DirtyScan(c, n)),
        ]
    }

    /// 40 keys: enough collisions to hit, few enough to fill small caches.
    fn ukey(i: u8) -> Key {
        let i = i % 40;
        let block = if i >= 36 { Key::MAX_BLOCK - u64::from(i - 36) } else { u64::from(i / 3) };
        key(u16::from(i % 3), block)
    }

    /// Usually one of the slots `want` accepts (so that operations mostly apply),
    /// otherwise any id.
    fn pick_where(m: &Model, x: u32, want: impl Fn(&MSlot) -> bool) -> u32 {
        let cands: Vec<u32> = (0..m.slots.len() as u32).filter(|&s| want(&m.slots[s as usize])).collect();
        if x.is_multiple_of(4) || cands.is_empty() {
            pick(m.slots.len(), x / 4)
        } else {
            cands[(x / 4) as usize % cands.len()]
        }
    }

    /// A slot id: mostly valid, sometimes just past the end, sometimes `u32::MAX`.
    fn pick(len: usize, x: u32) -> u32 {
        let r = x % (len as u32 + 2);
        if r == len as u32 + 1 {
            u32::MAX
        } else {
            r
        }
    }

    fn compare(c: &C, m: &Model) {
        assert_eq!(c.slots() as usize, m.slots.len());
        assert_eq!(c.capacity(), m.cap);
        for (i, ms) in m.slots.iter().enumerate() {
            let s = i as u32;
            assert_eq!(c.gen_of(s), Some(m.gens[i]), "gen of {s}");
            let f = c.flags[i];
            match *ms {
                MSlot::Free => {
                    assert!(s < m.cap);
                    assert_eq!(list_bits(f), L_FREE);
                }
                MSlot::Released => {
                    assert!(s >= m.cap);
                    assert_eq!(f, 0);
                }
                MSlot::Orphan(k) => {
                    assert_eq!((state_bits(f), f & DESTAGING), (ST_FREE, DESTAGING));
                    assert_eq!(c.keys[i], k.0);
                }
                MSlot::FillOrphan(k) => {
                    assert_eq!(f, ST_FILLING | ORPHAN_FILL);
                    assert_eq!(c.keys[i], k.0);
                    assert_ne!(c.peek(k).map(|p| p.0), Some(s), "orphan fill found");
                }
                MSlot::Live { key, state, destaging, redirty } => {
                    assert_eq!(c.key_of(s), Some(key));
                    assert_eq!(c.state_of(s), Some(state));
                    assert_eq!(c.peek(key), Some((s, state)), "key maps back to its slot");
                    assert_eq!((f & DESTAGING != 0, f & REDIRTY != 0), (destaging, redirty));
                }
            }
            if !matches!(ms, MSlot::Live { .. }) {
                assert_eq!(c.key_of(s), None);
                let want = match ms {
                    // Busy until its fill ends, and counted as such.
                    MSlot::FillOrphan(_) => SlotState::Filling,
                    _ => SlotState::Free,
                };
                assert_eq!(c.state_of(s), Some(want));
            }
        }
        let st = |want: SlotState| m.count(|x| matches!(x, MSlot::Live { state, .. } if *state == want));
        let k = c.counts();
        assert_eq!(k.free, m.count(|x| *x == MSlot::Free));
        let orphan_fills = m.count(|x| matches!(x, MSlot::FillOrphan(_)));
        assert_eq!(
            (k.filling, k.clean, k.dirty),
            (st(SlotState::Filling) + orphan_fills, st(SlotState::Clean), st(SlotState::Dirty))
        );
        assert_eq!(k.small + k.main + orphan_fills, k.filling + k.clean + k.dirty);
        assert_eq!(k.orphaned, m.count(|x| matches!(x, MSlot::Orphan(_))));
        assert_eq!(k.destaging, k.orphaned + m.count(|x| matches!(x, MSlot::Live { destaging: true, .. })));
        let retiring = m.slots[m.cap as usize..].iter().filter(|x| **x != MSlot::Released).count() as u32;
        assert_eq!(k.retiring, retiring);
        assert_eq!(k.free + k.filling + k.clean + k.dirty + k.orphaned, m.cap + retiring);
    }

    fn run(ops: &[Op]) {
        let mut c = C::new(0xfeed_f00d);
        let mut m = Model::default();
        let mut fills: Vec<(u32, Key, u16)> = Vec::new();
        let mut destages: Vec<(u32, u16)> = Vec::new();
        for op in ops {
            let len = m.slots.len();
            match *op {
                Op::Grow(n) => {
                    let old_len = len as u32;
                    let target = m.cap + n;
                    for s in m.cap..old_len.min(target) {
                        if m.slots[s as usize] == MSlot::Released {
                            m.slots[s as usize] = MSlot::Free;
                        }
                    }
                    m.cap = target;
                    let new_len = old_len.max(target);
                    m.slots.resize(new_len as usize, MSlot::Free);
                    m.gens.resize(new_len as usize, 0);
                    assert_eq!(c.grow(n), Ok(old_len..new_len));
                }
                Op::Shrink(x) => {
                    let asked = (m.cap + 1).saturating_sub(x);
                    let t = asked.min(m.cap);
                    m.cap = t;
                    let (mut released, mut pd, mut pf) = (0, 0, 0);
                    for s in t..len as u32 {
                        match m.slots[s as usize] {
                            MSlot::Free => {
                                m.set(s, MSlot::Released);
                                released += 1;
                            }
                            MSlot::Live { state: SlotState::Clean, .. } => {
                                m.drop_key(s);
                                released += 1;
                            }
                            MSlot::Live { state: SlotState::Filling, .. } | MSlot::FillOrphan(_) => pf += 1,
                            MSlot::Live { .. } | MSlot::Orphan(_) => pd += 1,
                            MSlot::Released => {}
                        }
                    }
                    let len = len as u32;
                    let truncated = if pd + pf == 0 && t < len {
                        m.slots.truncate(t as usize);
                        m.gens.truncate(t as usize);
                        t..len
                    } else {
                        len..len
                    };
                    let want = Shrink { released, pending_dirty: pd, pending_filling: pf, truncated };
                    assert_eq!(c.shrink(asked), want);
                    if want.is_complete() {
                        assert_eq!(c.capacity(), asked.min(c.capacity()));
                        assert_eq!(c.slots(), t);
                    }
                }
                Op::Insert(k, st) => {
                    let k = ukey(k);
                    let (ins, state) = match st {
                        0 => (Insert::Filling, SlotState::Filling),
                        1 => (Insert::Dirty, SlotState::Dirty),
                        // Clean twice as often, so that evictions are not rare.
                        _ => (Insert::Clean, SlotState::Clean),
                    };
                    let had_free = m.slots.contains(&MSlot::Free);
                    let had_clean = m.has_state(SlotState::Clean);
                    match (c.insert(k, ins), m.find(k)) {
                        (Err(InsertError::AlreadyPresent(s)), Some(ms)) => assert_eq!(s, ms),
                        (Err(InsertError::Full), None) => {
                            assert!(!had_free && !had_clean, "Full although a free or Clean slot existed");
                        }
                        (Ok(r), None) => {
                            assert!(r.slot < m.cap, "retiring slot {} handed out", r.slot);
                            if let Some(v) = r.evicted {
                                assert!(!had_free, "evicted with a free slot available");
                                let vs = m.find(v).expect("evicted key was present");
                                assert_eq!(vs, r.slot, "the victim's slot is reused");
                                assert_eq!(m.live(vs).unwrap().1, SlotState::Clean, "evicted a non-Clean slot");
                                m.drop_key(vs);
                            }
                            assert_eq!(m.slots[r.slot as usize], MSlot::Free);
                            m.set(r.slot, MSlot::Live { key: k, state, destaging: false, redirty: false });
                            assert_eq!(r.gen, m.bump(r.slot));
                            if ins == Insert::Filling {
                                fills.push((r.slot, k, r.gen));
                            }
                        }
                        (got, want) => panic!("insert: got {got:?}, model has {want:?}"),
                    }
                }
                Op::Lookup(k) => {
                    let k = ukey(k);
                    let want = m.find(k).filter(|&s| m.live(s).unwrap().1 != SlotState::Filling);
                    assert_eq!(c.lookup(k), want);
                }
                Op::Peek(k) => {
                    let k = ukey(k);
                    assert_eq!(c.peek(k), m.find(k).map(|s| (s, m.live(s).unwrap().1)));
                }
                Op::Remove(k) => {
                    let k = ukey(k);
                    let want = m.find(k);
                    assert_eq!(c.remove(k), want);
                    if let Some(s) = want {
                        let (_, state, destaging, _) = m.live(s).unwrap();
                        if destaging {
                            m.bump(s);
                            m.set(s, MSlot::Orphan(k));
                        } else if state == SlotState::Filling {
                            // The fill still writes the slot's page: kept until it ends.
                            m.bump(s);
                            m.set(s, MSlot::FillOrphan(k));
                        } else {
                            m.drop_key(s);
                        }
                    }
                }
                Op::WriteHit(x) => {
                    let s = pick_where(&m, x, |x| matches!(x, MSlot::Live { .. }));
                    match m.live(s) {
                        Some((key, _, destaging, redirty)) => {
                            m.set(
                                s,
                                MSlot::Live { key, state: SlotState::Dirty, destaging, redirty: redirty || destaging },
                            );
                            let g = m.bump(s);
                            assert_eq!(c.write_hit(s), Some(g));
                        }
                        None => assert_eq!(c.write_hit(s), None),
                    }
                }
                Op::FillComplete(t, corrupt) | Op::FillFailed(t, corrupt) => {
                    let (s, k, g) = match fills.len() {
                        0 => (pick(len, u32::from(t)), ukey(t as u8), t),
                        n => fills[t as usize % n],
                    };
                    let (k, g) = match corrupt {
                        1 => (k, g.wrapping_add(1)),
                        2 => (ukey(t as u8), g),
                        _ => (k, g),
                    };
                    let matches = m.live(s).is_some_and(|(key, st, _, _)| key == k && st == SlotState::Filling)
                        && m.gens[s as usize] == g;
                    if m.slots.get(s as usize) == Some(&MSlot::FillOrphan(k)) {
                        // The end of an orphaned fill, whatever the generation: the slot
                        // is free (released if retiring), the fill refused.
                        m.drop_key(s);
                        let got = match op {
                            Op::FillComplete(..) => c.fill_complete(s, k, g),
                            _ => c.fill_failed(s, k, g),
                        };
                        assert!(!got, "orphaned fill of slot {s} accepted");
                    } else if let Op::FillComplete(..) = op {
                        let installed = matches && s < m.cap;
                        if installed {
                            m.set(s, MSlot::Live { key: k, state: SlotState::Clean, destaging: false, redirty: false });
                        } else if matches {
                            m.drop_key(s);
                        }
                        assert_eq!(c.fill_complete(s, k, g), installed);
                    } else {
                        if matches {
                            m.drop_key(s);
                        }
                        assert_eq!(c.fill_failed(s, k, g), matches);
                    }
                }
                Op::BeginDestage(x) => {
                    let s = pick_where(&m, x, |x| matches!(x, MSlot::Live { state: SlotState::Dirty, .. }));
                    let orphan_of = |k: Key| m.slots.contains(&MSlot::Orphan(k));
                    match m.live(s) {
                        Some((key, SlotState::Dirty, false, _)) if !orphan_of(key) => {
                            m.set(s, MSlot::Live { key, state: SlotState::Dirty, destaging: true, redirty: false });
                            let g = m.gens[s as usize];
                            assert_eq!(c.begin_destage(s), Some(g));
                            destages.push((s, g));
                        }
                        _ => assert_eq!(c.begin_destage(s), None),
                    }
                }
                Op::EndDestage(t, ok, corrupt) => {
                    let (s, g) = match destages.len() {
                        0 => (pick(len, u32::from(t)), t),
                        n => destages[t as usize % n],
                    };
                    let g = if corrupt == 1 { g.wrapping_add(1) } else { g };
                    let want = match m.slots.get(s as usize).copied() {
                        Some(MSlot::Orphan(_)) => {
                            m.park(s);
                            false
                        }
                        Some(MSlot::Live { key, state, destaging: true, redirty }) => {
                            assert_eq!(state, SlotState::Dirty);
                            let clean = ok && !redirty && g == m.gens[s as usize];
                            let state = if clean { SlotState::Clean } else { SlotState::Dirty };
                            m.set(s, MSlot::Live { key, state, destaging: false, redirty: false });
                            if clean && s >= m.cap {
                                m.drop_key(s);
                            }
                            clean
                        }
                        _ => false,
                    };
                    assert_eq!(c.end_destage(s, g, ok), want);
                }
                Op::DirtyScan(x, n) => {
                    let cursor = pick(len, x);
                    let mut want: Vec<(u32, Key)> = (cursor.min(len as u32)..len as u32)
                        .filter_map(|s| match m.live(s) {
                            Some((k, SlotState::Dirty, false, _)) => Some((s, k)),
                            _ => None,
                        })
                        .collect();
                    let n = usize::from(n);
                    let next = if n == 0 {
                        cursor.min(len as u32)
                    } else if want.len() >= n {
                        want[n - 1].0 + 1
                    } else {
                        len as u32
                    };
                    want.truncate(n);
                    let mut out = vec![(0, key(0, 0)); n];
                    let (got, cursor) = c.dirty_scan(cursor, &mut out);
                    assert_eq!((&out[..got], cursor), (&want[..], next));
                }
            }
            check(&c);
            compare(&c, &m);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random operation sequences keep the cache equal to the model, Dirty data
        /// included, and every structure consistent.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            run(&ops);
        }
    }

    // ---- Scan resistance ----

    /// A textbook LRU, for comparison.
    struct Lru {
        cap: usize,
        tick: u64,
        by_key: HashMap<Key, u64>,
        by_tick: BTreeMap<u64, Key>,
    }

    impl Lru {
        fn access(&mut self, k: Key) -> bool {
            self.tick += 1;
            let hit = match self.by_key.insert(k, self.tick) {
                Some(old) => {
                    self.by_tick.remove(&old);
                    true
                }
                None => false,
            };
            self.by_tick.insert(self.tick, k);
            if self.by_key.len() > self.cap {
                let (_, victim) = self.by_tick.pop_first().unwrap();
                self.by_key.remove(&victim);
            }
            hit
        }
    }

    fn access(c: &mut C, k: Key) -> bool {
        if c.lookup(k).is_some() {
            return true;
        }
        c.insert(k, Insert::Clean).unwrap();
        false
    }

    /// Hot-set hit ratios of S3-FIFO and LRU (1000 slots each) while 500 hot keys are
    /// accessed in turn, one every `scan_per_hot` keys of a one-time scan of 100000.
    /// With `warm`, the hot set is accessed alone five times first.
    fn scan(warm: bool, scan_per_hot: u64) -> (f64, f64, f64) {
        let mut c = cache(1000);
        let mut lru = Lru { cap: 1000, tick: 0, by_key: HashMap::new(), by_tick: BTreeMap::new() };
        let hot: Vec<Key> = (0..500).map(|b| key(1, b)).collect();
        if warm {
            for _ in 0..5 {
                for &k in &hot {
                    access(&mut c, k);
                    lru.access(k);
                }
            }
        }
        let (mut hits, mut lru_hits, mut late_hits, mut n) = (0u32, 0u32, 0u32, 0u32);
        for i in 0..100_000u64 {
            let k = key(2, i);
            access(&mut c, k);
            lru.access(k);
            if i % scan_per_hot == scan_per_hot - 1 {
                let h = hot[(i / scan_per_hot) as usize % hot.len()];
                let hit = access(&mut c, h);
                hits += u32::from(hit);
                lru_hits += u32::from(lru.access(h));
                n += 1;
                if i >= 50_000 {
                    late_hits += u32::from(hit);
                }
            }
        }
        check(&c);
        let ratio = |x: u32, n: u32| f64::from(x) / f64::from(n);
        (ratio(hits, n), ratio(late_hits, n - n / 2), ratio(lru_hits, n))
    }

    #[test]
    fn scan_resistance() {
        // After warm-up: the hot set stays in M while the scan churns S. Between two
        // accesses to a hot key come 1500 other keys, too many for LRU.
        let (s3, _, lru) = scan(true, 2);
        println!("warm, 2 scanned per hot access: hot-set hit ratio S3-FIFO {s3:.3}, LRU {lru:.3}");
        assert!(s3 >= 0.8 && s3 >= lru + 0.5, "S3-FIFO {s3} vs LRU {lru}");
        // Cold: the hot set is learned during the scan, through the ghost.
        let (s3, late, lru) = scan(false, 3);
        println!(
            "cold, 3 scanned per hot access: hot-set hit ratio S3-FIFO {s3:.3} \
             ({late:.3} in the second half), LRU {lru:.3}"
        );
        assert!(late >= 0.95 && s3 >= lru + 0.5, "S3-FIFO {s3} ({late}) vs LRU {lru}");
    }

    // ---- Metadata budget ----

    #[test]
    fn metadata_budget() {
        for n in [1024u32, 1000, 1025, 65536, 100_000, 1 << 20] {
            let c = cache(n);
            let bytes = c.metadata_bytes() + n as usize * KERNEL_PAGE_REF_BYTES;
            let per_slot = bytes as f64 / f64::from(n);
            println!("bytes per slot: {per_slot:.3} ({n} slots, pfn included)");
            assert!(bytes <= n as usize * BUDGET_BYTES_PER_SLOT, "{per_slot} bytes per slot");
        }
    }
}
