// SPDX-License-Identifier: GPL-2.0

//! The replication handshake's key schedule, its MACs and the keys of a connection.
//!
//! Every host has its own X25519 key pair; every host knows every other host's public
//! key and the cluster's shared secret (`docs/replication.md`, section 2). A handshake
//! ([`Handshake`]) carries both ends' nonces and ephemeral X25519 public keys; each end
//! computes two X25519 results ([`Secrets`]): `static_dh` of its own private key and the
//! peer's configured public key (only the two hosts can), and `ephemeral_dh` of its
//! ephemeral private key and the other's ephemeral public key (forgotten after the
//! handshake: forward secrecy). Then ([`Handshake::schedule`]):
//!
//! - `ctx = tag u64 | client_id u32 | server_id u32 | channel u32 | transport u32 |
//!   incarnation u64` (little-endian);
//! - `prk = HKDF-Extract(salt = nonce_c | nonce_s, ikm = secret | static_dh | ephemeral_dh)`
//!   (HKDF-SHA256, RFC 5869);
//! - `k_auth = HKDF-Expand(prk, "fvp-v6 auth" | ctx, 32)`;
//! - `mac_s = HMAC(k_auth, "fvp-server" | ctx | nonce_c | nonce_s | eph_c | eph_s)`, sent by
//!   the server in CHALLENGE ([`Schedule::server_mac`]);
//! - `mac_c = HMAC(k_auth, "fvp-client" | ctx | nonce_s | nonce_c | eph_s | eph_c)`, sent by
//!   the client in AUTH ([`Schedule::client_mac`]);
//! - `key_c2s = HKDF-Expand(prk, "fvp-v6 c2s" | ctx, 32)`, `key_s2c` with `"fvp-v6 s2c"`
//!   ([`Schedule::session_keys`]): every message after the handshake is sealed with them
//!   ([`super::seal`]).
//!
//! A correct MAC proves knowledge of the secret, of the private key of the host the
//! configuration names, and of the ephemeral key sent; the label makes a server's MAC
//! useless as a client's and the input order differs too, so a peer cannot reflect one
//! side's MAC back at it. MACs are compared with [`constant_time_eq`]. Fresh nonces and
//! ephemeral keys make every connection's keys unique, so a message recorded on one
//! connection fails authentication on any other.
//!
//! The primitives are not written here: the kernel computes HMAC-SHA256 with its crypto
//! API (`hmac(sha256)`) and X25519 with lib/crypto, the host tests with the `hmac`,
//! `sha2` and `x25519-dalek` crates; HMAC is behind [`HmacSha256`], X25519 results are
//! inputs. Everything here is plain `core`: no allocation, no `unsafe`, no panic on any
//! input.

/// Length of an HMAC-SHA256 tag (and of a SHA-256 digest).
pub const DIGEST_LEN: usize = 32;
/// Length of a handshake nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a session key (ChaCha20-Poly1305's key).
pub const KEY_LEN: usize = 32;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_LEN];
/// An HMAC-SHA256 tag.
pub type Mac = [u8; DIGEST_LEN];
/// A session key.
pub type Key = [u8; KEY_LEN];
/// An X25519 public key.
pub type PublicKey = [u8; KEY_LEN];

/// Label that starts the server's MAC input.
pub const SERVER_LABEL: &[u8] = b"fvp-server";
/// Label that starts the client's MAC input.
pub const CLIENT_LABEL: &[u8] = b"fvp-client";
/// Label of the cluster tag's MAC.
pub const TAG_LABEL: &[u8] = b"fvp-cluster-tag";
/// Label that starts the HKDF info of the client-to-server key.
pub const C2S_LABEL: &[u8] = b"fvp-v6 c2s";
/// Label that starts the HKDF info of the server-to-client key.
pub const S2C_LABEL: &[u8] = b"fvp-v6 s2c";

