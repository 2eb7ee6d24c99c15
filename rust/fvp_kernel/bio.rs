// SPDX-License-Identifier: GPL-2.0

//! Block I/O requests (`struct bio`) as device-mapper hands them to a target.
//!
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use super::bindings;
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

/// A bio that device-mapper passed to a target's `map` function.
///
/// # Invariants
///
/// The wrapped `bio` is live and owned by the target for the duration of the borrow.
#[repr(transparent)]
pub struct Bio(Opaque<bindings::bio>);

impl Bio {
    /// Creates a mutable reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live bio that nothing else accesses during `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::bio) -> &'a mut Self {
        // SAFETY: `Bio` is `repr(transparent)` over `bio`; the caller guarantees validity
        // and exclusive access for `'a`.
        unsafe { &mut *ptr.cast::<Self>() }
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: By the type invariant the bio is live and we have at least shared access.
        unsafe { &*self.0.get() }
    }

    fn raw_mut(&mut self) -> &mut bindings::bio {
        // SAFETY: By the type invariant the bio is live, and `&mut self` gives exclusive access.
        unsafe { &mut *self.0.get() }
    }

    /// The first sector the bio addresses.
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Redirects the bio to `sector`.
    pub fn set_sector(&mut self, sector: u64) {
        self.raw_mut().bi_iter.bi_sector = sector;
    }

    /// Remaining bytes of data the bio carries.
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// The raw `bi_opf` value: operation and flags.
    pub fn opf(&self) -> u32 {
        self.raw().bi_opf
    }

    /// The bio's operation.
    pub fn op(&self) -> Op {
        let op = self.opf() & ((1 << bindings::REQ_OP_BITS) - 1);
        match op {
            x if x == bindings::req_op_REQ_OP_READ => Op::Read,
            x if x == bindings::req_op_REQ_OP_WRITE => Op::Write,
            x if x == bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            x if x == bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            x if x == bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            _ => Op::Other,
        }
    }

    /// Whether the bio asks for the device's volatile cache to be flushed first.
    pub fn is_preflush(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_PREFLUSH) != 0
    }

    /// Whether the bio's data must be durable when it completes.
    pub fn is_fua(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_FUA) != 0
    }

    /// Points the bio at another block device.
    pub fn set_dev(&mut self, bdev: &BlockDevice) {
        // SAFETY: The bio is live and exclusively ours (type invariant); `bdev` is open
        // (its type invariant) and outlives the bio, because the target that owns it is
        // only destroyed after device-mapper has drained all of its bios.
        unsafe { bindings::fvp_helper_bio_set_dev(self.0.get(), bdev.as_raw()) }
    }
}
