// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the `/dev/fvp-control` ioctl ABI (`logic/abi.rs`) the way `control.rs` meets
//! it: a command number from user space, then the bytes of its argument.
//!
//! Input: the command number (u32, little-endian), then the argument's bytes.
//!
//! Checks:
//! - `Command::decode` against an independent reading of the command table
//!   (`Command::ALL` and `Command::ioc`): `Ok(c)` exactly when the number is `c.ioc()`,
//!   `BadEncoding` when only its type and number bytes match a command's, else
//!   `Unknown`; and `Command::decode(c.ioc()) == Ok(c)` for every command.
//! - For every ABI structure (`Version`, `Status`, `PoolReq`, `PoolInfo`, `VolumeInfo`,
//!   `VolumeRepl`, `VolumeHealth`, `VolumeDiscard`, `ClusterCfg`, `ClusterInfo`,
//!   `HostReq`, `HostInfo`, `DeviceReq`, `KeyReq`, `FlashOpen`, `FlashInfo`) that fits
//!   in the argument's bytes: `from_bytes` then `to_bytes` gives back exactly those
//!   bytes (no padding, nothing lost), nested structures sit at their offset byte for
//!   byte, and every `validate*` (and the helpers the kernel calls: `pool_name`,
//!   `path_bytes`, `secret`, `devt`, …) never panics and answers what an independent
//!   reading of its rules (`include/uapi/linux/fvp.h`'s comments) answers.
//! - The command decoded transfers a structure of its own size.

#![no_main]

use fvp_logic::abi::{
    self, ClusterCfg, ClusterInfo, Command, CommandError, ConfigError, DeviceReq, FlashInfo, FlashOpen, HostInfo,
    HostReq, KeyReq, PoolInfo, PoolReq, Status, Version, VolumeDiscard, VolumeHealth, VolumeInfo, VolumeRepl,
};
use libfuzzer_sys::fuzz_target;

/// `from_bytes` then `to_bytes` gives back the bytes; the value survives the way back.
macro_rules! round_trip {
    ($ty:ty, $arg:expr) => {{
        match $arg.get(..<$ty>::SIZE) {
            Some(b) => {
                let b: &[u8; <$ty>::SIZE] = b.try_into().unwrap();
                let v = <$ty>::from_bytes(b);
                assert_eq!(&v.to_bytes(), b, concat!(stringify!($ty), ": bytes lost or added"));
                assert!(<$ty>::from_bytes(&v.to_bytes()) == v);
                Some(v)
            }
            None => None,
        }
    }};
}

