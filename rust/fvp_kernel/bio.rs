// SPDX-License-Identifier: GPL-2.0

//! Block I/O requests (`struct bio`) as device-mapper hands them to a target.
//!
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use super::bindings;
use super::mempool::PoolArc;
use super::pages::{CountedPage, PageRef};
use core::mem::MaybeUninit;
use core::num::NonZeroU32;
use core::pin::Pin;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU8, Ordering};
use kernel::error::to_result;
use kernel::init::PinInit;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// A block device a target has opened (`struct block_device`).
///
/// # Invariants
///
/// The wrapped `block_device` is open for as long as any reference to this type exists:
/// references are only handed out by owners that keep the device open (see
/// [`super::dm::TargetDevice`]).
#[repr(transparent)]
pub struct BlockDevice(Opaque<bindings::block_device>);

impl BlockDevice {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an open block device that stays open for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::block_device) -> &'a Self {
        // SAFETY: `BlockDevice` is `repr(transparent)` over `block_device`, and the caller
        // guarantees the pointer is valid for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for calls into C.
    pub(crate) fn as_raw(&self) -> *mut bindings::block_device {
        self.0.get()
    }

    /// The device number (`dev_t`).
    pub fn devt(&self) -> u32 {
        // SAFETY: the device is open (type invariant); `bd_dev` never changes.
        unsafe { (*self.as_raw()).bd_dev }
    }

    /// The size of the device in 512-byte sectors.
    pub fn nr_sectors(&self) -> u64 {
        // SAFETY: By the type invariant the device is open, so reading its size is valid.
        unsafe { bindings::fvp_helper_bdev_nr_sectors(self.as_raw()) }
    }
}

// SAFETY: A `block_device` may be used from any thread; the kernel synchronises its state.
unsafe impl Sync for BlockDevice {}
// SAFETY: See the `Sync` impl: nothing in a `block_device` is tied to one thread.
unsafe impl Send for BlockDevice {}

/// The operation a bio carries (the `REQ_OP_*` part of `bi_opf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`.
    Write,
    /// `REQ_OP_FLUSH` (device-mapper turns flushes into empty writes with `PREFLUSH`).
    Flush,
    /// `REQ_OP_DISCARD`.
    Discard,
    /// `REQ_OP_WRITE_ZEROES`.
    WriteZeroes,
    /// Anything else (zone operations, driver-private operations).
    Other,
}

/// Completion status of a bio (`blk_status_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BioStatus(u8);

impl BioStatus {
    /// `BLK_STS_OK`.
    pub const OK: Self = Self(0);
    /// `BLK_STS_IOERR`.
    pub const IOERR: Self = Self(bindings::FVP_BLK_STS_IOERR);

    /// The `blk_status_t` value.
    pub fn raw(self) -> u8 {
        self.0
    }

    /// Whether the I/O succeeded.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }
}

/// A bio that device-mapper handed to a target's `map`, owned by the target until it
/// remaps or completes it.
///
/// # Invariants
///
/// `bio` is live and owned by this value: device-mapper gave it to `map`, and it has been
/// neither remapped (returned to device-mapper) nor completed. Its per-bio data holds a
/// [`PerBio`], initialised by [`DmBio::from_raw`], whose `refs` counts this value plus
/// every clone made by [`DmBio::clone_range`] that has not ended yet.
pub struct DmBio {
    bio: core::ptr::NonNull<bindings::bio>,
}

// SAFETY: a bio may be completed from any thread; the value owns it exclusively.
unsafe impl Send for DmBio {}
// SAFETY: shared access only reads immutable fields of the bio.
unsafe impl Sync for DmBio {}

/// What fvp keeps in device-mapper's per-bio data of each mapped bio (the target's
/// `per_io_data_size` is set to its size): the bio completes only when its owner
/// completed it and every clone sharing its pages ended, so no clone ever reads or
/// fills pages its submitter has already taken back.
#[repr(C, align(8))]
pub(crate) struct PerBio {
    /// The `DmBio` (until completed) plus each clone in flight.
    refs: AtomicU32,
    /// The status its owner completed it with.
    status: AtomicU8,
    /// Non-zero: the target's tag of a bio remapped by [`DmBio::remap_tagged`], handed
    /// to its `end_io` once (then zero).
    tag: AtomicU32,
    /// With `tag`: when the target mapped it (ns, `ktime_get`).
    start_ns: AtomicI64,
}