/// Label that starts the HKDF info of the handshake's MAC key.
pub const AUTH_LABEL: &[u8] = b"fvp-v6 auth";
/// Longest HKDF label.
const LABEL_MAX: usize = 16;
/// Length of the handshake context
/// (`tag | client_id | server_id | channel | transport | incarnation`).
const CTX_LEN: usize = 8 + 4 * 4 + 8;

/// HMAC-SHA256 (RFC 2104 over FIPS 180-4), computed by whoever runs the logic.
pub trait HmacSha256 {
    /// The HMAC-SHA256 under `key` of the concatenation of `parts`; `None` if the
    /// primitive could not run (the kernel's may fail to allocate).
    fn mac(&self, key: &[u8], parts: &[&[u8]]) -> Option<Mac>;
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// Strings of different lengths are unequal (lengths are not secret here: MACs have a
/// fixed length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
        // Keeps the compiler from turning the loop into an early-exit comparison.
        diff = core::hint::black_box(diff);
    }
    diff == 0
}

/// Overwrites `bytes` with zeros, in a way the compiler does not drop as a dead store
/// (as far as `black_box` can promise: the kernel's own copies of keys use
/// `memzero_explicit`).
pub fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    core::hint::black_box(&bytes);
}

/// The cluster tag of HELLO: the first 8 bytes of `HMAC(name, "fvp-cluster-tag")`, read
/// as a little-endian `u64`. Not a secret: it only keeps hosts of two clusters that
/// share an address range from talking to each other.
pub fn cluster_tag(h: &impl HmacSha256, name: &[u8]) -> Option<u64> {
    let d = h.mac(name, &[TAG_LABEL])?;
    Some(u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]))
}

/// HKDF-Extract (RFC 5869, section 2.2) with HMAC-SHA256: the pseudorandom key of the
/// input keying material `ikm`, given as the concatenation of its parts.
pub fn hkdf_extract(h: &impl HmacSha256, salt: &[u8], ikm: &[&[u8]]) -> Option<Mac> {
    h.mac(salt, ikm)
}

/// HKDF-Expand (RFC 5869, section 2.3) with HMAC-SHA256: fills `out` (at most
/// 255 × 32 bytes; `None` beyond) from `prk` and `info`.
pub fn hkdf_expand(h: &impl HmacSha256, prk: &[u8], info: &[u8], out: &mut [u8]) -> Option<()> {
    if out.len() > 255 * DIGEST_LEN {
        return None;
    }
    let mut t = [0u8; DIGEST_LEN];
    let mut t_len = 0;
    let mut counter = 1u8;
    let mut r = Some(());
    for chunk in out.chunks_mut(DIGEST_LEN) {
        let Some(next) = h.mac(prk, &[t.get(..t_len).unwrap_or(&[]), info, &[counter]]) else {
            r = None;
            break;
        };
        t = next;
        t_len = DIGEST_LEN;
        if let Some(src) = t.get(..chunk.len()) {
            chunk.copy_from_slice(src);
        }
        counter = counter.wrapping_add(1);
    }
    wipe(&mut t);
    r
}

/// The public inputs of one handshake, as both ends see them: what HELLO and CHALLENGE
/// carry, and the configuration both ends must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The cluster tag ([`cluster_tag`]).
    pub tag: u64,
    /// The host that connected.
    pub client_id: u32,
    /// The host it connected to.
    pub server_id: u32,
    /// HELLO's channel (data or heartbeat connection).
    pub channel: u32,
    /// The transport mode both ends are configured with (`seal::TRANSPORT_*`).
    pub transport: u32,
    /// The client's incarnation (HELLO): a restarted host's is larger.
    pub incarnation: u64,
    /// The client's nonce (HELLO).
    pub nonce_c: Nonce,
    /// The server's nonce (CHALLENGE).
    pub nonce_s: Nonce,
    /// The client's ephemeral X25519 public key (HELLO).
    pub eph_c: PublicKey,
    /// The server's ephemeral X25519 public key (CHALLENGE).
    pub eph_s: PublicKey,
}

