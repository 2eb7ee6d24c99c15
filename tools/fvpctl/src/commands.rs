// SPDX-License-Identifier: GPL-2.0

//! Runs a parsed command line against the control device.

use std::path::Path;

use fvp_logic::abi::{Command as Ioctl, Version, ABI_VERSION};

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::output;
use crate::sys::{self, ControlDevice};

/// Runs `cli` and returns the report to print.
pub fn run(cli: &Cli) -> Result<String, Error> {
    let path = cli.device.as_path();
    let device = ControlDevice::open(path)
        .map_err(|errno| Error::from_open(errno, path, sys::module_loaded()))?;
    // Every command starts with the version: it tells whether the other structures
    // are the ones fvpctl knows.
    let version = checked_version(&device, path)?;
    match cli.command {
        Command::Version(out) if out.json => Ok(output::version_json(&version)),
        Command::Version(_) => Ok(output::version_text(&version)),
        Command::Status(out) => {
            let status = device
                .status()
                .map_err(|errno| Error::from_ioctl(Ioctl::Status, errno, path))?;
            Ok(if out.json {
                output::status_json(&version, &status)
            } else {
                output::status_text(&version, &status)
            })
        }
    }
}

/// The module's version, provided it speaks fvpctl's ABI.
fn checked_version(device: &ControlDevice, path: &Path) -> Result<Version, Error> {
    let version = device
        .version()
        .map_err(|errno| Error::from_ioctl(Ioctl::Version, errno, path))?;
    check_abi(&version)?;
    Ok(version)
}

/// Refuses a module of another ABI version.
fn check_abi(version: &Version) -> Result<(), Error> {
    match version.abi_version {
        ABI_VERSION => Ok(()),
        module => Err(Error::AbiMismatch {
            ours: ABI_VERSION,
            module,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_check_accepts_only_our_version() {
        let mut version = Version::new(0, 1, 0, 0, "0.1.0");
        assert!(check_abi(&version).is_ok());
        version.abi_version = ABI_VERSION + 1;
        let err = check_abi(&version).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "ABI mismatch: fvpctl speaks {ABI_VERSION}, module speaks {}",
                ABI_VERSION + 1
            )
        );
    }
}