/// What [`DmBio::remap_tagged`] left for the target's `end_io`.
pub struct RemapTag {
    /// The tag given to `remap_tagged`.
    pub tag: NonZeroU32,
    /// When the bio was mapped.
    pub start: kernel::time::Ktime,
}

/// Takes the tag a remapped bio carries, if any (at most once per bio).
///
/// # Safety
///
/// `bio` is a bio device-mapper passed to an fvp target's `map`, now completing (its
/// per-bio data is alive until the target's `end_io` returns).
pub(crate) unsafe fn take_remap_tag(bio: *mut bindings::bio) -> Option<RemapTag> {
    // SAFETY: the caller's guarantee.
    let pb = unsafe { per_bio(bio) };
    let tag = NonZeroU32::new(pb.tag.swap(0, Ordering::AcqRel))?;
    let start = kernel::time::Ktime::from_raw(pb.start_ns.load(Ordering::Relaxed));
    Some(RemapTag { tag, start })
}

/// Bytes of per-bio data every fvp target asks device-mapper for.
pub(crate) const PER_BIO_SIZE: usize = core::mem::size_of::<PerBio>();

/// # Safety
///
/// `bio` is a bio device-mapper passed to an fvp target's `map`, not yet completed.
unsafe fn per_bio<'a>(bio: *mut bindings::bio) -> &'a PerBio {
    // SAFETY: device-mapper reserved `PER_BIO_SIZE` bytes of per-bio data in front of the
    // bio (the target's `per_io_data_size`), aligned to 8 (the bio and dm's offsets are
    // multiples of 8, and so is `PER_BIO_SIZE`); they live until the bio completes.
    unsafe { &*bindings::dm_per_bio_data(bio, PER_BIO_SIZE).cast::<PerBio>() }
}

/// Drops one reference on a mapped bio's completion (see [`PerBio`]); the last one
/// completes it with the status its owner gave.
///
/// # Safety
///
/// The caller owns one of the references `refs` counts and gives it up.
unsafe fn put_mapped(bio: *mut bindings::bio) {
    // SAFETY: the reference keeps the bio, so its per-bio data, alive.
    let pb = unsafe { per_bio(bio) };
    if pb.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        let status = pb.status.load(Ordering::Acquire);
        // SAFETY: the last reference: nobody else touches the bio or its per-bio data,
        // which `bio_endio` frees.
        unsafe {
            (*bio).bi_status = status;
            bindings::bio_endio(bio);
        }
    }
}

impl DmBio {
    /// # Safety
    ///
    /// `bio` must be a bio device-mapper passed to `map` of a target whose
    /// `per_io_data_size` is at least [`PER_BIO_SIZE`], whose ownership moves to the new
    /// value.
    pub(crate) unsafe fn from_raw(bio: *mut bindings::bio) -> Self {
        let bio = core::ptr::NonNull::new(bio).expect("device-mapper passes a bio");
        // SAFETY: the per-bio data is ours (the caller's guarantee) and uninitialised.
        unsafe {
            bindings::dm_per_bio_data(bio.as_ptr(), PER_BIO_SIZE).cast::<PerBio>().write(PerBio {
                refs: AtomicU32::new(1),
                status: AtomicU8::new(0),
                tag: AtomicU32::new(0),
                start_ns: AtomicI64::new(0),
            })
        };
        // INVARIANT: ownership is the caller's guarantee; the per-bio data is set up.
        Self { bio }
    }

    /// Whether clones of this bio are still in flight.
    fn has_clones(&self) -> bool {
        // SAFETY: the bio is live and mapped (invariant).
        unsafe { per_bio(self.bio.as_ptr()) }.refs.load(Ordering::Acquire) > 1
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: the bio is live (type invariant).
        unsafe { self.bio.as_ref() }
    }

    /// First sector the bio addresses.
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Bytes of data.
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// The raw `bi_opf`.
    pub fn opf(&self) -> u32 {
        self.raw().bi_opf
    }

    /// The operation.
    pub fn op(&self) -> Op {
        op_of(self.opf())
    }

