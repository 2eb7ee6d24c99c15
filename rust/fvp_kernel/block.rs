// SPDX-License-Identifier: GPL-2.0

//! A reference to a block device that fvp opened itself, independent of any dm table.

use super::bindings;
use super::bio::BlockDevice;
use core::ptr::NonNull;
use kernel::error::{from_err_ptr, Result};

/// A block device opened for reading and writing (not exclusively), closed on drop.
///
/// Device-mapper's own reference (`dm_get_device`) ends with the target's destructor;
/// I/O that may still be in flight afterwards (completions, background destaging)
/// holds one of these instead.
///
/// # Invariants
///
/// `file` is an open block-device file owned by this value.
pub struct OpenedBdev {
    file: NonNull<bindings::file>,
}

// SAFETY: an open file may be used and closed from any thread.
unsafe impl Send for OpenedBdev {}
// SAFETY: shared access only submits I/O, which the block layer synchronises.
unsafe impl Sync for OpenedBdev {}

impl OpenedBdev {
    /// Opens the device `major:minor` read-write.
    pub fn open(dev: u32) -> Result<Self> {
        let mode = bindings::FVP_BLK_OPEN_READ | bindings::FVP_BLK_OPEN_WRITE;
        // SAFETY: no holder (non-exclusive open) and no holder ops are valid arguments.
        let file = unsafe {
            from_err_ptr(bindings::bdev_file_open_by_dev(dev, mode, core::ptr::null_mut(), core::ptr::null()))
        }?;
        // INVARIANT: `from_err_ptr` returned a valid open file, now ours.
        Ok(Self { file: NonNull::new(file).ok_or(kernel::error::code::ENODEV)? })
    }

    /// Opens the device `major:minor` read-write and exclusively (`EBUSY` if it is
    /// mounted, in use by another driver, or opened exclusively already): a flash
    /// pool's device must have no other writer.
    pub fn open_exclusive(dev: u32) -> Result<Self> {
        let mode = bindings::FVP_BLK_OPEN_READ | bindings::FVP_BLK_OPEN_WRITE;
        // The holder only has to be unique to fvp: the address of this static.
        let holder = core::ptr::addr_of!(EXCLUSIVE_HOLDER).cast_mut().cast::<core::ffi::c_void>();
        // SAFETY: a non-null holder makes the open exclusive; no holder ops is valid. The
        // holder is a static, alive as long as the module.
        let file = unsafe { from_err_ptr(bindings::bdev_file_open_by_dev(dev, mode, holder, core::ptr::null())) }?;
        // INVARIANT: `from_err_ptr` returned a valid open file, now ours.
        Ok(Self { file: NonNull::new(file).ok_or(kernel::error::code::ENODEV)? })
    }

    /// The block device.
    pub fn bdev(&self) -> &BlockDevice {
        // SAFETY: the file is open (invariant), so its block device is live while it is.
        unsafe { BlockDevice::from_raw(bindings::file_bdev(self.file.as_ptr())) }
    }
}

/// fvp's holder of exclusively opened devices.
static EXCLUSIVE_HOLDER: u8 = 0;

impl Drop for OpenedBdev {
    fn drop(&mut self) {
        // SAFETY: the file is open and ours.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}

/// The `dev_t` of the block device at `path` (a NUL-terminated path in a fixed buffer).
pub fn lookup_devt(path: &[u8]) -> Result<u32> {
    if !path.contains(&0) {
        return Err(kernel::error::code::EINVAL);
    }
    let mut devt = 0u32;
    // SAFETY: `path` is NUL-terminated (checked above) and `devt` is a valid out-pointer.
    kernel::error::to_result(unsafe { bindings::fvp_helper_lookup_bdev(path.as_ptr().cast(), &mut devt) })?;
    Ok(devt)
}
