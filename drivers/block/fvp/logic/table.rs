// SPDX-License-Identifier: GPL-2.0

//! Parsing and validation of the `fvp` device-mapper table line.
//!
//! Table: `<start> <length> fvp <backing-dev> <pool> <policy> [key=value ...]`, where
//! `<policy>` is `write-through` or `write-back`. Options: `peers=0|1|2` (write-back only),
//! `domain=same|different` (where peers are placed; with `peers>0` only), `block_size=4096`,
//! `sequential_cutoff=<bytes>` (0 disables).

use core::ffi::CStr;

/// A cache policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Writes complete once on the backing device.
    WriteThrough,
    /// Writes complete once in the pool; destaged later.
    WriteBack,
}

impl Policy {
    /// Parses `write-through` or `write-back`.
    pub fn parse(s: &[u8]) -> Option<Policy> {
        match s {
            b"write-through" => Some(Policy::WriteThrough),
            b"write-back" => Some(Policy::WriteBack),
            _ => None,
        }
    }

    /// The table spelling.
    pub fn name(self) -> &'static str {
        match self {
            Policy::WriteThrough => "write-through",
            Policy::WriteBack => "write-back",
        }
    }
}

/// Default sequential cutoff: streams longer than this bypass the pool.
pub const DEFAULT_SEQUENTIAL_CUTOFF: u64 = 4 << 20;
/// The only block size this version supports (one pool page per block).
pub const BLOCK_SIZE: u32 = 4096;

/// The validated arguments of an `fvp` table line.
#[derive(Debug, PartialEq, Eq)]
pub struct Table<'a> {
    /// Path or `major:minor` of the backing device, as given.
    pub backing_dev: &'a [u8],
    /// Name of the pool.
    pub pool: &'a [u8],
    /// Policy asked for.
    pub policy: Policy,
    /// Peers holding replicas of dirty blocks: 0, 1 or 2.
    pub peers: u32,
    /// Where the peers are placed (meaningful with `peers > 0`).
    pub domain: super::placement::DomainRule,
    /// Block size in bytes.
    pub block_size: u32,
    /// Sequential cutoff in bytes (0: off).
    pub sequential_cutoff: u64,
}

/// Why a table line was refused. Each maps to the message device-mapper logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// No backing device named.
    MissingBackingDevice,
    /// The backing device argument is empty or looks like an option.
    BadBackingDevice,
    /// No pool named.
    MissingPool,
    /// No policy given.
    MissingPolicy,
    /// The policy is neither write-through nor write-back.
    BadPolicy,
    /// A `key=value` option this version does not know.
    UnknownOption,
    /// A positional argument beyond the ones the table takes.
    UnexpectedArgument,
    /// An option given twice.
    DuplicateOption,
    /// `peers` above 2.
    PeersUnsupported,
    /// `peers>0` with write-through: there is nothing to replicate.
    PeersNeedWriteBack,
    /// `domain` neither `same` nor `different`, or given without `peers>0`.
    BadDomain,
    /// `peers` not a number.
    BadPeers,
    /// `block_size` other than 4096.
    BadBlockSize,
    /// `sequential_cutoff` not a number.
    BadSequentialCutoff,
    /// No pool of that name exists.
    NoSuchPool,
    /// The backing device could not be opened.
    CannotOpenBackingDevice,
    /// The target is longer than the backing device.
    LengthExceedsBackingDevice,
    /// The target has length zero.
    ZeroLength,
    /// The target length is not a multiple of the block size.
    UnalignedLength,
    /// The target is too large for the block numbers a pool holds.
    TooLarge,
    /// The pool has no room for another volume.
    TooManyVolumes,
    /// Out of memory while constructing the target.
    OutOfMemory,
}

