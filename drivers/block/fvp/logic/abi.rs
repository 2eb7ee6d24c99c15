// SPDX-License-Identifier: GPL-2.0

//! The `/dev/fvp-control` ioctl ABI, mirroring `include/uapi/linux/fvp.h`.
//!
//! The header is the source of truth. fvp.ko asserts at build time that these sizes
//! match the bindgen view of the header, and fvpctl's tests compile the header with a C
//! compiler and compare every size, offset and constant with the ones here.
//!
//! Structures cross the boundary as byte arrays in native byte order (`to_bytes` and
//! `from_bytes`), so neither side needs `unsafe` to copy them.

use core::mem::{offset_of, size_of};

/// `FVP_CONTROL_NAME`: the misc device is `/dev/fvp-control`.
pub const CONTROL_NAME: &str = "fvp-control";
/// `FVP_IOCTL_MAGIC`: the ioctl type byte.
pub const IOCTL_MAGIC: u32 = 0xF7;
/// `FVP_ABI_VERSION`.
pub const ABI_VERSION: u32 = 9;
/// `FVP_FEATURE_PASSTHROUGH`: the dm target `fvp` maps I/O to its backing device.
pub const FEATURE_PASSTHROUGH: u64 = 1 << 0;
/// `FVP_FEATURE_RAM_POOL`: RAM pools; write-through and write-back (peers=0) volumes.
pub const FEATURE_RAM_POOL: u64 = 1 << 1;
/// `FVP_FEATURE_REPLICATION`: cluster commands; write-back with peers=1|2.
pub const FEATURE_REPLICATION: u64 = 1 << 2;
/// `FVP_FEATURE_FLASH_POOL`: flash pools (ABI 7).
pub const FEATURE_FLASH_POOL: u64 = 1 << 3;
/// `FVP_FEATURE_SECURE_TRANSPORT`: every replication message sealed; `transport` in the
/// cluster settings (ABI 8).
pub const FEATURE_SECURE_TRANSPORT: u64 = 1 << 4;
/// `FVP_TRANSPORT_AUTHENTICATED`: messages authenticated, in clear (the default).
pub const TRANSPORT_AUTHENTICATED: u32 = crate::logic::seal::TRANSPORT_AUTHENTICATED;
/// `FVP_TRANSPORT_ENCRYPTED`: payloads encrypted too.
pub const TRANSPORT_ENCRYPTED: u32 = crate::logic::seal::TRANSPORT_ENCRYPTED;
/// `FVP_DEVICE_UUID_LEN`: a shared device's configured identity (ABI 9).
pub const DEVICE_UUID_LEN: usize = 16;
/// `sizeof(struct fvp_device_req)` before ABI 9 (no `uuid`): the size the device
/// commands encoded on ABI 3 to 8 modules.
pub const DEVICE_REQ_V3_SIZE: usize = 4 + 4 + NAME_LEN + PATH_LEN;

/// `FVP_KEY_LEN`: an X25519 key (private or public).
pub const KEY_LEN: usize = 32;
/// `FVP_KEY_PRIVATE`: `FVP_IOC_KEY_SET` sets this host's private key.
pub const KEY_PRIVATE: u32 = 1 << 0;
/// `FVP_KEY_PRESENT`: `FVP_IOC_KEY_INFO` found a key for the host.
pub const KEY_PRESENT: u32 = 1 << 1;
/// `FVP_NAME_LEN`: pool names, NUL-padded.
pub const NAME_LEN: usize = 32;
/// `FVP_LAT_BUCKETS`.
pub const LAT_BUCKETS: usize = 24;
/// `FVP_POLICY_WRITE_THROUGH`.
pub const POLICY_WRITE_THROUGH: u32 = 1;
/// `FVP_POLICY_WRITE_BACK`.
pub const POLICY_WRITE_BACK: u32 = 2;
/// `FVP_VERSION_STR_LEN`.
pub const VERSION_STR_LEN: usize = 32;

/// `FVP_MAX_HOSTS`: host ids are 1..=`MAX_HOSTS`.
pub const MAX_HOSTS: u32 = 64;
/// `FVP_SECRET_LEN`: room for the cluster's shared secret.
pub const SECRET_LEN: usize = 64;
/// `FVP_PATH_LEN`: a shared device's local path, NUL included.
pub const PATH_LEN: usize = 256;

/// `FVP_CLUSTER_CONFIGURED`: `FVP_IOC_CLUSTER_SET` has been done.
pub const CLUSTER_CONFIGURED: u32 = 1 << 0;
/// `FVP_CLUSTER_LISTENING`: the replication listener is bound.
pub const CLUSTER_LISTENING: u32 = 1 << 1;
/// `FVP_CLUSTER_LEASE`: this host holds its lease (majority).
pub const CLUSTER_LEASE: u32 = 1 << 2;
/// `FVP_CLUSTER_JOINT` (ABI 6): an earlier host list is still in force.
pub const CLUSTER_JOINT: u32 = 1 << 3;
/// `FVP_CLUSTER_PENDING` (ABI 6): deferred host changes are not yet in force.
pub const CLUSTER_PENDING: u32 = 1 << 4;

/// `FVP_HOST_DEFER` (ABI 6): a host add or remove is recorded, and put in force with the
/// next one without it (or `FVP_IOC_CLUSTER_SET`).
pub const HOST_DEFER: u16 = 1 << 0;

/// `FVP_HOST_SELF`: the host entry is this host.
pub const HOST_SELF: u32 = 0;
/// `FVP_HOST_DOWN`: not heard within `timeout_ms`.
pub const HOST_DOWN: u32 = 1;
/// `FVP_HOST_CONNECTING`: heard, both connections not yet authenticated.
pub const HOST_CONNECTING: u32 = 2;
/// `FVP_HOST_UP`.
pub const HOST_UP: u32 = 3;
/// `FVP_HOST_FENCED`: fenced by this host.
pub const HOST_FENCED: u32 = 4;

/// `FVP_REPL_NONE`: peers=0.
pub const REPL_NONE: u32 = 0;
/// `FVP_REPL_PROTECTED`: every dirty block is held by `peers` peers.
pub const REPL_PROTECTED: u32 = 1;
/// `FVP_REPL_REPROTECTING`: a lost peer is being replaced.
pub const REPL_REPROTECTING: u32 = 2;
/// `FVP_REPL_DEGRADED`: no eligible peer: write-through.
pub const REPL_DEGRADED: u32 = 3;
/// `FVP_REPL_SUSPENDED`: no lease: I/O waits.
pub const REPL_SUSPENDED: u32 = 4;
/// `FVP_REPL_FENCED`: taken over by a peer: needs a reload.
pub const REPL_FENCED: u32 = 5;

/// `FVP_VOLUME_FAILING`: writes of dirty blocks to the backing device fail.
pub const VOLUME_FAILING: u32 = 1 << 0;
/// `FVP_VOLUME_DETACHED`: its device was removed with dirty blocks it could not write
/// back; kept and retried.
pub const VOLUME_DETACHED: u32 = 1 << 1;

// Not in the header: names for values and limits its comments give.

/// `fvp_volume_repl.domain`: peers in the owner's fault domain.
pub const DOMAIN_SAME: u32 = 0;
/// `fvp_volume_repl.domain`: peers in other fault domains.
pub const DOMAIN_DIFFERENT: u32 = 1;
/// `fvp_host_info.last_heard_ms` of a host never heard from (`~0`).
pub const LAST_HEARD_NEVER: u64 = u64::MAX;
/// Smallest `fvp_cluster_cfg.heartbeat_ms`.
pub const HEARTBEAT_MS_MIN: u32 = 10;
/// Largest `fvp_cluster_cfg.heartbeat_ms`.
pub const HEARTBEAT_MS_MAX: u32 = 10_000;
/// `fvp_cluster_cfg.timeout_ms` is at least this many heartbeats.
pub const TIMEOUT_HEARTBEATS_MIN: u32 = 3;
/// Largest `fvp_cluster_cfg.timeout_ms`.
pub const TIMEOUT_MS_MAX: u32 = 600_000;
/// Shortest shared secret, in bytes (the longest is `SECRET_LEN`).
pub const SECRET_LEN_MIN: usize = 16;
/// `heartbeat_ms` when a cluster description does not say (docs/replication.md).
pub const DEFAULT_HEARTBEAT_MS: u32 = 200;
/// `timeout_ms` when a cluster description does not say (docs/replication.md).
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;

