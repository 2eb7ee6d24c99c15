// SPDX-License-Identifier: GPL-2.0

//! The control device `/dev/fvp-control` and its ioctls (`include/uapi/linux/fvp.h`).
#![forbid(unsafe_code)]

use crate::fvp_kernel::{cred, miscdev};
use crate::logic::abi::{self, Command, CommandError};
use crate::registry::Registry;
use crate::stats::Stats;
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::{UserPtr, UserSlice};

/// Serves the control ioctls.
pub(crate) struct Control {
    registry: Arc<Registry>,
}

fn copy_in<const N: usize>(arg: UserPtr) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    // Reads from a bad address fail with EFAULT inside `read_slice`.
    UserSlice::new(arg, N).reader().read_slice(&mut buf)?;
    Ok(buf)
}

fn copy_out(arg: UserPtr, bytes: &[u8]) -> Result<isize> {
    // Writes to a bad address fail with EFAULT inside `write_slice`.
    UserSlice::new(arg, bytes.len()).writer().write_slice(bytes)?;
    Ok(0)
}

impl Control {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    fn pool_req(arg: UserPtr) -> Result<([u8; abi::NAME_LEN], u64)> {
        let req = abi::PoolReq::from_bytes(&copy_in::<{ abi::PoolReq::SIZE }>(arg)?);
        let name = abi::pool_name(&req.name).ok_or(EINVAL)?;
        Ok((name, req.ram_bytes))
    }

    fn pool_info(&self, arg: UserPtr) -> Result<isize> {
        let mut info = abi::PoolInfo::from_bytes(&copy_in::<{ abi::PoolInfo::SIZE }>(arg)?);
        let pool = self.registry.pool_at(info.index).ok_or(ENOENT)?;
        let c = pool.counts();
        info.volumes = pool.volume_count();
        info.name = pool.name;
        info.target_bytes = pool.target_bytes();
        info.pages = c.pages;
        info.free_pages = c.free;
        info.clean_pages = c.clean;
        info.dirty_pages = c.dirty;
        info.busy_pages = c.busy;
        info.metadata_bytes = c.metadata_bytes;
        info.evictions = pool.evictions.load(Relaxed);
        copy_out(arg, &info.to_bytes())
    }

    fn volume_info(&self, arg: UserPtr) -> Result<isize> {
        let mut info = abi::VolumeInfo::from_bytes(&copy_in::<{ abi::VolumeInfo::SIZE }>(arg)?);
        let v = self.registry.volume_at(info.index).ok_or(ENOENT)?;
        let s = &v.stats;
        info.block_size = crate::logic::table::BLOCK_SIZE;
        // dev_t: 12-bit major, 20-bit minor.
        let devt = v.devt.load(Relaxed);
        info.dev_major = devt >> 20;
        info.dev_minor = devt & ((1 << 20) - 1);
        info.pool = v.pool.name;
        info.policy_requested = v.requested();
        info.policy_effective = v.effective();
        info.reads = Stats::get(&s.reads);
        info.writes = Stats::get(&s.writes);
        info.read_bytes = Stats::get(&s.read_bytes);
        info.write_bytes = Stats::get(&s.write_bytes);
        info.read_hits = Stats::get(&s.read_hits);
        info.read_misses = Stats::get(&s.read_misses);
        info.write_hits = Stats::get(&s.write_hits);
        info.bypassed = Stats::get(&s.bypassed);
        info.dirty_blocks = v.dirty.load(Relaxed);
        info.destaged_blocks = Stats::get(&s.destaged);
        info.evictions = Stats::get(&s.evictions);
        info.read_latency = s.read_latency.snapshot();
        info.write_latency = s.write_latency.snapshot();
        copy_out(arg, &info.to_bytes())
    }
}

impl Control {
    /// `FVP_IOC_VOLUME_DISCARD`.
    fn volume_discard(&self, arg: UserPtr) -> Result<isize> {
        let mut req = abi::VolumeDiscard::from_bytes(&copy_in::<{ abi::VolumeDiscard::SIZE }>(arg)?);
        req.validate().map_err(|_| EINVAL)?;
        let (pool, volume) = self.registry.volume_over(req.devt()).ok_or(ENOENT)?;
        if volume.repl.is_some() {
            pr_err!(
                "volume {}: cannot discard a replicated volume's dirty blocks (its peers hold them too)\n",
                volume.id
            );
            return Err(crate::fvp_kernel::errno::eopnotsupp());
        }
        req.dirty_blocks = pool.discard_detached(&volume)?;
        pr_warn!(
            "volume {}: removed volume over {}:{}: {} dirty blocks discarded on request; the backing device keeps older data for them\n",
            volume.id,
            req.backing_major,
            req.backing_minor,
            req.dirty_blocks
        );
        // The destager unregisters it at its next look (no need to wait for one).
        pool.kick();
        copy_out(arg, &req.to_bytes())
    }

