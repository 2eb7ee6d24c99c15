// SPDX-License-Identifier: GPL-2.0

//! Every violation the simulator found, replayed with its seed. Each passes on today's
//! rules; the comment says what failed before, and where a rule can be switched off,
//! the test shows that the same seed fails without it.

use fvp_sim::{run_scenario, run_seed, scenarios, Config};

fn passes(peers: u32, seed: u64) {
    if let Err(v) = run_seed(&Config::new(peers), seed) {
        panic!("peers={peers} seed {seed}: {} at {} ns\n{}", v.what, v.at, v.trace);
    }
}

/// A peer cut off from everyone is fenced by a majority but never hears of it; the
/// owner stops counting on it and writes through; the peer reconnects to a third host,
/// gets a lease and, after the owner crashes, writes its older replicas over newer
/// acknowledged blocks (P2; found as seed 18). The rule that a lease interruption
/// untrusts every store prevents it: seeds 89 (peers=1) and 195 (peers=2) fail
/// without it today (the seeds move when the rules change the runs' course).
#[test]
fn majority_fence_never_heard_of() {
    for (peers, seed) in [(1, 89), (2, 195)] {
        let mut cfg = Config::new(peers);
        cfg.untrust_on_lease_loss = false;
        let v = run_seed(&cfg, seed).expect_err("fails without the rule");
        assert!(v.what.starts_with("P2"), "{}", v.what);
        passes(peers, seed);
    }
    passes(1, 18);
    // Other seeds the same hole showed up under.
    for (peers, seed) in [(1, 100), (1, 150), (1, 176), (1, 223), (2, 142), (2, 282), (2, 343)] {
        passes(peers, seed);
    }
}

/// VOLUME_OPEN of a new epoch emptied a peer that was chosen again: the ACK of a
/// write sent before it still arrived, and the write completed with its replica gone
/// (P3, seeds 1114 and 1889, peers=2). Healthy peers chosen again now keep their store.
#[test]
fn reopen_emptied_a_healthy_peer() {
    passes(2, 1114);
    passes(2, 1889);
}

/// The ACK of a peer dropped (and reopened empty) after it stored a write completed
/// that write (P3, seeds 105, 38, 95, 369, 575, peers=2; 46, 97, 213, peers=1). Writes
/// now complete as replicated only under the peer-set generation they were sent in.
#[test]
fn ack_from_a_dropped_peer() {
    for seed in [38, 95, 105, 369, 575] {
        passes(2, seed);
    }
    for seed in [46, 97, 213, 235, 341] {
        passes(1, seed);
    }
}

/// A stale peer was told to drop its replicas (VOLUME_CLOSE) while the volume was
/// degraded and still dirty: the only other copy of acknowledged writes was gone, and
/// the owner's crash lost them (P1, seed 395, peers=1). A stale peer is emptied only
/// once the volume is protected again or clean.
#[test]
fn stale_peer_emptied_too_early() {
    passes(1, 395);
}

/// A stale peer was cleared because a majority fenced it, as seen at one instant, but
/// that majority combined a fence another host had already lifted with a fresh one: the
/// peer never lost its lease, kept its stores trusted, and wrote older replicas at the
/// next takeover (P2, seed 13315 of `make soak`, peers=1). A stale peer is now cleared
/// by a majority fence only once it has lasted the takeover wait.
#[test]
fn momentary_majority_fence() {
    passes(1, 13315);
    passes(2, 16246);
}

/// Modeling errors of the simulator itself, kept so they stay fixed: a write-through
/// must not drop the pool's dirty copy (seed 78, peers=2), a write-back and a
/// write-through of one block are ordered (seeds 648, 1000, 1254, 1987, peers=1).
#[test]
fn simulator_modeling() {
    passes(2, 78);
    // A peer that confirmed a write, crashed and restarted before the write completed
    // counts as a holder (the owner cannot know yet), as a crashed one does.
    passes(2, 13618);
    for seed in [648, 1000, 1254, 1987] {
        passes(1, seed);
    }
}