const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_SIZEMASK: u32 = (1 << 14) - 1;
/// `_IOC_WRITE`: user space writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes, user space reads.
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)` as on x86 and most architectures.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT) | (ty << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | ((size as u32) << IOC_SIZESHIFT)
}

/// `FVP_IOC_VERSION`.
pub const IOC_VERSION: u32 = ioc(IOC_READ, IOCTL_MAGIC, 0x00, Version::SIZE);
/// `FVP_IOC_STATUS`.
pub const IOC_STATUS: u32 = ioc(IOC_READ, IOCTL_MAGIC, 0x01, Status::SIZE);
/// `FVP_IOC_POOL_CREATE`.
pub const IOC_POOL_CREATE: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x10, PoolReq::SIZE);
/// `FVP_IOC_POOL_RESIZE`.
pub const IOC_POOL_RESIZE: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x11, PoolReq::SIZE);
/// `FVP_IOC_POOL_DESTROY`.
pub const IOC_POOL_DESTROY: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x12, PoolReq::SIZE);
/// `FVP_IOC_POOL_INFO`.
pub const IOC_POOL_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x13, PoolInfo::SIZE);
/// `FVP_IOC_VOLUME_INFO`.
pub const IOC_VOLUME_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x14, VolumeInfo::SIZE);
/// `FVP_IOC_VOLUME_REPL`.
pub const IOC_VOLUME_REPL: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x15, VolumeRepl::SIZE);
/// `FVP_IOC_VOLUME_HEALTH`.
pub const IOC_VOLUME_HEALTH: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x16, VolumeHealth::SIZE);
/// `FVP_IOC_VOLUME_DISCARD`.
pub const IOC_VOLUME_DISCARD: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x17, VolumeDiscard::SIZE);
/// `FVP_IOC_CLUSTER_SET`.
pub const IOC_CLUSTER_SET: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x20, ClusterCfg::SIZE);
/// `FVP_IOC_CLUSTER_INFO`.
pub const IOC_CLUSTER_INFO: u32 = ioc(IOC_READ, IOCTL_MAGIC, 0x21, ClusterInfo::SIZE);
/// `FVP_IOC_HOST_ADD`.
pub const IOC_HOST_ADD: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x22, HostReq::SIZE);
/// `FVP_IOC_HOST_REMOVE`.
pub const IOC_HOST_REMOVE: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x23, HostReq::SIZE);
/// `FVP_IOC_HOST_INFO`.
pub const IOC_HOST_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x24, HostInfo::SIZE);
/// `FVP_IOC_DEVICE_ADD`.
pub const IOC_DEVICE_ADD: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x25, DeviceReq::SIZE);
/// `FVP_IOC_DEVICE_REMOVE`.
pub const IOC_DEVICE_REMOVE: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x26, DeviceReq::SIZE);
/// `FVP_IOC_DEVICE_INFO`.
pub const IOC_DEVICE_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x27, DeviceReq::SIZE);
/// `FVP_IOC_HOST_UPDATE`.
pub const IOC_HOST_UPDATE: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x28, HostReq::SIZE);
/// `FVP_IOC_KEY_SET`.
pub const IOC_KEY_SET: u32 = ioc(IOC_WRITE, IOCTL_MAGIC, 0x2a, KeyReq::SIZE);
/// `FVP_IOC_KEY_INFO`.
pub const IOC_KEY_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x2b, KeyReq::SIZE);
/// `FVP_IOC_FLASH_OPEN`.
pub const IOC_FLASH_OPEN: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x18, FlashOpen::SIZE);
/// `FVP_IOC_FLASH_INFO`.
pub const IOC_FLASH_INFO: u32 = ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x19, FlashInfo::SIZE);

/// A command the control device understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `FVP_IOC_VERSION`.
    Version,
    /// `FVP_IOC_STATUS`.
    Status,
    /// `FVP_IOC_POOL_CREATE`.
    PoolCreate,
    /// `FVP_IOC_POOL_RESIZE`.
    PoolResize,
    /// `FVP_IOC_POOL_DESTROY`.
    PoolDestroy,
    /// `FVP_IOC_POOL_INFO`.
    PoolInfo,
    /// `FVP_IOC_VOLUME_INFO`.
    VolumeInfo,
    /// `FVP_IOC_VOLUME_REPL` (ABI 3).
    VolumeRepl,
    /// `FVP_IOC_VOLUME_HEALTH` (ABI 4).
    VolumeHealth,
    /// `FVP_IOC_CLUSTER_SET` (ABI 3).
    ClusterSet,
    /// `FVP_IOC_CLUSTER_INFO` (ABI 3).
    ClusterInfo,
    /// `FVP_IOC_HOST_ADD` (ABI 3).
    HostAdd,
    /// `FVP_IOC_HOST_REMOVE` (ABI 3).
    HostRemove,
    /// `FVP_IOC_HOST_INFO` (ABI 3).
    HostInfo,
    /// `FVP_IOC_DEVICE_ADD` (ABI 3).
    DeviceAdd,
    /// `FVP_IOC_DEVICE_REMOVE` (ABI 3).
    DeviceRemove,
    /// `FVP_IOC_DEVICE_INFO` (ABI 3).
    DeviceInfo,
    /// `FVP_IOC_HOST_UPDATE` (ABI 5).
    HostUpdate,
    /// `FVP_IOC_VOLUME_DISCARD` (ABI 5).
    VolumeDiscard,
    /// `FVP_IOC_FLASH_OPEN` (ABI 7).
    FlashOpen,
    /// `FVP_IOC_FLASH_INFO` (ABI 7).
    FlashInfo,
    /// `FVP_IOC_KEY_SET` (ABI 8).
    KeySet,
    /// `FVP_IOC_KEY_INFO` (ABI 8).
    KeyInfo,
}

/// Why an ioctl command was refused before it was run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not an fvp command at all (ENOTTY).
    Unknown,
    /// An fvp command number whose encoded size or direction differs from this ABI (EINVAL).
    BadEncoding,
}

impl Command {
    /// Decodes an ioctl command number.
    pub fn decode(cmd: u32) -> Result<Command, CommandError> {
        let ty = (cmd >> IOC_TYPESHIFT) & 0xff;
        let nr = (cmd >> IOC_NRSHIFT) & 0xff;
        if ty != IOCTL_MAGIC {
            return Err(CommandError::Unknown);
        }
        let (command, expected) = match nr {
            0x00 => (Command::Version, IOC_VERSION),
            0x01 => (Command::Status, IOC_STATUS),
            0x10 => (Command::PoolCreate, IOC_POOL_CREATE),
            0x11 => (Command::PoolResize, IOC_POOL_RESIZE),
            0x12 => (Command::PoolDestroy, IOC_POOL_DESTROY),
            0x13 => (Command::PoolInfo, IOC_POOL_INFO),
            0x14 => (Command::VolumeInfo, IOC_VOLUME_INFO),
            0x15 => (Command::VolumeRepl, IOC_VOLUME_REPL),
            0x16 => (Command::VolumeHealth, IOC_VOLUME_HEALTH),
            0x17 => (Command::VolumeDiscard, IOC_VOLUME_DISCARD),
            0x18 => (Command::FlashOpen, IOC_FLASH_OPEN),
            0x19 => (Command::FlashInfo, IOC_FLASH_INFO),
            0x20 => (Command::ClusterSet, IOC_CLUSTER_SET),
            0x21 => (Command::ClusterInfo, IOC_CLUSTER_INFO),
            0x22 => (Command::HostAdd, IOC_HOST_ADD),
            0x23 => (Command::HostRemove, IOC_HOST_REMOVE),
            0x24 => (Command::HostInfo, IOC_HOST_INFO),
            0x2a => (Command::KeySet, IOC_KEY_SET),
            0x2b => (Command::KeyInfo, IOC_KEY_INFO),
            0x25 => (Command::DeviceAdd, IOC_DEVICE_ADD),
            0x26 => (Command::DeviceRemove, IOC_DEVICE_REMOVE),
            0x27 => (Command::DeviceInfo, IOC_DEVICE_INFO),
            0x28 => (Command::HostUpdate, IOC_HOST_UPDATE),
            _ => return Err(CommandError::Unknown),
        };
        if cmd == expected {
            Ok(command)
        } else {
            Err(CommandError::BadEncoding)
        }
    }

    /// The size of the structure the command transfers.
    pub fn size(self) -> usize {
        ioc_size(self.ioc())
    }

    /// Every command, in command-number order.
    pub const ALL: [Command; 23] = [
        Command::Version,
        Command::Status,
        Command::PoolCreate,
        Command::PoolResize,
        Command::PoolDestroy,
        Command::PoolInfo,
        Command::VolumeInfo,
        Command::VolumeRepl,
        Command::VolumeHealth,
        Command::ClusterSet,
        Command::ClusterInfo,
        Command::HostAdd,
        Command::HostRemove,
        Command::HostInfo,
        Command::DeviceAdd,
        Command::DeviceRemove,
        Command::DeviceInfo,
        Command::HostUpdate,
        Command::VolumeDiscard,
        Command::FlashOpen,
        Command::FlashInfo,
        Command::KeySet,
        Command::KeyInfo,
    ];

    /// The first ABI version that has the command.
    pub fn since_abi(self) -> u32 {
        match self {
            Command::Version | Command::Status => 1,
            Command::PoolCreate
            | Command::PoolResize
            | Command::PoolDestroy
            | Command::PoolInfo
            | Command::VolumeInfo => 2,
            Command::VolumeHealth => 4,
            Command::HostUpdate | Command::VolumeDiscard => 5,
            Command::FlashOpen | Command::FlashInfo => 7,
            Command::KeySet | Command::KeyInfo => 8,
            _ => 3,
        }
    }

    /// The ioctl number an ABI 3 to 8 module knows the command by, for the device
    /// commands, whose structure grew in ABI 9 (`uuid`): the same number and direction,
    /// [`DEVICE_REQ_V3_SIZE`] bytes. `None` for the other commands.
    pub fn ioc_before_abi9(self) -> Option<u32> {
        let ioc_number = self.ioc();
        match self {
            Command::DeviceAdd | Command::DeviceRemove | Command::DeviceInfo => {
                Some(ioc(ioc_number >> IOC_DIRSHIFT, IOCTL_MAGIC, ioc_number & 0xff, DEVICE_REQ_V3_SIZE))
            }
            _ => None,
        }
    }

    /// The encoded ioctl number.
    pub fn ioc(self) -> u32 {
        match self {
            Command::Version => IOC_VERSION,
            Command::Status => IOC_STATUS,
            Command::PoolCreate => IOC_POOL_CREATE,
            Command::PoolResize => IOC_POOL_RESIZE,
            Command::PoolDestroy => IOC_POOL_DESTROY,
            Command::PoolInfo => IOC_POOL_INFO,
            Command::VolumeInfo => IOC_VOLUME_INFO,
            Command::VolumeRepl => IOC_VOLUME_REPL,
            Command::VolumeHealth => IOC_VOLUME_HEALTH,
            Command::ClusterSet => IOC_CLUSTER_SET,
            Command::ClusterInfo => IOC_CLUSTER_INFO,
            Command::HostAdd => IOC_HOST_ADD,
            Command::HostRemove => IOC_HOST_REMOVE,
            Command::HostInfo => IOC_HOST_INFO,
            Command::DeviceAdd => IOC_DEVICE_ADD,
            Command::DeviceRemove => IOC_DEVICE_REMOVE,
            Command::DeviceInfo => IOC_DEVICE_INFO,
            Command::HostUpdate => IOC_HOST_UPDATE,
            Command::FlashOpen => IOC_FLASH_OPEN,
            Command::FlashInfo => IOC_FLASH_INFO,
            Command::VolumeDiscard => IOC_VOLUME_DISCARD,
            Command::KeySet => IOC_KEY_SET,
            Command::KeyInfo => IOC_KEY_INFO,
        }
    }
}

/// Size encoded in an ioctl command number.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> IOC_SIZESHIFT) & IOC_SIZEMASK) as usize
}

/// Copies `src` into `dst` at `offset`. Callers pass offsets from `offset_of!`.
fn put(dst: &mut [u8], offset: usize, src: &[u8]) {
    dst[offset..offset + src.len()].copy_from_slice(src);
}

fn get_u32(src: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&src[offset..offset + 4]);
    u32::from_ne_bytes(b)
}

fn get_u64(src: &[u8], offset: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&src[offset..offset + 8]);
    u64::from_ne_bytes(b)
}

/// `struct fvp_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// ABI version of the module.
    pub abi_version: u32,
    /// Module version, major part.
    pub module_major: u32,
    /// Module version, minor part.
    pub module_minor: u32,
    /// Module version, patch part.
    pub module_patch: u32,
    /// `FEATURE_*` bits.
    pub features: u64,
    /// NUL-terminated version string.
    pub version: [u8; VERSION_STR_LEN],
}

