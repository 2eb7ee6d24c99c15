// SPDX-License-Identifier: GPL-2.0

//! The control device `/dev/fvp-control` and its ioctls (`include/uapi/linux/fvp.h`).

use crate::fvp_kernel::{cred, miscdev};
use crate::logic::abi::{self, Command, CommandError};
use crate::registry::Registry;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::{UserPtr, UserSlice};

/// Serves the control ioctls.
pub(crate) struct Control {
    registry: Arc<Registry>,
}

impl Control {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    fn copy_out(arg: UserPtr, bytes: &[u8]) -> Result<isize> {
        // Writes to a bad address fail with EFAULT inside `write_slice`.
        UserSlice::new(arg, bytes.len()).writer().write_slice(bytes)?;
        Ok(0)
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
                    abi::FEATURE_PASSTHROUGH,
                    crate::VERSION_STR,
                );
                Self::copy_out(arg, &v.to_bytes())
            }
            Command::Status => {
                let totals = self.registry.totals();
                let s = abi::Status {
                    volumes: totals.volumes,
                    reserved: 0,
                    bios_mapped: totals.bios_mapped,
                };
                Self::copy_out(arg, &s.to_bytes())
            }
        }
    }
}
