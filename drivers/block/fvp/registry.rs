// SPDX-License-Identifier: GPL-2.0

//! Module-wide state shared by the dm target type and the control device: the list
//! of live volumes. The I/O path never takes its lock; only construction,
//! destruction and control ioctls do.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::new_mutex;
use kernel::rbtree::RBTree;

/// Counters of one volume (one constructed `fvp` target).
pub(crate) struct VolumeStats {
    bios_mapped: AtomicU64,
}

impl VolumeStats {
    pub(crate) fn new() -> Self {
        Self { bios_mapped: AtomicU64::new(0) }
    }

    pub(crate) fn count_bio(&self) {
        self.bios_mapped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bios_mapped(&self) -> u64 {
        self.bios_mapped.load(Ordering::Relaxed)
    }
}

/// Module-wide totals, as reported by `FVP_IOC_STATUS`.
pub(crate) struct Totals {
    pub(crate) volumes: u32,
    pub(crate) bios_mapped: u64,
}

#[pin_data]
pub(crate) struct Registry {
    #[pin]
    inner: Mutex<Inner>,
}

struct Inner {
    /// Live volumes by registration id.
    volumes: RBTree<u64, Arc<VolumeStats>>,
    next_id: u64,
    /// Bios mapped by volumes that no longer exist.
    retired_bios: u64,
}

impl Registry {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(
                Inner { volumes: RBTree::new(), next_id: 0, retired_bios: 0 },
                "fvp::Registry"
            ),
        })
    }

    /// Adds a volume and returns its registration id; fails only when memory is short.
    pub(crate) fn add(&self, volume: Arc<VolumeStats>) -> Result<u64> {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.volumes.try_create_and_insert(id, volume, GFP_KERNEL)?;
        inner.next_id += 1;
        Ok(id)
    }

    /// Removes the volume registered as `id`, keeping its counters in the totals.
    pub(crate) fn remove(&self, id: u64) {
        let mut inner = self.inner.lock();
        if let Some(volume) = inner.volumes.remove(&id) {
            inner.retired_bios += volume.bios_mapped();
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let inner = self.inner.lock();
        Totals {
            volumes: inner.volumes.keys().count() as u32,
            bios_mapped: inner.retired_bios
                + inner.volumes.values().map(|v| v.bios_mapped()).sum::<u64>(),
        }
    }
}