impl TableError {
    /// The message device-mapper prints for this error (`ti->error`).
    pub fn message(self) -> &'static CStr {
        match self {
            TableError::MissingBackingDevice => c"missing argument: <backing-dev>",
            TableError::BadBackingDevice => c"invalid <backing-dev> argument",
            TableError::MissingPool => c"missing argument: <pool>",
            TableError::MissingPolicy => c"missing argument: <policy> (write-through or write-back)",
            TableError::BadPolicy => c"invalid <policy>: expected write-through or write-back",
            TableError::UnknownOption => c"unknown option (known: peers, domain, block_size, sequential_cutoff)",
            TableError::UnexpectedArgument => {
                c"too many arguments: expected <backing-dev> <pool> <policy> [key=value ...]"
            }
            TableError::DuplicateOption => c"option given twice",
            TableError::PeersUnsupported => c"peers: at most 2",
            TableError::PeersNeedWriteBack => c"peers: replication needs write-back",
            TableError::BadDomain => c"domain: expected same or different, with peers=1 or 2",
            TableError::BadPeers => c"peers: expected a number",
            TableError::BadBlockSize => c"block_size: only 4096 is supported",
            TableError::BadSequentialCutoff => c"sequential_cutoff: expected a number of bytes",
            TableError::NoSuchPool => c"no pool of that name (create it with fvpctl pool create)",
            TableError::CannotOpenBackingDevice => c"cannot open backing device",
            TableError::LengthExceedsBackingDevice => c"target length exceeds the backing device size",
            TableError::ZeroLength => c"target length must not be zero",
            TableError::UnalignedLength => c"target length must be a multiple of the block size",
            TableError::TooLarge => c"target too large (at most 2^48 blocks)",
            TableError::TooManyVolumes => c"the pool has no room for another volume",
            TableError::OutOfMemory => c"out of memory",
        }
    }
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Parses the target arguments (everything after the target name).
pub fn parse<'a>(args: &[&'a [u8]]) -> Result<Table<'a>, TableError> {
    let mut it = args.iter();
    let backing_dev = *it.next().ok_or(TableError::MissingBackingDevice)?;
    if backing_dev.is_empty() || backing_dev.contains(&b'=') {
        return Err(TableError::BadBackingDevice);
    }
    let pool = *it.next().ok_or(TableError::MissingPool)?;
    if pool.is_empty() || pool.contains(&b'=') {
        return Err(TableError::MissingPool);
    }
    let policy_arg = *it.next().ok_or(TableError::MissingPolicy)?;
    let policy = Policy::parse(policy_arg).ok_or(if policy_arg.contains(&b'=') {
        TableError::MissingPolicy
    } else {
        TableError::BadPolicy
    })?;
    let mut table = Table {
        backing_dev,
        pool,
        policy,
        peers: 0,
        domain: super::placement::DomainRule::Different,
        block_size: BLOCK_SIZE,
        sequential_cutoff: DEFAULT_SEQUENTIAL_CUTOFF,
    };
    let mut seen = [false; 4];
    for arg in it {
        let eq = arg.iter().position(|&c| c == b'=').ok_or(TableError::UnexpectedArgument)?;
        let (key, value) = (&arg[..eq], &arg[eq + 1..]);
        let index = match key {
            b"peers" => 0,
            b"block_size" => 1,
            b"sequential_cutoff" => 2,
            b"domain" => 3,
            _ => return Err(TableError::UnknownOption),
        };
        if seen[index] {
            return Err(TableError::DuplicateOption);
        }
        seen[index] = true;
        match index {
            0 => {
                let peers = number(value).ok_or(TableError::BadPeers)?;
                if peers > 2 {
                    return Err(TableError::PeersUnsupported);
                }
                table.peers = peers as u32;
            }
            3 => {
                table.domain = super::placement::DomainRule::parse(value).ok_or(TableError::BadDomain)?;
            }
            1 => {
                if number(value) != Some(u64::from(BLOCK_SIZE)) {
                    return Err(TableError::BadBlockSize);
                }
            }
            _ => {
                table.sequential_cutoff = number(value).ok_or(TableError::BadSequentialCutoff)?;
            }
        }
    }
    if table.peers > 0 && table.policy != Policy::WriteBack {
        return Err(TableError::PeersNeedWriteBack);
    }
    if seen[3] && table.peers == 0 {
        return Err(TableError::BadDomain);
    }
    Ok(table)
}

