// SPDX-License-Identifier: GPL-2.0

//! Model checks of the replication protocol as the kernel runs it (`logic/owner.rs`,
//! `logic/replica.rs`, `logic/membership.rs`, `logic/placement.rs`); see the crate
//! documentation for the model and the properties.
//!
//! Two kinds of tests:
//!
//! - `*_holds`: a configuration within the protocol's assumptions, explored
//!   exhaustively; no `always` property may have a counterexample and every `sometimes`
//!   property but the listed ones must be reached. An `#[ignore]`d one is either an open
//!   hole (the counterexample the checker finds is in its comment; it passes once fixed)
//!   or long (minutes; `cargo test -p fvp-model -- --ignored` runs both kinds).
//! - `counterexample_*`: a configuration that breaks an assumption of the protocol (more
//!   crashes than `peers`, a restart shorter than the kernel's silence): the checker
//!   must find a counterexample to the named property, which shows that it can fail.
//!   The trace is printed (`cargo test -p fvp-model -- --nocapture`).

use fvp_model::{format_path, Config, FvpModel};
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

/// One exploration at a time: they are CPU and memory hungry.
static SERIAL: Mutex<()> = Mutex::new(());

/// `peers`, three client writes, `ticks` ticks, and the faults given.
fn cfg(peers: u32, crashes: u8, cuts: u8, restarts: bool, ticks: u8) -> Config {
    Config { max_writes: 3, max_ticks: ticks, max_crashes: crashes, max_cuts: cuts, restarts, ..Config::new(peers) }
}

/// With only two client writes.
fn two_writes(c: Config) -> Config {
    Config { max_writes: 2, ..c }
}

/// Explores `cfg` exhaustively: no counterexample, and every `sometimes` property
/// reached except those in `unreachable`. Depth first: it keeps only fingerprints of the
/// states seen (breadth first keeps a frontier of whole states) and runs faster; a
/// counterexample's trace may be longer than needed (`examples/sweep.rs` finds the
/// shortest).
fn holds(name: &str, cfg: Config, unreachable: &[&str]) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = FvpModel::new(cfg);
    let props = model.properties();
    for u in unreachable {
        assert!(props.iter().any(|p| p.name == *u), "unknown property {u}");
    }
    let start = Instant::now();
    let checker = model.checker().spawn_dfs().join();
    println!(
        "{name}: {} unique states, {} total, max depth {}, {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    assert!(checker.is_done());
    let mut failures = Vec::new();
    for p in &props {
        let found = checker.discovery(p.name);
        let expected_unreachable = unreachable.contains(&p.name);
        match (p.expectation.discovery_is_failure(), found) {
            (true, Some(path)) => failures.push(format!("counterexample to \"{}\":\n{}", p.name, format_path(&path))),
            (false, None) if !expected_unreachable => failures.push(format!("never reached: \"{}\"", p.name)),
            (false, Some(_)) if expected_unreachable => {
                failures.push(format!("reached, but listed as unreachable: \"{}\"", p.name))
            }
            _ => {}
        }
    }
    if !failures.is_empty() {
        panic!("{name}:\n{}", failures.join("\n"));
    }
}

/// Explores `cfg` until a counterexample to `property` is found, prints it and
/// returns; panics if the whole space holds none.
fn counterexample(name: &str, cfg: Config, property: &'static str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = FvpModel::new(cfg);
    assert!(model.properties().iter().any(|p| p.name == property), "unknown property {property}");
    let start = Instant::now();
    let checker = model.checker().finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property]))).spawn_bfs().join();
    println!(
        "{name}: {} unique states, {} total, max depth {}, {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    match checker.discovery(property) {
        Some(path) => println!("{name}: counterexample to \"{property}\":\n{}", format_path(&path)),
        None => panic!("{name}: no counterexample to \"{property}\": the checker cannot see this failure any more"),
    }
}

const DEGRADED: &str = "degraded write-through";
const REPROTECTED: &str = "reprotected";
const TAKEOVER: [&str; 3] = ["takeover started", "recovery wrote a block", "recovery completed"];
/// An owner that lost its lease, but not its connection to a peer that took its volume
/// over meanwhile, needs about 20 ticks to learn it: only [`stall_and_cut_peers1_holds`]
/// gets there.
const LEARNT: &str = "owner learnt it was taken over";

// ---- Within the assumptions: the protocol holds ----

/// peers=1, one host crash (no restart).
#[test]
fn crash_peers1_holds() {
    holds("peers=1, 1 crash", cfg(1, 1, 0, false, 12), &[DEGRADED, LEARNT]);
}

/// peers=2, up to two host crashes (no restart).
#[test]
fn crashes_peers2_holds() {
    holds("peers=2, 2 crashes", cfg(2, 2, 0, false, 12), &[REPROTECTED, LEARNT]);
}

/// peers=1, one link cut (and heal), no crash: nobody takes over.
#[test]
fn partition_peers1_holds() {
    let mut unreachable = vec![DEGRADED, LEARNT];
    unreachable.extend(TAKEOVER);
    holds("peers=1, 1 cut", cfg(1, 0, 1, false, 12), &unreachable);
}

