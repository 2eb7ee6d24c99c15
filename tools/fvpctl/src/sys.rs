// SPDX-License-Identifier: GPL-2.0

//! System access: the control device and sysfs.
//!
//! This is the only module with `unsafe` code (the raw ioctl calls). Everything here
//! reports failures as a bare [`Errno`]; callers add what was being done, and to what.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use fvp_logic::abi::{self, Command, Status, Version};
use nix::errno::Errno;

/// Exists while fvp.ko is loaded.
const MODULE_SYSFS_DIR: &str = "/sys/module/fvp";

/// Whether the fvp module is loaded.
pub fn module_loaded() -> bool {
    Path::new(MODULE_SYSFS_DIR).is_dir()
}

/// An open fvp control device.
#[derive(Debug)]
pub struct ControlDevice {
    file: File,
}

impl ControlDevice {
    /// Opens the control device at `path`.
    pub fn open(path: &Path) -> Result<Self, Errno> {
        // Read-only is enough: every command only reads, and the module checks
        // CAP_SYS_ADMIN per ioctl rather than relying on the open mode.
        File::open(path)
            .map(|file| Self { file })
            .map_err(|err| errno_of(&err))
    }

    /// `FVP_IOC_VERSION`.
    pub fn version(&self) -> Result<Version, Errno> {
        self.read(Command::Version)
            .map(|bytes| Version::from_bytes(&bytes))
    }

    /// `FVP_IOC_STATUS`.
    pub fn status(&self) -> Result<Status, Errno> {
        self.read(Command::Status)
            .map(|bytes| Status::from_bytes(&bytes))
    }

    /// Issues the `_IOR` ioctl for `command` and returns the `N` bytes the module wrote.
    fn read<const N: usize>(&self, command: Command) -> Result<[u8; N], Errno> {
        let request = match command {
            Command::Version => abi::IOC_VERSION,
            Command::Status => abi::IOC_STATUS,
        };
        // The module copies out as many bytes as the request encodes: the buffer must
        // be exactly that large, or the copy would overrun it.
        assert_eq!(
            abi::ioc_size(request),
            N,
            "{command:?} encodes a size different from its buffer"
        );
        // `as`, not `From`: the request type is `c_ulong` on glibc but `c_int` on musl,
        // where the kernel still reads the same 32 bits.
        let request = request as libc::Ioctl;
        let mut buf = [0u8; N];
        // SAFETY: `self.file` owns the descriptor, so it stays open during the call.
        // `request` is an `_IOR` command encoding a size of `N` bytes (asserted above),
        // so the driver writes at most `N` bytes through the pointer, and `buf` is `N`
        // writable bytes that outlive the call. No reference to `buf` is alive during the
        // call, and every bit pattern is a valid `u8`, so whatever is written is sound.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), request, buf.as_mut_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(buf)
        }
    }
}

/// The errno behind an I/O error from the standard library.
fn errno_of(err: &io::Error) -> Errno {
    // Errors that did not come from a system call (none are expected from `open` on a
    // path taken from argv, which cannot hold a NUL) have no errno.
    err.raw_os_error()
        .map_or(Errno::UnknownErrno, Errno::from_raw)
}
