// SPDX-License-Identifier: GPL-2.0

//! Module-wide state shared by the dm target type and the control device: the pools
//! and a count of volumes. Its lock is taken by construction, destruction and control
//! ioctls, never on the I/O path.
#![forbid(unsafe_code)]

use crate::cluster::Cluster;
use crate::flash_pool::{FlashPool, Opened};
use crate::flash_volume::FlashVolume;
use crate::logic::abi;
use crate::pool::Pool;
use crate::shared::Shared;
use crate::volume::Volume;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

#[pin_data]
pub(crate) struct Registry {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cluster: Arc<Cluster>,
    #[pin]
    pools: Mutex<KVec<Arc<Pool>>>,
    #[pin]
    flash_pools: Mutex<KVec<Arc<FlashPool>>>,
    volumes: AtomicU32,
    /// Held by a table's constructor from its look for a volume over the same backing
    /// device until it registered its own: two tables never both create one.
    #[pin]
    pub(crate) constructing: Mutex<()>,
}

impl Registry {
    pub(crate) fn new(shared: Arc<Shared>, cluster: Arc<Cluster>) -> impl PinInit<Self> {
        pin_init!(Self {
            shared,
            cluster,
            pools <- new_mutex!(KVec::new(), "fvp::Registry::pools"),
            flash_pools <- new_mutex!(KVec::new(), "fvp::Registry::flash_pools"),
            volumes: AtomicU32::new(0),
            constructing <- new_mutex!((), "fvp::Registry::constructing"),
        })
    }

    pub(crate) fn volume_created(&self) {
        self.volumes.fetch_add(1, Relaxed);
    }

    pub(crate) fn volume_destroyed(&self) {
        self.volumes.fetch_sub(1, Relaxed);
    }

    pub(crate) fn volumes(&self) -> u32 {
        self.volumes.load(Relaxed)
    }

    /// The volume (and its pool) over backing device `backing_devt`, in any pool.
    pub(crate) fn volume_over(&self, backing_devt: u32) -> Option<(Arc<Pool>, Arc<Volume>)> {
        let pools = self.pools.lock();
        pools.iter().find_map(|p| p.volume_over(backing_devt).map(|v| (p.clone(), v)))
    }

    /// Whether `devt` is an fvp volume's device (in any pool).
    pub(crate) fn is_volume_device(&self, devt: u32) -> bool {
        self.pools.lock().iter().any(|p| p.serves(devt)) || self.flash_pools.lock().iter().any(|p| p.serves(devt))
    }

    /// The flash pool volume over `backing_devt`, if any.
    pub(crate) fn flash_volume_over(&self, backing_devt: u32) -> Option<Arc<FlashVolume>> {
        self.flash_pools.lock().iter().find_map(|p| p.volume_over(backing_devt))
    }

    pub(crate) fn find_flash_pool(&self, name: &[u8; abi::NAME_LEN]) -> Option<Arc<FlashPool>> {
        self.flash_pools.lock().iter().find(|p| &p.name == name).cloned()
    }

    pub(crate) fn flash_pool_at(&self, index: u32) -> Option<Arc<FlashPool>> {
        self.flash_pools.lock().get(index as usize).cloned()
    }

    /// `FVP_IOC_FLASH_OPEN`. Recovery runs here, without the registry's lock (the
    /// device is opened exclusively, so a second open of it fails with `EBUSY`).
    pub(crate) fn open_flash_pool(&self, name: [u8; abi::NAME_LEN], path: [u8; abi::PATH_LEN]) -> Result<Opened> {
        if self.find_pool(&name).is_some() || self.find_flash_pool(&name).is_some() {
            return Err(EEXIST);
        }
        let start = kernel::time::Ktime::ktime_get();
        let opened = FlashPool::open(name, path, self.shared.clone())?;
        // RAM pools first, as `create_pool` takes them.
        let ram = self.pools.lock();
        let mut pools = self.flash_pools.lock();
        let taken = pools.iter().any(|p| p.name == name) || ram.iter().any(|p| p.name == name);
        drop(ram);
        if taken || pools.push(opened.pool.clone(), GFP_KERNEL).is_err() {
            opened.pool.shut_down();
            return Err(if taken { EEXIST } else { ENOMEM });
        }
        let f = &opened.found;
        pr_info!(
            "flash pool {} opened: {} slots, {} blocks cached ({} dirty), {} stale entries zeroed, in {} us\n",
            abi::name_str(&name),
            opened.pool.geometry.slots,
            f.live,
            f.dirty,
            f.stale,
            (kernel::time::Ktime::ktime_get() - start).to_ns() / 1000
        );
        Ok(opened)
    }