impl Version {
    /// `sizeof(struct fvp_version)`.
    pub const SIZE: usize = size_of::<Self>();

    /// Builds a version record; `text` is truncated to leave room for the NUL.
    pub fn new(major: u32, minor: u32, patch: u32, features: u64, text: &str) -> Self {
        let mut version = [0u8; VERSION_STR_LEN];
        let n = text.len().min(VERSION_STR_LEN - 1);
        version[..n].copy_from_slice(&text.as_bytes()[..n]);
        Self {
            abi_version: ABI_VERSION,
            module_major: major,
            module_minor: minor,
            module_patch: patch,
            features,
            version,
        }
    }

    /// The version string, up to its NUL (invalid UTF-8 yields `"?"`).
    pub fn version_str(&self) -> &str {
        let end = self.version.iter().position(|&b| b == 0).unwrap_or(VERSION_STR_LEN);
        core::str::from_utf8(&self.version[..end]).unwrap_or("?")
    }

    /// The C layout, in native byte order.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, offset_of!(Self, abi_version), &self.abi_version.to_ne_bytes());
        put(&mut b, offset_of!(Self, module_major), &self.module_major.to_ne_bytes());
        put(&mut b, offset_of!(Self, module_minor), &self.module_minor.to_ne_bytes());
        put(&mut b, offset_of!(Self, module_patch), &self.module_patch.to_ne_bytes());
        put(&mut b, offset_of!(Self, features), &self.features.to_ne_bytes());
        put(&mut b, offset_of!(Self, version), &self.version);
        b
    }

    /// Parses the C layout.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut version = [0u8; VERSION_STR_LEN];
        let v = offset_of!(Self, version);
        version.copy_from_slice(&b[v..v + VERSION_STR_LEN]);
        Self {
            abi_version: get_u32(b, offset_of!(Self, abi_version)),
            module_major: get_u32(b, offset_of!(Self, module_major)),
            module_minor: get_u32(b, offset_of!(Self, module_minor)),
            module_patch: get_u32(b, offset_of!(Self, module_patch)),
            features: get_u64(b, offset_of!(Self, features)),
            version,
        }
    }
}

/// `struct fvp_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// fvp targets currently constructed.
    pub volumes: u32,
    /// Zero.
    pub reserved: u32,
    /// Bios mapped by all fvp targets since the module was loaded.
    pub bios_mapped: u64,
}

impl Status {
    /// `sizeof(struct fvp_status)`.
    pub const SIZE: usize = size_of::<Self>();

    /// The C layout, in native byte order.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, offset_of!(Self, volumes), &self.volumes.to_ne_bytes());
        put(&mut b, offset_of!(Self, reserved), &self.reserved.to_ne_bytes());
        put(&mut b, offset_of!(Self, bios_mapped), &self.bios_mapped.to_ne_bytes());
        b
    }

    /// Parses the C layout.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            volumes: get_u32(b, offset_of!(Self, volumes)),
            reserved: get_u32(b, offset_of!(Self, reserved)),
            bios_mapped: get_u64(b, offset_of!(Self, bios_mapped)),
        }
    }
}

/// A field of an ABI structure, copied at its offset in native byte order.
pub trait Field: Sized {
    /// Writes the field into `dst` (exactly its size).
    fn put(&self, dst: &mut [u8]);
    /// Reads the field from `src` (exactly its size).
    fn get(src: &[u8]) -> Self;
}

impl Field for u32 {
    fn put(&self, dst: &mut [u8]) {
        dst.copy_from_slice(&self.to_ne_bytes());
    }
    fn get(src: &[u8]) -> Self {
        get_u32(src, 0)
    }
}

impl Field for u16 {
    fn put(&self, dst: &mut [u8]) {
        dst.copy_from_slice(&self.to_ne_bytes());
    }
    fn get(src: &[u8]) -> Self {
        let mut b = [0u8; 2];
        b.copy_from_slice(&src[..2]);
        u16::from_ne_bytes(b)
    }
}

impl Field for u64 {
    fn put(&self, dst: &mut [u8]) {
        dst.copy_from_slice(&self.to_ne_bytes());
    }
    fn get(src: &[u8]) -> Self {
        get_u64(src, 0)
    }
}

impl<const N: usize> Field for [u8; N] {
    fn put(&self, dst: &mut [u8]) {
        dst.copy_from_slice(self);
    }
    fn get(src: &[u8]) -> Self {
        let mut a = [0u8; N];
        a.copy_from_slice(src);
        a
    }
}

impl<const N: usize> Field for [u32; N] {
    fn put(&self, dst: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            if let Some(chunk) = dst.get_mut(i * 4..i * 4 + 4) {
                v.put(chunk);
            }
        }
    }
    fn get(src: &[u8]) -> Self {
        let mut a = [0u32; N];
        for (i, v) in a.iter_mut().enumerate() {
            if let Some(chunk) = src.get(i * 4..i * 4 + 4) {
                *v = u32::get(chunk);
            }
        }
        a
    }
}

impl<const N: usize> Field for [u64; N] {
    fn put(&self, dst: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            if let Some(chunk) = dst.get_mut(i * 8..i * 8 + 8) {
                v.put(chunk);
            }
        }
    }
    fn get(src: &[u8]) -> Self {
        let mut a = [0u64; N];
        for (i, v) in a.iter_mut().enumerate() {
            if let Some(chunk) = src.get(i * 8..i * 8 + 8) {
                *v = u64::get(chunk);
            }
        }
        a
    }
}