    /// Whether the device's volatile cache must be flushed before the data is written.
    pub fn is_preflush(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_PREFLUSH) != 0
    }

    /// Whether the data must be durable when the bio completes.
    pub fn is_fua(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_FUA) != 0
    }

    fn check_range(&self, offset: u32, len: u32) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.size())
    }

    /// Copies between the bio's data, `offset` bytes in, and a page.
    ///
    /// # Safety
    ///
    /// `page` must stay allocated during the call; when `to_bio`, the caller must have
    /// exclusive access to the bio (`&mut self`).
    unsafe fn copy(&self, offset: u32, page: *mut bindings::page, page_offset: u32, len: u32, to_bio: bool) -> bool {
        if !self.check_range(offset, len) || page_offset as usize + len as usize > PAGE_SIZE {
            return false;
        }
        // SAFETY: the bio is live and ours (type invariant); both ranges were checked;
        // the page is allocated and, for writes into the bio, we are its only writer
        // (the caller's guarantees).
        unsafe { bindings::fvp_helper_bio_copy_page(self.bio.as_ptr(), offset, page, page_offset, len, to_bio) };
        true
    }

    /// Copies `len` bytes of the bio's data starting `offset` bytes in into `page` at
    /// `page_offset`. Out-of-range requests copy nothing and return `false`.
    pub fn copy_to_page(&self, offset: u32, page: PageRef<'_>, page_offset: u32, len: u32) -> bool {
        // SAFETY: `page` borrows its array, so it stays allocated.
        unsafe { self.copy(offset, page.as_raw(), page_offset, len, false) }
    }

    /// Copies `len` bytes from `page` at `page_offset` into the bio's data starting
    /// `offset` bytes in. Out-of-range requests copy nothing and return `false`.
    pub fn copy_from_page(&mut self, offset: u32, page: PageRef<'_>, page_offset: u32, len: u32) -> bool {
        // SAFETY: `page` borrows its array; `&mut self` gives exclusive access.
        unsafe { self.copy(offset, page.as_raw(), page_offset, len, true) }
    }

    /// Copies bio data into a counted page (see [`Self::copy_to_page`]); the caller
    /// must be the only writer of that part of the page.
    pub fn copy_to_counted(&self, offset: u32, page: &CountedPage, page_offset: u32, len: u32) -> bool {
        // SAFETY: the counted page holds a reference; the bio is only read.
        unsafe { self.copy(offset, page.as_raw(), page_offset, len, false) }
    }

    /// Copies from a counted page (see [`Self::copy_from_page`]).
    pub fn copy_from_counted(&mut self, offset: u32, page: &CountedPage, page_offset: u32, len: u32) -> bool {
        // SAFETY: the counted page holds a reference; `&mut self` gives exclusive access.
        unsafe { self.copy(offset, page.as_raw(), page_offset, len, true) }
    }

    /// Sends the bio to `bdev` at `sector`; device-mapper submits it. A bio whose clones
    /// are still in flight cannot be given back (it could complete before them): it is
    /// failed instead, once they end.
    pub fn remap(self, bdev: &BlockDevice, sector: u64) -> super::dm::MapResult {
        if self.has_clones() {
            pr_err!("fvp: remap of a bio with clones in flight; failing it\n");
            self.complete(BioStatus::IOERR);
            return super::dm::MapResult::submitted();
        }
        let bio = self.bio.as_ptr();
        core::mem::forget(self);
        // SAFETY: the bio was ours (invariant, now given back to device-mapper by
        // returning `Remapped`); `bdev` is open.
        unsafe {
            bindings::fvp_helper_bio_set_dev(bio, bdev.as_raw());
            (*bio).bi_iter.bi_sector = sector;
        }
        super::dm::MapResult::remapped(bio)
    }

    /// Like [`DmBio::remap`], and when the bio completes, device-mapper calls the
    /// target's `end_io` with `tag` and `start` (`Target::end_io`): what the target must
    /// release then (a read of slots that must not be reused before it ended).
    pub fn remap_tagged(
        self,
        bdev: &BlockDevice,
        sector: u64,
        tag: NonZeroU32,
        start: kernel::time::Ktime,
    ) -> super::dm::MapResult {
        // SAFETY: the bio is live and mapped (invariant).
        let pb = unsafe { per_bio(self.bio.as_ptr()) };
        pb.start_ns.store(start.to_ns(), Ordering::Relaxed);
        // Published by the submission, which happens before the completion.
        pb.tag.store(tag.get(), Ordering::Release);
        self.remap(bdev, sector)
    }

    /// Gives the bio back to device-mapper to be mapped again later (e.g. when memory
    /// for handling it was short).
    pub fn requeue(self) -> super::dm::MapResult {
        if self.has_clones() {
            pr_err!("fvp: requeue of a bio with clones in flight; failing it\n");
            self.complete(BioStatus::IOERR);
            return super::dm::MapResult::submitted();
        }
        let bio = self.bio.as_ptr();
        core::mem::forget(self);
        // The bio was ours (invariant); returning `Requeue` hands it back untouched.
        super::dm::MapResult::requeue(bio)
    }

    /// Completes the bio with `status`: now, or when the last of its clones ends.
    pub fn complete(self, status: BioStatus) {
        let bio = self.bio.as_ptr();
        core::mem::forget(self);
        // SAFETY: the bio is live and mapped (invariant).
        unsafe { per_bio(bio) }.status.store(status.0, Ordering::Release);
        // SAFETY: this value's reference, given up (it was forgotten above).
        unsafe { put_mapped(bio) };
    }

    /// A new bio for bytes `[offset, offset + len)` of this bio's data, aimed at `bdev`
    /// at `sector`, sharing this bio's pages. `offset` and `len` must be multiples of
    /// 512. This bio's completion waits for the clone to end (or be dropped unsent).
    pub fn clone_range(
        &self,
        bioset: &BioSet,
        bdev: &BlockDevice,
        offset: u32,
        len: u32,
        sector: u64,
    ) -> Result<OwnedBio> {
        if !self.check_range(offset, len) || offset % 512 != 0 || len % 512 != 0 || len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: the source bio is live; the bio set is initialised (its invariant).
        let clone = unsafe {
            bindings::bio_alloc_clone(bdev.as_raw(), self.bio.as_ptr(), bindings::FVP_GFP_NOIO, bioset.as_raw())
        };
        let clone = core::ptr::NonNull::new(clone).ok_or(ENOMEM)?;
        // SAFETY: `clone` is a fresh bio of `len + offset` bytes or more; trimming
        // within the source's range is valid.
        unsafe {
            bindings::bio_trim(clone.as_ptr(), (offset / 512) as u64, (len / 512) as u64);
            (*clone.as_ptr()).bi_iter.bi_sector = sector;
        }
        // SAFETY: the bio is live and mapped (invariant).
        unsafe { per_bio(self.bio.as_ptr()) }.refs.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `clone` comes from fvp's bio set, so it has a front pad, ours to set.
        unsafe { init_front_pad(clone.as_ptr(), self.bio.as_ptr()) };
        // INVARIANT: freshly allocated and not submitted; its front pad holds the
        // reference on its parent just taken, and no page.
        Ok(OwnedBio { bio: clone, room: 0 })
    }
}