/// peers=1, one crash followed by a restart of the same host (after the kernel's
/// silence).
#[test]
fn crash_restart_peers1_holds() {
    holds("peers=1, 1 crash + restart", cfg(1, 1, 0, true, 12), &[DEGRADED, LEARNT]);
}

/// peers=2, one crash followed by a restart.
#[test]
fn crash_restart_peers2_holds() {
    holds("peers=2, 1 crash + restart", cfg(2, 1, 0, true, 12), &[LEARNT]);
}

/// peers=1, two link cuts: the owner may be isolated, its peer dropped (stale) or
/// replaced, and a peer takes over while the owner lives.
#[test]
fn isolated_owner_peers1_holds() {
    holds("peers=1, 2 cuts", two_writes(cfg(1, 0, 2, false, 9)), &[DEGRADED, LEARNT]);
}

/// peers=1, a link cut and a host crash: re-protection (a stale peer), then a takeover.
#[test]
fn cut_and_crash_peers1_holds() {
    holds("peers=1, 1 cut + 1 crash", two_writes(cfg(1, 1, 1, false, 9)), &[DEGRADED, LEARNT]);
}

/// peers=1, a host crash and a stalled direction of a link: requests without an ACK
/// for the timeout close the connection.
#[test]
fn stall_and_crash_peers1_holds() {
    holds("peers=1, 1 stall + 1 crash", Config { max_stalls: 1, ..two_writes(cfg(1, 1, 0, false, 9)) }, &[LEARNT]);
}

/// peers=2, a host crash and a stalled direction: a write may complete with the ACK of
/// a peer that crashed since (P3 counts it: the owner cannot know yet).
#[test]
fn stall_and_crash_peers2_holds() {
    holds("peers=2, 1 stall + 1 crash", Config { max_stalls: 1, ..two_writes(cfg(2, 1, 0, false, 9)) }, &[LEARNT]);
}

/// peers=1, one write, a stall and a cut over 20 ticks (about 50 million states, minutes:
/// run with `--ignored`). The owner loses its lease to a stall of its peer's replies and
/// a cut from the third host; the peer takes it over, stops when the third host lifts
/// the fence, and finishes with the lease alone once it answered the owner's probe
/// (ESTALE); the owner learns it and discards its blocks.
#[test]
#[ignore = "long: about 50 million states; run with --ignored"]
fn stall_and_cut_peers1_holds() {
    let c = Config { max_writes: 1, max_stalls: 1, ..cfg(1, 0, 1, false, 20) };
    holds("peers=1, 1 stall + 1 cut, 20 ticks", c, &[]);
}

// ---- Within the assumptions: regressions of holes the model found ----

/// peers=2, two crashes and restarts. Failed (P1) while a host that a majority fences
/// discarded every replica store it held, even an untrusted one kept because it may be
/// the last copy; a restarted host starts fencing every other host, so two restarted
/// hosts are such a majority. The trace it found:
///
/// ```text
/// write b0; tick           A acknowledges w1 (B and C store it)
/// crash A; restart A       A silent for 3 timeouts
/// crash B; restart B       B silent likewise; C alone loses its lease: its store is
///                          untrusted (kept: the last copy of w1)
/// 9 ticks                  A and B speak again, each fencing every other host: C is
///                          fenced by a majority and discarded the store; w1 was lost
/// ```
///
/// Now a majority fence untrusts the stores and keeps them.
#[test]
fn crashes_restarts_peers2_holds() {
    holds("peers=2, 2 crashes + restarts", two_writes(cfg(2, 2, 0, true, 12)), &[LEARNT]);
}

/// peers=2, a crash (and restart) and a link cut. Failed (P1) with the same hole as
/// [`crashes_restarts_peers2_holds`], with the fences of a partition (a shortest trace):
///
/// ```text
/// write b0; tick           A acknowledges w1 (B and C store it)
/// crash A; restart A       A silent for 3 timeouts
/// 5 ticks                  B and C fence A and wait the takeover wait
/// cut B-C; 2 ticks         both start taking A's volume over
/// heal B-C; tick           they fenced each other meanwhile: no lease, both stop
/// tick                     A speaks again, fencing B and C: each is fenced by a
///                          majority (A's view and the other's) and discarded its
///                          store; w1 was lost
/// ```
#[test]
fn crash_cut_restart_peers2_holds() {
    holds("peers=2, 1 crash + 1 cut + restarts", two_writes(cfg(2, 1, 1, true, 10)), &[LEARNT]);
}

// ---- Beyond the assumptions: the checker must fail ----

/// peers=1 and two crashes: the owner and its only peer crash after an acknowledged
/// write.
#[test]
fn counterexample_more_crashes_than_peers() {
    counterexample("peers=1, 2 crashes", two_writes(cfg(1, 2, 0, false, 12)), "P1 no acknowledged write is lost");
}

/// An owner that restarts without the kernel's silence is not fenced by anyone: its new
/// volume is protected and idle while the only copy of an acknowledged write stays in
/// the old volume's store, which no takeover writes.
#[test]
fn counterexample_restart_without_silence() {
    counterexample(
        "peers=1, quick owner restart",
        Config { silence_ticks: 0, ..two_writes(cfg(1, 1, 0, true, 12)) },
        "P2 destaged blocks are on the backing device",
    );
}