/// Defines a `#[repr(C)]` ABI structure with `SIZE`, `to_bytes` and `from_bytes`; it is
/// also a [`Field`], so it can be nested in another. `@no_debug` leaves out the derived
/// `Debug`, for a structure that implements it by hand (to keep a secret out of logs).
macro_rules! abi_struct {
    (@no_debug $(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }

        impl $name {
            /// `sizeof` of the C structure.
            pub const SIZE: usize = size_of::<Self>();

            /// The C layout, in native byte order.
            pub fn to_bytes(&self) -> [u8; Self::SIZE] {
                let mut b = [0u8; Self::SIZE];
                $(
                    let off = offset_of!(Self, $field);
                    self.$field.put(&mut b[off..off + size_of::<$ty>()]);
                )*
                b
            }

            /// Parses the C layout.
            pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
                Self { $($field: {
                    let off = offset_of!(Self, $field);
                    <$ty as Field>::get(&b[off..off + size_of::<$ty>()])
                },)* }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::from_bytes(&[0u8; Self::SIZE])
            }
        }

        impl Field for $name {
            fn put(&self, dst: &mut [u8]) {
                dst.copy_from_slice(&self.to_bytes());
            }
            fn get(src: &[u8]) -> Self {
                let mut b = [0u8; Self::SIZE];
                b.copy_from_slice(src);
                Self::from_bytes(&b)
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        abi_struct! {
            @no_debug
            $(#[$meta])*
            #[derive(Debug)]
            pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }
        }
    };
}

abi_struct! {
    /// `struct fvp_pool_req`.
    pub struct PoolReq {
        /// Pool name, NUL-padded.
        pub name: [u8; NAME_LEN],
        /// Size in bytes (create, resize).
        pub ram_bytes: u64,
    }
}

abi_struct! {
    /// `struct fvp_pool_info`.
    pub struct PoolInfo {
        /// In: which pool.
        pub index: u32,
        /// Volumes using the pool.
        pub volumes: u32,
        /// Pool name, NUL-padded.
        pub name: [u8; NAME_LEN],
        /// Size last asked for.
        pub target_bytes: u64,
        /// Pages held now.
        pub pages: u64,
        /// Free pages.
        pub free_pages: u64,
        /// Pages holding clean blocks.
        pub clean_pages: u64,
        /// Pages holding dirty blocks.
        pub dirty_pages: u64,
        /// Pages being filled.
        pub busy_pages: u64,
        /// RAM spent on the index.
        pub metadata_bytes: u64,
        /// Blocks evicted.
        pub evictions: u64,
    }
}

abi_struct! {
    /// `struct fvp_volume_info`.
    pub struct VolumeInfo {
        /// In: which volume.
        pub index: u32,
        /// Block size in bytes.
        pub block_size: u32,
        /// The dm device's major number.
        pub dev_major: u32,
        /// The dm device's minor number.
        pub dev_minor: u32,
        /// Pool name, NUL-padded.
        pub pool: [u8; NAME_LEN],
        /// `POLICY_*` asked for.
        pub policy_requested: u32,
        /// `POLICY_*` in force.
        pub policy_effective: u32,
        /// Read bios.
        pub reads: u64,
        /// Write bios.
        pub writes: u64,
        /// Bytes read.
        pub read_bytes: u64,
        /// Bytes written.
        pub write_bytes: u64,
        /// Blocks read from the pool.
        pub read_hits: u64,
        /// Blocks read from the backing device.
        pub read_misses: u64,
        /// Blocks written into the pool.
        pub write_hits: u64,
        /// Bios sent around the pool.
        pub bypassed: u64,
        /// Dirty blocks now.
        pub dirty_blocks: u64,
        /// Blocks written back to the backing device.
        pub destaged_blocks: u64,
        /// Blocks of this volume evicted.
        pub evictions: u64,
        /// Read latency histogram.
        pub read_latency: [u64; LAT_BUCKETS],
        /// Write latency histogram.
        pub write_latency: [u64; LAT_BUCKETS],
    }
}

abi_struct! {
    @no_debug
    /// `struct fvp_cluster_cfg`: argument of `FVP_IOC_CLUSTER_SET`, and part of
    /// [`ClusterInfo`] (with `secret` zeroed). Its `Debug` never shows the secret.
    pub struct ClusterCfg {
        /// Cluster name, NUL-padded: 1 to 31 of `[A-Za-z0-9_.-]`.
        pub name: [u8; NAME_LEN],
        /// This host's id, 1..=`MAX_HOSTS`.
        pub local_id: u32,
        /// Interval of PINGs, `HEARTBEAT_MS_MIN..=HEARTBEAT_MS_MAX`.
        pub heartbeat_ms: u32,
        /// Host silence before fencing; lease length. At least 3 × `heartbeat_ms`, at
        /// most `TIMEOUT_MS_MAX`.
        pub timeout_ms: u32,
        /// Bytes of `secret` in use, `SECRET_LEN_MIN..=SECRET_LEN`.
        pub secret_len: u32,
        /// The shared secret (HMAC key); zeroed by `FVP_IOC_CLUSTER_INFO`.
        pub secret: [u8; SECRET_LEN],
        /// `TRANSPORT_*` (ABI 8; a reserved zero before: authenticated).
        pub transport: u32,
        /// Zero.
        pub reserved: [u32; 3],
    }
}

impl core::fmt::Debug for ClusterCfg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClusterCfg")
            .field("name", &name_str(&self.name))
            .field("local_id", &self.local_id)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("secret_len", &self.secret_len)
            .field("secret", &"<redacted>")
            .field("transport", &self.transport)
            .field("reserved", &self.reserved)
            .finish()
    }
}

abi_struct! {
    /// `struct fvp_cluster_info`: the answer of `FVP_IOC_CLUSTER_INFO`.
    pub struct ClusterInfo {
        /// The settings, `secret_len` set and `secret` zeroed.
        pub cfg: ClusterCfg,
        /// `CLUSTER_*` bits.
        pub flags: u32,
        /// Configured hosts, this one included.
        pub hosts: u32,
        /// Configured shared devices.
        pub devices: u32,
        /// Hosts heard within `timeout_ms`, this one included.
        pub hosts_up: u32,
        /// Blocks this host holds for other owners.
        pub replica_blocks: u64,
        /// Failed handshakes since load.
        pub refused_connections: u64,
        /// Connections closed on a malformed or unexpected message.
        pub protocol_errors: u64,
    }
}

abi_struct! {
    /// `struct fvp_host_req`: argument of `FVP_IOC_HOST_ADD`, `FVP_IOC_HOST_UPDATE` and
    /// `FVP_IOC_HOST_REMOVE` (which reads only `id`), and part of [`HostInfo`].
    pub struct HostReq {
        /// Host id, 1..=`MAX_HOSTS`.
        pub id: u32,
        /// IPv4 address in network byte order: its native-order bytes are the address's
        /// octets (see [`HostReq::octets`]).
        pub addr: u32,
        /// TCP port, in host byte order; not zero.
        pub port: u16,
        /// [`HOST_DEFER`] (add and remove), else zero.
        pub flags: u16,
        /// Fault domain name, NUL-padded: 1 to 31 of `[A-Za-z0-9_.-]`.
        pub domain: [u8; NAME_LEN],
    }
}

abi_struct! {
    /// `struct fvp_host_info`: the answer of `FVP_IOC_HOST_INFO`.
    pub struct HostInfo {
        /// In: which host (0, 1, ...).
        pub index: u32,
        /// The host as configured.
        pub host: HostReq,
        /// `HOST_*`.
        pub state: u32,
        /// Zero.
        pub reserved: u32,
        /// Milliseconds since a valid message arrived; `LAST_HEARD_NEVER` if never.
        pub last_heard_ms: u64,
        /// Last PING round trip in microseconds; 0 if none.
        pub rtt_us: u64,
        /// Blocks held here for volumes that host owns.
        pub replica_blocks: u64,
    }
}

abi_struct! {
    /// `struct fvp_device_req`: argument of `FVP_IOC_DEVICE_ADD`, `FVP_IOC_DEVICE_REMOVE`
    /// (which reads only `name`) and `FVP_IOC_DEVICE_INFO`.
    pub struct DeviceReq {
        /// `FVP_IOC_DEVICE_INFO` only: which device (0, 1, ...).
        pub index: u32,
        /// Zero.
        pub reserved: u32,
        /// Cluster-wide device name, NUL-padded: 1 to 31 of `[A-Za-z0-9_.-]`.
        pub name: [u8; NAME_LEN],
        /// This host's path to the device: absolute, NUL-terminated.
        pub path: [u8; PATH_LEN],
        /// ABI 9: the device's configured identity, all zero if none. Peers compare it
        /// (and the device's size) before they hold a volume's replicas.
        pub uuid: [u8; DEVICE_UUID_LEN],
    }
}

abi_struct! {
    /// `struct fvp_key_req`: argument of `FVP_IOC_KEY_SET` and `FVP_IOC_KEY_INFO`
    /// (ABI 8): a host's X25519 key.
    pub struct KeyReq {
        /// The host, 1..=`MAX_HOSTS`.
        pub id: u32,
        /// `KEY_*` bits.
        pub flags: u32,
        /// SET: host `id`'s public key, or with `KEY_PRIVATE` this host's private key.
        /// INFO (out): host `id`'s public key (this host's: of its private key).
        pub key: [u8; KEY_LEN],
        /// Zero.
        pub reserved: [u32; 4],
    }
}

impl KeyReq {
    /// Checks the input of `FVP_IOC_KEY_SET`: a valid host id, known flags, a key that is
    /// not all zero, `reserved` zero. (Whether a private key's id is this host's is the
    /// cluster's to check.)
    pub fn validate_set(&self) -> Result<(), ConfigError> {
        if !host_id_valid(self.id) {
            return Err(ConfigError::HostId);
        }
        if self.flags & !KEY_PRIVATE != 0 || self.reserved != [0; 4] {
            return Err(ConfigError::Reserved);
        }
        if self.key == [0; KEY_LEN] {
            return Err(ConfigError::Key);
        }
        Ok(())
    }

    /// Checks the input of `FVP_IOC_KEY_INFO`: a valid host id; the rest is output.
    pub fn validate_info(&self) -> Result<(), ConfigError> {
        if host_id_valid(self.id) {
            Ok(())
        } else {
            Err(ConfigError::HostId)
        }
    }
}

abi_struct! {
    /// `struct fvp_flash_open`: `FVP_IOC_FLASH_OPEN` (ABI 7).
    pub struct FlashOpen {
        /// The pool's name, NUL-padded.
        pub name: [u8; NAME_LEN],
        /// The flash device's path: absolute, NUL-terminated.
        pub path: [u8; PATH_LEN],
        /// Out: cache blocks of the pool.
        pub slots: u64,
        /// Out: blocks found cached (the cache is warm with them).
        pub live_blocks: u64,
        /// Out: of those, dirty.
        pub dirty_blocks: u64,
        /// Out: older entries zeroed by recovery.
        pub stale_entries: u64,
        /// Out: microseconds spent opening (reading and checking the metadata).
        pub open_us: u64,
        /// Zero.
        pub reserved: [u64; 3],
    }
}

