// SPDX-License-Identifier: GPL-2.0

//! Parsing and validation of the `fvp` device-mapper table line.
//!
//! Table: `<start> <length> fvp <backing-dev>`. The target arguments after the
//! target name are `<backing-dev>` and nothing else in this ABI version; later
//! versions add positional arguments and `key=value` options.

use core::ffi::CStr;

/// The validated arguments of an `fvp` table line.
#[derive(Debug, PartialEq, Eq)]
pub struct Table<'a> {
    /// Path or `major:minor` of the backing device, as given.
    pub backing_dev: &'a [u8],
}

/// Why a table line was refused. Each maps to the message device-mapper logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// No backing device named.
    MissingBackingDevice,
    /// The backing device argument is empty or looks like an option.
    BadBackingDevice,
    /// A `key=value` option this version does not know.
    UnknownOption,
    /// A positional argument beyond the ones the table takes.
    UnexpectedArgument,
    /// The backing device could not be opened.
    CannotOpenBackingDevice,
    /// The target is longer than the backing device.
    LengthExceedsBackingDevice,
    /// The target has length zero.
    ZeroLength,
    /// Out of memory while constructing the target.
    OutOfMemory,
}

impl TableError {
    /// The message device-mapper prints for this error (`ti->error`).
    pub fn message(self) -> &'static CStr {
        match self {
            TableError::MissingBackingDevice => c"missing argument: <backing-dev>",
            TableError::BadBackingDevice => c"invalid <backing-dev> argument",
            TableError::UnknownOption => c"unknown option (expected none in this version)",
            TableError::UnexpectedArgument => c"too many arguments: expected only <backing-dev>",
            TableError::CannotOpenBackingDevice => c"cannot open backing device",
            TableError::LengthExceedsBackingDevice => {
                c"target length exceeds the backing device size"
            }
            TableError::ZeroLength => c"target length must not be zero",
            TableError::OutOfMemory => c"out of memory",
        }
    }
}

/// Parses the target arguments (everything after the target name).
pub fn parse<'a>(args: &[&'a [u8]]) -> Result<Table<'a>, TableError> {
    let (backing_dev, rest) = args.split_first().ok_or(TableError::MissingBackingDevice)?;
    if backing_dev.is_empty() || backing_dev.contains(&b'=') {
        return Err(TableError::BadBackingDevice);
    }
    if let Some(extra) = rest.first() {
        return Err(if extra.contains(&b'=') {
            TableError::UnknownOption
        } else {
            TableError::UnexpectedArgument
        });
    }
    Ok(Table { backing_dev })
}

/// Checks the target's geometry against the opened backing device.
pub fn check_length(target_sectors: u64, backing_sectors: u64) -> Result<(), TableError> {
    if target_sectors == 0 {
        Err(TableError::ZeroLength)
    } else if target_sectors > backing_sectors {
        Err(TableError::LengthExceedsBackingDevice)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn accepts_one_device() {
        assert_eq!(parse(&[b"/dev/vdb"]), Ok(Table { backing_dev: b"/dev/vdb" }));
        assert_eq!(parse(&[b"254:16"]), Ok(Table { backing_dev: b"254:16" }));
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(parse(&[]), Err(TableError::MissingBackingDevice));
        assert_eq!(parse(&[b""]), Err(TableError::BadBackingDevice));
        assert_eq!(parse(&[b"foo=bar"]), Err(TableError::BadBackingDevice));
        assert_eq!(parse(&[b"/dev/vdb", b"extra"]), Err(TableError::UnexpectedArgument));
        assert_eq!(parse(&[b"/dev/vdb", b"cache=1"]), Err(TableError::UnknownOption));
    }

    #[test]
    fn length_checks() {
        assert_eq!(check_length(8, 8), Ok(()));
        assert_eq!(check_length(0, 8), Err(TableError::ZeroLength));
        assert_eq!(check_length(9, 8), Err(TableError::LengthExceedsBackingDevice));
    }

    #[test]
    fn every_error_has_a_message() {
        for e in [
            TableError::MissingBackingDevice,
            TableError::BadBackingDevice,
            TableError::UnknownOption,
            TableError::UnexpectedArgument,
            TableError::CannotOpenBackingDevice,
            TableError::LengthExceedsBackingDevice,
            TableError::ZeroLength,
            TableError::OutOfMemory,
        ] {
            assert!(e.message().to_bytes().len() > 10);
        }
    }

    proptest! {
        /// Any argument vector either parses to exactly one device or is refused; never panics.
        #[test]
        fn parse_is_total(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..5)) {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            match parse(&refs) {
                Ok(t) => { prop_assert_eq!(refs.len(), 1); prop_assert_eq!(t.backing_dev, refs[0]); }
                Err(_) => prop_assert!(refs.len() != 1 || refs[0].is_empty() || refs[0].contains(&b'=')),
            }
        }
    }
}