impl Drop for DmBio {
    fn drop(&mut self) {
        // A bio must never be forgotten: that would hang its submitter. Fail it instead.
        pr_err!("fvp: bio dropped without completion; failing it\n");
        let bio = self.bio.as_ptr();
        // SAFETY: the bio is live and mapped (invariant).
        unsafe { per_bio(bio) }.status.store(BioStatus::IOERR.0, Ordering::Release);
        // SAFETY: this value's reference, given up.
        unsafe { put_mapped(bio) };
    }
}

const PAGE_SIZE: usize = kernel::page::PAGE_SIZE;

fn op_of(opf: u32) -> Op {
    let op = opf & ((1 << bindings::REQ_OP_BITS) - 1);
    match op {
        x if x == bindings::req_op_REQ_OP_READ => Op::Read,
        x if x == bindings::req_op_REQ_OP_WRITE => Op::Write,
        x if x == bindings::req_op_REQ_OP_FLUSH => Op::Flush,
        x if x == bindings::req_op_REQ_OP_DISCARD => Op::Discard,
        x if x == bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
        _ => Op::Other,
    }
}

/// A bio set: the mempool that guarantees bios for forward progress under memory
/// pressure.
///
/// # Invariants
///
/// `inner` is initialised by `bioset_init` and exited on drop.
#[pin_data(PinnedDrop)]
pub struct BioSet {
    #[pin]
    inner: Opaque<bindings::bio_set>,
}