abi_struct! {
    /// `struct fvp_flash_info`: `FVP_IOC_FLASH_INFO` (ABI 7).
    pub struct FlashInfo {
        /// In: which flash pool (0, 1, ...).
        pub index: u32,
        /// Volumes using the pool.
        pub volumes: u32,
        /// The pool's name, NUL-padded.
        pub name: [u8; NAME_LEN],
        /// The flash device's path as opened.
        pub path: [u8; PATH_LEN],
        /// The pool's UUID (from its superblock).
        pub uuid: [u8; 16],
        /// `FLASH_OK` or `FLASH_FAILED`.
        pub state: u32,
        /// Volume records in use on the device.
        pub records: u32,
        /// Cache blocks.
        pub slots: u64,
        /// Slots free for new data.
        pub free_slots: u64,
        pub clean_blocks: u64,
        pub dirty_blocks: u64,
        /// Released slots waiting for their entries to be zeroed.
        pub held_slots: u64,
        /// Commits (phases) since the pool was opened.
        pub commits: u64,
        /// RAM spent on the index and the journal.
        pub metadata_bytes: u64,
        pub evictions: u64,
        /// Zero.
        pub reserved: [u64; 4],
    }
}

/// `FlashInfo::state`: serving.
pub const FLASH_OK: u32 = 0;
/// `FlashInfo::state`: a commit failed; writes and flushes fail until it is reopened.
pub const FLASH_FAILED: u32 = 1;

abi_struct! {
    /// `struct fvp_volume_repl`: the answer of `FVP_IOC_VOLUME_REPL`.
    pub struct VolumeRepl {
        /// In: which volume, as for `FVP_IOC_VOLUME_INFO`.
        pub index: u32,
        /// Peers requested: 0, 1 or 2.
        pub peers: u32,
        /// `DOMAIN_SAME` or `DOMAIN_DIFFERENT`.
        pub domain: u32,
        /// `REPL_*`.
        pub state: u32,
        /// Current peers' host ids, 0 for none.
        pub peer_ids: [u32; 2],
        /// Cluster-wide device name, NUL-padded; empty for peers=0.
        pub name: [u8; NAME_LEN],
        /// The volume's epoch.
        pub epoch: u64,
        /// Block writes acknowledged by every peer.
        pub replicated_writes: u64,
        /// Times a lost peer was replaced.
        pub reprotections: u64,
        /// Dirty blocks sent again to a new peer.
        pub resent_blocks: u64,
    }
}

abi_struct! {
    /// `struct fvp_volume_health`: the answer of `FVP_IOC_VOLUME_HEALTH` (ABI 4).
    pub struct VolumeHealth {
        /// In: which volume, as for `FVP_IOC_VOLUME_INFO`.
        pub index: u32,
        /// `VOLUME_*` bits.
        pub flags: u32,
        /// Block writes of dirty blocks to the backing device that failed.
        pub destage_errors: u64,
        /// Bios completed with an error the backing device returned.
        pub io_errors: u64,
        /// Dirty blocks now.
        pub dirty_blocks: u64,
        /// The backing device's major number.
        pub backing_major: u32,
        /// The backing device's minor number.
        pub backing_minor: u32,
        /// Zero.
        pub reserved: [u64; 4],
    }
}

abi_struct! {
    /// `struct fvp_volume_discard`: argument of `FVP_IOC_VOLUME_DISCARD` (ABI 5).
    pub struct VolumeDiscard {
        /// In: the backing device's major number.
        pub backing_major: u32,
        /// In: the backing device's minor number.
        pub backing_minor: u32,
        /// Out: the dirty blocks dropped.
        pub dirty_blocks: u64,
        /// Zero.
        pub reserved: [u64; 2],
    }
}

impl VolumeDiscard {
    /// Checks the input of `FVP_IOC_VOLUME_DISCARD`: a device number the kernel's
    /// `dev_t` can hold (12-bit major, 20-bit minor), `reserved` zero. `dirty_blocks`
    /// is overwritten by the answer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backing_major >= 1 << 12 || self.backing_minor >= 1 << 20 {
            return Err(ConfigError::DevNumber);
        }
        if self.reserved != [0; 2] {
            return Err(ConfigError::Reserved);
        }
        Ok(())
    }

    /// The backing device as a kernel `dev_t`.
    pub fn devt(&self) -> u32 {
        self.backing_major << 20 | self.backing_minor
    }
}

impl VolumeHealth {
    /// Checks the input of `FVP_IOC_VOLUME_HEALTH`: `reserved` is zero. Only `index`
    /// is read (the caller looks it up: `ENOENT` past the last volume); the other
    /// fields are overwritten by the answer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.reserved != [0; 4] {
            return Err(ConfigError::Reserved);
        }
        Ok(())
    }

    /// Whether `VOLUME_FAILING` is set.
    pub fn failing(&self) -> bool {
        self.flags & VOLUME_FAILING != 0
    }

    /// Whether `VOLUME_DETACHED` is set.
    pub fn detached(&self) -> bool {
        self.flags & VOLUME_DETACHED != 0
    }
}

/// Why a cluster, host, device or volume health request is invalid; fvp.ko answers
/// `EINVAL` to each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The cluster name is not 1 to 31 of `[A-Za-z0-9_.-]`.
    ClusterName,
    /// `local_id` is not in 1..=`MAX_HOSTS`.
    LocalId,
    /// `heartbeat_ms` is not in `HEARTBEAT_MS_MIN..=HEARTBEAT_MS_MAX`.
    Heartbeat,
    /// `timeout_ms` is less than `TIMEOUT_HEARTBEATS_MIN` × `heartbeat_ms`.
    TimeoutTooShort,
    /// `timeout_ms` is more than `TIMEOUT_MS_MAX`.
    TimeoutTooLong,
    /// `secret_len` is not in `SECRET_LEN_MIN..=SECRET_LEN`.
    SecretLen,
    /// `transport` is not a `TRANSPORT_*` value.
    Transport,
    /// A key that is all zero.
    Key,
    /// A reserved field is not zero.
    Reserved,
    /// A host id is not in 1..=`MAX_HOSTS`.
    HostId,
    /// A host's port is zero.
    Port,
    /// A host's address is zero (0.0.0.0).
    Addr,
    /// A fault domain name is not 1 to 31 of `[A-Za-z0-9_.-]`.
    Domain,
    /// A device name is not 1 to 31 of `[A-Za-z0-9_.-]`.
    DeviceName,
    /// A device path has no NUL within `PATH_LEN` bytes.
    PathNotTerminated,
    /// A device path is empty.
    PathEmpty,
    /// A device path does not start with `/`.
    PathNotAbsolute,
    /// A device number's major is not below 2^12 or its minor not below 2^20.
    DevNumber,
}

impl ConfigError {
    /// What is wrong, in a few words.
    pub fn message(self) -> &'static str {
        match self {
            ConfigError::ClusterName => "cluster name is not 1 to 31 of [A-Za-z0-9_.-]",
            ConfigError::LocalId => "local host id is not in 1..=64",
            ConfigError::Heartbeat => "heartbeat_ms is not in 10..=10000",
            ConfigError::TimeoutTooShort => "timeout_ms is less than 3 x heartbeat_ms",
            ConfigError::TimeoutTooLong => "timeout_ms is more than 600000",
            ConfigError::SecretLen => "secret is not 16 to 64 bytes long",
            ConfigError::Transport => "transport is neither authenticated (0) nor encrypted (1)",
            ConfigError::Key => "the key is all zero",
            ConfigError::Reserved => "reserved field (or unknown flag) is not zero",
            ConfigError::HostId => "host id is not in 1..=64",
            ConfigError::Port => "port is zero",
            ConfigError::Addr => "address is 0.0.0.0",
            ConfigError::Domain => "fault domain is not 1 to 31 of [A-Za-z0-9_.-]",
            ConfigError::DeviceName => "device name is not 1 to 31 of [A-Za-z0-9_.-]",
            ConfigError::PathNotTerminated => "device path is not NUL-terminated",
            ConfigError::PathEmpty => "device path is empty",
            ConfigError::PathNotAbsolute => "device path is not absolute",
            ConfigError::DevNumber => "device number out of range (major < 4096, minor < 1048576)",
        }
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Whether `id` can be a host id (1..=`MAX_HOSTS`).
pub const fn host_id_valid(id: u32) -> bool {
    id >= 1 && id <= MAX_HOSTS
}

/// Whether a NUL-padded name is 1 to 31 of `[A-Za-z0-9_.-]` (as [`pool_name`] accepts).
fn name_valid(name: &[u8; NAME_LEN]) -> bool {
    pool_name(name).is_some()
}

impl ClusterCfg {
    /// The secret's bytes in use (`secret_len` of them, at most `SECRET_LEN`).
    pub fn secret(&self) -> &[u8] {
        let len = (self.secret_len as usize).min(SECRET_LEN);
        &self.secret[..len]
    }

    /// Sets `secret` and `secret_len`; `None` (and nothing changed) unless `secret` is
    /// `SECRET_LEN_MIN..=SECRET_LEN` bytes long.
    pub fn set_secret(&mut self, secret: &[u8]) -> Option<()> {
        if !(SECRET_LEN_MIN..=SECRET_LEN).contains(&secret.len()) {
            return None;
        }
        self.secret = [0u8; SECRET_LEN];
        self.secret[..secret.len()].copy_from_slice(secret);
        self.secret_len = secret.len() as u32;
        Some(())
    }

