// SPDX-License-Identifier: GPL-2.0

//! What the fuzz targets share: a host [`Aead`](fvp_logic::seal::Aead) for `seal_open`,
//! the event encoding of `replica_rules`, and the seeds of `seal_open`, `ioctl_decode`
//! and `replica_rules` (`seeds_are_current` fails when they are stale;
//! `cargo test --lib -- --ignored write_seeds`, run from `fuzz/`, writes them again).
//! The seeds of `wire_decode` are the logic crate's (`fuzz/README.md`). `cluster_toml`
//! shares its key reader and its guard against reading devices (`cluster_toml`); its
//! seeds are written by hand, and `cluster_toml_seeds_parse` checks them.

/// ChaCha20-Poly1305 by the `chacha20poly1305` crate behind fvp's [`Aead`] trait: the
/// same adapter as the logic's `seal::host` (which is `cfg(test)` there): the 96-bit
/// nonce is four zero bytes then the 64-bit nonce, little-endian, and `sealed` is the
/// text followed by its tag.
///
/// [`Aead`]: fvp_logic::seal::Aead
pub mod aead {
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
    use fvp_logic::auth::Key;
    use fvp_logic::seal::{Aead, TAG_LEN};

    /// [`Aead`] on the host.
    pub struct HostAead;

    fn nonce_of(n: u64) -> Nonce {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        b.into()
    }

    impl Aead for HostAead {
        fn seal(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) {
            let c = ChaCha20Poly1305::new(key.into());
            let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
            let t = c.encrypt_in_place_detached(&nonce_of(nonce), ad, text).expect("seal");
            tag.copy_from_slice(&t);
        }

        fn open(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool {
            let c = ChaCha20Poly1305::new(key.into());
            let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
            let tag = Tag::clone_from_slice(tag);
            c.decrypt_in_place_detached(&nonce_of(nonce), ad, text, &tag).is_ok()
        }
    }
}

/// The input format of `replica_rules` (documented at the top of
/// `fuzz_targets/replica_rules.rs`): [`Event::decode`] reads it, [`Event::encode`]
/// writes it (for the seeds).
pub mod replica_events {
    /// Opcodes, `byte % OPS`.
    pub const OPS: u8 = 12;

    /// A store key byte: owner `1 + (k & 3)`, volume id `(k >> 2) & 3`, name
    /// `(k >> 4) & 1`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Key {
        /// Owner host id, 1..=4.
        pub owner: u32,
        /// Volume id, 0..=3.
        pub volume: u32,
        /// Index of the volume name, 0 or 1.
        pub name: u8,
    }

    impl Key {
        /// The key byte's fields.
        pub fn from_byte(k: u8) -> Key {
            Key { owner: 1 + u32::from(k & 3), volume: u32::from((k >> 2) & 3), name: (k >> 4) & 1 }
        }

        /// The key byte (inverse of [`Key::from_byte`] on its domain).
        pub fn to_byte(self) -> u8 {
            ((self.owner - 1) & 3) as u8 | ((self.volume & 3) << 2) as u8 | ((self.name & 1) << 4)
        }
    }

