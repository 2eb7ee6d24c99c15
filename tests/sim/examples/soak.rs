// SPDX-License-Identifier: GPL-2.0

//! Runs many seeds (`make soak`), or replays one with its trace.
//!
//! `soak [--peers 1|2] [--seeds N] [--from S] [--seed S] [--events E] [--without-untrust]`
//! `[--host-list-changes [--without-joint]] [--hosts N] [--without-read-hold]`

use fvp_sim::{run_scenario, run_seed, scenarios, Config};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>().expect("a number"))
    };
    let peers_list: Vec<u32> = match get("--peers") {
        Some(p) => vec![p as u32],
        None => vec![1, 2],
    };
    let (from, count) = match get("--seed") {
        Some(s) => (s, 1),
        None => (get("--from").unwrap_or(1000), get("--seeds").unwrap_or(500)),
    };
    let mut failed = 0;
    if args.iter().any(|a| a == "--scenarios") {
        for s in scenarios() {
            let n = get("--seeds").unwrap_or(50);
            let bad: Vec<u64> = (1..=n).filter(|&seed| run_scenario(&s, seed).is_err()).collect();
            println!("scenario '{}': {} of {n} seeds fail {:?}", s.name, bad.len(), &bad[..bad.len().min(8)]);
            if let Some(&seed) = bad.first() {
                if let Err(v) = run_scenario(&s, seed) {
                    println!("  seed {seed}: {}", v.what);
                    if args.iter().any(|a| a == "--trace") {
                        println!("{}", v.trace);
                    }
                }
            }
            failed += bad.len();
            if args.iter().any(|a| a == "--trace") && bad.is_empty() {
                if let Ok(r) = run_scenario(&s, 1) {
                    println!("{}", r.trace);
                }
            }
        }
        std::process::exit(if failed > 0 { 1 } else { 0 });
    }
    for peers in peers_list {
        let mut cfg = Config::new(peers);
        if let Some(e) = get("--events") {
            cfg.events = e;
        }
        if let Some(ms) = get("--disk-slow-ms") {
            cfg.disk_slow_max = ms * fvp_sim::MS;
        }
        // Shows what the peer rule prevents (docs/replication.md, "Untrusted stores").
        cfg.untrust_on_lease_loss = !args.iter().any(|a| a == "--without-untrust");
        // Rolling host list changes; and what joint majorities prevent.
        cfg.config_changes = args.iter().any(|a| a == "--host-list-changes");
        if let Some(n) = get("--hosts") {
            cfg.hosts = n as usize;
        }
        cfg.joint_majorities = !args.iter().any(|a| a == "--without-joint");
        // And what holding reads while an orphan may exist prevents.
        cfg.hold_reads = !args.iter().any(|a| a == "--without-read-hold");
        let t = Instant::now();
        let (mut events, mut acked, mut takeovers, mut orphans, mut sim_ns) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut changes, mut reads, mut held) = (0u64, 0u64, 0u64);
        let failed_before = failed;
        for seed in from..from + count {
            match run_seed(&cfg, seed) {
                Ok(r) => {
                    events += r.events;
                    acked += r.acked;
                    takeovers += r.takeovers;
                    orphans += r.orphans_written;
                    changes += r.host_list_changes;
                    reads += r.reads;
                    held += r.reads_held;
                    sim_ns += r.sim_ns;
                    if count == 1 {
                        println!("{r:?}");
                    }
                }
                Err(v) => {
                    failed += 1;
                    println!("peers={peers} seed {}: {} at {:.3} s\n{}", v.seed, v.what, v.at as f64 / 1e9, v.trace);
                }
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "peers={peers}: {count} seeds from {from}, {} failed; {events} events, {acked} acknowledged writes, {takeovers} takeovers, {orphans} orphaned stores written, {changes} host list changes applied, {reads} reads checked ({held} held), {:.0} simulated s, in {s:.1} s ({:.0} events/min)",
            failed - failed_before,
            sim_ns as f64 / 1e9,
            events as f64 / s * 60.0
        );
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