/// The secret inputs of one handshake. Not `Debug`; the caller wipes them.
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    /// The cluster's shared secret.
    pub cluster_secret: &'a [u8],
    /// X25519 of this host's private key and the peer's configured public key (equal
    /// on both ends): proves both hosts' identities.
    pub static_dh: &'a [u8; KEY_LEN],
    /// X25519 of this end's ephemeral private key and the other's ephemeral public key
    /// (equal on both ends): keys no later theft of a host key can recompute.
    pub ephemeral_dh: &'a [u8; KEY_LEN],
}

/// The keys of one handshake: `prk = HKDF-Extract(nonce_c | nonce_s, cluster_secret |
/// static_dh | ephemeral_dh)` and the MAC key `HKDF-Expand(prk, "fvp-v6 auth" | ctx)`.
/// Wiped when dropped.
pub struct Schedule {
    prk: Mac,
    auth: Mac,
}

impl Drop for Schedule {
    fn drop(&mut self) {
        wipe(&mut self.prk);
        wipe(&mut self.auth);
    }
}

impl Handshake {
    /// `tag | client_id | server_id | channel | transport | incarnation`.
    fn ctx(&self) -> [u8; CTX_LEN] {
        let mut c = [0u8; CTX_LEN];
        let fields: [&[u8]; 6] = [
            &self.tag.to_le_bytes(),
            &self.client_id.to_le_bytes(),
            &self.server_id.to_le_bytes(),
            &self.channel.to_le_bytes(),
            &self.transport.to_le_bytes(),
            &self.incarnation.to_le_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = c.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        c
    }

    /// HKDF info: `label | ctx`.
    fn info(&self, label: &[u8]) -> ([u8; LABEL_MAX + CTX_LEN], usize) {
        let mut info = [0u8; LABEL_MAX + CTX_LEN];
        let n = label.len().min(LABEL_MAX);
        if let (Some(l), Some(src)) = (info.get_mut(..n), label.get(..n)) {
            l.copy_from_slice(src);
        }
        if let Some(c) = info.get_mut(n..n + CTX_LEN) {
            c.copy_from_slice(&self.ctx());
        }
        (info, n + CTX_LEN)
    }

    /// The handshake's key schedule; `None` if the primitive failed.
    pub fn schedule(&self, h: &impl HmacSha256, secrets: &Secrets<'_>) -> Option<Schedule> {
        let mut salt = [0u8; 2 * NONCE_LEN];
        let (a, b) = salt.split_at_mut(NONCE_LEN);
        a.copy_from_slice(&self.nonce_c);
        b.copy_from_slice(&self.nonce_s);
        let prk = hkdf_extract(h, &salt, &[secrets.cluster_secret, secrets.static_dh, secrets.ephemeral_dh])?;
        let mut s = Schedule { prk, auth: [0; DIGEST_LEN] };
        let (info, n) = self.info(AUTH_LABEL);
        hkdf_expand(h, &s.prk, info.get(..n)?, &mut s.auth)?;
        Some(s)
    }
}

impl Schedule {
    /// The server's MAC, sent in CHALLENGE, over both ends' nonces and ephemeral keys.
    pub fn server_mac(&self, h: &impl HmacSha256, hs: &Handshake) -> Option<Mac> {
        h.mac(&self.auth, &[SERVER_LABEL, &hs.ctx(), &hs.nonce_c, &hs.nonce_s, &hs.eph_c, &hs.eph_s])
    }

    /// The client's MAC, sent in AUTH (the server's inputs, in the other order).
    pub fn client_mac(&self, h: &impl HmacSha256, hs: &Handshake) -> Option<Mac> {
        h.mac(&self.auth, &[CLIENT_LABEL, &hs.ctx(), &hs.nonce_s, &hs.nonce_c, &hs.eph_s, &hs.eph_c])
    }

