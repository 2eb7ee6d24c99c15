// SPDX-License-Identifier: GPL-2.0

//! Peer placement of replicated volumes: rendezvous (highest random weight) hashing,
//! `docs/replication.md` section 5.
//!
//! Every configured host `h` other than the owner gets the score
//! [`score`]`(volume name, h)`, a 64-bit SipHash-2-4 of the volume name followed by `h`
//! (see [`hash64`] for the exact bytes and key): every host, kernel or user space, computes
//! the same scores and so the same peers from the same membership. The caller passes the
//! configured hosts as a slice of [`HostEntry`] (up to [`MAX_HOSTS`], in any order): its id,
//! its fault domain as a small number (the caller numbers the domain names of its cluster
//! description, e.g. by their index in its table; only equality matters) and whether it
//! is *up* (connected, authenticated and not fenced: the caller's decision).
//!
//! # Rule
//!
//! A host is *eligible* when it is up, is not the owner and matches the volume's
//! [`DomainRule`] (`Same`: the owner's domain; `Different`: any other domain). Then:
//!
//! - `Same`, or `Different` with `peers <= 1`: the `peers` eligible hosts with the highest
//!   scores.
//! - `Different` with `peers = 2`: the first peer is the eligible host with the highest
//!   score; the second is the highest-scoring eligible host in a domain other than the
//!   first's, or, when every eligible host shares the first's domain, the second-highest
//!   eligible host (two peers in the same foreign domain rather than one peer).
//!
//! Scores tie only on a hash collision; the lower id wins a tie. Fewer than `peers` hosts
//! come back when fewer are eligible (the owner is then `degraded` or under-protected).
//!
//! # Movement
//!
//! When one host `h` leaves (goes down or is removed), a volume's peer set changes only
//! if `h` was in it, and then only `h` is replaced: the other peer stays. This holds for
//! every rule, including the distinct-domain preference of `Different` with `peers = 2`:
//! the first peer is the best eligible host and the second the best one outside the
//! first's domain, so removing a non-member changes neither; removing the first peer
//! either promotes a host of its own domain (the second peer, in another domain, stays
//! the best outside that domain) or makes the old second peer the new first (it was the
//! best outside the old first's domain, hence now the best overall); removing the second
//! peer keeps the first. By symmetry, a host joining enters the set or changes nothing,
//! and evicts at most one member. What can differ from a plain top-2 in that case is
//! *which* member a joining host evicts: a joiner that becomes the first peer in the
//! domain of the old first peer evicts that one, and a joiner in a domain not yet used
//! evicts the old second peer of a same-domain pair, even when it scores below it.
//! The tests check these statements on random clusters.

/// Largest number of configured hosts (ids `1..=64`, one bit each in a `u64`).
pub const MAX_HOSTS: usize = 64;

/// Largest `peers` a volume may ask for.
pub const MAX_PEERS: usize = 2;

/// The SipHash-2-4 key of [`hash64`]: the 16 bytes `fvp placement v1`, read as two
/// little-endian `u64` (k0 = bytes 0..8, k1 = bytes 8..16).
pub const HASH_KEY: [u8; 16] = *b"fvp placement v1";

/// Which hosts may hold a volume's replicas, relative to the owner's fault domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainRule {
    /// Only hosts in the owner's fault domain (`domain=same`).
    Same,
    /// Only hosts in other fault domains, two distinct ones preferred (`domain=different`).
    Different,
}

impl DomainRule {
    /// Parses the table spelling `same` or `different`.
    pub fn parse(s: &[u8]) -> Option<DomainRule> {
        match s {
            b"same" => Some(DomainRule::Same),
            b"different" => Some(DomainRule::Different),
            _ => None,
        }
    }

    /// The table spelling.
    pub fn name(self) -> &'static str {
        match self {
            DomainRule::Same => "same",
            DomainRule::Different => "different",
        }
    }
}

/// One configured host as placement sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostEntry {
    /// Host id, `1..=64`.
    pub id: u32,
    /// Fault domain: any number naming the domain; hosts in the same domain have the same
    /// number.
    pub domain: u32,
    /// Connected, authenticated and not fenced, as the caller sees it.
    pub up: bool,
}