// SAFETY: a bio set is used concurrently by design; it has its own locking.
unsafe impl Sync for BioSet {}
// SAFETY: as above.
unsafe impl Send for BioSet {}

impl BioSet {
    /// A bio set reserving `pool_size` bios with inline bvecs and fvp's [`FrontPad`] in
    /// front of each, and a rescuer: fvp
    /// allocates bios while submitting one (inside `map`), where waiting for the pool
    /// without a rescuer could wait for bios that only this thread would submit.
    pub fn new(pool_size: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- {
                let init = move |slot: *mut Opaque<bindings::bio_set>| {
                    let bs = Opaque::raw_get(slot);
                    // SAFETY: `bs` is valid for writes; zeroing is the documented state
                    // before `bioset_init`.
                    unsafe { core::ptr::write_bytes(bs, 0, 1) };
                    // SAFETY: `bs` is zeroed, pinned, and exited in `drop`.
                    to_result(unsafe {
                        bindings::bioset_init(
                            bs,
                            pool_size,
                            FRONT_PAD as u32,
                            (bindings::BIOSET_NEED_BVECS | bindings::BIOSET_NEED_RESCUER) as i32,
                        )
                    })
                };
                // SAFETY: on error the slot is left uninitialised, which `Opaque` allows.
                unsafe { kernel::init::pin_init_from_closure(init) }
            },
        })
    }

    fn as_raw(&self) -> *mut bindings::bio_set {
        self.inner.get()
    }
}

#[pinned_drop]
impl PinnedDrop for BioSet {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: initialised (type invariant); owners drop the set only after all bios
        // allocated from it completed.
        unsafe { bindings::bioset_exit(self.inner.get()) };
    }
}

/// What runs when an [`OwnedBio`] completes. Called in any context, including hard
/// interrupts: it may only use atomics and queue work.
pub trait BioDone: Sized + Send + Sync + 'static {
    /// The reference the bio holds until it completes: `Arc<Self>` or `PoolArc<Self>`.
    type Ref: BioDoneRef<Target = Self>;

    /// The bio finished with `status`.
    fn bio_done(this: Self::Ref, status: BioStatus);
}

mod sealed {
    pub trait Sealed {}
}

/// A counted reference that a submitted bio carries in `bi_private`. Sealed: only
/// `Arc` and `PoolArc`, whose `into_raw`/`from_raw` pair up.
pub trait BioDoneRef: Send + sealed::Sealed {
    /// What it refers to.
    type Target: BioDone<Ref = Self>;
    #[doc(hidden)]
    fn into_raw(self) -> *const Self::Target;
    /// # Safety
    ///
    /// `ptr` came from `into_raw` of the same type and is taken back once.
    #[doc(hidden)]
    unsafe fn from_raw(ptr: *const Self::Target) -> Self;
}

impl<T: BioDone<Ref = Self>> sealed::Sealed for Arc<T> {}
impl<T: BioDone<Ref = Self>> BioDoneRef for Arc<T> {
    type Target = T;
    fn into_raw(self) -> *const T {
        Arc::into_raw(self)
    }
    unsafe fn from_raw(ptr: *const T) -> Self {
        // SAFETY: the caller's contract.
        unsafe { Arc::from_raw(ptr) }
    }
}

impl<T: BioDone<Ref = Self>> sealed::Sealed for PoolArc<T> {}
impl<T: BioDone<Ref = Self>> BioDoneRef for PoolArc<T> {
    type Target = T;
    fn into_raw(self) -> *const T {
        PoolArc::into_raw(self)
    }
    unsafe fn from_raw(ptr: *const T) -> Self {
        // SAFETY: the caller's contract.
        unsafe { PoolArc::from_raw(ptr) }
    }
}

/// Most pages one [`OwnedBio`] carries (fvp's largest: a fill of 64 blocks).
pub const MAX_BIO_PAGES: u16 = 64;

/// What fvp keeps in the bio set's front pad of every bio it allocates: the page
/// references that keep the bio's pages allocated while the device uses them, and the
/// mapped bio a clone shares pages with. It lives in the bio's own allocation, which
/// the bio set guarantees, so a bio needs no other memory.
#[repr(C)]
struct FrontPad {
    pages: [MaybeUninit<CountedPage>; MAX_BIO_PAGES as usize],
    /// `pages[..nr_pages]` are initialised.
    nr_pages: usize,
    /// For a clone: the mapped bio, on which it holds a [`PerBio`] reference; else null.
    parent: *mut bindings::bio,
}

