// SPDX-License-Identifier: GPL-2.0

//! A bounded number of seeds for `make test`; `make soak` runs many more
//! (`examples/soak.rs`). A failing seed prints its trace and replays with
//! `cargo run --release -p fvp-sim --example soak -- --peers P --seed S`.

use fvp_sim::{run_seed, Config};
use std::time::Instant;

fn seeds(peers: u32, from: u64, count: u64) {
    seeds_of(&Config::new(peers), from, count, "");
}

fn seeds_of(cfg: &Config, from: u64, count: u64, what: &str) {
    let peers = cfg.peers;
    let t = Instant::now();
    let mut events = 0;
    for seed in from..from + count {
        match run_seed(cfg, seed) {
            Ok(r) => events += r.events,
            Err(v) => panic!("peers={peers} seed {}: {} at {} ns\n{}", v.seed, v.what, v.at, v.trace),
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "peers={peers}{what}: {count} seeds, {events} events in {s:.1} s ({:.0} events/min)",
        events as f64 / s * 60.0
    );
}

#[test]
fn peers_1() {
    seeds(1, 1, 300);
}

#[test]
fn peers_2() {
    seeds(2, 1, 300);
}

/// Rolling host list changes (`Config::config_changes`) among the other faults: on
/// five hosts, two leave the list and come back.
#[test]
fn host_list_changes() {
    for peers in [1, 2] {
        let mut cfg = Config::new(peers);
        cfg.config_changes = true;
        cfg.hosts = 5;
        seeds_of(&cfg, 1, 300, ", host list changes, 5 hosts");
    }
}