    pub(crate) fn find_pool(&self, name: &[u8; abi::NAME_LEN]) -> Option<Arc<Pool>> {
        self.pools.lock().iter().find(|p| &p.name == name).cloned()
    }

    /// `FVP_IOC_POOL_CREATE`.
    pub(crate) fn create_pool(&self, name: [u8; abi::NAME_LEN], bytes: u64) -> Result {
        let mut pools = self.pools.lock();
        if pools.iter().any(|p| p.name == name) || self.find_flash_pool(&name).is_some() {
            return Err(EEXIST);
        }
        pools.reserve(1, GFP_KERNEL)?;
        let pool = Pool::new(name, self.shared.clone())?;
        if let Err(e) = pool.resize(bytes) {
            pool.shut_down();
            return Err(e);
        }
        pools.push(pool, GFP_KERNEL)?;
        Ok(())
    }

    /// `FVP_IOC_POOL_RESIZE`: runs without the registry lock (it may wait for
    /// destaging).
    pub(crate) fn resize_pool(&self, name: &[u8; abi::NAME_LEN], bytes: u64) -> Result {
        let pool = self.find_pool(name).ok_or(ENOENT)?;
        pool.resize(bytes)
    }

    /// `FVP_IOC_POOL_DESTROY`: refused while a volume uses the pool.
    pub(crate) fn destroy_pool(&self, name: &[u8; abi::NAME_LEN]) -> Result {
        // No table constructor is between its look-up of the pool and registering its
        // volume in it.
        let _no_ctr = self.constructing.lock();
        {
            let mut flash = self.flash_pools.lock();
            if let Some(i) = flash.iter().position(|p| &p.name == name) {
                if flash[i].volume_count() > 0 {
                    return Err(EBUSY);
                }
                let rest = without(&flash, i)?;
                // Closing: a last commit, then the threads stop; the blocks stay.
                flash[i].shut_down();
                *flash = rest;
                return Ok(());
            }
        }
        let mut pools = self.pools.lock();
        let i = pools.iter().position(|p| &p.name == name).ok_or(ENOENT)?;
        if pools[i].volume_count() > 0 {
            return Err(EBUSY);
        }
        let rest = without(&pools, i)?;
        pools[i].shut_down();
        *pools = rest;
        Ok(())
    }

    pub(crate) fn pool_at(&self, index: u32) -> Option<Arc<Pool>> {
        self.pools.lock().get(index as usize).cloned()
    }

    /// The `index`th volume over all pools.
    pub(crate) fn volume_at(&self, index: u32) -> Option<Arc<Volume>> {
        let pools = self.pools.lock();
        let mut n = 0;
        let mut found = None;
        for p in pools.iter() {
            p.for_each_volume(|v| {
                if n == index && found.is_none() {
                    found = Some(v.clone());
                }
                n += 1;
            });
            if found.is_some() {
                break;
            }
        }
        found
    }

    /// Stops every pool's destager (module unload: no volume exists any more).
    pub(crate) fn shut_down(&self) {
        let flash = core::mem::take(&mut *self.flash_pools.lock());
        for p in flash.iter() {
            p.shut_down();
        }
        let mut pools = self.pools.lock();
        for p in pools.iter() {
            p.shut_down();
        }
        *pools = KVec::new();
    }
}

/// `v` without its `i`th element (6.12's `KVec` has no `remove`), allocated before the
/// caller changes anything, so that `ENOMEM` leaves everything as it was.
fn without<T: Clone>(v: &KVec<T>, i: usize) -> Result<KVec<T>> {
    let mut rest = KVec::with_capacity(v.len(), GFP_KERNEL)?;
    for (j, x) in v.iter().enumerate() {
        if j != i {
            rest.push(x.clone(), GFP_KERNEL)?;
        }
    }
    Ok(rest)
}