    /// Whether `mac` is the server's MAC (constant-time comparison).
    pub fn verify_server_mac(&self, h: &impl HmacSha256, hs: &Handshake, mac: &Mac) -> bool {
        self.server_mac(h, hs).is_some_and(|m| constant_time_eq(mac, &m))
    }

    /// Whether `mac` is the client's MAC (constant-time comparison).
    pub fn verify_client_mac(&self, h: &impl HmacSha256, hs: &Handshake, mac: &Mac) -> bool {
        self.client_mac(h, hs).is_some_and(|m| constant_time_eq(mac, &m))
    }

    /// The connection's keys: client-to-server into `c2s`, server-to-client into `s2c`
    /// (written in place, so that the caller decides where keys live and how they are
    /// wiped). `None` if the primitive failed; the keys are then zero.
    pub fn session_keys(&self, h: &impl HmacSha256, hs: &Handshake, c2s: &mut Key, s2c: &mut Key) -> Option<()> {
        let r = (|| {
            for (label, out) in [(C2S_LABEL, &mut *c2s), (S2C_LABEL, &mut *s2c)] {
                let (info, n) = hs.info(label);
                hkdf_expand(h, &self.prk, info.get(..n)?, out)?;
            }
            Some(())
        })();
        if r.is_none() {
            wipe(c2s);
            wipe(s2c);
        }
        r
    }
}

/// HMAC-SHA256 by the `hmac` and `sha2` crates, for host tests.
#[cfg(test)]
pub(crate) mod host {
    use super::{HmacSha256, Mac};
    use hmac::{Hmac, Mac as _};

    /// [`HmacSha256`] on the host.
    pub(crate) struct HostHmac;

