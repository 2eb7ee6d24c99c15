// SPDX-License-Identifier: GPL-2.0

//! Resources every pool and volume uses: the workqueue that finishes deferred I/O and
//! runs the destagers, and the bio set that backs fvp's own bios.
//!
//! Owned by the module, which drains the queue before it unloads, so no work item can
//! run module code after the module is gone.
#![forbid(unsafe_code)]

use crate::fvp_kernel::bio::BioSet;
use crate::fvp_kernel::mempool::ObjectPool;
use crate::fvp_kernel::workqueue::OwnedQueue;
use crate::volume::IoOp;
use kernel::prelude::*;
use kernel::ThisModule;

/// `IoOp`s kept in reserve: as many bios as can wait for the backing device or peers
/// at once before new ones wait for them. Each `IoOp` ends without needing another,
/// and `map` takes its `IoOp` before it submits anything, so a wait for one never holds
/// back bios of its own on `current->bio_list` (what a bio set's rescuer is for).
const OPS_RESERVE: u32 = 128;

pub(crate) struct Shared {
    pub(crate) wq: OwnedQueue,
    pub(crate) bioset: Pin<KBox<BioSet>>,
    /// Every bio a volume cannot remap at once gets an [`IoOp`] from here: a reserve
    /// guarantees one without failing the bio when memory is short.
    pub(crate) ops: ObjectPool<IoOp>,
    /// fvp's module: a removed volume with dirty blocks keeps it loaded.
    pub(crate) module: &'static ThisModule,
}

impl Shared {
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            wq: OwnedQueue::new_reclaim(c"fvp")?,
            bioset: KBox::pin_init(BioSet::new(256), GFP_KERNEL)?,
            ops: ObjectPool::new(OPS_RESERVE)?,
            module,
        })
    }
}