/// Checks the target's geometry against the opened backing device.
pub fn check_length(target_sectors: u64, backing_sectors: u64) -> Result<(), TableError> {
    let sectors_per_block = u64::from(BLOCK_SIZE / 512);
    if target_sectors == 0 {
        Err(TableError::ZeroLength)
    } else if target_sectors > backing_sectors {
        Err(TableError::LengthExceedsBackingDevice)
    } else if !target_sectors.is_multiple_of(sectors_per_block) {
        Err(TableError::UnalignedLength)
    } else if target_sectors / sectors_per_block > (1 << 48) {
        Err(TableError::TooLarge)
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
    fn accepts_good_lines() {
        let t = parse(&[b"/dev/vdb", b"ram0", b"write-back"]).unwrap();
        assert_eq!(t.backing_dev, b"/dev/vdb");
        assert_eq!(t.pool, b"ram0");
        assert_eq!(t.policy, Policy::WriteBack);
        assert_eq!(t.sequential_cutoff, DEFAULT_SEQUENTIAL_CUTOFF);
        let t = parse(&[b"254:16", b"p", b"write-through", b"peers=0", b"block_size=4096", b"sequential_cutoff=0"])
            .unwrap();
        assert_eq!(t.policy, Policy::WriteThrough);
        assert_eq!(t.sequential_cutoff, 0);
        let t = parse(&[b"/dev/vdb", b"p", b"write-back", b"peers=2", b"domain=same"]).unwrap();
        assert_eq!((t.peers, t.domain), (2, super::super::placement::DomainRule::Same));
        let t = parse(&[b"/dev/vdb", b"p", b"write-back", b"peers=1"]).unwrap();
        assert_eq!((t.peers, t.domain), (1, super::super::placement::DomainRule::Different));
    }

    #[test]
    fn rejects_bad_lines() {
        use TableError::*;
        let cases: &[(&[&[u8]], TableError)] = &[
            (&[], MissingBackingDevice),
            (&[b""], BadBackingDevice),
            (&[b"foo=bar"], BadBackingDevice),
            (&[b"/dev/vdb"], MissingPool),
            (&[b"/dev/vdb", b"ram0"], MissingPolicy),
            (&[b"/dev/vdb", b"ram0", b"write-around"], BadPolicy),
            (&[b"/dev/vdb", b"ram0", b"peers=0"], MissingPolicy),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"extra"], UnexpectedArgument),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"cache=1"], UnknownOption),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"peers=3"], PeersUnsupported),
            (&[b"/dev/vdb", b"ram0", b"write-through", b"peers=1"], PeersNeedWriteBack),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"domain=same"], BadDomain),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"peers=1", b"domain=rack"], BadDomain),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"peers=x"], BadPeers),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"peers=0", b"peers=0"], DuplicateOption),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"block_size=8192"], BadBlockSize),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"sequential_cutoff=-1"], BadSequentialCutoff),
            (&[b"/dev/vdb", b"ram0", b"write-back", b"sequential_cutoff=99999999999999999999999"], BadSequentialCutoff),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), Err(*want), "{:?}", args);
        }
    }

    #[test]
    fn length_checks() {
        assert_eq!(check_length(8, 8), Ok(()));
        assert_eq!(check_length(0, 8), Err(TableError::ZeroLength));
        assert_eq!(check_length(16, 8), Err(TableError::LengthExceedsBackingDevice));
        assert_eq!(check_length(7, 8), Err(TableError::UnalignedLength));
    }

    #[test]
    fn every_error_has_a_message() {
        use TableError::*;
        for e in [
            MissingBackingDevice,
            BadBackingDevice,
            MissingPool,
            MissingPolicy,
            BadPolicy,
            UnknownOption,
            UnexpectedArgument,
            DuplicateOption,
            PeersUnsupported,
            BadPeers,
            BadBlockSize,
            BadSequentialCutoff,
            NoSuchPool,
            CannotOpenBackingDevice,
            LengthExceedsBackingDevice,
            ZeroLength,
            UnalignedLength,
            TooLarge,
            TooManyVolumes,
            OutOfMemory,
        ] {
            assert!(e.message().to_bytes().len() > 10);
        }
    }

    proptest! {
        /// Any argument vector parses or is refused; never panics, and an accepted
        /// line has at least the three positional arguments.
        #[test]
        fn parse_is_total(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..7)) {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            if let Ok(t) = parse(&refs) {
                prop_assert!(refs.len() >= 3);
                prop_assert_eq!(t.backing_dev, refs[0]);
                prop_assert_eq!(t.peers, 0);
            }
        }
    }
}