/// The scripted scenarios of holes found by reading (see `fvp_sim::scenarios`). With
/// the old rules put back in `logic/owner.rs`, the re-placement one fails on 50 of 50
/// seeds (a healthy peer left out was not made stale) and the degraded one on 41 of 50
/// (a lost peer of a degraded volume was not made stale); the degraded one also failed
/// on 5 of 30 until a failed write's blocks reached the remaining peer before the disk.
#[test]
fn scripted_scenarios() {
    for s in scenarios() {
        for seed in 1..=20 {
            if let Err(v) = run_scenario(&s, seed) {
                panic!("scenario '{}' seed {seed}: {}\n{}", s.name, v.what, v.trace);
            }
        }
    }
}

/// The fencing argument (docs/replication.md, "Stalls and fencing"): a deposed owner's
/// backing write must land within the timeout of its submission. Within that bound (a
/// slow disk of up to 1.5 s with the 2 s timeout) no run breaks P1 to P4; beyond it (5
/// s) a peer's takeover writes while the deposed owner's write is still in flight
/// (P4), which is why an unbounded backing device needs storage fencing.
#[test]
fn backing_io_time_bound() {
    let mut within = Config::new(1);
    within.disk_slow_max = 1500 * fvp_sim::MS;
    for seed in 1..=100 {
        if let Err(v) = run_seed(&within, seed) {
            panic!("within the bound, seed {seed}: {}\n{}", v.what, v.trace);
        }
    }
    let mut beyond = Config::new(1);
    beyond.disk_slow_max = 5000 * fvp_sim::MS;
    let v = run_seed(&beyond, 106).expect_err("seed 106 fails beyond the bound");
    assert!(v.what.starts_with("P4"), "{}", v.what);
}

/// Found by the simulator (seed 1484, peers=1, disk slow up to 1.5 s): a peer kept the
/// store of an owner's earlier incarnation (the owner restarted and no takeover could
/// run meanwhile) beside the store of its new one; at the next takeover it wrote both,
/// the older last, over a newer acknowledged block (P2). Now a new volume waits for
/// every other host, which first writes the orphans of its name. The rules changed the
/// runs' course, so beyond the two seeds this checks over 100 seeds (peers=2, 2400 to
/// 2499, where 2 runs write an orphan today) that orphans were written (the path is
/// reached) and that no run breaks P1 to P6.
#[test]
fn orphan_of_an_earlier_incarnation() {
    let mut cfg = Config::new(1);
    cfg.disk_slow_max = 1500 * fvp_sim::MS;
    if let Err(v) = run_seed(&cfg, 1484) {
        panic!("{}\n{}", v.what, v.trace);
    }
    let mut written = 0;
    for seed in 2400..=2499 {
        match run_seed(&Config::new(2), seed) {
            Ok(r) => written += r.orphans_written,
            Err(v) => panic!("seed {seed}: {}\n{}", v.what, v.trace),
        }
    }
    assert!(written > 0, "no run met an orphan: the test does not reach the path it names");
    // The same hole in `make soak` (seed 3942, peers=1).
    passes(1, 3942);
}

/// A rolling host list change (the scripted scenario): hosts on the new list {1..5}
/// form a majority of it that is disjoint from the old list's majority {1,2}, where the
/// owner still holds its lease. Without joint majorities (a change restarting the
/// membership, as the kernel did) the owner's peer takes over while the owner writes,
/// on every seed tried; with them the scenario passes (`scripted_scenarios`).
#[test]
fn rolling_host_list_change() {
    let s = scenarios().into_iter().find(|s| s.name == "a rolling host list change").expect("scenario");
    let mut old = s.clone();
    old.cfg.joint_majorities = false;
    let mut failed = 0;
    for seed in 1..=20 {
        if let Err(v) = run_scenario(&old, seed) {
            assert!(v.what.starts_with("P2") || v.what.starts_with("P4"), "seed {seed}: {}", v.what);
            failed += 1;
        }
        run_scenario(&s, seed).unwrap_or_else(|v| panic!("seed {seed}: {}\n{}", v.what, v.trace));
    }
    assert!(failed > 0, "no seed fails without joint majorities: the test shows nothing");
}

/// Random rolling host list changes (two of five hosts leaving the list and coming
/// back, one host at a time): without joint majorities the owner held its lease while a
/// peer could take its volume over (P4) on 180 of 2,000 seeds with peers=1 and 273 of
/// 2,000 with peers=2 (`make soak`); seed 2 (peers=1) is the first today.
#[test]
fn rolling_changes_without_joint_majorities() {
    let mut cfg = Config::new(1);
    cfg.config_changes = true;
    cfg.hosts = 5;
    let mut old = cfg.clone();
    old.joint_majorities = false;
    let v = run_seed(&old, 2).expect_err("fails without joint majorities");
    assert!(v.what.starts_with("P4"), "{}", v.what);
    if let Err(v) = run_seed(&cfg, 2) {
        panic!("seed 2: {}\n{}", v.what, v.trace);
    }
}