    fn volume_health(&self, arg: UserPtr) -> Result<isize> {
        let req = abi::VolumeHealth::from_bytes(&copy_in::<{ abi::VolumeHealth::SIZE }>(arg)?);
        req.validate().map_err(|_| EINVAL)?;
        let v = self.registry.volume_at(req.index).ok_or(ENOENT)?;
        let mut flags = 0;
        if v.failing() {
            flags |= abi::VOLUME_FAILING;
        }
        // No table left, dirty blocks kept (not a clean one being unregistered).
        if v.tables.load(Relaxed) == 0 && !v.retiring.load(Relaxed) {
            flags |= abi::VOLUME_DETACHED;
        }
        let info = abi::VolumeHealth {
            index: req.index,
            flags,
            destage_errors: Stats::get(&v.stats.destage_errors),
            io_errors: Stats::get(&v.stats.io_errors),
            dirty_blocks: v.dirty.load(Relaxed),
            // dev_t: 12-bit major, 20-bit minor.
            backing_major: v.backing_devt >> 20,
            backing_minor: v.backing_devt & ((1 << 20) - 1),
            reserved: [0; 4],
        };
        copy_out(arg, &info.to_bytes())
    }

    fn volume_repl(&self, arg: UserPtr) -> Result<isize> {
        let mut info = abi::VolumeRepl::from_bytes(&copy_in::<{ abi::VolumeRepl::SIZE }>(arg)?);
        let v = self.registry.volume_at(info.index).ok_or(ENOENT)?;
        let index = info.index;
        info = abi::VolumeRepl { index, ..Default::default() };
        if let Some(r) = &v.repl {
            info.peers = r.peers_wanted;
            info.domain = match r.rule {
                crate::logic::placement::DomainRule::Same => 0,
                crate::logic::placement::DomainRule::Different => 1,
            };
            info.state = r.state();
            info.peer_ids = r.peer_ids();
            info.name = r.name;
            info.epoch = r.epoch.load(Relaxed);
            info.replicated_writes = r.replicated_writes.load(Relaxed);
            info.reprotections = r.reprotections.load(Relaxed);
            info.resent_blocks = r.resent_blocks.load(Relaxed);
        }
        copy_out(arg, &info.to_bytes())
    }
}