    /// Checks the rules of `FVP_IOC_CLUSTER_SET`, in the order of the structure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !name_valid(&self.name) {
            return Err(ConfigError::ClusterName);
        }
        if !host_id_valid(self.local_id) {
            return Err(ConfigError::LocalId);
        }
        if !(HEARTBEAT_MS_MIN..=HEARTBEAT_MS_MAX).contains(&self.heartbeat_ms) {
            return Err(ConfigError::Heartbeat);
        }
        // heartbeat_ms <= 10000, so this cannot overflow.
        if self.timeout_ms < TIMEOUT_HEARTBEATS_MIN * self.heartbeat_ms {
            return Err(ConfigError::TimeoutTooShort);
        }
        if self.timeout_ms > TIMEOUT_MS_MAX {
            return Err(ConfigError::TimeoutTooLong);
        }
        let secret_len = self.secret_len as usize;
        if !(SECRET_LEN_MIN..=SECRET_LEN).contains(&secret_len) {
            return Err(ConfigError::SecretLen);
        }
        if crate::logic::seal::Transport::from_u32(self.transport).is_none() {
            return Err(ConfigError::Transport);
        }
        if self.reserved != [0; 3] {
            return Err(ConfigError::Reserved);
        }
        Ok(())
    }
}

impl HostReq {
    /// The request for host `id` at `octets`:`port` in fault domain `domain` (a
    /// NUL-padded name, as [`pool_name`] makes). Not validated.
    pub fn new(id: u32, octets: [u8; 4], port: u16, domain: [u8; NAME_LEN]) -> Self {
        Self { id, addr: u32::from_ne_bytes(octets), port, flags: 0, domain }
    }

    /// The IPv4 address's octets, most significant first (`10.0.0.1` is `[10, 0, 0, 1]`).
    pub fn octets(&self) -> [u8; 4] {
        self.addr.to_ne_bytes()
    }

    /// Checks the rules of `FVP_IOC_HOST_ADD` and `FVP_IOC_HOST_UPDATE`.
    /// (`FVP_IOC_HOST_REMOVE` reads only `id`:
    /// check it with [`host_id_valid`].)
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !host_id_valid(self.id) {
            return Err(ConfigError::HostId);
        }
        if self.addr == 0 {
            return Err(ConfigError::Addr);
        }
        if self.port == 0 {
            return Err(ConfigError::Port);
        }
        if self.flags & !HOST_DEFER != 0 {
            return Err(ConfigError::Reserved);
        }
        if !name_valid(&self.domain) {
            return Err(ConfigError::Domain);
        }
        Ok(())
    }
}

impl DeviceReq {
    /// The request for device `name` (a NUL-padded name, as [`pool_name`] makes) at
    /// `path`; `None` if `path` does not fit with its NUL or holds a NUL. Not validated.
    pub fn new(name: [u8; NAME_LEN], path: &[u8]) -> Option<Self> {
        if path.len() >= PATH_LEN || path.contains(&0) {
            return None;
        }
        let mut req = Self { name, ..Self::default() };
        req.path[..path.len()].copy_from_slice(path);
        Some(req)
    }

    /// The path's bytes before its NUL, or `None` if it has none.
    pub fn path_bytes(&self) -> Option<&[u8]> {
        let end = self.path.iter().position(|&b| b == 0)?;
        Some(&self.path[..end])
    }

    /// The path's text (`"?"` if it is not UTF-8 or has no NUL).
    pub fn path_str(&self) -> &str {
        self.path_bytes().and_then(|p| core::str::from_utf8(p).ok()).unwrap_or("?")
    }

    /// Checks the rules of `FVP_IOC_DEVICE_ADD` (`index` is not read). Only the name
    /// matters to `FVP_IOC_DEVICE_REMOVE`: check it with [`pool_name`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.reserved != 0 {
            return Err(ConfigError::Reserved);
        }
        if !name_valid(&self.name) {
            return Err(ConfigError::DeviceName);
        }
        match self.path_bytes() {
            None => Err(ConfigError::PathNotTerminated),
            Some([]) => Err(ConfigError::PathEmpty),
            Some([b'/', ..]) => Ok(()),
            Some(_) => Err(ConfigError::PathNotAbsolute),
        }
    }
}

/// A device uuid from its RFC 4122 text (`8-4-4-4-12` hex digits, either case), or
/// `None` if `text` is not one. The nil uuid parses: callers that give it a meaning
/// ("none") refuse it themselves.
pub fn parse_uuid(text: &[u8]) -> Option<[u8; DEVICE_UUID_LEN]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; DEVICE_UUID_LEN];
    let mut digits = 0usize;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = (c as char).to_digit(16)? as u8;
        out[digits / 2] |= if digits.is_multiple_of(2) { v << 4 } else { v };
        digits += 1;
    }
    Some(out)
}

/// A device uuid as RFC 4122 text, lower case.
pub struct UuidText<'a>(pub &'a [u8; DEVICE_UUID_LEN]);

impl core::fmt::Display for UuidText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A pool name as the ABI carries it, validated: 1 to 31 of `[A-Za-z0-9_.-]`.
pub fn pool_name(name: &[u8]) -> Option<[u8; NAME_LEN]> {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = &name[..len];
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() >= NAME_LEN || !name.iter().all(valid) {
        return None;
    }
    let mut out = [0u8; NAME_LEN];
    out[..name.len()].copy_from_slice(name);
    Some(out)
}

/// The text of a NUL-padded name.
pub fn name_str(name: &[u8]) -> &str {
    core::str::from_utf8(name_bytes(name)).unwrap_or("?")
}

