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
pub const ABI_VERSION: u32 = 2;
/// `FVP_FEATURE_PASSTHROUGH`: the dm target `fvp` maps I/O to its backing device.
pub const FEATURE_PASSTHROUGH: u64 = 1 << 0;
/// `FVP_FEATURE_RAM_POOL`: RAM pools; write-through and write-back (peers=0) volumes.
pub const FEATURE_RAM_POOL: u64 = 1 << 1;
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

/// Defines a `#[repr(C)]` ABI structure with `SIZE`, `to_bytes` and `from_bytes`.
macro_rules! abi_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len]).unwrap_or("?")
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
        assert_eq!(
            Command::decode(ioc(IOC_WRITE, IOCTL_MAGIC, 0, Version::SIZE)),
            Err(CommandError::BadEncoding)
        );
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
        for c in [Command::PoolCreate, Command::PoolResize, Command::PoolDestroy, Command::PoolInfo, Command::VolumeInfo] {
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
}