/// A name the ABI accepts: 1 to 31 of `[A-Za-z0-9_.-]`, then NULs (or the end).
fn name_ok(name: &[u8]) -> bool {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    (1..abi::NAME_LEN).contains(&len)
        && name[..len].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_name(name: &[u8]) {
    let p = abi::pool_name(name);
    assert_eq!(p.is_some(), name_ok(name), "pool_name({name:?})");
    if let Some(p) = p {
        let len = p.iter().position(|&b| b == 0).unwrap();
        assert_eq!(&p[..len], abi::name_bytes(name));
        assert!(p[len..].iter().all(|&b| b == 0));
        assert_eq!(abi::pool_name(&p), Some(p));
        assert_eq!(abi::name_str(&p).as_bytes(), &p[..len]);
    }
    let _ = abi::name_str(name);
}

fn expect_cluster(c: &ClusterCfg) -> Result<(), ConfigError> {
    let ms = |v: u32| v as u64;
    if !name_ok(&c.name) {
        Err(ConfigError::ClusterName)
    } else if !(1..=abi::MAX_HOSTS).contains(&c.local_id) {
        Err(ConfigError::LocalId)
    } else if !(10..=10_000).contains(&c.heartbeat_ms) {
        Err(ConfigError::Heartbeat)
    } else if ms(c.timeout_ms) < 3 * ms(c.heartbeat_ms) {
        Err(ConfigError::TimeoutTooShort)
    } else if c.timeout_ms > 600_000 {
        Err(ConfigError::TimeoutTooLong)
    } else if !(16..=64).contains(&c.secret_len) {
        Err(ConfigError::SecretLen)
    } else if c.transport > 1 {
        Err(ConfigError::Transport)
    } else if c.reserved != [0; 3] {
        Err(ConfigError::Reserved)
    } else {
        Ok(())
    }
}

fn check_cluster(c: &ClusterCfg) {
    assert_eq!(c.validate(), expect_cluster(c));
    assert_eq!(c.secret(), &c.secret[..(c.secret_len as usize).min(abi::SECRET_LEN)]);
    let shown = format!("{c:?}");
    assert!(shown.contains("<redacted>"), "ClusterCfg's Debug shows the secret: {shown}");
    let mut other = *c;
    let before = *c;
    let len = c.secret_len as usize % 80;
    let r = other.set_secret(&c.secret.repeat(2)[..len]);
    if (16..=64).contains(&len) {
        assert!(r.is_some());
        assert_eq!(other.secret_len as usize, len);
        assert_eq!(other.secret(), &c.secret.repeat(2)[..len]);
        assert!(other.secret[len..].iter().all(|&b| b == 0));
    } else {
        assert!(r.is_none());
        assert!(other == before, "a refused secret changes nothing");
    }
}

fn expect_host(h: &HostReq) -> Result<(), ConfigError> {
    if !(1..=64).contains(&h.id) {
        Err(ConfigError::HostId)
    } else if h.addr == 0 {
        Err(ConfigError::Addr)
    } else if h.port == 0 {
        Err(ConfigError::Port)
    } else if h.flags & !abi::HOST_DEFER != 0 {
        Err(ConfigError::Reserved)
    } else if !name_ok(&h.domain) {
        Err(ConfigError::Domain)
    } else {
        Ok(())
    }
}

fn check_host(h: &HostReq) {
    assert_eq!(h.validate(), expect_host(h));
    assert_eq!(abi::host_id_valid(h.id), (1..=64).contains(&h.id));
    assert_eq!(h.octets(), h.addr.to_ne_bytes());
    assert!(HostReq::new(h.id, h.octets(), h.port, h.domain) == HostReq { flags: 0, ..*h });
}

fn check_device(d: &DeviceReq) {
    let nul = d.path.iter().position(|&b| b == 0);
    let expect = if d.reserved != 0 {
        Err(ConfigError::Reserved)
    } else if !name_ok(&d.name) {
        Err(ConfigError::DeviceName)
    } else {
        match nul {
            None => Err(ConfigError::PathNotTerminated),
            Some(0) => Err(ConfigError::PathEmpty),
            Some(_) if d.path[0] != b'/' => Err(ConfigError::PathNotAbsolute),
            Some(_) => Ok(()),
        }
    };
    assert_eq!(d.validate(), expect);
    assert_eq!(d.path_bytes(), nul.map(|n| &d.path[..n]));
    let _ = d.path_str();
    // What the kernel's DEVICE_REMOVE reads.
    check_name(&d.name);
    if let Some(p) = d.path_bytes() {
        let again = DeviceReq::new(d.name, p).expect("a path with its NUL fits");
        assert_eq!(again.path_bytes(), Some(p));
    }
}

fn check_key(k: &KeyReq) {
    let id_ok = (1..=64).contains(&k.id);
    let expect_set = if !id_ok {
        Err(ConfigError::HostId)
    } else if k.flags & !abi::KEY_PRIVATE != 0 || k.reserved != [0; 4] {
        Err(ConfigError::Reserved)
    } else if k.key == [0; abi::KEY_LEN] {
        Err(ConfigError::Key)
    } else {
        Ok(())
    };
    assert_eq!(k.validate_set(), expect_set);
    assert_eq!(k.validate_info(), if id_ok { Ok(()) } else { Err(ConfigError::HostId) });
}

fn check_health(h: &VolumeHealth) {
    assert_eq!(h.validate(), if h.reserved == [0; 4] { Ok(()) } else { Err(ConfigError::Reserved) });
    assert_eq!(h.failing(), h.flags & abi::VOLUME_FAILING != 0);
    assert_eq!(h.detached(), h.flags & abi::VOLUME_DETACHED != 0);
}

fn check_discard(d: &VolumeDiscard) {
    let expect = if d.backing_major >= 1 << 12 || d.backing_minor >= 1 << 20 {
        Err(ConfigError::DevNumber)
    } else if d.reserved != [0; 2] {
        Err(ConfigError::Reserved)
    } else {
        Ok(())
    };
    assert_eq!(d.validate(), expect);
    let devt = d.devt();
    if d.validate().is_ok() {
        // MAJOR and MINOR of the kernel's dev_t.
        assert_eq!((devt >> 20, devt & ((1 << 20) - 1)), (d.backing_major, d.backing_minor));
    }
}

fn check_version(v: &Version) {
    let end = v.version.iter().position(|&b| b == 0).unwrap_or(v.version.len());
    match core::str::from_utf8(&v.version[..end]) {
        Ok(s) => assert_eq!(v.version_str(), s),
        Err(_) => assert_eq!(v.version_str(), "?"),
    }
    let again = Version::new(v.module_major, v.module_minor, v.module_patch, v.features, v.version_str());
    assert_eq!(again.abi_version, abi::ABI_VERSION);
    assert!(again.version_str().len() < abi::VERSION_STR_LEN);
}

/// What `Command::decode(cmd)` must answer, from the command table alone.
fn expect_decode(cmd: u32) -> Result<Command, CommandError> {
    if let Some(&c) = Command::ALL.iter().find(|c| c.ioc() == cmd) {
        return Ok(c);
    }
    // Type and number bytes (bits 0..16) of a command, with another size or direction.
    if Command::ALL.iter().any(|c| c.ioc() & 0xffff == cmd & 0xffff) {
        Err(CommandError::BadEncoding)
    } else {
        Err(CommandError::Unknown)
    }
}

/// The size of the structure command `c` transfers.
fn arg_size(c: Command) -> usize {
    match c {
        Command::Version => Version::SIZE,
        Command::Status => Status::SIZE,
        Command::PoolCreate | Command::PoolResize | Command::PoolDestroy => PoolReq::SIZE,
        Command::PoolInfo => PoolInfo::SIZE,
        Command::VolumeInfo => VolumeInfo::SIZE,
        Command::VolumeRepl => VolumeRepl::SIZE,
        Command::VolumeHealth => VolumeHealth::SIZE,
        Command::VolumeDiscard => VolumeDiscard::SIZE,
        Command::ClusterSet => ClusterCfg::SIZE,
        Command::ClusterInfo => ClusterInfo::SIZE,
        Command::HostAdd | Command::HostRemove | Command::HostUpdate => HostReq::SIZE,
        Command::HostInfo => HostInfo::SIZE,
        Command::DeviceAdd | Command::DeviceRemove | Command::DeviceInfo => DeviceReq::SIZE,
        Command::FlashOpen => FlashOpen::SIZE,
        Command::FlashInfo => FlashInfo::SIZE,
        Command::KeySet | Command::KeyInfo => KeyReq::SIZE,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((cmd, arg)) = data.split_first_chunk::<4>() else { return };
    let cmd = u32::from_le_bytes(*cmd);

    let decoded = Command::decode(cmd);
    assert_eq!(decoded, expect_decode(cmd), "Command::decode({cmd:#010x})");
    for c in Command::ALL {
        assert_eq!(Command::decode(c.ioc()), Ok(c), "{c:?}");
        assert_eq!(c.size(), abi::ioc_size(c.ioc()));
        assert_eq!(c.size(), arg_size(c), "{c:?}: its number encodes another size");
        assert!(c.since_abi() >= 1 && c.since_abi() <= abi::ABI_VERSION);
    }
    if let Ok(c) = decoded {
        assert_eq!(c.ioc(), cmd);
        assert_eq!(abi::ioc_size(cmd), arg_size(c));
    }

    // Every structure that fits in the argument.
    round_trip!(Status, arg);
    round_trip!(PoolInfo, arg);
    round_trip!(VolumeInfo, arg);
    round_trip!(VolumeRepl, arg);
    round_trip!(FlashInfo, arg);
    if let Some(v) = round_trip!(Version, arg) {
        check_version(&v);
    }
    if let Some(p) = round_trip!(PoolReq, arg) {
        check_name(&p.name);
    }
    if let Some(h) = round_trip!(VolumeHealth, arg) {
        check_health(&h);
    }
    if let Some(d) = round_trip!(VolumeDiscard, arg) {
        check_discard(&d);
    }
    if let Some(c) = round_trip!(ClusterCfg, arg) {
        check_cluster(&c);
    }
    if let Some(i) = round_trip!(ClusterInfo, arg) {
        assert_eq!(&arg[..ClusterCfg::SIZE], &i.cfg.to_bytes()[..], "ClusterInfo.cfg is at offset 0");
        check_cluster(&i.cfg);
        assert!(format!("{i:?}").contains("<redacted>"));
    }
    if let Some(h) = round_trip!(HostReq, arg) {
        check_host(&h);
    }
    if let Some(i) = round_trip!(HostInfo, arg) {
        assert_eq!(&arg[4..4 + HostReq::SIZE], &i.host.to_bytes()[..], "HostInfo.host is at offset 4");
        check_host(&i.host);
    }
    if let Some(d) = round_trip!(DeviceReq, arg) {
        check_device(&d);
    }
    if let Some(k) = round_trip!(KeyReq, arg) {
        check_key(&k);
    }
    if let Some(f) = round_trip!(FlashOpen, arg) {
        // What FLASH_OPEN reads (control.rs).
        check_name(&f.name);
    }
    check_name(arg.get(..abi::NAME_LEN).unwrap_or(arg));
});