    impl HmacSha256 for HostHmac {
        fn mac(&self, key: &[u8], parts: &[&[u8]]) -> Option<Mac> {
            let mut m = <Hmac<sha2::Sha256>>::new_from_slice(key).ok()?;
            for p in parts {
                m.update(p);
            }
            Some(m.finalize().into_bytes().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host::HostHmac;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        s.chunks(2).map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    /// A primitive that fails: every derivation must fail cleanly with it.
    struct Failing;
    impl HmacSha256 for Failing {
        fn mac(&self, _: &[u8], _: &[&[u8]]) -> Option<Mac> {
            None
        }
    }

    #[test]
    fn hkdf_rfc5869_vectors() {
        // RFC 5869 appendix A, test cases 1 to 3 (SHA-256).
        // (ikm, salt, info, prk, okm)
        type Case = (Vec<u8>, Vec<u8>, Vec<u8>, &'static str, &'static str);
        let cases: [Case; 3] = [
            (
                std::vec![0x0b; 22],
                hex("000102030405060708090a0b0c"),
                hex("f0f1f2f3f4f5f6f7f8f9"),
                "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            (
                (0x00u8..=0x4f).collect(),
                (0x60u8..=0xaf).collect(),
                (0xb0u8..=0xff).collect(),
                "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09\
                 da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
            ),
            (
                std::vec![0x0b; 22],
                Vec::new(),
                Vec::new(),
                "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            ),
        ];
        for (i, (ikm, salt, info, prk_hex, okm_hex)) in cases.iter().enumerate() {
            let prk = hkdf_extract(&HostHmac, salt, &[ikm]).unwrap();
            assert_eq!(prk.to_vec(), hex(prk_hex), "case {} prk", i + 1);
            let want = hex(okm_hex);
            let mut okm = std::vec![0u8; want.len()];
            hkdf_expand(&HostHmac, &prk, info, &mut okm).unwrap();
            assert_eq!(okm, want, "case {} okm", i + 1);
        }
        let mut too_long = std::vec![0u8; 255 * 32 + 1];
        assert_eq!(hkdf_expand(&HostHmac, &[1; 32], b"", &mut too_long), None);
    }

    #[test]
    fn hkdf_equals_the_hkdf_crate() {
        for len in [0usize, 1, 31, 32, 33, 64, 100, 255 * 32] {
            let (salt, ikm, info) = (b"salt".as_slice(), b"input key".as_slice(), b"info".as_slice());
            let prk = hkdf_extract(&HostHmac, salt, &[ikm]).unwrap();
            let mut ours = std::vec![0u8; len];
            hkdf_expand(&HostHmac, &prk, info, &mut ours).unwrap();
            let mut theirs = std::vec![0u8; len];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "len {len}");
        }
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let m = [7u8; 32];
        let mut n = m;
        n[31] ^= 0x80;
        assert!(!constant_time_eq(&m, &n));
    }

    #[test]
    fn cluster_tag_is_a_prefix_of_the_name_keyed_mac() {
        let d = HostHmac.mac(b"prod", &[b"fvp-cluster-tag"]).unwrap();
        assert_eq!(cluster_tag(&HostHmac, b"prod"), Some(u64::from_le_bytes(d[..8].try_into().unwrap())));
        assert_ne!(cluster_tag(&HostHmac, b"prod"), cluster_tag(&HostHmac, b"prod2"));
        assert_eq!(cluster_tag(&Failing, b"prod"), None);
    }

    fn sample() -> Handshake {
        Handshake {
            tag: 0x0102_0304_0506_0708,
            client_id: 3,
            server_id: 5,
            channel: 0,
            transport: 1,
            incarnation: 0x1122_3344_5566_7788,
            nonce_c: [1; 16],
            nonce_s: [2; 16],
            eph_c: [3; 32],
            eph_s: [4; 32],
        }
    }

    const SS: [u8; 32] = [5; 32];
    const EE: [u8; 32] = [6; 32];

    fn secrets(secret: &[u8]) -> Secrets<'_> {
        Secrets { cluster_secret: secret, static_dh: &SS, ephemeral_dh: &EE }
    }

    fn ctx_bytes(hs: &Handshake) -> Vec<u8> {
        let mut ctx = Vec::new();
        ctx.extend_from_slice(&hs.tag.to_le_bytes());
        ctx.extend_from_slice(&hs.client_id.to_le_bytes());
        ctx.extend_from_slice(&hs.server_id.to_le_bytes());
        ctx.extend_from_slice(&hs.channel.to_le_bytes());
        ctx.extend_from_slice(&hs.transport.to_le_bytes());
        ctx.extend_from_slice(&hs.incarnation.to_le_bytes());
        ctx
    }

    /// The schedule, MACs and keys as the module documentation writes them, computed
    /// with the `hkdf` crate.
    #[test]
    fn schedule_macs_and_keys_layout() {
        let hs = sample();
        let sch = hs.schedule(&HostHmac, &secrets(b"s3cret")).unwrap();
        let salt = [[1u8; 16], [2u8; 16]].concat();
        let ikm = [b"s3cret".as_slice(), &SS, &EE].concat();
        let kdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm);
        let ctx = ctx_bytes(&hs);
        let mut k_auth = [0u8; 32];
        kdf.expand(&[b"fvp-v6 auth".as_slice(), &ctx].concat(), &mut k_auth).unwrap();
        let msg = [b"fvp-server".as_slice(), &ctx, &[1; 16], &[2; 16], &[3; 32], &[4; 32]].concat();
        assert_eq!(sch.server_mac(&HostHmac, &hs), HostHmac.mac(&k_auth, &[&msg]));
        let msg = [b"fvp-client".as_slice(), &ctx, &[2; 16], &[1; 16], &[4; 32], &[3; 32]].concat();
        assert_eq!(sch.client_mac(&HostHmac, &hs), HostHmac.mac(&k_auth, &[&msg]));
        let m = sch.server_mac(&HostHmac, &hs).unwrap();
        assert!(sch.verify_server_mac(&HostHmac, &hs, &m));
        assert!(!sch.verify_client_mac(&HostHmac, &hs, &m));
        assert!(!sch.verify_server_mac(&Failing, &hs, &m));

        let (mut c2s, mut s2c) = ([0u8; 32], [0u8; 32]);
        sch.session_keys(&HostHmac, &hs, &mut c2s, &mut s2c).unwrap();
        let (mut want_c, mut want_s) = ([0u8; 32], [0u8; 32]);
        kdf.expand(&[b"fvp-v6 c2s".as_slice(), &ctx].concat(), &mut want_c).unwrap();
        kdf.expand(&[b"fvp-v6 s2c".as_slice(), &ctx].concat(), &mut want_s).unwrap();
        assert_eq!((c2s, s2c), (want_c, want_s));
        assert_ne!(c2s, s2c);
        let (mut a, mut b) = ([9u8; 32], [9u8; 32]);
        assert_eq!(sch.session_keys(&Failing, &hs, &mut a, &mut b), None);
        assert_eq!((a, b), ([0; 32], [0; 32]));
        assert!(hs.schedule(&Failing, &secrets(b"s3cret")).is_none());
    }

