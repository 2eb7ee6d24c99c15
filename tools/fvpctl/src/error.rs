// SPDX-License-Identifier: GPL-2.0

//! Why fvpctl failed, worded for the person running it.

use std::fmt;
use std::path::{Path, PathBuf};

use fvp_logic::abi::Command;
use nix::errno::Errno;

/// A system call fvpctl made on the control device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Opening the device node.
    Open,
    /// An fvp ioctl.
    Ioctl(Command),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "open",
            Operation::Ioctl(Command::Version) => "FVP_IOC_VERSION",
            Operation::Ioctl(Command::Status) => "FVP_IOC_STATUS",
        })
    }
}

/// A failure of an fvpctl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device node does not exist and neither does the module.
    #[error(
        "cannot open {}: fvp module is not loaded (modprobe fvp / insmod fvp.ko)",
        .device.display()
    )]
    ModuleNotLoaded { device: PathBuf },

    /// The module is loaded but its device node is not there.
    #[error(
        "fvp module is loaded but {} is missing (wrong --device, or no udev/devtmpfs?)",
        .device.display()
    )]
    DeviceMissing { device: PathBuf },

    /// The file mode or the module's capability check refused us.
    #[error(
        "permission denied: fvpctl needs CAP_SYS_ADMIN ({operation} {}: {errno:?})",
        .device.display()
    )]
    PermissionDenied {
        operation: Operation,
        device: PathBuf,
        errno: Errno,
    },

    /// Whatever is behind the path, it is not fvp's control device.
    #[error(
        "{} does not speak the fvp ABI ({operation}: ENOTTY)",
        .device.display()
    )]
    NotFvpDevice {
        operation: Operation,
        device: PathBuf,
    },

    /// The module speaks another ABI version, so its structures may differ from ours.
    #[error("ABI mismatch: fvpctl speaks {ours}, module speaks {module}")]
    AbiMismatch { ours: u32, module: u32 },

    /// Any other errno.
    #[error("{operation} {}: {errno:?} ({})", .device.display(), .errno.desc())]
    Os {
        operation: Operation,
        device: PathBuf,
        errno: Errno,
    },
}

impl Error {
    /// Explains a failed open of `device`; `module_loaded` tells a missing node apart
    /// from a missing module.
    pub fn from_open(errno: Errno, device: &Path, module_loaded: bool) -> Self {
        let device = device.to_path_buf();
        match errno {
            // ENODEV and ENXIO: a stale node whose driver is gone.
            Errno::ENOENT | Errno::ENODEV | Errno::ENXIO if !module_loaded => {
                Error::ModuleNotLoaded { device }
            }
            Errno::ENOENT => Error::DeviceMissing { device },
            _ => Error::from_errno(Operation::Open, errno, device),
        }
    }

    /// Explains a failed ioctl on `device`.
    pub fn from_ioctl(command: Command, errno: Errno, device: &Path) -> Self {
        Error::from_errno(Operation::Ioctl(command), errno, device.to_path_buf())
    }

    fn from_errno(operation: Operation, errno: Errno, device: PathBuf) -> Self {
        match errno {
            Errno::EACCES | Errno::EPERM => Error::PermissionDenied {
                operation,
                device,
                errno,
            },
            Errno::ENOTTY => Error::NotFvpDevice { operation, device },
            _ => Error::Os {
                operation,
                device,
                errno,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "/dev/fvp-control";

    fn open_error(errno: Errno, module_loaded: bool) -> String {
        Error::from_open(errno, Path::new(DEVICE), module_loaded).to_string()
    }

    fn ioctl_error(command: Command, errno: Errno) -> String {
        Error::from_ioctl(command, errno, Path::new(DEVICE)).to_string()
    }

    #[test]
    fn missing_node_without_module_blames_the_module() {
        for errno in [Errno::ENOENT, Errno::ENODEV, Errno::ENXIO] {
            let msg = open_error(errno, false);
            assert!(
                msg.contains("fvp module is not loaded (modprobe fvp / insmod fvp.ko)"),
                "{msg}"
            );
            assert!(msg.contains(DEVICE), "{msg}");
        }
    }

    #[test]
    fn missing_node_with_module_blames_the_node() {
        let msg = open_error(Errno::ENOENT, true);
        assert!(msg.contains("/dev/fvp-control is missing"), "{msg}");
    }

    #[test]
    fn permission_problems_name_the_capability() {
        assert!(open_error(Errno::EACCES, true)
            .starts_with("permission denied: fvpctl needs CAP_SYS_ADMIN"));
        let msg = ioctl_error(Command::Version, Errno::EPERM);
        assert!(
            msg.starts_with("permission denied: fvpctl needs CAP_SYS_ADMIN"),
            "{msg}"
        );
        assert!(msg.contains("FVP_IOC_VERSION"), "{msg}");
    }

    #[test]
    fn enotty_means_not_fvp() {
        let msg = ioctl_error(Command::Status, Errno::ENOTTY);
        assert_eq!(
            msg,
            "/dev/fvp-control does not speak the fvp ABI (FVP_IOC_STATUS: ENOTTY)"
        );
    }

    #[test]
    fn other_errnos_are_named() {
        let msg = ioctl_error(Command::Status, Errno::EINVAL);
        assert_eq!(
            msg,
            "FVP_IOC_STATUS /dev/fvp-control: EINVAL (Invalid argument)"
        );
        let msg = open_error(Errno::ENODEV, true);
        assert!(msg.starts_with("open /dev/fvp-control: ENODEV"), "{msg}");
    }

    #[test]
    fn abi_mismatch_names_both_versions() {
        let msg = Error::AbiMismatch { ours: 1, module: 2 }.to_string();
        assert_eq!(msg, "ABI mismatch: fvpctl speaks 1, module speaks 2");
    }
}
