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
pub const ABI_VERSION: u32 = 1;
/// `FVP_FEATURE_PASSTHROUGH`: the dm target `fvp` maps I/O to its backing device.
pub const FEATURE_PASSTHROUGH: u64 = 1 << 0;
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

/// A command the control device understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `FVP_IOC_VERSION`.
    Version,
    /// `FVP_IOC_STATUS`.
    Status,
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
        match self {
            Command::Version => Version::SIZE,
            Command::Status => Status::SIZE,
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
    fn status_round_trips() {
        let s = Status { volumes: 3, reserved: 0, bios_mapped: 1 << 40 };
        assert_eq!(Status::from_bytes(&s.to_bytes()), s);
    }
}