/// A NUL-padded name field's bytes before the first NUL (all of them if none).
pub fn name_bytes(name: &[u8]) -> &[u8] {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    &name[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_decode() {
        assert_eq!(Command::decode(IOC_VERSION), Ok(Command::Version));
        assert_eq!(Command::decode(IOC_STATUS), Ok(Command::Status));
        assert_eq!(Command::decode(ioc(IOC_READ, IOCTL_MAGIC, 0x7f, 8)), Err(CommandError::Unknown));
        assert_eq!(Command::decode(ioc(IOC_READ, 0x12, 0, Version::SIZE)), Err(CommandError::Unknown));
        assert_eq!(Command::decode(ioc(IOC_READ, IOCTL_MAGIC, 0, 8)), Err(CommandError::BadEncoding));
        assert_eq!(Command::decode(ioc(IOC_WRITE, IOCTL_MAGIC, 0, Version::SIZE)), Err(CommandError::BadEncoding));
        assert_eq!(ioc_size(IOC_VERSION), Version::SIZE);
    }

    #[test]
    fn version_round_trips() {
        let v = Version::new(1, 2, 3, FEATURE_PASSTHROUGH, "1.2.3");
        assert_eq!(Version::from_bytes(&v.to_bytes()), v);
        assert_eq!(v.version_str(), "1.2.3");
        let long = Version::new(0, 0, 0, 0, "0123456789012345678901234567890123456789");
        assert_eq!(long.version_str().len(), VERSION_STR_LEN - 1);
    }

    #[test]
    fn new_structures_round_trip() {
        let mut v = VolumeInfo { index: 7, ..Default::default() };
        v.read_latency[3] = 99;
        v.write_latency[23] = u64::MAX;
        v.pool = pool_name(b"ram0").unwrap();
        assert_eq!(VolumeInfo::from_bytes(&v.to_bytes()), v);
        let p = PoolInfo { index: 1, evictions: 5, ..Default::default() };
        assert_eq!(PoolInfo::from_bytes(&p.to_bytes()), p);
        for c in
            [Command::PoolCreate, Command::PoolResize, Command::PoolDestroy, Command::PoolInfo, Command::VolumeInfo]
        {
            assert_eq!(Command::decode(c.ioc()), Ok(c));
        }
    }

    #[test]
    fn pool_names() {
        assert!(pool_name(b"ram0").is_some());
        assert!(pool_name(b"a.b-c_d").is_some());
        assert!(pool_name(b"").is_none());
        assert!(pool_name(b"bad name").is_none());
        assert!(pool_name(b"x/y").is_none());
        assert!(pool_name(&[b'a'; 32]).is_none());
        assert_eq!(name_str(&pool_name(b"ram0").unwrap()), "ram0");
    }

    #[test]
    fn status_round_trips() {
        let s = Status { volumes: 3, reserved: 0, bios_mapped: 1 << 40 };
        assert_eq!(Status::from_bytes(&s.to_bytes()), s);
    }

    #[test]
    fn every_command_decodes_to_itself() {
        for c in Command::ALL {
            assert_eq!(Command::decode(c.ioc()), Ok(c), "{c:?}");
            assert_eq!(ioc_size(c.ioc()), c.size());
            assert_eq!((c.ioc() >> IOC_TYPESHIFT) & 0xff, IOCTL_MAGIC);
        }
        let sizes = [
            (Command::VolumeRepl, VolumeRepl::SIZE),
            (Command::ClusterSet, ClusterCfg::SIZE),
            (Command::ClusterInfo, ClusterInfo::SIZE),
            (Command::HostAdd, HostReq::SIZE),
            (Command::HostRemove, HostReq::SIZE),
            (Command::HostInfo, HostInfo::SIZE),
            (Command::DeviceAdd, DeviceReq::SIZE),
            (Command::DeviceRemove, DeviceReq::SIZE),
            (Command::DeviceInfo, DeviceReq::SIZE),
        ];
        for (c, size) in sizes {
            assert_eq!(c.size(), size, "{c:?}");
            assert_eq!(c.since_abi(), 3, "{c:?}");
        }
        assert_eq!(Command::PoolInfo.since_abi(), 2);
        assert_eq!(Command::Version.since_abi(), 1);
        assert_eq!(Command::VolumeHealth.since_abi(), 4);
        assert_eq!(Command::VolumeHealth.size(), VolumeHealth::SIZE);
        assert_eq!(Command::HostUpdate.since_abi(), 5);
        assert_eq!(Command::HostUpdate.size(), HostReq::SIZE);
        assert_eq!(Command::VolumeDiscard.since_abi(), 5);
        assert_eq!(Command::VolumeDiscard.size(), VolumeDiscard::SIZE);
        // The numbers between the groups are not commands.
        assert_eq!(Command::FlashOpen.since_abi(), 7);
        assert_eq!(Command::FlashOpen.size(), FlashOpen::SIZE);
        assert_eq!(Command::FlashInfo.since_abi(), 7);
        assert_eq!(Command::FlashInfo.size(), FlashInfo::SIZE);
        // The device commands before ABI 9: same number and direction, the old size; an
        // ABI 9 module does not know them.
        for c in [Command::DeviceAdd, Command::DeviceRemove, Command::DeviceInfo] {
            let old = c.ioc_before_abi9().unwrap();
            assert_eq!(ioc_size(old), DEVICE_REQ_V3_SIZE);
            assert_eq!(old & !(IOC_SIZEMASK << IOC_SIZESHIFT), c.ioc() & !(IOC_SIZEMASK << IOC_SIZESHIFT));
            assert_eq!(Command::decode(old), Err(CommandError::BadEncoding));
        }
        assert_eq!(ioc(IOC_WRITE, IOCTL_MAGIC, 0x25, DEVICE_REQ_V3_SIZE), 0x4128_f725, "FVP_IOC_DEVICE_ADD of ABI 3");
        assert_eq!(Command::HostAdd.ioc_before_abi9(), None);
        for nr in [0x02, 0x1a, 0x1f, 0x29] {
            assert_eq!(Command::decode(ioc(IOC_READ, IOCTL_MAGIC, nr, 8)), Err(CommandError::Unknown));
        }
        // Right number, wrong direction or size.
        assert_eq!(Command::decode(ioc(IOC_READ, IOCTL_MAGIC, 0x20, ClusterCfg::SIZE)), Err(CommandError::BadEncoding));
        assert_eq!(
            Command::decode(ioc(IOC_WRITE, IOCTL_MAGIC, 0x22, HostReq::SIZE + 4)),
            Err(CommandError::BadEncoding)
        );
    }

    #[test]
    fn device_uuids() {
        let text = "0F8fAd5b-d9cb-469f-a165-70867728950e";
        let u = parse_uuid(text.as_bytes()).unwrap();
        assert_eq!(u[0], 0x0f);
        assert_eq!(u[15], 0x0e);
        extern crate std;
        use std::string::ToString;
        assert_eq!(UuidText(&u).to_string(), text.to_ascii_lowercase());
        assert_eq!(parse_uuid(b"00000000-0000-0000-0000-000000000000"), Some([0; DEVICE_UUID_LEN]));
        for bad in [
            &b""[..],
            b"0f8fad5bd9cb469fa16570867728950e",
            b"0f8fad5b-d9cb-469f-a165-70867728950",
            b"0f8fad5b-d9cb-469f-a165-70867728950e0",
            b"0f8fad5b-d9cb-469f-a165+70867728950e",
            b"0g8fad5b-d9cb-469f-a165-70867728950e",
            b"0f8fad5b-d9cb-469f-a16-570867728950e",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cluster_structures_have_the_header_sizes() {
        // The header has no implicit padding; these follow from its field list.
        assert_eq!(ClusterCfg::SIZE, 32 + 4 * 4 + SECRET_LEN + 16);
        assert_eq!(ClusterInfo::SIZE, ClusterCfg::SIZE + 4 * 4 + 3 * 8);
        assert_eq!(HostReq::SIZE, 4 + 4 + 2 + 2 + NAME_LEN);
        assert_eq!(HostInfo::SIZE, 4 + HostReq::SIZE + 4 + 4 + 3 * 8);
        assert_eq!(DeviceReq::SIZE, 4 + 4 + NAME_LEN + PATH_LEN + DEVICE_UUID_LEN);
        assert_eq!(DeviceReq::SIZE, DEVICE_REQ_V3_SIZE + DEVICE_UUID_LEN);
        assert_eq!(offset_of!(DeviceReq, uuid), DEVICE_REQ_V3_SIZE, "ABI 9 only appended it");
        assert_eq!(VolumeRepl::SIZE, 4 * 4 + 2 * 4 + NAME_LEN + 4 * 8);
        assert_eq!(offset_of!(HostInfo, last_heard_ms), 56);
        assert_eq!(offset_of!(VolumeRepl, epoch), 56);
    }

    #[test]
    fn volume_health_has_the_header_layout() {
        // The header has no implicit padding; these follow from its field list.
        assert_eq!(VolumeHealth::SIZE, 4 + 4 + 3 * 8 + 4 + 4 + 4 * 8);
        assert_eq!(offset_of!(VolumeHealth, destage_errors), 8);
        assert_eq!(offset_of!(VolumeHealth, backing_major), 32);
        assert_eq!(offset_of!(VolumeHealth, reserved), 40);
        assert_eq!(ioc_size(IOC_VOLUME_HEALTH), VolumeHealth::SIZE);
        assert_eq!(IOC_VOLUME_HEALTH, ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x16, VolumeHealth::SIZE));
        assert_eq!((VOLUME_FAILING, VOLUME_DETACHED), (1, 2));
    }

    #[test]
    fn volume_health_round_trips() {
        let h = VolumeHealth {
            index: 3,
            flags: VOLUME_FAILING | VOLUME_DETACHED,
            destage_errors: 12,
            io_errors: u64::MAX,
            dirty_blocks: 1 << 33,
            backing_major: 8,
            backing_minor: 16,
            reserved: [0; 4],
        };
        let bytes = h.to_bytes();
        assert_eq!(VolumeHealth::from_bytes(&bytes), h);
        assert_eq!(get_u32(&bytes, 0), 3);
        assert_eq!(get_u32(&bytes, 4), VOLUME_FAILING | VOLUME_DETACHED);
        assert_eq!(get_u64(&bytes, 16), u64::MAX);
        assert_eq!((get_u32(&bytes, 32), get_u32(&bytes, 36)), (8, 16));
        assert!(bytes[40..].iter().all(|&b| b == 0));
        assert!(h.failing() && h.detached());
        let ok = VolumeHealth { index: 1, ..Default::default() };
        assert!(!ok.failing() && !ok.detached());
        assert_eq!(VolumeHealth::from_bytes(&ok.to_bytes()), ok);
        let failing = VolumeHealth { flags: VOLUME_FAILING, ..ok };
        assert!(failing.failing() && !failing.detached());
    }

    #[test]
    fn volume_health_rejects() {
        // A request is its index, the rest zero (or whatever: only reserved is checked).
        let request = VolumeHealth { index: 7, ..Default::default() };
        assert_eq!(request.validate(), Ok(()));
        let stale = VolumeHealth { flags: VOLUME_FAILING, io_errors: 5, ..request };
        assert_eq!(stale.validate(), Ok(()));
        for i in 0..4 {
            let mut bad = request;
            bad.reserved[i] = 1;
            assert_eq!(bad.validate(), Err(ConfigError::Reserved), "reserved[{i}]");
            // Through the byte form, as the module reads it.
            let mut bytes = request.to_bytes();
            bytes[offset_of!(VolumeHealth, reserved) + 8 * i + 7] = 0x80;
            assert_eq!(
                VolumeHealth::from_bytes(&bytes).validate(),
                Err(ConfigError::Reserved),
                "byte of reserved[{i}]"
            );
        }
        // The command number: right one decodes; wrong size or direction is refused.
        assert_eq!(Command::decode(IOC_VOLUME_HEALTH), Ok(Command::VolumeHealth));
        assert_eq!(
            Command::decode(ioc(IOC_READ, IOCTL_MAGIC, 0x16, VolumeHealth::SIZE)),
            Err(CommandError::BadEncoding)
        );
        assert_eq!(
            Command::decode(ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x16, VolumeHealth::SIZE - 8)),
            Err(CommandError::BadEncoding)
        );
        assert_eq!(
            Command::decode(ioc(IOC_READ | IOC_WRITE, IOCTL_MAGIC, 0x16, VolumeRepl::SIZE)),
            Err(CommandError::BadEncoding)
        );
    }

    fn cfg() -> ClusterCfg {
        let mut cfg = ClusterCfg {
            name: pool_name(b"lab").unwrap(),
            local_id: 2,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            ..Default::default()
        };
        cfg.set_secret(b"0123456789abcdef-secret").unwrap();
        cfg
    }

    fn host() -> HostReq {
        HostReq::new(3, [10, 0, 0, 3], 7790, pool_name(b"rack-a").unwrap())
    }

    #[test]
    fn cluster_structures_round_trip() {
        let cfg = cfg();
        assert_eq!(ClusterCfg::from_bytes(&cfg.to_bytes()), cfg);
        let info = ClusterInfo {
            cfg,
            flags: CLUSTER_CONFIGURED | CLUSTER_LEASE,
            hosts: 3,
            devices: 1,
            hosts_up: 2,
            replica_blocks: 1 << 33,
            refused_connections: 4,
            protocol_errors: u64::MAX,
        };
        let bytes = info.to_bytes();
        assert_eq!(ClusterInfo::from_bytes(&bytes), info);
        // The nested structure sits at the start, byte for byte.
        assert_eq!(&bytes[..ClusterCfg::SIZE], &cfg.to_bytes()[..]);
        let h = HostInfo {
            index: 1,
            host: host(),
            state: HOST_UP,
            reserved: 0,
            last_heard_ms: LAST_HEARD_NEVER,
            rtt_us: 250,
            replica_blocks: 9,
        };
        let bytes = h.to_bytes();
        assert_eq!(HostInfo::from_bytes(&bytes), h);
        assert_eq!(&bytes[4..4 + HostReq::SIZE], &host().to_bytes()[..]);
        let mut d = DeviceReq::new(pool_name(b"shared0").unwrap(), b"/dev/vdb").unwrap();
        d.index = 5;
        d.uuid = [0x5a; DEVICE_UUID_LEN];
        assert_eq!(DeviceReq::from_bytes(&d.to_bytes()), d);
        let r = VolumeRepl {
            index: 2,
            peers: 2,
            domain: DOMAIN_DIFFERENT,
            state: REPL_REPROTECTING,
            peer_ids: [3, 64],
            name: pool_name(b"shared0").unwrap(),
            epoch: 7,
            replicated_writes: 1000,
            reprotections: 1,
            resent_blocks: 12,
        };
        let bytes = r.to_bytes();
        assert_eq!(VolumeRepl::from_bytes(&bytes), r);
        assert_eq!(get_u32(&bytes, 16), 3);
        assert_eq!(get_u32(&bytes, 20), 64);
    }

    #[test]
    fn host_addresses_are_in_network_byte_order() {
        let h = host();
        assert_eq!(h.octets(), [10, 0, 0, 3]);
        let bytes = h.to_bytes();
        // addr at offset 4: the octets in wire order, whatever the CPU's byte order.
        assert_eq!(&bytes[4..8], &[10, 0, 0, 3]);
        // port at offset 8, in host order.
        assert_eq!(&bytes[8..10], &7790u16.to_ne_bytes());
        assert_eq!(HostReq::from_bytes(&bytes).octets(), [10, 0, 0, 3]);
    }

    #[test]
    fn cluster_cfg_debug_hides_the_secret() {
        let text = format!("{:?}", cfg());
        assert!(text.contains("\"lab\""), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("48, 49"), "{text}");
        let info = format!("{:?}", ClusterInfo { cfg: cfg(), ..Default::default() });
        assert!(info.contains("<redacted>") && !info.contains("48, 49"), "{info}");
    }

    #[test]
    fn secrets_are_16_to_64_bytes() {
        let mut c = cfg();
        assert_eq!(c.secret(), b"0123456789abcdef-secret");
        assert_eq!(c.set_secret(&[7u8; 15]), None);
        assert_eq!(c.set_secret(&[7u8; 65]), None);
        assert_eq!(c.secret(), b"0123456789abcdef-secret", "a refused secret changes nothing");
        c.set_secret(&[7u8; 64]).unwrap();
        assert_eq!(c.secret(), &[7u8; 64][..]);
        c.set_secret(&[1u8; 16]).unwrap();
        assert_eq!(c.secret(), &[1u8; 16][..]);
        assert!(c.secret[16..].iter().all(|&b| b == 0), "the old secret's tail is cleared");
        c.secret_len = 1000;
        assert_eq!(c.secret().len(), SECRET_LEN);
    }

    #[test]
    fn cluster_cfg_rules() {
        assert_eq!(cfg().validate(), Ok(()));
        let check = |change: fn(&mut ClusterCfg)| {
            let mut c = cfg();
            change(&mut c);
            c.validate()
        };
        assert_eq!(check(|c| c.name = [0; NAME_LEN]), Err(ConfigError::ClusterName));
        assert_eq!(check(|c| c.name = pool_name(b"x").unwrap()), Ok(()));
        assert_eq!(check(|c| c.name[0] = b' '), Err(ConfigError::ClusterName));
        assert_eq!(check(|c| c.name = [b'a'; NAME_LEN]), Err(ConfigError::ClusterName));
        assert_eq!(check(|c| c.local_id = 0), Err(ConfigError::LocalId));
        assert_eq!(check(|c| c.local_id = 64), Ok(()));
        assert_eq!(check(|c| c.local_id = 65), Err(ConfigError::LocalId));
        assert_eq!(check(|c| c.heartbeat_ms = 9), Err(ConfigError::Heartbeat));
        assert_eq!(check(|c| (c.heartbeat_ms, c.timeout_ms) = (10, 30)), Ok(()));
        assert_eq!(check(|c| (c.heartbeat_ms, c.timeout_ms) = (10, 29)), Err(ConfigError::TimeoutTooShort));
        assert_eq!(check(|c| (c.heartbeat_ms, c.timeout_ms) = (10_000, 30_000)), Ok(()));
        assert_eq!(check(|c| c.heartbeat_ms = 10_001), Err(ConfigError::Heartbeat));
        assert_eq!(check(|c| c.heartbeat_ms = u32::MAX), Err(ConfigError::Heartbeat));
        assert_eq!(check(|c| c.timeout_ms = 600_000), Ok(()));
        assert_eq!(check(|c| c.timeout_ms = 600_001), Err(ConfigError::TimeoutTooLong));
        assert_eq!(check(|c| c.timeout_ms = 0), Err(ConfigError::TimeoutTooShort));
        assert_eq!(check(|c| c.secret_len = 15), Err(ConfigError::SecretLen));
        assert_eq!(check(|c| c.secret_len = 16), Ok(()));
        assert_eq!(check(|c| c.secret_len = 64), Ok(()));
        assert_eq!(check(|c| c.secret_len = 65), Err(ConfigError::SecretLen));
        assert_eq!(check(|c| c.transport = TRANSPORT_ENCRYPTED), Ok(()));
        assert_eq!(check(|c| c.transport = 2), Err(ConfigError::Transport));
        assert_eq!(check(|c| c.transport = u32::MAX), Err(ConfigError::Transport));
        assert_eq!(check(|c| c.reserved[2] = 1), Err(ConfigError::Reserved));
    }

    #[test]
    fn host_req_rules() {
        assert_eq!(host().validate(), Ok(()));
        let check = |change: fn(&mut HostReq)| {
            let mut h = host();
            change(&mut h);
            h.validate()
        };
        assert_eq!(check(|h| h.id = 0), Err(ConfigError::HostId));
        assert_eq!(check(|h| h.id = 1), Ok(()));
        assert_eq!(check(|h| h.id = MAX_HOSTS), Ok(()));
        assert_eq!(check(|h| h.id = MAX_HOSTS + 1), Err(ConfigError::HostId));
        assert_eq!(check(|h| h.addr = 0), Err(ConfigError::Addr));
        assert_eq!(check(|h| h.port = 0), Err(ConfigError::Port));
        assert_eq!(check(|h| h.flags = HOST_DEFER), Ok(()));
        assert_eq!(check(|h| h.flags = 2), Err(ConfigError::Reserved));
        assert_eq!(check(|h| h.domain = [0; NAME_LEN]), Err(ConfigError::Domain));
        assert_eq!(check(|h| h.domain[0] = b'/'), Err(ConfigError::Domain));
        assert!(host_id_valid(1) && host_id_valid(64) && !host_id_valid(0) && !host_id_valid(65));
    }

    #[test]
    fn device_req_rules() {
        let name = pool_name(b"shared0").unwrap();
        let dev = |path: &[u8]| DeviceReq::new(name, path).unwrap();
        assert_eq!(dev(b"/dev/disk/by-id/virtio-fvp-shared").validate(), Ok(()));
        assert_eq!(dev(b"/dev/vdb").path_str(), "/dev/vdb");
        assert_eq!(dev(b"/").validate(), Ok(()));
        assert_eq!(dev(b"").validate(), Err(ConfigError::PathEmpty));
        assert_eq!(dev(b"dev/vdb").validate(), Err(ConfigError::PathNotAbsolute));
        let longest = [b'/'; PATH_LEN - 1];
        assert_eq!(dev(&longest).validate(), Ok(()));
        assert!(DeviceReq::new(name, &[b'/'; PATH_LEN]).is_none());
        assert!(DeviceReq::new(name, b"/dev/\0vdb").is_none());
        let mut full = dev(b"/dev/vdb");
        full.path = [b'/'; PATH_LEN];
        assert_eq!(full.validate(), Err(ConfigError::PathNotTerminated));
        assert_eq!(full.path_bytes(), None);
        assert_eq!(full.path_str(), "?");
        let mut d = dev(b"/dev/vdb");
        d.reserved = 1;
        assert_eq!(d.validate(), Err(ConfigError::Reserved));
        let mut d = dev(b"/dev/vdb");
        d.name = [0; NAME_LEN];
        assert_eq!(d.validate(), Err(ConfigError::DeviceName));
        // `index` is only for FVP_IOC_DEVICE_INFO: not checked.
        let mut d = dev(b"/dev/vdb");
        d.index = 9;
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn config_errors_read_well() {
        assert_eq!(format!("{}", ConfigError::TimeoutTooShort), "timeout_ms is less than 3 x heartbeat_ms");
        assert_eq!(ConfigError::PathNotAbsolute.message(), "device path is not absolute");
        let discard = |major, minor| VolumeDiscard { backing_major: major, backing_minor: minor, ..Default::default() };
        assert_eq!(discard(253, 7).validate(), Ok(()));
        assert_eq!(discard(253, 7).devt(), 253 << 20 | 7);
        assert_eq!(discard(4095, (1 << 20) - 1).validate(), Ok(()));
        assert_eq!(discard(4096, 0).validate(), Err(ConfigError::DevNumber));
        assert_eq!(discard(8, 1 << 20).validate(), Err(ConfigError::DevNumber));
        assert_eq!(VolumeDiscard { reserved: [0, 1], ..discard(8, 0) }.validate(), Err(ConfigError::Reserved));
    }
}