/// The chosen peers: up to [`MAX_PEERS`] host ids, best first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerSet {
    ids: [u32; MAX_PEERS],
    len: u8,
}

impl PeerSet {
    /// The peer ids, best (highest score) first.
    pub fn as_slice(&self) -> &[u32] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Number of peers chosen.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no peer was chosen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` is one of the peers.
    pub fn contains(&self, id: u32) -> bool {
        self.as_slice().contains(&id)
    }

    /// The peers as a host bitmask (bit `id - 1`), as in PING/PONG.
    pub fn mask(&self) -> u64 {
        self.as_slice().iter().fold(0, |m, &id| m | host_bit(id))
    }

    fn push(&mut self, id: u32) {
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }
}

/// Why [`place`] refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// `peers` larger than [`MAX_PEERS`].
    TooManyPeers,
    /// More than [`MAX_HOSTS`] host entries.
    TooManyHosts,
    /// A host id outside `1..=64`.
    BadHostId,
    /// Two entries with the same id.
    DuplicateHost,
    /// The owner is not among the host entries (its domain is unknown).
    UnknownOwner,
}

/// The bit of host `id` in a host bitmask, 0 for an id outside `1..=64`.
pub fn host_bit(id: u32) -> u64 {
    match id {
        1..=64 => 1u64 << (id - 1),
        _ => 0,
    }
}

struct SipHash {
    v: [u64; 4],
    tail: u64,
    ntail: u32,
    len: u64,
}

impl SipHash {
    fn new(key: &[u8; 16]) -> SipHash {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        let k0 = u64::from_le_bytes(k0);
        let k1 = u64::from_le_bytes(k1);
        SipHash {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13);
        v1 ^= v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16);
        v3 ^= v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21);
        v3 ^= v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17);
        v1 ^= v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
            self.len = self.len.wrapping_add(1);
            if self.ntail == 8 {
                let m = self.tail;
                self.compress(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
    }

    fn finish(mut self) -> u64 {
        let m = self.tail | (self.len << 56);
        self.compress(m);
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }
}

/// SipHash-2-4 of `data` under `key` (the reference algorithm of Aumasson and Bernstein).
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let mut h = SipHash::new(key);
    h.write(data);
    h.finish()
}

/// The placement hash: SipHash-2-4 keyed with [`HASH_KEY`] over the volume name bytes
/// (as configured, without padding) followed by the host id as 4 little-endian bytes.
/// The id being a fixed-size suffix, distinct (name, host) pairs hash distinct inputs.
pub fn hash64(name: &[u8], host: u32) -> u64 {
    let mut h = SipHash::new(&HASH_KEY);
    h.write(name);
    h.write(&host.to_le_bytes());
    h.finish()
}

/// The rendezvous score of `host` for the volume `name`: [`hash64`].
pub fn score(name: &[u8], host: u32) -> u64 {
    hash64(name, host)
}

/// Whether candidate `a` ranks before `b`: higher score first, lower id on a tie.
fn ranks_before(a: (u64, u32), b: (u64, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// The best eligible host (score, id) accepted by `filter`, if any.
fn best(
    name: &[u8],
    hosts: &[HostEntry],
    eligible: impl Fn(&HostEntry) -> bool,
    filter: impl Fn(&HostEntry) -> bool,
) -> Option<(u64, u32, u32)> {
    let mut top: Option<(u64, u32, u32)> = None;
    for h in hosts.iter().filter(|h| eligible(h) && filter(h)) {
        let cand = (score(name, h.id), h.id, h.domain);
        top = match top {
            Some(t) if !ranks_before((cand.0, cand.1), (t.0, t.1)) => Some(t),
            _ => Some(cand),
        };
    }
    top
}

/// Chooses the peers of the volume `name` owned by `owner`: see the [module
/// documentation](self) for the rule. `hosts` lists every configured host, the owner
/// included, in any order. Returns at most `peers` ids, best first, fewer when fewer hosts
/// are eligible.
pub fn place(
    name: &[u8],
    owner: u32,
    hosts: &[HostEntry],
    peers: u32,
    rule: DomainRule,
) -> Result<PeerSet, PlacementError> {
    if peers > MAX_PEERS as u32 {
        return Err(PlacementError::TooManyPeers);
    }
    if hosts.len() > MAX_HOSTS {
        return Err(PlacementError::TooManyHosts);
    }
    let mut seen = 0u64;
    let mut owner_domain = None;
    for h in hosts {
        let bit = host_bit(h.id);
        if bit == 0 {
            return Err(PlacementError::BadHostId);
        }
        if seen & bit != 0 {
            return Err(PlacementError::DuplicateHost);
        }
        seen |= bit;
        if h.id == owner {
            owner_domain = Some(h.domain);
        }
    }
    let od = owner_domain.ok_or(PlacementError::UnknownOwner)?;
    let eligible = |h: &HostEntry| {
        h.up && h.id != owner
            && match rule {
                DomainRule::Same => h.domain == od,
                DomainRule::Different => h.domain != od,
            }
    };

    let mut set = PeerSet::default();
    if peers == 0 {
        return Ok(set);
    }
    let Some((_, first, first_domain)) = best(name, hosts, eligible, |_| true) else {
        return Ok(set);
    };
    set.push(first);
    if peers == 1 {
        return Ok(set);
    }
    let second = match rule {
        DomainRule::Different => best(name, hosts, eligible, |h| h.domain != first_domain)
            .or_else(|| best(name, hosts, eligible, |h| h.id != first)),
        DomainRule::Same => best(name, hosts, eligible, |h| h.id != first),
    };
    if let Some((_, id, _)) = second {
        set.push(id);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn h(id: u32, domain: u32, up: bool) -> HostEntry {
        HostEntry { id, domain, up }
    }

    /// Reference vectors of the SipHash paper (key 00..0f, message 00..len-1).
    #[test]
    fn siphash_reference_vectors() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: [u8; 64] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&key, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&key, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(&key, &msg[..63]), 0x958a_324c_eb06_4572);
    }

    /// Pinned scores: kernel and user space must agree forever, so a change of the hash
    /// must be deliberate.
    #[test]
    fn pinned_scores() {
        let pinned = [hash64(b"vol0", 1), hash64(b"vol0", 2), hash64(b"", 64)];
        // Recomputed through the generic SipHash over the documented byte layout.
        let mut m = Vec::from(&b"vol0"[..]);
        m.extend_from_slice(&1u32.to_le_bytes());
        assert_eq!(pinned[0], siphash24(&HASH_KEY, &m));
        assert_ne!(pinned[0], pinned[1]);
        assert_eq!(pinned[2], siphash24(&HASH_KEY, &64u32.to_le_bytes()));
    }

    #[test]
    fn rejects_bad_input() {
        let hosts = [h(1, 0, true), h(2, 0, true)];
        assert_eq!(place(b"v", 1, &hosts, 3, DomainRule::Same), Err(PlacementError::TooManyPeers));
        assert_eq!(place(b"v", 3, &hosts, 1, DomainRule::Same), Err(PlacementError::UnknownOwner));
        let bad = [h(1, 0, true), h(0, 0, true)];
        assert_eq!(place(b"v", 1, &bad, 1, DomainRule::Same), Err(PlacementError::BadHostId));
        let bad = [h(1, 0, true), h(65, 0, true)];
        assert_eq!(place(b"v", 1, &bad, 1, DomainRule::Same), Err(PlacementError::BadHostId));
        let dup = [h(1, 0, true), h(2, 0, true), h(2, 1, true)];
        assert_eq!(place(b"v", 1, &dup, 1, DomainRule::Same), Err(PlacementError::DuplicateHost));
        let many: Vec<HostEntry> = (1..=65).map(|i| h(i.min(64), 0, true)).collect();
        assert_eq!(place(b"v", 1, &many, 1, DomainRule::Same), Err(PlacementError::TooManyHosts));
        assert_eq!(place(b"v", 1, &hosts, 0, DomainRule::Same), Ok(PeerSet::default()));
    }

    #[test]
    fn small_cases() {
        // Owner alone: nobody.
        let alone = [h(1, 0, true)];
        assert!(place(b"v", 1, &alone, 2, DomainRule::Same).unwrap().is_empty());
        // Three hosts, one domain: peers=2 gives both others, best first.
        let hosts = [h(1, 0, true), h(2, 0, true), h(3, 0, true)];
        let p = place(b"v", 1, &hosts, 2, DomainRule::Same).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.mask(), 0b110);
        let s = p.as_slice();
        assert!(score(b"v", s[0]) > score(b"v", s[1]));
        // Different with every host in the owner's domain: nobody.
        assert!(place(b"v", 1, &hosts, 2, DomainRule::Different).unwrap().is_empty());
        // A down host is skipped.
        let hosts = [h(1, 0, true), h(2, 0, false), h(3, 0, true)];
        let p = place(b"v", 1, &hosts, 2, DomainRule::Same).unwrap();
        assert_eq!(p.as_slice(), &[3]);
    }

    #[test]
    fn different_prefers_distinct_domains() {
        // Owner in domain 0; domain 1 has many hosts, domain 2 one host.
        let mut hosts = Vec::from([h(1, 0, true), h(2, 2, true)]);
        for id in 3..=20 {
            hosts.push(h(id, 1, true));
        }
        for name in [&b"a"[..], b"b", b"c", b"volume-with-a-long-name", b""] {
            let p = place(name, 1, &hosts, 2, DomainRule::Different).unwrap();
            assert_eq!(p.len(), 2);
            assert!(p.contains(2), "the only host of domain 2 is always picked");
        }
        // Domain 2 down: two hosts of domain 1.
        hosts[1].up = false;
        let p = place(b"a", 1, &hosts, 2, DomainRule::Different).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.as_slice().iter().all(|&id| id >= 3));
    }

    // ---- Properties ----

    /// A reference implementation: sort eligible hosts by score.
    fn reference(name: &[u8], owner: u32, hosts: &[HostEntry], peers: u32, rule: DomainRule) -> Vec<u32> {
        let od = hosts.iter().find(|x| x.id == owner).unwrap().domain;
        let mut el: Vec<&HostEntry> = hosts
            .iter()
            .filter(|x| x.up && x.id != owner)
            .filter(|x| match rule {
                DomainRule::Same => x.domain == od,
                DomainRule::Different => x.domain != od,
            })
            .collect();
        el.sort_by_key(|x| (core::cmp::Reverse(score(name, x.id)), x.id));
        let mut out: Vec<u32> = Vec::new();
        if peers >= 1 {
            if let Some(f) = el.first() {
                out.push(f.id);
            }
        }
        if peers == 2 && !out.is_empty() {
            let fd = el[0].domain;
            let second = match rule {
                DomainRule::Different => el.iter().skip(1).find(|x| x.domain != fd).or(el.get(1)),
                DomainRule::Same => el.get(1),
            };
            if let Some(s) = second {
                out.push(s.id);
            }
        }
        out
    }

    /// A cluster: 2..=24 hosts with random ids, up to 4 domains, random up flags.
    fn cluster() -> impl Strategy<Value = (Vec<HostEntry>, u32)> {
        (proptest::sample::subsequence((1u32..=64).collect::<Vec<_>>(), 2..=24))
            .prop_flat_map(|ids| {
                let n = ids.len();
                (
                    Just(ids),
                    proptest::collection::vec(0u32..4, n),
                    proptest::collection::vec(proptest::bool::weighted(0.8), n),
                    0..n,
                )
            })
            .prop_map(|(ids, doms, ups, o)| {
                let hosts: Vec<HostEntry> =
                    ids.iter().zip(doms).zip(ups).map(|((&id, domain), up)| h(id, domain, up)).collect();
                let owner = hosts[o].id;
                (hosts, owner)
            })
    }

    fn rule() -> impl Strategy<Value = DomainRule> {
        prop_oneof![Just(DomainRule::Same), Just(DomainRule::Different)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Matches the reference, is deterministic and independent of the entries' order,
        /// never picks the owner or a down host, and honours the domain rule.
        #[test]
        fn rule_holds(
            (hosts, owner) in cluster(),
            name in proptest::collection::vec(any::<u8>(), 0..40),
            peers in 0u32..=2,
            rule in rule(),
            seed in any::<u64>(),
        ) {
            let p = place(&name, owner, &hosts, peers, rule).unwrap();
            prop_assert_eq!(p.as_slice(), &reference(&name, owner, &hosts, peers, rule)[..]);
            prop_assert_eq!(p, place(&name, owner, &hosts, peers, rule).unwrap());
            let mut shuffled = hosts.clone();
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed.rotate_left(i as u32) as usize) % n);
            }
            prop_assert_eq!(p, place(&name, owner, &shuffled, peers, rule).unwrap());

            let od = hosts.iter().find(|x| x.id == owner).unwrap().domain;
            let eligible = hosts.iter().filter(|x| x.up && x.id != owner && match rule {
                DomainRule::Same => x.domain == od,
                DomainRule::Different => x.domain != od,
            }).count();
            prop_assert_eq!(p.len(), eligible.min(peers as usize));
            for &id in p.as_slice() {
                let e = hosts.iter().find(|x| x.id == id).unwrap();
                prop_assert!(id != owner);
                prop_assert!(e.up);
                match rule {
                    DomainRule::Same => prop_assert_eq!(e.domain, od),
                    DomainRule::Different => prop_assert!(e.domain != od),
                }
            }
            if p.len() == 2 {
                prop_assert!(p.as_slice()[0] != p.as_slice()[1]);
                // Two distinct domains whenever two eligible domains exist.
                if rule == DomainRule::Different {
                    let doms = |id: u32| hosts.iter().find(|x| x.id == id).unwrap().domain;
                    let mut eligible_domains: Vec<u32> = hosts.iter()
                        .filter(|x| x.up && x.id != owner && x.domain != od)
                        .map(|x| x.domain).collect();
                    eligible_domains.sort();
                    eligible_domains.dedup();
                    if eligible_domains.len() >= 2 {
                        prop_assert!(doms(p.as_slice()[0]) != doms(p.as_slice()[1]));
                    }
                }
            }
        }

        /// The SipHash agrees with the standard library's SipHash-2-4.
        #[test]
        fn siphash_matches_std(key in any::<[u8; 16]>(), data in proptest::collection::vec(any::<u8>(), 0..100)) {
            #[allow(deprecated)]
            let mut std_hasher = {
                let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
                let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
                std::hash::SipHasher::new_with_keys(k0, k1)
            };
            std::hash::Hasher::write(&mut std_hasher, &data);
            prop_assert_eq!(siphash24(&key, &data), std::hash::Hasher::finish(&std_hasher));
        }

        /// Minimal movement: one host going down (or leaving) changes the peer set only
        /// if it was in it, and then only replaces that host.
        #[test]
        fn minimal_movement(
            (hosts, owner) in cluster(),
            name in proptest::collection::vec(any::<u8>(), 0..40),
            peers in 0u32..=2,
            rule in rule(),
            victim in any::<proptest::sample::Index>(),
            remove in any::<bool>(),
        ) {
            let before = place(&name, owner, &hosts, peers, rule).unwrap();
            let others: Vec<usize> = (0..hosts.len()).filter(|&i| hosts[i].id != owner).collect();
            let i = others[victim.index(others.len())];
            let gone = hosts[i].id;
            let mut after_hosts = hosts.clone();
            if remove {
                after_hosts.remove(i);
            } else {
                after_hosts[i].up = false;
            }
            let after = place(&name, owner, &after_hosts, peers, rule).unwrap();
            if !before.contains(gone) {
                prop_assert_eq!(before, after);
            } else {
                for &id in before.as_slice() {
                    if id != gone {
                        prop_assert!(after.contains(id), "{} stayed eligible but moved", id);
                    }
                }
                prop_assert!(!after.contains(gone));
            }
            // Joining is the reverse: the set only changes if the joiner enters it.
            if !after.as_slice().is_empty() || !before.as_slice().is_empty() {
                let entered = before.contains(gone);
                prop_assert_eq!(entered, before != after);
            }
        }
    }
}
