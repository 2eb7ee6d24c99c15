// SPDX-License-Identifier: GPL-2.0

//! Misc character devices with an ioctl interface.
//!
//! Linux 6.12's `kernel` crate has no misc device abstraction (one arrived in 6.13);
//! this is a minimal one: registration, device node mode, and `unlocked_ioctl`.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)

use super::bindings;
use core::ffi::CStr;
use core::pin::Pin;
use kernel::error::{to_result, Error, Result};
use kernel::ffi::{c_long, c_uint, c_ulong};
use kernel::init::PinInit;
use kernel::prelude::*;
use kernel::types::Opaque;
use kernel::uaccess::UserPtr;
use kernel::ThisModule;

/// The operations of a misc device.
pub trait MiscDevice: Send + Sync + 'static {
    /// Handles `ioctl(fd, cmd, arg)`; `arg` is usually a user-space pointer.
    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize>;
}

/// A registered misc device whose file operations call `T`.
///
/// # Invariants
///
/// `misc` is registered with the misc subsystem for the lifetime of the value, with
/// `fops` as its file operations; `fops.owner` is the module that owns the value, so an
/// open file keeps the module, and therefore the registration, alive.
#[pin_data(PinnedDrop)]
pub struct Registration<T: MiscDevice> {
    data: T,
    #[pin]
    fops: Opaque<bindings::file_operations>,
    #[pin]
    misc: Opaque<bindings::miscdevice>,
}

// SAFETY: Only shared references to `data` (which is `Sync`) are handed out; the C
// structures are read-only after registration.
unsafe impl<T: MiscDevice> Sync for Registration<T> {}
// SAFETY: As above; the value is pinned, so only the owning box moves between threads.
unsafe impl<T: MiscDevice> Send for Registration<T> {}

impl<T: MiscDevice> Registration<T> {
    /// Registers `/dev/<name>` with permissions `mode`, served by `data`.
    pub fn new(name: &'static CStr, mode: u16, module: &'static ThisModule, data: T) -> impl PinInit<Self, Error> {
        try_pin_init!(&this in Self {
            data,
            fops <- Opaque::ffi_init(move |fops: *mut bindings::file_operations| {
                // SAFETY: `fops` is valid for writes (pin-init contract).
                unsafe {
                    fops.write(bindings::file_operations {
                        owner: module.as_ptr(),
                        unlocked_ioctl: Some(ioctl_callback::<T>),
                        ..Default::default()
                    })
                };
            }),
            misc <- Self::register(name, mode, this),
        })
    }

    fn register(
        name: &'static CStr,
        mode: u16,
        this: core::ptr::NonNull<Self>,
    ) -> impl PinInit<Opaque<bindings::miscdevice>, Error> {
        let closure = move |slot: *mut Opaque<bindings::miscdevice>| {
            let misc = Opaque::raw_get(slot);
            // SAFETY: `this` points at the value being initialised; `fops` was
            // initialised before this field (fields initialise in declaration order).
            let fops = unsafe { Opaque::raw_get(core::ptr::addr_of!((*this.as_ptr()).fops)) };
            // SAFETY: `misc` is valid for writes (pin-init contract).
            unsafe {
                misc.write(bindings::miscdevice {
                    minor: bindings::MISC_DYNAMIC_MINOR as i32,
                    name: name.as_ptr().cast(),
                    fops,
                    mode,
                    ..Default::default()
                })
            };
            // SAFETY: `misc` is initialised and pinned, and deregistered in `drop` before
            // its memory is freed.
            // INVARIANT: on success the device is registered with `fops`.
            to_result(unsafe { bindings::misc_register(misc) })
        };
        // SAFETY: On `Ok` the slot is initialised; on `Err` nothing was registered and the
        // `Opaque` may stay uninitialised.
        unsafe { kernel::init::pin_init_from_closure(closure) }
    }
}

#[pinned_drop]
impl<T: MiscDevice> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the device is registered.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}

/// # Safety
///
/// Called by the VFS only, for a file opened through this misc device.
unsafe extern "C" fn ioctl_callback<T: MiscDevice>(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: `misc_open` stored our `miscdevice` in `private_data` and we install no
    // `open` that would change it.
    let misc = unsafe { (*file).private_data }.cast::<bindings::miscdevice>();
    // SAFETY: `misc` is the `misc` field of a `Registration<T>` (`Opaque` is transparent),
    // which the open file keeps alive through its reference on the owning module.
    let registration = unsafe { &*kernel::container_of!(misc, Registration<T>, misc) };
    match registration.data.ioctl(cmd, arg as UserPtr) {
        Ok(ret) => ret as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}