/// Bytes in front of each bio of a [`BioSet`]; a multiple of 8, so the bio after it
/// stays aligned.
const FRONT_PAD: usize = core::mem::size_of::<FrontPad>();
const _: () = assert!(FRONT_PAD % 8 == 0 && core::mem::align_of::<FrontPad>() <= 8);

/// # Safety
///
/// `bio` was allocated from a [`BioSet`] (so it has a front pad) and is not freed.
unsafe fn front_pad(bio: *mut bindings::bio) -> *mut FrontPad {
    // SAFETY: `bio_alloc_bioset` puts `front_pad` bytes right before the bio, in the
    // same slab object, aligned as the object (at least 8).
    unsafe { bio.cast::<u8>().sub(FRONT_PAD).cast::<FrontPad>() }
}

/// # Safety
///
/// `bio` was just allocated from a [`BioSet`]: its front pad is uninitialised and ours.
unsafe fn init_front_pad(bio: *mut bindings::bio, parent: *mut bindings::bio) {
    // SAFETY: the front pad is valid for writes (the caller's guarantee).
    unsafe {
        let f = front_pad(bio);
        core::ptr::addr_of_mut!((*f).nr_pages).write(0);
        core::ptr::addr_of_mut!((*f).parent).write(parent);
    }
}

/// Drops the page references a bio's front pad holds; returns the parent it held a
/// reference on (null if none), which the caller now owns.
///
/// # Safety
///
/// The front pad was set up by [`init_front_pad`], and the device no longer uses the
/// bio's pages (it ended or was never submitted).
unsafe fn release_front_pad(bio: *mut bindings::bio) -> *mut bindings::bio {
    // SAFETY: the front pad is initialised (contract); `pages[..nr_pages]` hold
    // references we own, dropped once each, then forgotten by `nr_pages = 0`.
    unsafe {
        let f = front_pad(bio);
        let pages = core::ptr::addr_of_mut!((*f).pages).cast::<CountedPage>();
        for i in 0..(*f).nr_pages {
            core::ptr::drop_in_place(pages.add(i));
        }
        (*f).nr_pages = 0;
        core::mem::replace(&mut (*f).parent, core::ptr::null_mut())
    }
}

/// A bio fvp allocated, not yet submitted.
///
/// # Invariants
///
/// `bio` is allocated from a [`BioSet`] and owned by this value; its [`FrontPad`] is
/// initialised, keeps every page added with [`OwnedBio::add_page`] allocated until the
/// bio is freed, and for a clone holds a reference on its parent until the clone ends
/// (or is dropped unsent). `room` more pages fit in the front pad.
pub struct OwnedBio {
    bio: core::ptr::NonNull<bindings::bio>,
    room: u16,
}

// SAFETY: the bio is exclusively owned and may be submitted from any thread.
unsafe impl Send for OwnedBio {}

impl OwnedBio {
    /// A bio of op `op` (and `flags`, raw `REQ_*` bits) to `bdev` at `sector`, with room
    /// for `nr_pages` pages (at most [`MAX_BIO_PAGES`], else `EINVAL`). With a process
    /// context's `GFP_NOIO` the bio set does not fail: it waits for a bio to end.
    pub fn new(bioset: &BioSet, bdev: &BlockDevice, write: bool, sector: u64, nr_pages: u16) -> Result<Self> {
        if nr_pages > MAX_BIO_PAGES {
            return Err(EINVAL);
        }
        let opf = if write { bindings::req_op_REQ_OP_WRITE } else { bindings::req_op_REQ_OP_READ };
        // SAFETY: the bio set is initialised; `bdev` is open.
        let bio = unsafe {
            bindings::bio_alloc_bioset(bdev.as_raw(), nr_pages, opf, bindings::FVP_GFP_NOIO, bioset.as_raw())
        };
        let bio = core::ptr::NonNull::new(bio).ok_or(ENOMEM)?;
        // SAFETY: fresh bio from the set, ours; so is its front pad.
        unsafe {
            (*bio.as_ptr()).bi_iter.bi_sector = sector;
            init_front_pad(bio.as_ptr(), core::ptr::null_mut());
        }
        // INVARIANT: allocated from the set, ours, front pad set up with no page.
        Ok(Self { bio, room: nr_pages })
    }

