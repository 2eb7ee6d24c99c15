// SPDX-License-Identifier: GPL-2.0

//! Bounds on what an unauthenticated network client can make a host spend
//! (`docs/replication.md`, section 2, "Threat model"): how many handshakes may be in
//! progress at once, in all and per source address ([`HandshakeSlots`]), and how many
//! log lines refusals may print ([`RateLimit`]). Pure state machines: the caller passes
//! the time and carries out the verdicts.

/// Handshakes in progress at most, from all sources.
pub const HANDSHAKES_MAX: usize = 16;
/// Handshakes in progress at most from one source address: a configured host has at
/// most two connections to open (data and heartbeat) and retries one at a time.
pub const HANDSHAKES_PER_ADDR_MAX: u16 = 4;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`HANDSHAKES_MAX`] handshakes are in progress.
    Full,
    /// [`HANDSHAKES_PER_ADDR_MAX`] handshakes from this address are in progress.
    PerAddress,
}

impl Refusal {
    /// For the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "too many handshakes in progress",
            Refusal::PerAddress => "too many handshakes in progress from this address",
        }
    }
}

/// The handshakes in progress, by source address.
///
/// # Invariants
///
/// Every used slot has a count of at least 1 and at most [`HANDSHAKES_PER_ADDR_MAX`],
/// no address has two slots, and the counts add up to at most [`HANDSHAKES_MAX`].
#[derive(Clone, Debug, Default)]
pub struct HandshakeSlots {
    /// `(address, handshakes)`; a count of 0 is a free slot.
    slots: [(u32, u16); HANDSHAKES_MAX],
}

impl HandshakeSlots {
    /// No handshake in progress.
    pub const fn new() -> Self {
        HandshakeSlots { slots: [(0, 0); HANDSHAKES_MAX] }
    }

    /// Handshakes in progress in all.
    pub fn total(&self) -> usize {
        self.slots.iter().map(|&(_, n)| usize::from(n)).sum()
    }

    /// Handshakes in progress from `addr`.
    pub fn from_addr(&self, addr: u32) -> u16 {
        self.slots.iter().find(|&&(a, n)| n > 0 && a == addr).map_or(0, |&(_, n)| n)
    }

    /// Admits a handshake from `addr`, or says why not. An admitted handshake must be
    /// [`HandshakeSlots::release`]d when it ends, whatever its outcome.
    pub fn admit(&mut self, addr: u32) -> Result<(), Refusal> {
        if self.total() >= HANDSHAKES_MAX {
            return Err(Refusal::Full);
        }
        if let Some(slot) = self.slots.iter_mut().find(|(a, n)| *n > 0 && *a == addr) {
            if slot.1 >= HANDSHAKES_PER_ADDR_MAX {
                return Err(Refusal::PerAddress);
            }
            slot.1 += 1;
            return Ok(());
        }
        // Fewer than HANDSHAKES_MAX in all, so a slot is free.
        let slot = self.slots.iter_mut().find(|(_, n)| *n == 0).ok_or(Refusal::Full)?;
        *slot = (addr, 1);
        Ok(())
    }

    /// Ends a handshake [`HandshakeSlots::admit`] admitted from `addr`. Releasing one
    /// that was not admitted changes nothing.
    pub fn release(&mut self, addr: u32) {
        if let Some(slot) = self.slots.iter_mut().find(|(a, n)| *n > 0 && *a == addr) {
            slot.1 -= 1;
        }
    }
}

/// Log lines a [`RateLimit`] lets through per interval.
pub const LOG_BURST: u32 = 10;
/// The interval of a [`RateLimit`], in ns.
pub const LOG_INTERVAL_NS: u64 = 5_000_000_000;

/// What to do with one log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; `suppressed` lines were dropped since the last one printed (say so).
    Print {
        /// Lines dropped before this one.
        suppressed: u64,
    },
    /// Drop it.
    Suppress,
}

/// At most [`LOG_BURST`] lines per [`LOG_INTERVAL_NS`], as the kernel's
/// `printk_ratelimited` does, counting what it drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Start of the current interval (ns); `None` before the first line.
    since: Option<u64>,
    /// Lines printed in the current interval.
    printed: u32,
    /// Lines dropped since the last one printed.
    suppressed: u64,
}

impl RateLimit {
    /// Nothing printed yet.
    pub const fn new() -> Self {
        RateLimit { since: None, printed: 0, suppressed: 0 }
    }

