// SPDX-License-Identifier: GPL-2.0

//! Checks `fvp_logic::abi` against `include/uapi/linux/fvp.h`, the ABI's source of truth.
//!
//! A C compiler builds a program that prints every size, offset, alignment and constant
//! the header defines; the test compares each with the value the Rust side uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use fvp_logic::abi::{
    self, ClusterCfg, ClusterInfo, DeviceReq, FlashInfo, FlashOpen, HostInfo, HostReq, KeyReq, PoolInfo, PoolReq,
    Status, Version, VolumeDiscard, VolumeHealth, VolumeInfo, VolumeRepl,
};

/// Prints `key=value` lines. The `struct.field.*` keys must match `rust_layout`.
const PROBE_C: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <uapi/linux/fvp.h>

#define STRUCT(s)							\
	printf(#s ".size=%zu\n", sizeof(struct s));			\
	printf(#s ".align=%zu\n", _Alignof(struct s))
#define FIELD(s, f)							\
	printf(#s "." #f ".offset=%zu\n", offsetof(struct s, f));	\
	printf(#s "." #f ".size=%zu\n", sizeof(((struct s *)0)->f))
#define NUMBER(c) printf(#c "=%llu\n", (unsigned long long)(c))

int main(void)
{
	STRUCT(fvp_version);
	FIELD(fvp_version, abi_version);
	FIELD(fvp_version, module_major);
	FIELD(fvp_version, module_minor);
	FIELD(fvp_version, module_patch);
	FIELD(fvp_version, features);
	FIELD(fvp_version, version);

	STRUCT(fvp_status);
	FIELD(fvp_status, volumes);
	FIELD(fvp_status, reserved);
	FIELD(fvp_status, bios_mapped);

	STRUCT(fvp_pool_req);
	FIELD(fvp_pool_req, name);
	FIELD(fvp_pool_req, ram_bytes);

	STRUCT(fvp_pool_info);
	FIELD(fvp_pool_info, index);
	FIELD(fvp_pool_info, volumes);
	FIELD(fvp_pool_info, name);
	FIELD(fvp_pool_info, target_bytes);
	FIELD(fvp_pool_info, pages);
	FIELD(fvp_pool_info, free_pages);
	FIELD(fvp_pool_info, clean_pages);
	FIELD(fvp_pool_info, dirty_pages);
	FIELD(fvp_pool_info, busy_pages);
	FIELD(fvp_pool_info, metadata_bytes);
	FIELD(fvp_pool_info, evictions);

	STRUCT(fvp_volume_info);
	FIELD(fvp_volume_info, index);
	FIELD(fvp_volume_info, block_size);
	FIELD(fvp_volume_info, dev_major);
	FIELD(fvp_volume_info, dev_minor);
	FIELD(fvp_volume_info, pool);
	FIELD(fvp_volume_info, policy_requested);
	FIELD(fvp_volume_info, policy_effective);
	FIELD(fvp_volume_info, reads);
	FIELD(fvp_volume_info, writes);
	FIELD(fvp_volume_info, read_bytes);
	FIELD(fvp_volume_info, write_bytes);
	FIELD(fvp_volume_info, read_hits);
	FIELD(fvp_volume_info, read_misses);
	FIELD(fvp_volume_info, write_hits);
	FIELD(fvp_volume_info, bypassed);
	FIELD(fvp_volume_info, dirty_blocks);
	FIELD(fvp_volume_info, destaged_blocks);
	FIELD(fvp_volume_info, evictions);
	FIELD(fvp_volume_info, read_latency);
	FIELD(fvp_volume_info, write_latency);

	STRUCT(fvp_cluster_cfg);
	FIELD(fvp_cluster_cfg, name);
	FIELD(fvp_cluster_cfg, local_id);
	FIELD(fvp_cluster_cfg, heartbeat_ms);
	FIELD(fvp_cluster_cfg, timeout_ms);
	FIELD(fvp_cluster_cfg, secret_len);
	FIELD(fvp_cluster_cfg, secret);
	FIELD(fvp_cluster_cfg, transport);
	FIELD(fvp_cluster_cfg, reserved);

	STRUCT(fvp_cluster_info);
	FIELD(fvp_cluster_info, cfg);
	FIELD(fvp_cluster_info, flags);
	FIELD(fvp_cluster_info, hosts);
	FIELD(fvp_cluster_info, devices);
	FIELD(fvp_cluster_info, hosts_up);
	FIELD(fvp_cluster_info, replica_blocks);
	FIELD(fvp_cluster_info, refused_connections);
	FIELD(fvp_cluster_info, protocol_errors);

	STRUCT(fvp_host_req);
	FIELD(fvp_host_req, id);
	FIELD(fvp_host_req, addr);
	FIELD(fvp_host_req, port);
	FIELD(fvp_host_req, flags);
	FIELD(fvp_host_req, domain);

	STRUCT(fvp_host_info);
	FIELD(fvp_host_info, index);
	FIELD(fvp_host_info, host);
	FIELD(fvp_host_info, state);
	FIELD(fvp_host_info, reserved);
	FIELD(fvp_host_info, last_heard_ms);
	FIELD(fvp_host_info, rtt_us);
	FIELD(fvp_host_info, replica_blocks);

	STRUCT(fvp_device_req);
	FIELD(fvp_device_req, index);
	FIELD(fvp_device_req, reserved);
	FIELD(fvp_device_req, name);
	FIELD(fvp_device_req, path);
	FIELD(fvp_device_req, uuid);

	STRUCT(fvp_volume_repl);
	FIELD(fvp_volume_repl, index);
	FIELD(fvp_volume_repl, peers);
	FIELD(fvp_volume_repl, domain);
	FIELD(fvp_volume_repl, state);
	FIELD(fvp_volume_repl, peer_ids);
	FIELD(fvp_volume_repl, name);
	FIELD(fvp_volume_repl, epoch);
	FIELD(fvp_volume_repl, replicated_writes);
	FIELD(fvp_volume_repl, reprotections);
	FIELD(fvp_volume_repl, resent_blocks);

	STRUCT(fvp_volume_health);
	FIELD(fvp_volume_health, index);
	FIELD(fvp_volume_health, flags);
	FIELD(fvp_volume_health, destage_errors);
	FIELD(fvp_volume_health, io_errors);
	FIELD(fvp_volume_health, dirty_blocks);
	FIELD(fvp_volume_health, backing_major);
	FIELD(fvp_volume_health, backing_minor);
	FIELD(fvp_volume_health, reserved);
	STRUCT(fvp_flash_open);
	FIELD(fvp_flash_open, name);
	FIELD(fvp_flash_open, path);
	FIELD(fvp_flash_open, slots);
	FIELD(fvp_flash_open, live_blocks);
	FIELD(fvp_flash_open, dirty_blocks);
	FIELD(fvp_flash_open, stale_entries);
	FIELD(fvp_flash_open, open_us);
	FIELD(fvp_flash_open, reserved);
	STRUCT(fvp_flash_info);
	FIELD(fvp_flash_info, index);
	FIELD(fvp_flash_info, volumes);
	FIELD(fvp_flash_info, name);
	FIELD(fvp_flash_info, path);
	FIELD(fvp_flash_info, uuid);
	FIELD(fvp_flash_info, state);
	FIELD(fvp_flash_info, records);
	FIELD(fvp_flash_info, slots);
	FIELD(fvp_flash_info, free_slots);
	FIELD(fvp_flash_info, clean_blocks);
	FIELD(fvp_flash_info, dirty_blocks);
	FIELD(fvp_flash_info, held_slots);
	FIELD(fvp_flash_info, commits);
	FIELD(fvp_flash_info, metadata_bytes);
	FIELD(fvp_flash_info, evictions);
	FIELD(fvp_flash_info, reserved);
	STRUCT(fvp_volume_discard);
	FIELD(fvp_volume_discard, backing_major);
	FIELD(fvp_volume_discard, backing_minor);
	FIELD(fvp_volume_discard, dirty_blocks);
	FIELD(fvp_volume_discard, reserved);
	STRUCT(fvp_key_req);
	FIELD(fvp_key_req, id);
	FIELD(fvp_key_req, flags);
	FIELD(fvp_key_req, key);
	FIELD(fvp_key_req, reserved);

	NUMBER(FVP_IOC_VERSION);
	NUMBER(FVP_IOC_STATUS);
	NUMBER(FVP_ABI_VERSION);
	NUMBER(FVP_IOCTL_MAGIC);
	NUMBER(FVP_FEATURE_PASSTHROUGH);
	NUMBER(FVP_VERSION_STR_LEN);
	NUMBER(FVP_FEATURE_RAM_POOL);
	NUMBER(FVP_NAME_LEN);
	NUMBER(FVP_LAT_BUCKETS);
	NUMBER(FVP_POLICY_WRITE_THROUGH);
	NUMBER(FVP_POLICY_WRITE_BACK);
	NUMBER(FVP_IOC_POOL_CREATE);
	NUMBER(FVP_IOC_POOL_RESIZE);
	NUMBER(FVP_IOC_POOL_DESTROY);
	NUMBER(FVP_IOC_POOL_INFO);
	NUMBER(FVP_IOC_VOLUME_INFO);
	NUMBER(FVP_FEATURE_REPLICATION);
	NUMBER(FVP_MAX_HOSTS);
	NUMBER(FVP_SECRET_LEN);
	NUMBER(FVP_PATH_LEN);
	NUMBER(FVP_CLUSTER_CONFIGURED);
	NUMBER(FVP_CLUSTER_LISTENING);
	NUMBER(FVP_CLUSTER_LEASE);
	NUMBER(FVP_CLUSTER_JOINT);
	NUMBER(FVP_CLUSTER_PENDING);
	NUMBER(FVP_HOST_DEFER);
	NUMBER(FVP_HOST_SELF);
	NUMBER(FVP_HOST_DOWN);
	NUMBER(FVP_HOST_CONNECTING);
	NUMBER(FVP_HOST_UP);
	NUMBER(FVP_HOST_FENCED);
	NUMBER(FVP_REPL_NONE);
	NUMBER(FVP_REPL_PROTECTED);
	NUMBER(FVP_REPL_REPROTECTING);
	NUMBER(FVP_REPL_DEGRADED);
	NUMBER(FVP_REPL_SUSPENDED);
	NUMBER(FVP_REPL_FENCED);
	NUMBER(FVP_IOC_VOLUME_REPL);
	NUMBER(FVP_IOC_CLUSTER_SET);
	NUMBER(FVP_IOC_CLUSTER_INFO);
	NUMBER(FVP_IOC_HOST_ADD);
	NUMBER(FVP_IOC_HOST_REMOVE);
	NUMBER(FVP_IOC_HOST_INFO);
	NUMBER(FVP_IOC_DEVICE_ADD);
	NUMBER(FVP_IOC_DEVICE_REMOVE);
	NUMBER(FVP_IOC_DEVICE_INFO);
	NUMBER(FVP_IOC_HOST_UPDATE);
	NUMBER(FVP_IOC_VOLUME_DISCARD);
	NUMBER(FVP_VOLUME_FAILING);
	NUMBER(FVP_VOLUME_DETACHED);
	NUMBER(FVP_IOC_VOLUME_HEALTH);
	NUMBER(FVP_IOC_FLASH_OPEN);
	NUMBER(FVP_IOC_FLASH_INFO);
	NUMBER(FVP_FEATURE_FLASH_POOL);
	NUMBER(FVP_FEATURE_SECURE_TRANSPORT);
	NUMBER(FVP_TRANSPORT_AUTHENTICATED);
	NUMBER(FVP_TRANSPORT_ENCRYPTED);
	NUMBER(FVP_FLASH_OK);
	NUMBER(FVP_FLASH_FAILED);
	NUMBER(FVP_KEY_LEN);
	NUMBER(FVP_DEVICE_UUID_LEN);
	NUMBER(FVP_KEY_PRIVATE);
	NUMBER(FVP_KEY_PRESENT);
	NUMBER(FVP_IOC_KEY_SET);
	NUMBER(FVP_IOC_KEY_INFO);
	printf("FVP_CONTROL_NAME=%s\n", FVP_CONTROL_NAME);
	return 0;
}
"#;

/// The size of a field, named by a closure that borrows it.
fn field_size<S, F>(_field: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// The Rust side's view of everything `PROBE_C` prints.
fn rust_layout() -> BTreeMap<String, String> {
    let mut layout = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        layout.insert(key.to_owned(), value);
    };
    macro_rules! strukt {
        ($c:literal, $rust:ty) => {
            put(concat!($c, ".size"), size_of::<$rust>().to_string());
            put(concat!($c, ".align"), align_of::<$rust>().to_string());
        };
    }
    macro_rules! field {
        ($c:literal, $rust:ty, $field:ident) => {
            let key = concat!($c, ".", stringify!($field));
            put(&format!("{key}.offset"), offset_of!($rust, $field).to_string());
            put(&format!("{key}.size"), field_size(|s: &$rust| &s.$field).to_string());
        };
    }

    strukt!("fvp_version", Version);
    field!("fvp_version", Version, abi_version);
    field!("fvp_version", Version, module_major);
    field!("fvp_version", Version, module_minor);
    field!("fvp_version", Version, module_patch);
    field!("fvp_version", Version, features);
    field!("fvp_version", Version, version);
    // The structures travel as byte arrays of these sizes.
    assert_eq!(Version::SIZE, size_of::<Version>());
    assert_eq!(Status::SIZE, size_of::<Status>());

    strukt!("fvp_status", Status);
    field!("fvp_status", Status, volumes);
    field!("fvp_status", Status, reserved);
    field!("fvp_status", Status, bios_mapped);

    strukt!("fvp_pool_req", PoolReq);
    field!("fvp_pool_req", PoolReq, name);
    field!("fvp_pool_req", PoolReq, ram_bytes);
    assert_eq!(PoolReq::SIZE, size_of::<PoolReq>());

    strukt!("fvp_pool_info", PoolInfo);
    field!("fvp_pool_info", PoolInfo, index);
    field!("fvp_pool_info", PoolInfo, volumes);
    field!("fvp_pool_info", PoolInfo, name);
    field!("fvp_pool_info", PoolInfo, target_bytes);
    field!("fvp_pool_info", PoolInfo, pages);
    field!("fvp_pool_info", PoolInfo, free_pages);
    field!("fvp_pool_info", PoolInfo, clean_pages);
    field!("fvp_pool_info", PoolInfo, dirty_pages);
    field!("fvp_pool_info", PoolInfo, busy_pages);
    field!("fvp_pool_info", PoolInfo, metadata_bytes);
    field!("fvp_pool_info", PoolInfo, evictions);
    assert_eq!(PoolInfo::SIZE, size_of::<PoolInfo>());

    strukt!("fvp_volume_info", VolumeInfo);
    field!("fvp_volume_info", VolumeInfo, index);
    field!("fvp_volume_info", VolumeInfo, block_size);
    field!("fvp_volume_info", VolumeInfo, dev_major);
    field!("fvp_volume_info", VolumeInfo, dev_minor);
    field!("fvp_volume_info", VolumeInfo, pool);
    field!("fvp_volume_info", VolumeInfo, policy_requested);
    field!("fvp_volume_info", VolumeInfo, policy_effective);
    field!("fvp_volume_info", VolumeInfo, reads);
    field!("fvp_volume_info", VolumeInfo, writes);
    field!("fvp_volume_info", VolumeInfo, read_bytes);
    field!("fvp_volume_info", VolumeInfo, write_bytes);
    field!("fvp_volume_info", VolumeInfo, read_hits);
    field!("fvp_volume_info", VolumeInfo, read_misses);
    field!("fvp_volume_info", VolumeInfo, write_hits);
    field!("fvp_volume_info", VolumeInfo, bypassed);
    field!("fvp_volume_info", VolumeInfo, dirty_blocks);
    field!("fvp_volume_info", VolumeInfo, destaged_blocks);
    field!("fvp_volume_info", VolumeInfo, evictions);
    field!("fvp_volume_info", VolumeInfo, read_latency);
    field!("fvp_volume_info", VolumeInfo, write_latency);
    assert_eq!(VolumeInfo::SIZE, size_of::<VolumeInfo>());

    strukt!("fvp_cluster_cfg", ClusterCfg);
    field!("fvp_cluster_cfg", ClusterCfg, name);
    field!("fvp_cluster_cfg", ClusterCfg, local_id);
    field!("fvp_cluster_cfg", ClusterCfg, heartbeat_ms);
    field!("fvp_cluster_cfg", ClusterCfg, timeout_ms);
    field!("fvp_cluster_cfg", ClusterCfg, secret_len);
    field!("fvp_cluster_cfg", ClusterCfg, secret);
    field!("fvp_cluster_cfg", ClusterCfg, transport);
    field!("fvp_cluster_cfg", ClusterCfg, reserved);
    assert_eq!(ClusterCfg::SIZE, size_of::<ClusterCfg>());

    strukt!("fvp_cluster_info", ClusterInfo);
    field!("fvp_cluster_info", ClusterInfo, cfg);
    field!("fvp_cluster_info", ClusterInfo, flags);
    field!("fvp_cluster_info", ClusterInfo, hosts);
    field!("fvp_cluster_info", ClusterInfo, devices);
    field!("fvp_cluster_info", ClusterInfo, hosts_up);
    field!("fvp_cluster_info", ClusterInfo, replica_blocks);
    field!("fvp_cluster_info", ClusterInfo, refused_connections);
    field!("fvp_cluster_info", ClusterInfo, protocol_errors);
    assert_eq!(ClusterInfo::SIZE, size_of::<ClusterInfo>());

    strukt!("fvp_host_req", HostReq);
    field!("fvp_host_req", HostReq, id);
    field!("fvp_host_req", HostReq, addr);
    field!("fvp_host_req", HostReq, port);
    field!("fvp_host_req", HostReq, flags);
    field!("fvp_host_req", HostReq, domain);
    assert_eq!(HostReq::SIZE, size_of::<HostReq>());

    strukt!("fvp_host_info", HostInfo);
    field!("fvp_host_info", HostInfo, index);
    field!("fvp_host_info", HostInfo, host);
    field!("fvp_host_info", HostInfo, state);
    field!("fvp_host_info", HostInfo, reserved);
    field!("fvp_host_info", HostInfo, last_heard_ms);
    field!("fvp_host_info", HostInfo, rtt_us);
    field!("fvp_host_info", HostInfo, replica_blocks);
    assert_eq!(HostInfo::SIZE, size_of::<HostInfo>());

    strukt!("fvp_device_req", DeviceReq);
    field!("fvp_device_req", DeviceReq, index);
    field!("fvp_device_req", DeviceReq, reserved);
    field!("fvp_device_req", DeviceReq, name);
    field!("fvp_device_req", DeviceReq, path);
    field!("fvp_device_req", DeviceReq, uuid);
    assert_eq!(DeviceReq::SIZE, size_of::<DeviceReq>());

    strukt!("fvp_volume_repl", VolumeRepl);
    field!("fvp_volume_repl", VolumeRepl, index);
    field!("fvp_volume_repl", VolumeRepl, peers);
    field!("fvp_volume_repl", VolumeRepl, domain);
    field!("fvp_volume_repl", VolumeRepl, state);
    field!("fvp_volume_repl", VolumeRepl, peer_ids);
    field!("fvp_volume_repl", VolumeRepl, name);
    field!("fvp_volume_repl", VolumeRepl, epoch);
    field!("fvp_volume_repl", VolumeRepl, replicated_writes);
    field!("fvp_volume_repl", VolumeRepl, reprotections);
    field!("fvp_volume_repl", VolumeRepl, resent_blocks);
    assert_eq!(VolumeRepl::SIZE, size_of::<VolumeRepl>());

    strukt!("fvp_volume_health", VolumeHealth);
    field!("fvp_volume_health", VolumeHealth, index);
    field!("fvp_volume_health", VolumeHealth, flags);
    field!("fvp_volume_health", VolumeHealth, destage_errors);
    field!("fvp_volume_health", VolumeHealth, io_errors);
    field!("fvp_volume_health", VolumeHealth, dirty_blocks);
    field!("fvp_volume_health", VolumeHealth, backing_major);
    field!("fvp_volume_health", VolumeHealth, backing_minor);
    field!("fvp_volume_health", VolumeHealth, reserved);
    assert_eq!(VolumeHealth::SIZE, size_of::<VolumeHealth>());

    strukt!("fvp_flash_open", FlashOpen);
    field!("fvp_flash_open", FlashOpen, name);
    field!("fvp_flash_open", FlashOpen, path);
    field!("fvp_flash_open", FlashOpen, slots);
    field!("fvp_flash_open", FlashOpen, live_blocks);
    field!("fvp_flash_open", FlashOpen, dirty_blocks);
    field!("fvp_flash_open", FlashOpen, stale_entries);
    field!("fvp_flash_open", FlashOpen, open_us);
    field!("fvp_flash_open", FlashOpen, reserved);
    assert_eq!(FlashOpen::SIZE, size_of::<FlashOpen>());

    strukt!("fvp_flash_info", FlashInfo);
    field!("fvp_flash_info", FlashInfo, index);
    field!("fvp_flash_info", FlashInfo, volumes);
    field!("fvp_flash_info", FlashInfo, name);
    field!("fvp_flash_info", FlashInfo, path);
    field!("fvp_flash_info", FlashInfo, uuid);
    field!("fvp_flash_info", FlashInfo, state);
    field!("fvp_flash_info", FlashInfo, records);
    field!("fvp_flash_info", FlashInfo, slots);
    field!("fvp_flash_info", FlashInfo, free_slots);
    field!("fvp_flash_info", FlashInfo, clean_blocks);
    field!("fvp_flash_info", FlashInfo, dirty_blocks);
    field!("fvp_flash_info", FlashInfo, held_slots);
    field!("fvp_flash_info", FlashInfo, commits);
    field!("fvp_flash_info", FlashInfo, metadata_bytes);
    field!("fvp_flash_info", FlashInfo, evictions);
    field!("fvp_flash_info", FlashInfo, reserved);
    assert_eq!(FlashInfo::SIZE, size_of::<FlashInfo>());

    strukt!("fvp_volume_discard", VolumeDiscard);
    field!("fvp_volume_discard", VolumeDiscard, backing_major);
    field!("fvp_volume_discard", VolumeDiscard, backing_minor);
    field!("fvp_volume_discard", VolumeDiscard, dirty_blocks);
    field!("fvp_volume_discard", VolumeDiscard, reserved);
    assert_eq!(VolumeDiscard::SIZE, size_of::<VolumeDiscard>());

    strukt!("fvp_key_req", KeyReq);
    field!("fvp_key_req", KeyReq, id);
    field!("fvp_key_req", KeyReq, flags);
    field!("fvp_key_req", KeyReq, key);
    field!("fvp_key_req", KeyReq, reserved);
    assert_eq!(KeyReq::SIZE, size_of::<KeyReq>());

    put("FVP_IOC_VERSION", abi::IOC_VERSION.to_string());
    put("FVP_IOC_STATUS", abi::IOC_STATUS.to_string());
    put("FVP_ABI_VERSION", abi::ABI_VERSION.to_string());
    put("FVP_IOCTL_MAGIC", abi::IOCTL_MAGIC.to_string());
    put("FVP_FEATURE_PASSTHROUGH", abi::FEATURE_PASSTHROUGH.to_string());
    put("FVP_VERSION_STR_LEN", abi::VERSION_STR_LEN.to_string());
    put("FVP_CONTROL_NAME", abi::CONTROL_NAME.to_owned());
    put("FVP_FEATURE_RAM_POOL", abi::FEATURE_RAM_POOL.to_string());
    put("FVP_NAME_LEN", abi::NAME_LEN.to_string());
    put("FVP_LAT_BUCKETS", abi::LAT_BUCKETS.to_string());
    put("FVP_POLICY_WRITE_THROUGH", abi::POLICY_WRITE_THROUGH.to_string());
    put("FVP_POLICY_WRITE_BACK", abi::POLICY_WRITE_BACK.to_string());
    put("FVP_IOC_POOL_CREATE", abi::IOC_POOL_CREATE.to_string());
    put("FVP_IOC_POOL_RESIZE", abi::IOC_POOL_RESIZE.to_string());
    put("FVP_IOC_POOL_DESTROY", abi::IOC_POOL_DESTROY.to_string());
    put("FVP_IOC_POOL_INFO", abi::IOC_POOL_INFO.to_string());
    put("FVP_IOC_VOLUME_INFO", abi::IOC_VOLUME_INFO.to_string());
    put("FVP_FEATURE_REPLICATION", abi::FEATURE_REPLICATION.to_string());
    put("FVP_MAX_HOSTS", abi::MAX_HOSTS.to_string());
    put("FVP_SECRET_LEN", abi::SECRET_LEN.to_string());
    put("FVP_PATH_LEN", abi::PATH_LEN.to_string());
    put("FVP_CLUSTER_CONFIGURED", abi::CLUSTER_CONFIGURED.to_string());
    put("FVP_CLUSTER_LISTENING", abi::CLUSTER_LISTENING.to_string());
    put("FVP_CLUSTER_LEASE", abi::CLUSTER_LEASE.to_string());
    put("FVP_CLUSTER_JOINT", abi::CLUSTER_JOINT.to_string());
    put("FVP_CLUSTER_PENDING", abi::CLUSTER_PENDING.to_string());
    put("FVP_HOST_DEFER", abi::HOST_DEFER.to_string());
    put("FVP_HOST_SELF", abi::HOST_SELF.to_string());
    put("FVP_HOST_DOWN", abi::HOST_DOWN.to_string());
    put("FVP_HOST_CONNECTING", abi::HOST_CONNECTING.to_string());
    put("FVP_HOST_UP", abi::HOST_UP.to_string());
    put("FVP_HOST_FENCED", abi::HOST_FENCED.to_string());
    put("FVP_REPL_NONE", abi::REPL_NONE.to_string());
    put("FVP_REPL_PROTECTED", abi::REPL_PROTECTED.to_string());
    put("FVP_REPL_REPROTECTING", abi::REPL_REPROTECTING.to_string());
    put("FVP_REPL_DEGRADED", abi::REPL_DEGRADED.to_string());
    put("FVP_REPL_SUSPENDED", abi::REPL_SUSPENDED.to_string());
    put("FVP_REPL_FENCED", abi::REPL_FENCED.to_string());
    put("FVP_IOC_VOLUME_REPL", abi::IOC_VOLUME_REPL.to_string());
    put("FVP_IOC_CLUSTER_SET", abi::IOC_CLUSTER_SET.to_string());
    put("FVP_IOC_CLUSTER_INFO", abi::IOC_CLUSTER_INFO.to_string());
    put("FVP_IOC_HOST_ADD", abi::IOC_HOST_ADD.to_string());
    put("FVP_IOC_HOST_REMOVE", abi::IOC_HOST_REMOVE.to_string());
    put("FVP_IOC_HOST_INFO", abi::IOC_HOST_INFO.to_string());
    put("FVP_IOC_DEVICE_ADD", abi::IOC_DEVICE_ADD.to_string());
    put("FVP_IOC_DEVICE_REMOVE", abi::IOC_DEVICE_REMOVE.to_string());
    put("FVP_IOC_DEVICE_INFO", abi::IOC_DEVICE_INFO.to_string());
    put("FVP_IOC_HOST_UPDATE", abi::IOC_HOST_UPDATE.to_string());
    put("FVP_IOC_VOLUME_DISCARD", abi::IOC_VOLUME_DISCARD.to_string());
    put("FVP_VOLUME_FAILING", abi::VOLUME_FAILING.to_string());
    put("FVP_VOLUME_DETACHED", abi::VOLUME_DETACHED.to_string());
    put("FVP_IOC_VOLUME_HEALTH", abi::IOC_VOLUME_HEALTH.to_string());
    put("FVP_IOC_FLASH_OPEN", abi::IOC_FLASH_OPEN.to_string());
    put("FVP_IOC_FLASH_INFO", abi::IOC_FLASH_INFO.to_string());
    put("FVP_FEATURE_FLASH_POOL", abi::FEATURE_FLASH_POOL.to_string());
    put("FVP_FEATURE_SECURE_TRANSPORT", abi::FEATURE_SECURE_TRANSPORT.to_string());
    put("FVP_TRANSPORT_AUTHENTICATED", abi::TRANSPORT_AUTHENTICATED.to_string());
    put("FVP_TRANSPORT_ENCRYPTED", abi::TRANSPORT_ENCRYPTED.to_string());
    put("FVP_FLASH_OK", abi::FLASH_OK.to_string());
    put("FVP_FLASH_FAILED", abi::FLASH_FAILED.to_string());
    put("FVP_KEY_LEN", abi::KEY_LEN.to_string());
    put("FVP_DEVICE_UUID_LEN", abi::DEVICE_UUID_LEN.to_string());
    put("FVP_KEY_PRIVATE", abi::KEY_PRIVATE.to_string());
    put("FVP_KEY_PRESENT", abi::KEY_PRESENT.to_string());
    put("FVP_IOC_KEY_SET", abi::IOC_KEY_SET.to_string());
    put("FVP_IOC_KEY_INFO", abi::IOC_KEY_INFO.to_string());
    // The commands the module decodes are these same numbers, each under its name.
    let ioc_names: BTreeMap<u32, &str> = layout
        .iter()
        .filter(|(key, _)| key.starts_with("FVP_IOC_"))
        .map(|(key, value)| (value.parse().expect("a number"), key.as_str()))
        .collect();
    assert_eq!(ioc_names.len(), abi::Command::ALL.len());
    for command in abi::Command::ALL {
        assert_eq!(abi::Command::decode(command.ioc()), Ok(command));
        assert!(ioc_names.contains_key(&command.ioc()), "{command:?} is not one of the header's commands");
    }
    layout
}

/// The repository's root, found from this crate's place in it.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiles and runs `PROBE_C`, returning what it printed.
fn c_layout() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("uapi_layout");
    fs::create_dir_all(&dir).expect("create the probe's directory");
    let source = dir.join("probe.c");
    let binary = dir.join("probe");
    fs::write(&source, PROBE_C).expect("write the probe");

    // `-I include` makes the header reachable as <uapi/linux/fvp.h>, while the
    // <linux/*.h> it includes still come from the system (linux-libc-dev).
    let include = repo_root().join("include");
    let compiled = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output();
    let compiled = match compiled {
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "`cc` not found: this test needs a C compiler (e.g. apt-get install gcc) \
             to check the Rust ABI against include/uapi/linux/fvp.h"
        ),
        result => result.expect("run cc"),
    };
    assert!(
        compiled.status.success(),
        "cc failed to build the probe of {}:\n{}",
        include.join("uapi/linux/fvp.h").display(),
        String::from_utf8_lossy(&compiled.stderr)
    );

    let ran = Command::new(&binary).output().expect("run the probe");
    assert!(ran.status.success(), "the probe failed: {:?}", ran.status);
    String::from_utf8(ran.stdout)
        .expect("the probe prints UTF-8")
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('=').expect("the probe prints key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn rust_abi_matches_the_c_header() {
    let c = c_layout();
    let rust = rust_layout();
    let keys: BTreeSet<&String> = c.keys().chain(rust.keys()).collect();
    let mismatches: Vec<String> = keys
        .into_iter()
        .filter(|key| c.get(*key) != rust.get(*key))
        .map(|key| format!("{key}: C {:?}, Rust {:?}", c.get(key), rust.get(key)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "fvp_logic::abi disagrees with include/uapi/linux/fvp.h:\n  {}",
        mismatches.join("\n  ")
    );
    // Sixteen structures (size, alignment, and offset and size of 6 + 3 + 2 + 11 + 20
    // fields in ABI 2, 7 + 8 + 5 + 7 + 4 + 10 in ABI 3, 8 in ABI 4, 4 in ABI 5, 8 + 16
    // in ABI 7, 1 + 4 in ABI 8 and 1 in ABI 9) and 17 + 27 + 3 + 2 + 3 + 5 + 3 + 5 + 1
    // constants (2: ABI 5's commands; 3: ABI 6's flags; 5: ABI 7's commands, feature and
    // states; 3 + 5: ABI 8's feature and transports, and its keys' length, flags and
    // commands; 1: ABI 9's uuid length): catches a probe and a table that both lost the
    // same lines.
    assert_eq!(
        c.len(),
        16 * 2
            + 2 * (6 + 3 + 2 + 11 + 20)
            + 2 * (7 + 8 + 5 + 7 + 4 + 10)
            + 2 * 8
            + 2 * 4
            + 2 * (8 + 16)
            + 2
            + 2 * 4
            + 2
            + 17
            + 27
            + 3
            + 2
            + 3
            + 5
            + 3
            + 5
            + 1,
        "{c:#?}"
    );
}

/// Every structure's listed fields tile it exactly, with no gap and nothing past its
/// end: a field missing from both the probe and the table would leave a gap (the
/// header has no implicit padding).
#[test]
fn listed_fields_cover_every_structure() {
    let rust = rust_layout();
    let number = |key: &str| -> usize { rust[key].parse().expect("a number") };
    let structs: BTreeSet<&str> =
        rust.keys().filter_map(|key| key.strip_suffix(".size")).filter(|name| !name.contains('.')).collect();
    assert_eq!(structs.len(), 16, "{structs:?}");
    for name in structs {
        let mut fields: Vec<(usize, usize, &str)> = rust
            .keys()
            .filter_map(|key| key.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".offset"))
            .map(|field| (number(&format!("{name}.{field}.offset")), number(&format!("{name}.{field}.size")), field))
            .collect();
        fields.sort();
        let mut end = 0;
        for (offset, size, field) in fields {
            assert_eq!(offset, end, "{name}: gap or overlap before {field}");
            end = offset + size;
        }
        assert_eq!(end, number(&format!("{name}.size")), "{name}: fields missing at the end");
    }
}
