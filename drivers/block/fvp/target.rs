// SPDX-License-Identifier: GPL-2.0

//! The `fvp` device-mapper target.
//!
//! In this version a volume passes every bio straight to its backing device; the
//! caching layers build on this skeleton. See `docs/target.md` for the table and
//! status syntax.

use crate::fvp_kernel::bio::Bio;
use crate::fvp_kernel::dm::{self, CtrError, MapResult, StatusType, StatusWriter, TargetDevice, TargetInfo};
use crate::logic::table::{self, TableError};
use crate::registry::{Registry, VolumeStats};
use core::fmt::Write;
use kernel::prelude::*;
use kernel::sync::Arc;

/// One `fvp` volume: a constructed target.
pub(crate) struct FvpTarget {
    backing: TargetDevice,
    stats: Arc<VolumeStats>,
    registry: Arc<Registry>,
    registry_id: u64,
}

fn refuse(e: TableError) -> CtrError {
    let errno = match e {
        TableError::OutOfMemory => ENOMEM,
        _ => EINVAL,
    };
    CtrError { errno, message: e.message() }
}

impl dm::Target for FvpTarget {
    type Context = Registry;

    fn new(
        registry: &Arc<Registry>,
        ti: &mut TargetInfo,
        args: &[&[u8]],
    ) -> Result<Pin<KBox<Self>>, CtrError> {
        let table = table::parse(args).map_err(refuse)?;
        let backing = ti.get_device(table.backing_dev).map_err(|e| {
            pr_err!(
                "cannot open backing device {:?}: error {}\n",
                kernel::str::BStr::from_bytes(table.backing_dev),
                e.to_errno()
            );
            refuse(TableError::CannotOpenBackingDevice)
        })?;
        let backing_sectors = backing.bdev().nr_sectors();
        table::check_length(ti.len(), backing_sectors).map_err(|e| {
            pr_err!(
                "target length {} sectors, backing device {:?} has {} sectors\n",
                ti.len(),
                backing.name(),
                backing_sectors
            );
            refuse(e)
        })?;

        // Flushes, discards and write-zeroes pass through like any other bio.
        ti.set_num_flush_bios(1);
        ti.set_num_discard_bios(1);
        ti.set_num_write_zeroes_bios(1);

        let oom = || refuse(TableError::OutOfMemory);
        let stats = Arc::new(VolumeStats::new(), GFP_KERNEL).map_err(|_| oom())?;
        let registry_id = registry.add(stats.clone()).map_err(|_| oom())?;
        let target = FvpTarget { backing, stats, registry: registry.clone(), registry_id };
        KBox::pin(target, GFP_KERNEL).map_err(|_| oom())
    }

    fn map(&self, ti: &TargetInfo, bio: &mut Bio) -> MapResult {
        self.stats.count_bio();
        bio.set_dev(self.backing.bdev());
        bio.set_sector(ti.offset(bio.sector()));
        MapResult::Remapped
    }

    fn status(&self, _ti: &TargetInfo, kind: StatusType, out: &mut StatusWriter<'_>) {
        // A full buffer makes device-mapper retry with a larger one, so the error from a
        // truncated write needs no handling here.
        let _ = match kind {
            StatusType::Info => write!(out, "passthrough {}", self.stats.bios_mapped()),
            StatusType::Table => write!(out, "{}", self.backing.name().to_str().unwrap_or("?")),
            StatusType::Ima => write!(
                out,
                "target_name=fvp,target_version={}.{}.{},backing_device={};",
                crate::VERSION.0,
                crate::VERSION.1,
                crate::VERSION.2,
                self.backing.name().to_str().unwrap_or("?")
            ),
        };
    }

    fn data_device(&self) -> &TargetDevice {
        &self.backing
    }
}

impl Drop for FvpTarget {
    fn drop(&mut self) {
        self.registry.remove(self.registry_id);
    }
}
