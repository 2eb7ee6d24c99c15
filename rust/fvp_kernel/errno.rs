// SPDX-License-Identifier: GPL-2.0

//! Error codes 6.12's `kernel::error::code` does not name.

use super::bindings;
use kernel::error::Error;

/// `ETIMEDOUT`: a peer did not answer in time.
pub fn etimedout() -> Error {
    Error::from_errno(-(bindings::ETIMEDOUT as i32))
}

/// `ESTALE`: the volume was taken over by a peer.
pub fn estale() -> Error {
    Error::from_errno(-(bindings::ESTALE as i32))
}

/// `EOPNOTSUPP`: the operation does not apply to this object.
pub fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// `EMEDIUMTYPE`: a peer's path to a shared device names another device than the
/// owner's (size or configured identity differ).
pub fn emediumtype() -> Error {
    Error::from_errno(-(bindings::EMEDIUMTYPE as i32))
}