impl miscdev::MiscDevice for Control {
    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize> {
        let command = match Command::decode(cmd) {
            Ok(c) => c,
            Err(CommandError::Unknown) => return Err(ENOTTY),
            Err(CommandError::BadEncoding) => return Err(EINVAL),
        };
        if !cred::capable_sys_admin() {
            return Err(EPERM);
        }
        match command {
            Command::Version => {
                let (major, minor, patch) = crate::VERSION;
                let v = abi::Version::new(
                    major,
                    minor,
                    patch,
                    abi::FEATURE_PASSTHROUGH
                        | abi::FEATURE_RAM_POOL
                        | abi::FEATURE_REPLICATION
                        | abi::FEATURE_FLASH_POOL
                        | abi::FEATURE_SECURE_TRANSPORT,
                    crate::VERSION_STR,
                );
                copy_out(arg, &v.to_bytes())
            }
            Command::Status => {
                let s = abi::Status { volumes: self.registry.volumes(), reserved: 0, bios_mapped: 0 };
                copy_out(arg, &s.to_bytes())
            }
            Command::PoolCreate => {
                let (name, bytes) = Self::pool_req(arg)?;
                self.registry.create_pool(name, bytes).map(|_| 0)
            }
            Command::PoolResize => {
                let (name, bytes) = Self::pool_req(arg)?;
                self.registry.resize_pool(&name, bytes).map(|_| 0)
            }
            Command::PoolDestroy => {
                let (name, _) = Self::pool_req(arg)?;
                self.registry.destroy_pool(&name).map(|_| 0)
            }
            Command::PoolInfo => self.pool_info(arg),
            Command::FlashOpen => {
                let mut req = abi::FlashOpen::from_bytes(&copy_in::<{ abi::FlashOpen::SIZE }>(arg)?);
                let name = abi::pool_name(&req.name).ok_or(EINVAL)?;
                if !req.path.contains(&0) || req.path[0] != b'/' || req.reserved != [0; 3] {
                    return Err(EINVAL);
                }
                let start = kernel::time::Ktime::ktime_get();
                let opened = self.registry.open_flash_pool(name, req.path)?;
                req.slots = opened.pool.geometry.slots;
                req.live_blocks = opened.found.live;
                req.dirty_blocks = opened.found.dirty;
                req.stale_entries = opened.found.stale;
                req.open_us = ((kernel::time::Ktime::ktime_get() - start).to_ns() / 1000) as u64;
                copy_out(arg, &req.to_bytes())
            }
            Command::FlashInfo => {
                let mut info = abi::FlashInfo::from_bytes(&copy_in::<{ abi::FlashInfo::SIZE }>(arg)?);
                let pool = self.registry.flash_pool_at(info.index).ok_or(ENOENT)?;
                pool.info(&mut info);
                copy_out(arg, &info.to_bytes())
            }
            Command::VolumeInfo => self.volume_info(arg),
            Command::VolumeRepl => self.volume_repl(arg),
            Command::VolumeHealth => self.volume_health(arg),
            Command::VolumeDiscard => self.volume_discard(arg),
            Command::ClusterSet => {
                let mut bytes = copy_in::<{ abi::ClusterCfg::SIZE }>(arg)?;
                let cfg = abi::ClusterCfg::from_bytes(&bytes);
                // The settings hold the shared secret: no copy outlives the call.
                crate::fvp_kernel::crypto::wipe(&mut bytes);
                self.registry.cluster.set(cfg).map(|_| 0)
            }
            Command::ClusterInfo => copy_out(arg, &self.registry.cluster.info().to_bytes()),
            Command::HostAdd => {
                let h = abi::HostReq::from_bytes(&copy_in::<{ abi::HostReq::SIZE }>(arg)?);
                self.registry.cluster.add_host(h).map(|_| 0)
            }
            Command::HostUpdate => {
                let h = abi::HostReq::from_bytes(&copy_in::<{ abi::HostReq::SIZE }>(arg)?);
                self.registry.cluster.update_host(h).map(|_| 0)
            }
            Command::KeySet => {
                let mut bytes = copy_in::<{ abi::KeyReq::SIZE }>(arg)?;
                let mut req = abi::KeyReq::from_bytes(&bytes);
                // The request may hold this host's private key: no copy outlives the call.
                crate::fvp_kernel::crypto::wipe(&mut bytes);
                let r = self.registry.cluster.set_key(&req);
                crate::fvp_kernel::crypto::wipe(&mut req.key);
                r.map(|_| 0)
            }
            Command::KeyInfo => {
                let mut req = abi::KeyReq::from_bytes(&copy_in::<{ abi::KeyReq::SIZE }>(arg)?);
                if let Err(e) = req.validate_info() {
                    pr_warn!("key info refused: {}\n", e.message());
                    return Err(EINVAL);
                }
                let key = self.registry.cluster.public_key(req.id);
                req.flags = if key.is_some() { abi::KEY_PRESENT } else { 0 };
                req.key = key.unwrap_or([0; abi::KEY_LEN]);
                req.reserved = [0; 4];
                copy_out(arg, &req.to_bytes())
            }
            Command::HostRemove => {
                let h = abi::HostReq::from_bytes(&copy_in::<{ abi::HostReq::SIZE }>(arg)?);
                self.registry.cluster.remove_host(h.id, h.flags).map(|_| 0)
            }
            Command::HostInfo => {
                let mut info = abi::HostInfo::from_bytes(&copy_in::<{ abi::HostInfo::SIZE }>(arg)?);
                let cluster = &self.registry.cluster;
                info.host = cluster.host_at(info.index).ok_or(ENOENT)?;
                let (state, heard, rtt, replicas) = cluster.host_state(&info.host);
                info.state = state;
                info.reserved = 0;
                info.last_heard_ms = heard;
                info.rtt_us = rtt;
                info.replica_blocks = replicas;
                copy_out(arg, &info.to_bytes())
            }
            Command::DeviceAdd => {
                let d = abi::DeviceReq::from_bytes(&copy_in::<{ abi::DeviceReq::SIZE }>(arg)?);
                self.registry.cluster.add_device(d).map(|_| 0)
            }
            Command::DeviceRemove => {
                let d = abi::DeviceReq::from_bytes(&copy_in::<{ abi::DeviceReq::SIZE }>(arg)?);
                let name = abi::pool_name(&d.name).ok_or(EINVAL)?;
                self.registry.cluster.remove_device(&name).map(|_| 0)
            }
            Command::DeviceInfo => {
                let mut d = abi::DeviceReq::from_bytes(&copy_in::<{ abi::DeviceReq::SIZE }>(arg)?);
                let dev = self.registry.cluster.device_at(d.index).ok_or(ENOENT)?;
                let index = d.index;
                d = dev.req;
                d.index = index;
                copy_out(arg, &d.to_bytes())
            }
        }
    }
}