    /// A bio that only flushes `bdev`'s volatile write cache.
    pub fn new_flush(bioset: &BioSet, bdev: &BlockDevice) -> Result<Self> {
        let opf = bindings::req_op_REQ_OP_WRITE | (1 << bindings::req_flag_bits___REQ_PREFLUSH);
        // SAFETY: as in `new`.
        let bio = unsafe { bindings::bio_alloc_bioset(bdev.as_raw(), 0, opf, bindings::FVP_GFP_NOIO, bioset.as_raw()) };
        let bio = core::ptr::NonNull::new(bio).ok_or(ENOMEM)?;
        // SAFETY: as in `new`.
        unsafe { init_front_pad(bio.as_ptr(), core::ptr::null_mut()) };
        // INVARIANT: allocated from the set, ours, front pad set up.
        Ok(Self { bio, room: 0 })
    }

    /// Adds `FUA` to the bio's flags.
    pub fn set_fua(&mut self) {
        // SAFETY: the bio is ours and not submitted.
        unsafe { (*self.bio.as_ptr()).bi_opf |= 1 << bindings::req_flag_bits___REQ_FUA };
    }

    /// Appends a whole page to the bio's data; `false` if it does not fit.
    pub fn add_page(&mut self, page: CountedPage) -> bool {
        if self.room == 0 {
            return false;
        }
        // SAFETY: the bio is ours and not submitted; the page stays allocated because
        // its reference goes into the front pad below, released after the bio ended.
        let added = unsafe { bindings::bio_add_page(self.bio.as_ptr(), page.as_raw(), PAGE_SIZE as u32, 0) };
        if added as usize != PAGE_SIZE {
            return false;
        }
        // SAFETY: the front pad is ours and initialised (invariant); `room > 0` means
        // `nr_pages < MAX_BIO_PAGES`, so the slot is in bounds and uninitialised.
        unsafe {
            let f = front_pad(self.bio.as_ptr());
            let n = (*f).nr_pages;
            core::ptr::addr_of_mut!((*f).pages).cast::<CountedPage>().add(n).write(page);
            (*f).nr_pages = n + 1;
        }
        self.room -= 1;
        true
    }

    /// Submits the bio; `done` runs when it completes. Allocates nothing.
    pub fn submit<R: BioDoneRef>(self, done: R) {
        let bio = self.bio.as_ptr();
        core::mem::forget(self);
        // SAFETY: the bio is ours; the trampoline takes the reference back exactly once.
        unsafe {
            (*bio).bi_private = done.into_raw().cast_mut().cast();
            (*bio).bi_end_io = Some(end_io_trampoline::<R>);
            bindings::submit_bio(bio);
        }
    }
}

impl Drop for OwnedBio {
    fn drop(&mut self) {
        let bio = self.bio.as_ptr();
        // SAFETY: the bio is ours, never submitted (submission forgets `self`), and its
        // front pad is set up (invariant).
        let parent = unsafe { release_front_pad(bio) };
        // SAFETY: as above; nothing refers to the bio any more.
        unsafe { bindings::bio_put(bio) };
        if !parent.is_null() {
            // SAFETY: the reference this clone held (invariant), given up.
            unsafe { put_mapped(parent) };
        }
    }
}

/// # Safety
///
/// Called by the block layer only, once, for a bio submitted by [`OwnedBio::submit`].
unsafe extern "C" fn end_io_trampoline<R: BioDoneRef>(bio: *mut bindings::bio) {
    // SAFETY: `submit` stored an `R` given up with `into_raw` in `bi_private`.
    let done = unsafe { R::from_raw((*bio).bi_private.cast::<R::Target>()) };
    // SAFETY: the bio is live until we put it.
    let status = BioStatus(unsafe { (*bio).bi_status });
    // SAFETY: the bio ended, so the device no longer uses its pages; the front pad was
    // set up when it was allocated.
    let parent = unsafe { release_front_pad(bio) };
    // SAFETY: the bio is ours again and nothing refers to it any more.
    unsafe { bindings::bio_put(bio) };
    R::Target::bio_done(done, status);
    if !parent.is_null() {
        // SAFETY: the reference the clone held on its parent, given up now that the
        // clone ended.
        unsafe { put_mapped(parent) };
    }
}