    /// Both ends of a handshake with real X25519 keys (the `x25519-dalek` crate) reach the
    /// same MACs and keys; a host without the right private key, or a man in the middle
    /// who swapped an ephemeral key, does not.
    #[test]
    fn both_ends_agree_with_real_keys_and_an_impostor_does_not() {
        use x25519_dalek::{PublicKey as Pk, StaticSecret};
        let (client, server) = (StaticSecret::from([0x11; 32]), StaticSecret::from([0x22; 32]));
        let (eph_c, eph_s) = (StaticSecret::from([0x33; 32]), StaticSecret::from([0x44; 32]));
        let hs = Handshake { eph_c: Pk::from(&eph_c).to_bytes(), eph_s: Pk::from(&eph_s).to_bytes(), ..sample() };
        let at_client = (
            client.diffie_hellman(&Pk::from(&server)).to_bytes(),
            eph_c.diffie_hellman(&Pk::from(hs.eph_s)).to_bytes(),
        );
        let at_server = (
            server.diffie_hellman(&Pk::from(&client)).to_bytes(),
            eph_s.diffie_hellman(&Pk::from(hs.eph_c)).to_bytes(),
        );
        assert_eq!(at_client, at_server);
        let sch = |ss: &[u8; 32], ee: &[u8; 32]| {
            hs.schedule(&HostHmac, &Secrets { cluster_secret: b"secret", static_dh: ss, ephemeral_dh: ee }).unwrap()
        };
        let (c, s) = (sch(&at_client.0, &at_client.1), sch(&at_server.0, &at_server.1));
        let mac_s = s.server_mac(&HostHmac, &hs).unwrap();
        assert!(c.verify_server_mac(&HostHmac, &hs, &mac_s));
        let mac_c = c.client_mac(&HostHmac, &hs).unwrap();
        assert!(s.verify_client_mac(&HostHmac, &hs, &mac_c));
        // Another host's key (it knows the secret, not host 3's private key).
        let impostor = StaticSecret::from([0x55; 32]);
        let fake = sch(&impostor.diffie_hellman(&Pk::from(&server)).to_bytes(), &at_client.1);
        assert!(!s.verify_client_mac(&HostHmac, &hs, &fake.client_mac(&HostHmac, &hs).unwrap()));
        // A man in the middle replacing the server's ephemeral key with its own.
        let mitm = StaticSecret::from([0x66; 32]);
        let swapped = Handshake { eph_s: Pk::from(&mitm).to_bytes(), ..hs };
        let at_client2 = swapped
            .schedule(
                &HostHmac,
                &Secrets {
                    cluster_secret: b"secret",
                    static_dh: &at_client.0,
                    ephemeral_dh: &eph_c.diffie_hellman(&Pk::from(swapped.eph_s)).to_bytes(),
                },
            )
            .unwrap();
        assert!(!at_client2.verify_server_mac(&HostHmac, &swapped, &mac_s));
    }