    /// The owner's view of the volume's shared device in a VOLUME_OPEN, against this
    /// host's (`fuzz_targets/replica_rules.rs`, `LOCAL`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Device {
        /// The same size and uuid as this host's.
        Same,
        /// Another uuid.
        OtherUuid,
        /// Another size.
        OtherSize,
        /// The same, but this host's path to it does not open.
        NotHere,
    }

    /// How the next lease observation finds the lease (`Membership::lease_held_since`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Lease {
        /// Not held.
        Lost,
        /// Held with the start it had (a new start if it was not held).
        Held,
        /// Lost and regained since: a new start.
        Renewed,
    }

    /// One event of a run.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Event {
        /// VOLUME_OPEN of `epoch` (0..=7; 0 is the owner's probe), with the owner's view of
        /// the shared device as `device` says.
        Open { key: Key, epoch: u64, device: Device },
        /// REPLICATE of `block` at `version`.
        Replicate { key: Key, block: u64, version: u64 },
        /// DROP_RANGE of `first .. first + count` at `version`.
        DropRange { key: Key, first: u64, count: u64, version: u64 },
        /// DESTAGED of 1 to 4 `(block, version)` entries.
        Destaged { key: Key, entries: Vec<(u64, u64)> },
        /// VOLUME_CLOSE.
        Close { key: Key },
        /// The lease changes as `lease` says; `observe`: the ticker observes it now.
        Lease { lease: Lease, observe: bool },
        /// Fenced by a majority: the lease is lost, the ticker observes it and
        /// untrusts every store.
        Fenced,
        /// The recovery thread begins taking over owner `owner`'s stores; `ready`: the
        /// majority fence of `owner` held long enough (`takeover_ready`, with the lease).
        Takeover { owner: u32, ready: bool },
        /// The recovery thread begins writing the orphans marked.
        Orphans,
        /// The batch taken out is written: namespace `i` fails with an I/O error if bit
        /// `i` (0..=5) of `fail` is set; bit 7: the condition to write no longer holds
        /// (each namespace with replicas stops). The device has `sectors` sectors.
        Finish { fail: u8, sectors: u64 },
        /// `block_sector(block, block_size, sectors)` alone.
        Sector { block: u64, block_size: u32, sectors: u64 },
        /// Owner `owner` restarts: it connects as a later incarnation, with new volume ids.
        Restart { owner: u32 },
    }

    /// Reads bytes off the input.
    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn u8(&mut self) -> Option<u8> {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(b)
        }

        fn u64(&mut self) -> Option<u64> {
            let b = self.0.get(..8)?;
            self.0 = &self.0[8..];
            Some(u64::from_le_bytes(b.try_into().ok()?))
        }

        fn u32(&mut self) -> Option<u32> {
            let b = self.0.get(..4)?;
            self.0 = &self.0[4..];
            Some(u32::from_le_bytes(b.try_into().ok()?))
        }

        /// A block: a byte below 0x80 is block `b & 0x0f`; above, a u64 follows.
        fn block(&mut self) -> Option<u64> {
            match self.u8()? {
                b if b < 0x80 => Some(u64::from(b & 0x0f)),
                _ => self.u64(),
            }
        }

        /// A version: a byte below 0xff is itself; 0xff, a u64 follows.
        fn version(&mut self) -> Option<u64> {
            match self.u8()? {
                0xff => self.u64(),
                v => Some(u64::from(v)),
            }
        }

        /// A device size in sectors: a byte below 0xff is 8 × it (its 4 KiB blocks);
        /// 0xff, a u64 follows.
        fn sectors(&mut self) -> Option<u64> {
            match self.u8()? {
                0xff => self.u64(),
                d => Some(u64::from(d) * 8),
            }
        }
    }

    fn put_block(out: &mut Vec<u8>, block: u64) {
        if block < 0x10 {
            out.push(block as u8);
        } else {
            out.push(0x80);
            out.extend_from_slice(&block.to_le_bytes());
        }
    }

    fn put_version(out: &mut Vec<u8>, v: u64) {
        if v < 0xff {
            out.push(v as u8);
        } else {
            out.push(0xff);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn put_sectors(out: &mut Vec<u8>, s: u64) {
        if s.is_multiple_of(8) && s / 8 < 0xff {
            out.push((s / 8) as u8);
        } else {
            out.push(0xff);
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    impl Event {
        /// Decodes every whole event of `input`, in order.
        pub fn decode_all(input: &[u8]) -> Vec<Event> {
            let mut r = Reader(input);
            let mut out = Vec::new();
            while let Some(e) = Event::decode(&mut r) {
                out.push(e);
            }
            out
        }

        fn decode(r: &mut Reader<'_>) -> Option<Event> {
            let op = r.u8()? % OPS;
            Some(match op {
                0 => {
                    let key = Key::from_byte(r.u8()?);
                    let e = r.u8()?;
                    let device = match (e >> 3) & 3 {
                        0 => Device::Same,
                        1 => Device::OtherUuid,
                        2 => Device::OtherSize,
                        _ => Device::NotHere,
                    };
                    Event::Open { key, epoch: u64::from(e & 7), device }
                }
                1 => {
                    let key = Key::from_byte(r.u8()?);
                    Event::Replicate { key, block: r.block()?, version: r.version()? }
                }
                2 => {
                    let key = Key::from_byte(r.u8()?);
                    Event::DropRange { key, first: r.block()?, count: r.block()?, version: r.version()? }
                }
                3 => {
                    let key = Key::from_byte(r.u8()?);
                    let n = usize::from(r.u8()? & 3) + 1;
                    let mut entries = Vec::with_capacity(n);
                    for _ in 0..n {
                        entries.push((r.block()?, r.version()?));
                    }
                    Event::Destaged { key, entries }
                }
                4 => Event::Close { key: Key::from_byte(r.u8()?) },
                5 => {
                    let l = r.u8()?;
                    let lease = match (l & 0x7f) % 3 {
                        0 => Lease::Lost,
                        1 => Lease::Held,
                        _ => Lease::Renewed,
                    };
                    Event::Lease { lease, observe: l & 0x80 != 0 }
                }
                6 => Event::Fenced,
                7 => {
                    let o = r.u8()?;
                    Event::Takeover { owner: 1 + u32::from(o & 3), ready: o & 4 != 0 }
                }
                8 => Event::Orphans,
                9 => Event::Finish { fail: r.u8()?, sectors: r.sectors()? },
                10 => Event::Sector { block: r.u64()?, block_size: r.u32()?, sectors: r.u64()? },
                _ => Event::Restart { owner: 1 + u32::from(r.u8()? & 3) },
            })
        }

        /// Appends the event's encoding (the one [`Event::decode_all`] reads back).
        pub fn encode(&self, out: &mut Vec<u8>) {
            match self {
                Event::Open { key, epoch, device } => {
                    let d = match device {
                        Device::Same => 0,
                        Device::OtherUuid => 1,
                        Device::OtherSize => 2,
                        Device::NotHere => 3,
                    };
                    out.extend_from_slice(&[0, key.to_byte(), (*epoch & 7) as u8 | (d << 3)])
                }
                Event::Replicate { key, block, version } => {
                    out.extend_from_slice(&[1, key.to_byte()]);
                    put_block(out, *block);
                    put_version(out, *version);
                }
                Event::DropRange { key, first, count, version } => {
                    out.extend_from_slice(&[2, key.to_byte()]);
                    put_block(out, *first);
                    put_block(out, *count);
                    put_version(out, *version);
                }
                Event::Destaged { key, entries } => {
                    assert!((1..=4).contains(&entries.len()));
                    out.extend_from_slice(&[3, key.to_byte(), (entries.len() - 1) as u8]);
                    for &(b, v) in entries {
                        put_block(out, b);
                        put_version(out, v);
                    }
                }
                Event::Close { key } => out.extend_from_slice(&[4, key.to_byte()]),
                Event::Lease { lease, observe } => {
                    let l = match lease {
                        Lease::Lost => 0,
                        Lease::Held => 1,
                        Lease::Renewed => 2,
                    };
                    out.extend_from_slice(&[5, l | if *observe { 0x80 } else { 0 }]);
                }
                Event::Fenced => out.push(6),
                Event::Takeover { owner, ready } => {
                    out.extend_from_slice(&[7, ((owner - 1) & 3) as u8 | if *ready { 4 } else { 0 }])
                }
                Event::Orphans => out.push(8),
                Event::Finish { fail, sectors } => {
                    out.extend_from_slice(&[9, *fail]);
                    put_sectors(out, *sectors);
                }
                Event::Sector { block, block_size, sectors } => {
                    out.push(10);
                    out.extend_from_slice(&block.to_le_bytes());
                    out.extend_from_slice(&block_size.to_le_bytes());
                    out.extend_from_slice(&sectors.to_le_bytes());
                }
                Event::Restart { owner } => out.extend_from_slice(&[11, ((owner - 1) & 3) as u8]),
            }
        }
    }

    /// The encoding of `events`.
    pub fn encode_all(events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            e.encode(&mut out);
        }
        out
    }
}

/// What `cluster_toml` needs around fvpctl's `cluster::parse_with`.
pub mod cluster_toml {
    use std::path::{Component, Path};

    use fvpctl::keys::rfc7748::ALICE_PRIVATE;
    use fvpctl::keys::PrivateKey;

    /// Where the descriptions are read from: a relative `secret_file` or `key_file` is
    /// taken from `/fuzz/`, which does not exist.
    pub const FILE: &str = "/fuzz/cluster.toml";

    /// The key reader: RFC 7748's Alice for any `key_file`, so no key file is read.
    pub fn read_key(_: &Path) -> Result<PrivateKey, String> {
        Ok(PrivateKey::from_file_content(ALICE_PRIVATE.as_bytes()).expect("RFC 7748's key is valid"))
    }

    /// Whether `parse_with` may be given `text`: `parse_with` reads `secret_file` itself,
    /// and an absolute path or `..` could name `/dev/zero`, a disk or a terminal (never
    /// ending, huge or blocking). Only a relative path of plain names (under `/fuzz/`,
    /// which does not exist) is let through. The key is found by parsing the document
    /// when `text` may name it: spelled out, or with escapes in a quoted key. A document
    /// that does not parse is let through: `parse_with` refuses it before reading
    /// anything.
    pub fn secret_file_is_safe(text: &str) -> bool {
        if !text.contains("secret_file") && !text.contains('\\') {
            return true;
        }
        let Ok(table) = text.parse::<toml::Table>() else { return true };
        match table.get("secret_file") {
            Some(toml::Value::String(path)) => {
                let path = Path::new(path);
                path.components().next().is_some() && path.components().all(|c| matches!(c, Component::Normal(_)))
            }
            // Absent, or not a path: refused before any file is read.
            _ => true,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::path::PathBuf;

        #[test]
        fn only_relative_secret_files_are_read() {
            for (text, safe) in [
                ("name = \"a\"", true),
                ("secret_file = \"s\"", true),
                ("secret_file = \"dir/s\"", true),
                ("secret_file = \"/dev/zero\"", false),
                ("secret_file = \"../../dev/zero\"", false),
                ("secret_file = \"\"", false),
                ("\"secret\\u005ffile\" = \"/dev/vda\"", false),
                ("'secret_file' = '/dev/tty'", false),
                ("secret_file = 3", true),
                ("secret_file = \"/dev/zero", true),
            ] {
                assert_eq!(secret_file_is_safe(text), safe, "{text}");
            }
        }

        /// The seeds of `cluster_toml`: `valid_*` are accepted, `invalid_*` refused.
        #[test]
        fn cluster_toml_seeds_parse() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/cluster_toml");
            let mut seen = 0;
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(secret_file_is_safe(&text), "{name}");
                let parsed = fvpctl::cluster::parse_with(&text, Path::new(FILE), &read_key);
                assert_eq!(parsed.is_ok(), name.starts_with("valid_"), "{name}: {parsed:?}");
                assert!(name.starts_with("valid_") || name.starts_with("invalid_"), "{name}");
                seen += 1;
            }
            assert!(seen >= 6, "{seen} seeds");
        }
    }
}

/// The seeds of the targets this crate writes (`fuzz/seeds/<target>/<name>`).
pub mod seeds {
    use crate::aead::HostAead;
    use crate::replica_events::{encode_all, Device, Event, Key, Lease};
    use fvp_logic::abi::{self, Command};
    use fvp_logic::seal::{seal_message, Transport, TAG_LEN};
    use fvp_logic::wire::{DestagedEntries, Message, DESTAGED_BUF_LEN};

    /// The key `seal_open` seals and opens with.
    pub const SEAL_KEY: [u8; 32] = [0x42; 32];

    /// `seal_open`'s prefix: mode, seq, position and xor of the altered byte.
    fn seal_prefix(transport: Transport, seq: u64, at: u16, xor: u8) -> Vec<u8> {
        let mut out = vec![transport.as_u32() as u8];
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        out.push(xor);
        out
    }

    /// Message `m` from host 2 as the kernel seals it (seq `seq`, `transport`): header,
    /// payload, tag.
    fn sealed(m: &Message<'_>, seq: u64, transport: Transport) -> Vec<u8> {
        let e = m.encode_sealed(2, seq).unwrap();
        let mut buf = e.as_bytes().to_vec();
        buf.extend_from_slice(m.data());
        buf.extend_from_slice(&[0; TAG_LEN]);
        seal_message(&HostAead, &SEAL_KEY, transport, seq, &mut buf).unwrap();
        buf
    }

    fn seal_open() -> Vec<(String, Vec<u8>)> {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        let entries = DestagedEntries::encode_into([(3, 1), (4, 2)], &mut buf).unwrap();
        let msgs: [(&str, Message<'_>, u64); 4] = [
            ("replicate", Message::Replicate { volume_id: 7, block: 3, version: 1, data: &data }, 5),
            ("destaged", Message::Destaged { volume_id: 7, entries }, 6),
            ("drop_range", Message::DropRange { volume_id: 7, first: 0, count: 8, version: 2 }, 7),
            ("volume_close", Message::VolumeClose { volume_id: 7, name: b"shared0" }, 8),
        ];
        let mut out = Vec::new();
        for (name, m, seq) in msgs.iter() {
            for t in [Transport::Authenticated, Transport::Encrypted] {
                let mut s = seal_prefix(t, *seq, 40, 0x01);
                s.extend_from_slice(&sealed(m, *seq, t));
                out.push((format!("{name}_{}", t.name()), s));
            }
        }
        // Header only (the smallest message that can be sealed), and too short.
        let mut s = seal_prefix(Transport::Encrypted, 3, 0, 0x80);
        s.extend_from_slice(&[0x5a; 32]);
        out.push(("header_only".into(), s));
        let mut s = seal_prefix(Transport::Authenticated, 1, 0, 0xff);
        s.extend_from_slice(&[0x11; 40]);
        out.push(("too_short".into(), s));
        out
    }

    /// A valid (or, for output-only structures, plausible) argument of each command.
    fn ioctl_arg(c: Command) -> Vec<u8> {
        let name = abi::pool_name(b"ram0").unwrap();
        let shared = abi::pool_name(b"shared0").unwrap();
        let host = abi::HostReq::new(3, [10, 0, 0, 3], 7790, abi::pool_name(b"rack-a").unwrap());
        let mut cfg = abi::ClusterCfg {
            name: abi::pool_name(b"lab").unwrap(),
            local_id: 2,
            heartbeat_ms: abi::DEFAULT_HEARTBEAT_MS,
            timeout_ms: abi::DEFAULT_TIMEOUT_MS,
            transport: abi::TRANSPORT_ENCRYPTED,
            ..Default::default()
        };
        cfg.set_secret(b"0123456789abcdef-secret").unwrap();
        let mut path = [0u8; abi::PATH_LEN];
        path[..8].copy_from_slice(b"/dev/vdb");
        match c {
            Command::Version => abi::Version::new(1, 2, 3, abi::FEATURE_PASSTHROUGH, "1.2.3").to_bytes().to_vec(),
            Command::Status => abi::Status { volumes: 3, reserved: 0, bios_mapped: 1 << 40 }.to_bytes().to_vec(),
            Command::PoolCreate | Command::PoolResize | Command::PoolDestroy => {
                abi::PoolReq { name, ram_bytes: 64 << 20 }.to_bytes().to_vec()
            }
            Command::PoolInfo => {
                abi::PoolInfo { index: 1, name, evictions: 5, ..Default::default() }.to_bytes().to_vec()
            }
            Command::VolumeInfo => {
                let mut v = abi::VolumeInfo { index: 7, block_size: 4096, pool: name, ..Default::default() };
                v.read_latency[3] = 99;
                v.write_latency[23] = u64::MAX;
                v.to_bytes().to_vec()
            }
            Command::VolumeRepl => abi::VolumeRepl {
                index: 2,
                peers: 2,
                domain: abi::DOMAIN_DIFFERENT,
                state: abi::REPL_REPROTECTING,
                peer_ids: [3, 64],
                name: shared,
                epoch: 7,
                replicated_writes: 1000,
                reprotections: 1,
                resent_blocks: 12,
            }
            .to_bytes()
            .to_vec(),
            Command::VolumeHealth => abi::VolumeHealth { index: 3, ..Default::default() }.to_bytes().to_vec(),
            Command::VolumeDiscard => {
                abi::VolumeDiscard { backing_major: 253, backing_minor: 7, ..Default::default() }.to_bytes().to_vec()
            }
            Command::ClusterSet => cfg.to_bytes().to_vec(),
            Command::ClusterInfo => {
                let mut shown = cfg;
                shown.secret = [0; abi::SECRET_LEN];
                abi::ClusterInfo {
                    cfg: shown,
                    flags: abi::CLUSTER_CONFIGURED | abi::CLUSTER_LEASE,
                    hosts: 3,
                    devices: 1,
                    hosts_up: 2,
                    replica_blocks: 1 << 33,
                    refused_connections: 4,
                    protocol_errors: 1,
                }
                .to_bytes()
                .to_vec()
            }
            Command::HostAdd | Command::HostRemove | Command::HostUpdate => host.to_bytes().to_vec(),
            Command::HostInfo => abi::HostInfo {
                index: 1,
                host,
                state: abi::HOST_UP,
                reserved: 0,
                last_heard_ms: abi::LAST_HEARD_NEVER,
                rtt_us: 250,
                replica_blocks: 9,
            }
            .to_bytes()
            .to_vec(),
            Command::DeviceAdd | Command::DeviceRemove | Command::DeviceInfo => {
                let mut d = abi::DeviceReq::new(shared, b"/dev/vdb").unwrap();
                if c == Command::DeviceInfo {
                    d.index = 5;
                }
                d.to_bytes().to_vec()
            }
            Command::FlashOpen => abi::FlashOpen { name, path, ..Default::default() }.to_bytes().to_vec(),
            Command::FlashInfo => abi::FlashInfo {
                index: 0,
                volumes: 1,
                name,
                path,
                uuid: [0x5a; 16],
                state: abi::FLASH_OK,
                records: 1,
                slots: 1024,
                free_slots: 1000,
                ..Default::default()
            }
            .to_bytes()
            .to_vec(),
            Command::KeySet => {
                abi::KeyReq { id: 2, flags: abi::KEY_PRIVATE, key: [0x77; abi::KEY_LEN], reserved: [0; 4] }
                    .to_bytes()
                    .to_vec()
            }
            Command::KeyInfo => abi::KeyReq { id: 3, ..Default::default() }.to_bytes().to_vec(),
        }
    }

    /// `VolumeInfo` -> `volume_info`.
    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        for (i, ch) in name.chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        }
        out
    }

    fn ioctl_decode() -> Vec<(String, Vec<u8>)> {
        Command::ALL
            .iter()
            .map(|&c| {
                let mut s = c.ioc().to_le_bytes().to_vec();
                let arg = ioctl_arg(c);
                assert_eq!(arg.len(), c.size(), "{c:?}");
                s.extend_from_slice(&arg);
                (snake_case(&format!("{c:?}")), s)
            })
            .collect()
    }

    fn replica_rules() -> Vec<(String, Vec<u8>)> {
        let k = |owner, volume, name| Key { owner, volume, name };
        let a = k(1, 0, 0);
        let held = Event::Lease { lease: Lease::Held, observe: true };
        let rep = |key, block, version| Event::Replicate { key, block, version };
        let runs: Vec<(&str, Vec<Event>)> = vec![
            (
                // Open, replicate, drop as an owner does, close.
                "lifecycle",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, 1, 1),
                    rep(a, 2, 1),
                    rep(a, 1, 3),
                    rep(a, 1, 2),
                    Event::Destaged { key: a, entries: vec![(1, 2), (2, 1)] },
                    rep(a, 3, 4),
                    rep(a, 4, 5),
                    Event::DropRange { key: a, first: 0, count: 8, version: 4 },
                    Event::Open { key: a, epoch: 0, device: Device::Same },
                    Event::Close { key: a },
                ],
            ),
            (
                // Stores only for the owner's device as this host sees it; blocks past its end refused.
                "identity",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::OtherUuid },
                    Event::Open { key: a, epoch: 1, device: Device::OtherSize },
                    Event::Open { key: a, epoch: 1, device: Device::NotHere },
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, 15, 1),
                    rep(a, 16, 1),
                    rep(a, u64::MAX, 1),
                    Event::Open { key: a, epoch: 2, device: Device::OtherUuid },
                    rep(a, 3, 2),
                    Event::Close { key: a },
                ],
            ),
            (
                // A takeover's record is kept for the owner's incarnation, forgotten after its restart.
                "takeover_then_restart",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, 2, 5),
                    Event::Takeover { owner: 1, ready: true },
                    Event::Finish { fail: 0, sectors: 128 },
                    Event::Open { key: a, epoch: 0, device: Device::Same },
                    Event::Restart { owner: 2 },
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    Event::Restart { owner: 1 },
                    Event::Open { key: k(1, 1, 0), epoch: 1, device: Device::Same },
                    rep(k(1, 1, 0), 2, 6),
                ],
            ),
            (
                // A takeover of owner 1 that writes, then the owner learns it (ESTALE).
                "takeover",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 2, device: Device::Same },
                    rep(a, 0, 7),
                    rep(a, 5, 9),
                    rep(a, 0x1000, 1),
                    held.clone(),
                    Event::Takeover { owner: 1, ready: true },
                    Event::Open { key: a, epoch: 0, device: Device::Same },
                    Event::Finish { fail: 0, sectors: 64 },
                    Event::Open { key: a, epoch: 2, device: Device::Same },
                    Event::Close { key: a },
                ],
            ),
            (
                // A failed takeover across a lease interruption: put back untrusted.
                "takeover_interrupted",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    Event::Open { key: k(2, 1, 0), epoch: 1, device: Device::Same },
                    rep(a, 3, 3),
                    Event::Takeover { owner: 1, ready: true },
                    Event::Lease { lease: Lease::Renewed, observe: true },
                    Event::Finish { fail: 1, sectors: 1 << 20 },
                    Event::Takeover { owner: 1, ready: true },
                    rep(a, 3, 4),
                    Event::Open { key: a, epoch: 2, device: Device::Same },
                    rep(a, 3, 4),
                ],
            ),
            (
                // An orphan: the owner restarted and opens its volume under another id.
                "orphan",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, 2, 2),
                    Event::Open { key: k(1, 1, 0), epoch: 1, device: Device::Same },
                    Event::Orphans,
                    Event::Open { key: k(1, 1, 0), epoch: 1, device: Device::Same },
                    Event::Finish { fail: 0, sectors: 800 },
                    Event::Open { key: k(1, 1, 0), epoch: 1, device: Device::Same },
                    Event::Close { key: k(1, 1, 0) },
                ],
            ),
            (
                // A lease gap the ticker did not see: the takeover's own look finds it.
                "hidden_gap",
                vec![
                    held.clone(),
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, 1, 1),
                    Event::Lease { lease: Lease::Renewed, observe: false },
                    Event::Takeover { owner: 1, ready: true },
                    Event::Lease { lease: Lease::Lost, observe: true },
                    rep(a, 1, 2),
                    Event::Fenced,
                    Event::Open { key: a, epoch: 3, device: Device::Same },
                    Event::Open { key: k(1, 2, 0), epoch: 1, device: Device::Same },
                ],
            ),
            (
                // block_sector at the edges.
                "sectors",
                vec![
                    Event::Sector { block: u64::MAX / 8, block_size: 4096, sectors: u64::MAX },
                    Event::Sector { block: 1, block_size: 4096, sectors: 16 },
                    Event::Sector { block: 0, block_size: 1000, sectors: 100 },
                    Event::Sector { block: u64::MAX, block_size: 512, sectors: u64::MAX },
                    held,
                    Event::Open { key: a, epoch: 1, device: Device::Same },
                    rep(a, u64::MAX / 8 - 1, 1),
                    rep(a, 1, 1),
                    Event::Takeover { owner: 1, ready: true },
                    Event::Finish { fail: 0, sectors: u64::MAX },
                ],
            ),
        ];
        runs.into_iter()
            .map(|(name, events)| {
                let bytes = encode_all(&events);
                assert_eq!(Event::decode_all(&bytes), events, "{name}");
                (name.to_string(), bytes)
            })
            .collect()
    }

    /// Every seed, as (target, file name, bytes).
    pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
        let mut out = Vec::new();
        for (target, seeds) in
            [("seal_open", seal_open()), ("ioctl_decode", ioctl_decode()), ("replica_rules", replica_rules())]
        {
            for (name, bytes) in seeds {
                out.push((target, name, bytes));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use std::path::PathBuf;

        fn dir(target: &str) -> PathBuf {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target)
        }

        /// The seeds must match the current ABI and protocol.
        #[test]
        fn seeds_are_current() {
            for (target, name, bytes) in super::all() {
                let on_disk = std::fs::read(dir(target).join(&name)).unwrap_or_default();
                assert!(
                    on_disk == bytes,
                    "fuzz/seeds/{target}/{name} is stale: run cargo test --lib -- --ignored write_seeds (in fuzz/)"
                );
            }
        }

        /// Writes the seeds (after an ABI or protocol change).
        #[test]
        #[ignore = "writes fuzz/seeds/{seal_open,ioctl_decode,replica_rules}"]
        fn write_seeds() {
            for (target, name, bytes) in super::all() {
                std::fs::create_dir_all(dir(target)).unwrap();
                std::fs::write(dir(target).join(name), bytes).unwrap();
            }
        }
    }
}
