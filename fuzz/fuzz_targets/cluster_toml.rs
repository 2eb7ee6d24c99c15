// SPDX-License-Identifier: GPL-2.0

//! Fuzzes fvpctl's cluster description parser (`tools/fvpctl/src/cluster.rs`,
//! `cluster::parse_with`, what `fvpctl cluster apply FILE` reads).
//!
//! Input: the description's text (bytes that are not UTF-8 become U+FFFD), read from
//! `/fuzz/cluster.toml` (`fvp_fuzz::cluster_toml::FILE`), with a key reader that gives
//! RFC 7748's Alice for any `key_file`. `parse_with` reads `secret_file` itself: inputs
//! whose `secret_file` is not a relative path of plain names (which would name
//! `/fuzz/...`, absent) are skipped (`secret_file_is_safe`), so no device is read.
//!
//! Checks:
//! - `parse_with` never panics.
//! - `Ok`: the description passes its rules again, checked here: the cluster name, every
//!   fault domain and device name valid (`check_name`); a secret of 16 to 64 bytes and
//!   valid timers; at least one host; host ids in 1..=64 and unique; addresses unicast,
//!   not 0.0.0.0, port not 0, and their IPs unique; host keys unique and not zero;
//!   device names and paths unique, paths valid (`check_device_path`); lines within the
//!   text, in the file's order; `key_file` absolute (a relative one is under `/fuzz/`).
//!   For every host id, `cluster_cfg` gives a `ClusterCfg` whose `validate()` is `Ok`,
//!   with the file's secret and transport, and `local_host` finds it; every host's and
//!   device's request (`to_req`) validates; `plan` against an empty module adds them all;
//!   `check_local_key` answers for the first host as its key says.
//! - `Err`: at least one problem, every message non-empty, lines within the text (and
//!   sorted when there are several), and the error displays.

#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use fvp_fuzz::cluster_toml::{read_key, secret_file_is_safe, FILE};
use fvp_logic::abi::{self, MAX_HOSTS};
use fvpctl::cluster::{
    check_device_path, check_name, check_secret_len, check_timers, local_host, parse_with, plan, Change, ModuleCaps,
};
use fvpctl::keys::rfc7748::ALICE_PUBLIC;
use fvpctl::keys::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if !secret_file_is_safe(&text) {
        return;
    }
    let file = Path::new(FILE);
    // Lines run from 1 to the number of line ends plus one.
    let last_line = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let c = match parse_with(&text, file, &read_key) {
        Ok(c) => c,
        Err(err) => {
            assert!(!err.problems.is_empty(), "an error without problems");
            assert_eq!(err.file, file);
            for p in &err.problems {
                assert!(!p.message.trim().is_empty(), "a problem without a message: {p:?}");
                if let Some(line) = p.line {
                    assert!((1..=last_line).contains(&line), "line {line} of {last_line}: {p:?}");
                }
            }
            if err.problems.len() > 1 {
                assert!(err.problems.windows(2).all(|w| w[0].line <= w[1].line), "unsorted: {err:?}");
            }
            assert!(err.to_string().starts_with(FILE));
            return;
        }
    };

    assert_eq!(check_name(&c.name, "cluster name"), None, "{:?}", c.name);
    assert_eq!(check_secret_len(c.secret.0.len()), None);
    assert_eq!(check_timers(c.heartbeat_ms, c.timeout_ms), None);
    // A relative key_file is taken from /fuzz/.
    assert!(c.key_file.is_absolute(), "{:?}", c.key_file);
    assert_eq!(c.private_key.bytes(), read_key(file).unwrap().bytes());

    assert!(!c.hosts.is_empty(), "a cluster without hosts");
    let (mut ids, mut ips, mut keys) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut last = 0;
    for h in &c.hosts {
        assert!((1..=MAX_HOSTS).contains(&h.id), "host id {}", h.id);
        assert!(ids.insert(h.id), "host id {} twice", h.id);
        let ip = *h.addr.ip();
        assert!(!ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast(), "{}", h.addr);
        assert_ne!(h.addr.port(), 0);
        assert!(ips.insert(ip), "address {ip} twice");
        assert_ne!(h.key.0, [0; 32]);
        assert!(keys.insert(h.key), "key {} twice", h.key);
        assert_eq!(check_name(&h.domain, "fault domain"), None, "{:?}", h.domain);
        // `host = [{...}, {...}]` puts several on one line.
        assert!(h.line >= last.max(1) && h.line <= last_line, "host line {} after {last}", h.line);
        last = h.line;
        assert_eq!(h.to_req().validate(), Ok(()), "{h:?}");
    }
    let (mut names, mut paths) = (BTreeSet::new(), BTreeSet::new());
    let mut last = 0;
    for d in &c.devices {
        assert_eq!(check_name(&d.name, "device name"), None, "{:?}", d.name);
        assert_eq!(check_device_path(&d.path), Ok(()), "{:?}", d.path);
        assert!(names.insert(d.name.as_str()), "device {} twice", d.name);
        assert!(paths.insert(d.path.as_str()), "path {} twice", d.path);
        assert!(d.line >= last.max(1) && d.line <= last_line, "device line {} after {last}", d.line);
        last = d.line;
        let req = d.to_req();
        assert_eq!(req.validate(), Ok(()), "{d:?}");
        assert_eq!(req.path_bytes(), Some(d.path.as_bytes()));
        assert_eq!(abi::name_str(&req.name), d.name);
    }

    for h in &c.hosts {
        let cfg = c.cluster_cfg(h.id);
        assert_eq!(cfg.validate(), Ok(()), "cluster_cfg({}): {cfg:?}", h.id);
        assert_eq!(cfg.secret(), &c.secret.0[..]);
        assert_eq!(cfg.transport, c.transport.as_u32());
        assert_eq!(abi::name_str(&cfg.name), c.name);
        assert_eq!(local_host(&c, file, Some(h.id), &[]), Ok(h.id));
    }
    let first = &c.hosts[0];
    let ours = first.key == PublicKey::parse(ALICE_PUBLIC).unwrap();
    assert_eq!(c.check_local_key(file, first.id).is_ok(), ours);

    let p = plan(&c, first.id, &[], &[], ModuleCaps { update_domains: true, keys: true, device_uuids: true });
    assert_eq!(p.keys.len(), c.hosts.len());
    assert_eq!(p.hosts.len(), c.hosts.len());
    assert_eq!(p.devices.len(), c.devices.len());
    assert!(p.hosts.iter().all(|ch| matches!(ch, Change::Add(_))));
    assert!(p.devices.iter().all(|ch| matches!(ch, Change::Add(_))));
});