/// The owner removed a peer from its host list and forgot it as a stale peer; the
/// removed host, still on the old list with the others, took the volume over after the
/// owner stalled and wrote older replicas over newer blocks (P2; seed 1871, peers=2,
/// host list changes on four hosts). A host that holds or may hold a volume's replicas
/// is now removed only once the volume moved off it (`logic/owner.rs`, `cluster.rs`).
#[test]
fn removed_peer_forgotten() {
    let mut cfg = Config::new(2);
    cfg.config_changes = true;
    if let Err(v) = run_seed(&cfg, 1871) {
        panic!("seed 1871: {}\n{}", v.what, v.trace);
    }
}

/// After an owner's crash and restart, a read that missed the cache returned the disk's
/// older block while a peer still held the acknowledged newer one in an orphan (P5;
/// `make soak` seed 1312, peers=2, with reads not held; seed 2440 today). Reads that miss now wait, as
/// writes do, until every host stale since the volume's creation has confirmed it.
#[test]
fn reads_wait_for_orphans() {
    let mut old = Config::new(2);
    old.hold_reads = false;
    let v = run_seed(&old, 2440).expect_err("fails without holding reads");
    assert!(v.what.starts_with("P5"), "{}", v.what);
    passes(2, 1312);
    passes(2, 2440);
}

/// P4's lease-exclusion check (2026-12-04): the owner acted on its settled lease, granted
/// by a host C, while another host counted C's fence of the owner from a view held up in
/// transit, and was `takeover_ready`. Views were dated by their arrival, so a fence C
/// announced just before lifting it counted at the other host for a full timeout after a
/// late arrival, longer than the owner's settled-lease margin (`T/5`). Views are now
/// dated by the PING their PONG answers (`logic/membership.rs`, "Views"). `make soak`
/// found 4 of 20,000 seeds with peers=1 (these four), and with host list changes on five
/// hosts 5 and 10 of 20,000 (peers=1 seed 6392; peers=2 seed 9014, whose would-be taker
/// held 6 replica blocks).
#[test]
fn fence_held_up_in_transit() {
    for seed in [12023, 13034, 13781, 19667] {
        passes(1, seed);
    }
    for (peers, seed) in [(1, 6392), (2, 9014)] {
        let mut cfg = Config::new(peers);
        cfg.config_changes = true;
        cfg.hosts = 5;
        if let Err(v) = run_seed(&cfg, seed) {
            panic!("peers={peers} seed {seed}: {}\n{}", v.what, v.trace);
        }
    }
}

/// P6 (added 2026-12-04 after the guests' link cut failed in CI): once a peer took the
/// owner's volume over, that volume acknowledges and writes nothing more. 70 of 2,000
/// seeds (peers=1, from 1000) and 3 (peers=2) broke it: the owner, back from a lease
/// loss, asked only its current peers whether one took over, not the stale host that
/// did (dropped for a failed request just before the lease ended), then re-protected
/// elsewhere and had the taker "close" (seeds 1015, 1084, 1157; peers=2: 1018, 1456).
/// Stale hosts are asked now, and a close or open answered ESTALE fences. That left 8
/// and 1 seeds where the taker crashed and restarted after its takeover and no longer
/// remembered it (seeds 1192, 1202; peers=2: 2082): a probed host that held a store and
/// holds none now leaves the volume suspended for the operator. `make soak` then found
/// seed 6629 (peers=2): a VOLUME_OPEN of a new epoch answered after the lease ended was
/// dropped, and the host it opened, neither peer nor stale, took the volume over
/// unasked; hosts asked to open are stale now until they confirm something. (Seed 5125,
/// peers=1, was the simulator's own bug: a reply to an ask answered at once completed
/// the next ask.)
#[test]
fn taken_over_volume_stays_fenced() {
    for seed in [1015, 1084, 1157, 1192, 1202, 5125] {
        passes(1, seed);
    }
    for seed in [1018, 1456, 2082, 6629] {
        passes(2, seed);
    }
}
