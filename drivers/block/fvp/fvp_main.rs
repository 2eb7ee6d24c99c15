// SPDX-License-Identifier: GPL-2.0

//! fvp: host RAM acceleration for block devices, with replicated write-back.
//!
//! This crate root registers the device-mapper target `fvp` and the control device
//! `/dev/fvp-control`. Driver modules use only safe APIs: the FFI lives in
//! `rust/fvp_kernel`, and the kernel-independent logic in `logic/`.

// `pin_init!` expands recursively per field: `Pool` has more than the default allows.
#![recursion_limit = "256"]

use kernel::prelude::*;
use kernel::sync::Arc;

// Both are libraries compiled into this crate: their public API is wider than what
// this version of the driver uses, and `logic` is public for its host build.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/fvp_kernel/mod.rs"]
mod fvp_kernel;

#[allow(dead_code, unreachable_pub)]
#[path = "logic/mod.rs"]
mod logic;

mod backing;
mod cluster;
mod conn;
mod control;
mod destage;
mod flash_pool;
mod flash_volume;
mod pool;
mod registry;
mod repl;
mod replica;
mod shared;
mod stats;
mod target;
mod volume;

use fvp_kernel::{dm, miscdev};

module! {
    type: FvpModule,
    name: "fvp",
    author: "fvp developers",
    description: "fvp: host RAM acceleration for block devices",
    license: "GPL",
}

/// Module version, reported by `FVP_IOC_VERSION`.
pub(crate) const VERSION: (u32, u32, u32) = (0, 3, 0);
/// The same, as text.
pub(crate) const VERSION_STR: &str = "0.4.0";

// The Rust view of the ABI must match include/uapi/linux/fvp.h, which bindgen read.
const _: () = {
    use core::mem::size_of;
    use fvp_kernel::bindings as b;
    assert!(size_of::<b::fvp_version>() == logic::abi::Version::SIZE);
    assert!(size_of::<b::fvp_status>() == logic::abi::Status::SIZE);
    assert!(b::FVP_ABI_VERSION == logic::abi::ABI_VERSION);
    assert!(b::FVP_IOCTL_MAGIC == logic::abi::IOCTL_MAGIC);
    assert!(b::FVP_VERSION_STR_LEN as usize == logic::abi::VERSION_STR_LEN);
    assert!(b::FVP_FEATURE_PASSTHROUGH as u64 == logic::abi::FEATURE_PASSTHROUGH);
    assert!(b::FVP_FEATURE_RAM_POOL as u64 == logic::abi::FEATURE_RAM_POOL);
    assert!(size_of::<b::fvp_pool_req>() == logic::abi::PoolReq::SIZE);
    assert!(size_of::<b::fvp_pool_info>() == logic::abi::PoolInfo::SIZE);
    assert!(size_of::<b::fvp_volume_info>() == logic::abi::VolumeInfo::SIZE);
    assert!(b::FVP_NAME_LEN as usize == logic::abi::NAME_LEN);
    assert!(b::FVP_LAT_BUCKETS as usize == logic::abi::LAT_BUCKETS);
    assert!(b::FVP_POLICY_WRITE_BACK == logic::abi::POLICY_WRITE_BACK);
    assert!(b::FVP_POLICY_WRITE_THROUGH == logic::abi::POLICY_WRITE_THROUGH);
    assert!(size_of::<b::fvp_cluster_cfg>() == logic::abi::ClusterCfg::SIZE);
    assert!(size_of::<b::fvp_cluster_info>() == logic::abi::ClusterInfo::SIZE);
    assert!(size_of::<b::fvp_host_req>() == logic::abi::HostReq::SIZE);
    assert!(size_of::<b::fvp_host_info>() == logic::abi::HostInfo::SIZE);
    assert!(size_of::<b::fvp_device_req>() == logic::abi::DeviceReq::SIZE);
    assert!(size_of::<b::fvp_volume_repl>() == logic::abi::VolumeRepl::SIZE);
    assert!(size_of::<b::fvp_volume_health>() == logic::abi::VolumeHealth::SIZE);
    assert!(b::FVP_VOLUME_FAILING == logic::abi::VOLUME_FAILING);
    assert!(b::FVP_VOLUME_DETACHED == logic::abi::VOLUME_DETACHED);
    assert!(b::FVP_FEATURE_REPLICATION as u64 == logic::abi::FEATURE_REPLICATION);
    assert!(b::FVP_MAX_HOSTS == logic::abi::MAX_HOSTS);
};

struct FvpModule {
    // Dropped in declaration order: the control device goes first, then the target type
    // (no table uses it: device-mapper pins the module while one does).
    _control: Pin<KBox<miscdev::Registration<control::Control>>>,
    _target: Pin<KBox<dm::Registration<target::FvpTarget>>>,
    registry: Arc<registry::Registry>,
    shared: Arc<shared::Shared>,
}

impl kernel::Module for FvpModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let shared = Arc::new(shared::Shared::new(module)?, GFP_KERNEL)?;
        let cluster = Arc::pin_init(cluster::Cluster::new(shared.clone()), GFP_KERNEL)?;
        let registry = Arc::pin_init(registry::Registry::new(shared.clone(), cluster), GFP_KERNEL)?;
        let target = KBox::pin_init(
            dm::Registration::new(c"fvp", [VERSION.0, VERSION.1, VERSION.2], module, registry.clone()),
            GFP_KERNEL,
        )?;
        let control = KBox::pin_init(
            miscdev::Registration::new(c"fvp-control", 0o600, module, control::Control::new(registry.clone())),
            GFP_KERNEL,
        )?;
        pr_info!("fvp {} loaded (abi {})\n", VERSION_STR, logic::abi::ABI_VERSION);
        Ok(FvpModule { _control: control, _target: target, registry, shared })
    }
}

impl Drop for FvpModule {
    fn drop(&mut self) {
        // Stop the pools' destagers, then wait for every work item still queued, so no
        // fvp code runs once the module is gone. The registrations drop after this.
        self.registry.cluster.stop();
        self.registry.shut_down();
        self.shared.wq.flush();
        pr_info!("fvp unloading\n");
    }
}
