// SPDX-License-Identifier: GPL-2.0

//! The backing device as every layer above it uses it: waiting for one of fvp's own
//! bios, and flushing a device's volatile cache. The destager, a volume's flushes and a
//! peer's takeover recovery all write through here; it knows nothing of pools,
//! volumes or replicas.
#![forbid(unsafe_code)]

use crate::fvp_kernel::bio::{BioDone, BioSet, BioStatus, BlockDevice, OwnedBio};
use crate::fvp_kernel::sync::{alloc_retry, Completion};
use core::sync::atomic::{
    AtomicBool, AtomicU32,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use kernel::prelude::*;
use kernel::sync::Arc;

/// fvp's block: a cache page, a replica, the unit of its writes to a backing device.
pub(crate) const BLOCK_BYTES: u64 = 4096;

/// Waits for one bio.
#[pin_data]
pub(crate) struct BioWaiter {
    ok: AtomicBool,
    #[pin]
    done: Completion,
}

impl BioWaiter {
    /// Waits for memory rather than fail (takeover recovery's writes).
    pub(crate) fn new() -> Arc<Self> {
        alloc_retry(Self::try_new)
    }

    /// `ENOMEM` if memory is short.
    pub(crate) fn try_new() -> Result<Arc<Self>> {
        Ok(Arc::pin_init(pin_init!(BioWaiter { ok: AtomicBool::new(false), done <- Completion::new() }), GFP_KERNEL)?)
    }

    /// Ready for another bio; the last one's completion has run (`wait` returned).
    pub(crate) fn reset(&self) {
        self.ok.store(false, Relaxed);
        self.done.reinit();
    }

    /// Sleeps until the bio completed; whether it succeeded.
    pub(crate) fn wait(&self) -> bool {
        self.done.wait();
        self.ok.load(Relaxed)
    }
}

impl BioDone for BioWaiter {
    type Ref = Arc<Self>;

    fn bio_done(this: Arc<Self>, status: BioStatus) {
        this.ok.store(status.is_ok(), Relaxed);
        this.done.complete();
    }
}

/// Flushes `bdev`'s volatile cache and waits on `waiter` (which no other bio uses
/// meanwhile: the caller holds it exclusively). Allocates nothing but the bio, which
/// the bio set guarantees.
pub(crate) fn flush_bdev(bioset: &BioSet, bdev: &BlockDevice, waiter: &Arc<BioWaiter>) -> Result {
    let bio = OwnedBio::new_flush(bioset, bdev)?;
    waiter.reset();
    bio.submit(waiter.clone());
    if waiter.wait() {
        Ok(())
    } else {
        Err(EIO)
    }
}

/// Waits for a batch of fvp's own bios: the threads of flash pools (opening, commits,
/// write-back) submit several and wait for all.
#[pin_data]
pub(crate) struct IoBatch {
    /// Bios in flight, plus one while they are being submitted.
    pending: AtomicU32,
    failed: AtomicBool,
    #[pin]
    done: Completion,
}

impl IoBatch {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::pin_init(
            pin_init!(IoBatch { pending: AtomicU32::new(1), failed: AtomicBool::new(false), done <- Completion::new() }),
            GFP_KERNEL,
        )?)
    }

    /// Starts a new batch; the last one was waited for.
    pub(crate) fn start(&self) {
        self.pending.store(1, Relaxed);
        self.failed.store(false, Relaxed);
        self.done.reinit();
    }

    pub(crate) fn submit(self: &Arc<Self>, bio: OwnedBio) {
        self.pending.fetch_add(1, Relaxed);
        bio.submit(self.clone());
    }

    /// A bio could not be made: the batch fails.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Relaxed);
    }

    fn put(&self) {
        if self.pending.fetch_sub(1, AcqRel) == 1 {
            self.done.complete();
        }
    }

    /// Waits for every bio submitted since `start`; whether all succeeded.
    pub(crate) fn wait(&self) -> bool {
        self.put();
        self.done.wait();
        !self.failed.load(Acquire)
    }
}

impl BioDone for IoBatch {
    type Ref = Arc<Self>;

    fn bio_done(this: Arc<Self>, status: BioStatus) {
        if !status.is_ok() {
            this.failed.store(true, Release);
        }
        this.put();
    }
}
