// SPDX-License-Identifier: GPL-2.0

//! Resources every pool and volume uses: the workqueue that finishes deferred I/O and
//! runs the destagers, and the bio set that backs fvp's own bios.
//!
//! Owned by the module, which drains the queue before it unloads, so no work item can
//! run module code after the module is gone.
#![forbid(unsafe_code)]

use crate::fvp_kernel::bio::BioSet;
use crate::fvp_kernel::workqueue::OwnedQueue;
use kernel::prelude::*;
use kernel::ThisModule;

pub(crate) struct Shared {
    pub(crate) wq: OwnedQueue,
    pub(crate) bioset: Pin<KBox<BioSet>>,
    /// fvp's module: a removed volume with dirty blocks keeps it loaded.
    pub(crate) module: &'static ThisModule,
}

impl Shared {
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        Ok(Self { wq: OwnedQueue::new_reclaim(c"fvp")?, bioset: KBox::pin_init(BioSet::new(256), GFP_KERNEL)?, module })
    }
}