    /// The verdict for a line at `now_ns` (a monotonic clock).
    pub fn check(&mut self, now_ns: u64) -> Verdict {
        let fresh = match self.since {
            None => true,
            Some(s) => now_ns.saturating_sub(s) >= LOG_INTERVAL_NS || now_ns < s,
        };
        if fresh {
            self.since = Some(now_ns);
            self.printed = 0;
        }
        if self.printed >= LOG_BURST {
            self.suppressed = self.suppressed.saturating_add(1);
            return Verdict::Suppress;
        }
        self.printed += 1;
        let suppressed = core::mem::take(&mut self.suppressed);
        Verdict::Print { suppressed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn handshakes_are_capped_in_all_and_per_address() {
        let mut s = HandshakeSlots::new();
        for _ in 0..HANDSHAKES_PER_ADDR_MAX {
            assert_eq!(s.admit(7), Ok(()));
        }
        assert_eq!(s.admit(7), Err(Refusal::PerAddress));
        assert_eq!(s.from_addr(7), HANDSHAKES_PER_ADDR_MAX);
        for a in 100..100 + (HANDSHAKES_MAX - HANDSHAKES_PER_ADDR_MAX as usize) as u32 {
            assert_eq!(s.admit(a), Ok(()));
        }
        assert_eq!(s.total(), HANDSHAKES_MAX);
        assert_eq!(s.admit(5000), Err(Refusal::Full));
        assert_eq!(s.admit(7), Err(Refusal::Full));
        s.release(100);
        assert_eq!(s.admit(5000), Ok(()));
        // Releasing what was never admitted changes nothing.
        let before = s.total();
        s.release(999);
        assert_eq!(s.total(), before);
        for _ in 0..HANDSHAKES_PER_ADDR_MAX {
            s.release(7);
        }
        assert_eq!(s.from_addr(7), 0);
        assert_eq!(s.total(), HANDSHAKES_MAX - HANDSHAKES_PER_ADDR_MAX as usize);
    }

    #[test]
    fn rate_limit_prints_a_burst_per_interval_and_counts_the_rest() {
        let mut r = RateLimit::new();
        for _ in 0..LOG_BURST {
            assert_eq!(r.check(1_000), Verdict::Print { suppressed: 0 });
        }
        for _ in 0..25 {
            assert_eq!(r.check(2_000), Verdict::Suppress);
        }
        assert_eq!(r.check(1_000 + LOG_INTERVAL_NS), Verdict::Print { suppressed: 25 });
        assert_eq!(r.check(1_000 + LOG_INTERVAL_NS), Verdict::Print { suppressed: 0 });
        // A clock that went back starts a new interval rather than muting forever.
        let mut r = RateLimit { since: Some(u64::MAX - 5), printed: LOG_BURST, suppressed: 3 };
        assert_eq!(r.check(10), Verdict::Print { suppressed: 3 });
    }

    proptest! {
        /// Whatever the order of admits and releases, the invariants hold and admits
        /// succeed exactly when both caps allow.
        #[test]
        fn slots_keep_their_invariants(ops in proptest::collection::vec((any::<bool>(), 0u32..6), 0..300)) {
            let mut s = HandshakeSlots::new();
            let mut model = std::collections::BTreeMap::<u32, u16>::new();
            for (admit, addr) in ops {
                let total: usize = model.values().map(|&n| usize::from(n)).sum();
                let mine = model.get(&addr).copied().unwrap_or(0);
                if admit {
                    let want = if total >= HANDSHAKES_MAX {
                        Err(Refusal::Full)
                    } else if mine >= HANDSHAKES_PER_ADDR_MAX {
                        Err(Refusal::PerAddress)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(s.admit(addr), want);
                    if want.is_ok() {
                        *model.entry(addr).or_default() += 1;
                    }
                } else {
                    s.release(addr);
                    if mine > 0 {
                        *model.get_mut(&addr).unwrap() -= 1;
                    }
                }
                prop_assert_eq!(s.from_addr(addr), model.get(&addr).copied().unwrap_or(0));
                prop_assert_eq!(s.total(), model.values().map(|&n| usize::from(n)).sum::<usize>());
            }
        }

        /// At most LOG_BURST lines print in any interval, and every dropped line is
        /// reported by the next printed one.
        #[test]
        fn rate_limit_accounts_for_every_line(gaps in proptest::collection::vec(0u64..2_000_000_000, 1..200)) {
            let mut r = RateLimit::new();
            let (mut now, mut dropped, mut reported) = (0u64, 0u64, 0u64);
            let mut window: Vec<u64> = Vec::new();
            for g in gaps {
                now += g;
                match r.check(now) {
                    Verdict::Print { suppressed } => {
                        reported += suppressed;
                        window.push(now);
                    }
                    Verdict::Suppress => dropped += 1,
                }
                let in_interval = window.iter().filter(|&&t| now - t < LOG_INTERVAL_NS).count();
                prop_assert!(in_interval <= 2 * LOG_BURST as usize);
            }
            prop_assert!(reported <= dropped);
            prop_assert_eq!(dropped - reported, r.suppressed);
        }
    }
}