    /// Every input of the handshake changes both MACs and both keys; the two MACs and the
    /// two keys differ from each other.
    #[test]
    fn macs_and_keys_depend_on_every_input() {
        let base = sample();
        let all = |hs: &Handshake, sec: &Secrets<'_>| {
            let sch = hs.schedule(&HostHmac, sec).unwrap();
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            sch.session_keys(&HostHmac, hs, &mut a, &mut b).unwrap();
            (sch.server_mac(&HostHmac, hs).unwrap(), sch.client_mac(&HostHmac, hs).unwrap(), a, b)
        };
        let b = all(&base, &secrets(b"cluster secret"));
        assert_ne!(b.0, b.1);
        assert_ne!(b.2, b.3);
        let other = [7u8; 32];
        let changed_secrets = [
            Secrets { cluster_secret: b"cluster secreT", ..secrets(b"") },
            Secrets { static_dh: &other, ..secrets(b"cluster secret") },
            Secrets { ephemeral_dh: &other, ..secrets(b"cluster secret") },
        ];
        for (i, sec) in changed_secrets.iter().enumerate() {
            let v = all(&base, sec);
            assert!(v.0 != b.0 && v.1 != b.1 && v.2 != b.2 && v.3 != b.3, "secret input {i}");
        }
        let variants = [
            Handshake { tag: base.tag ^ 1, ..base },
            Handshake { client_id: 4, ..base },
            Handshake { server_id: 6, ..base },
            Handshake { client_id: 5, server_id: 3, ..base },
            Handshake { channel: 1, ..base },
            Handshake { transport: 0, ..base },
            Handshake { incarnation: base.incarnation + 1, ..base },
            Handshake { nonce_c: [3; 16], ..base },
            Handshake { nonce_s: [3; 16], ..base },
            Handshake { nonce_c: base.nonce_s, nonce_s: base.nonce_c, ..base },
            Handshake { eph_c: [9; 32], ..base },
            Handshake { eph_s: [9; 32], ..base },
            Handshake { eph_c: base.eph_s, eph_s: base.eph_c, ..base },
        ];
        for (i, v) in variants.iter().enumerate() {
            let x = all(v, &secrets(b"cluster secret"));
            assert_ne!(x.0, b.0, "server mac, variant {i}");
            assert_ne!(x.1, b.1, "client mac, variant {i}");
            // The ephemeral keys enter the keys only through `ephemeral_dh`.
            if v.eph_c == base.eph_c && v.eph_s == base.eph_s {
                assert_ne!(x.2, b.2, "c2s key, variant {i}");
                assert_ne!(x.3, b.3, "s2c key, variant {i}");
            }
        }
        // Equal nonces and ephemeral keys: only the label tells the two MACs apart.
        let same = Handshake { nonce_s: base.nonce_c, eph_s: base.eph_c, ..base };
        let x = all(&same, &secrets(b"cluster secret"));
        assert_ne!(x.0, x.1);
        assert_ne!(x.2, x.3);
    }

    proptest! {
        #[test]
        fn hkdf_matches_the_crate_for_any_input(salt in proptest::collection::vec(any::<u8>(), 0..80),
                                               ikm in proptest::collection::vec(any::<u8>(), 0..80),
                                               info in proptest::collection::vec(any::<u8>(), 0..80),
                                               len in 0usize..200) {
            // The input keying material in two parts, as the handshake gives it.
            let (a, b) = ikm.split_at(ikm.len() / 2);
            let prk = hkdf_extract(&HostHmac, &salt, &[a, b]).unwrap();
            let mut ours = std::vec![0u8; len];
            hkdf_expand(&HostHmac, &prk, &info, &mut ours).unwrap();
            let mut theirs = std::vec![0u8; len];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm).expand(&info, &mut theirs).unwrap();
            prop_assert_eq!(ours, theirs);
        }
    }
}
