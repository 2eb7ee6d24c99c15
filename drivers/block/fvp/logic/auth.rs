// SPDX-License-Identifier: GPL-2.0

//! The replication handshake's MACs and the keys of a connection.
//!
//! The handshake (`docs/replication.md`, section 2) is a mutual challenge-response keyed
//! by the cluster's shared secret, which never crosses the wire. With the inputs of one
//! handshake ([`Handshake`]):
//!
//! - `mac_s = HMAC(secret, "fvp-server" | ctx | nonce_c | nonce_s)` ([`Handshake::server_mac`]),
//!   sent by the server in CHALLENGE;
//! - `mac_c = HMAC(secret, "fvp-client" | ctx | nonce_s | nonce_c)` ([`Handshake::client_mac`]),
//!   sent by the client in AUTH;
//! - `ctx = tag | client_id | server_id | channel | transport`: the cluster tag as a
//!   little-endian `u64`, the ids, the channel (data or heartbeat) and the transport mode
//!   (authenticated or encrypted) as little-endian `u32`.
//!
//! The label makes a server's MAC useless as a client's and the nonce order differs too,
//! so a peer cannot reflect one side's MAC back at it. MACs are compared with
//! [`constant_time_eq`].
//!
//! After the handshake every message is sealed ([`super::seal`]) with keys unique to the
//! connection and direction, derived with HKDF-SHA256 (RFC 5869,
//! [`Handshake::session_keys`]):
//!
//! - `prk = HKDF-Extract(salt = nonce_c | nonce_s, ikm = secret)`;
//! - `key_c2s = HKDF-Expand(prk, "fvp-v6 c2s" | ctx, 32)`, `key_s2c` likewise with `"s2c"`.
//!
//! Both nonces are fresh random bytes of each handshake, so no two connections share a
//! key, and a message recorded on one connection fails authentication on any other.
//!
//! The primitive itself, HMAC-SHA256, is not written here: the kernel computes it with
//! its crypto API (`hmac(sha256)`), the host tests with the `hmac` and `sha2` crates,
//! both behind [`HmacSha256`]. Everything here is plain `core`: no allocation, no
//! `unsafe`, no panic on any input.

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

/// Length of the handshake context (`tag | client_id | server_id | channel | transport`).
const CTX_LEN: usize = 8 + 4 * 4;

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

/// HKDF-Extract (RFC 5869, section 2.2) with HMAC-SHA256: the pseudorandom key.
pub fn hkdf_extract(h: &impl HmacSha256, salt: &[u8], ikm: &[u8]) -> Option<Mac> {
    h.mac(salt, &[ikm])
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

/// The inputs of one handshake, as both ends see them.
/// Not `Debug`: it holds the secret.
#[derive(Clone, Copy)]
pub struct Handshake<'a> {
    /// The cluster's shared secret.
    pub secret: &'a [u8],
    /// The cluster tag ([`cluster_tag`]).
    pub tag: u64,
    /// The host that connected.
    pub client_id: u32,
    /// The host it connected to.
    pub server_id: u32,
    /// HELLO's channel (data or heartbeat connection).
    pub channel: u32,
    /// The transport mode both ends are configured with (`abi::TRANSPORT_*`).
    pub transport: u32,
    /// The client's nonce (HELLO).
    pub nonce_c: Nonce,
    /// The server's nonce (CHALLENGE).
    pub nonce_s: Nonce,
}

impl Handshake<'_> {
    /// `tag | client_id | server_id | channel | transport`.
    fn ctx(&self) -> [u8; CTX_LEN] {
        let mut c = [0u8; CTX_LEN];
        let fields: [&[u8]; 5] = [
            &self.tag.to_le_bytes(),
            &self.client_id.to_le_bytes(),
            &self.server_id.to_le_bytes(),
            &self.channel.to_le_bytes(),
            &self.transport.to_le_bytes(),
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

    /// The server's MAC, sent in CHALLENGE.
    pub fn server_mac(&self, h: &impl HmacSha256) -> Option<Mac> {
        h.mac(self.secret, &[SERVER_LABEL, &self.ctx(), &self.nonce_c, &self.nonce_s])
    }

    /// The client's MAC, sent in AUTH.
    pub fn client_mac(&self, h: &impl HmacSha256) -> Option<Mac> {
        h.mac(self.secret, &[CLIENT_LABEL, &self.ctx(), &self.nonce_s, &self.nonce_c])
    }

    /// Whether `mac` is the server's MAC (constant-time comparison).
    pub fn verify_server_mac(&self, h: &impl HmacSha256, mac: &Mac) -> bool {
        self.server_mac(h).is_some_and(|m| constant_time_eq(mac, &m))
    }

    /// Whether `mac` is the client's MAC (constant-time comparison).
    pub fn verify_client_mac(&self, h: &impl HmacSha256, mac: &Mac) -> bool {
        self.client_mac(h).is_some_and(|m| constant_time_eq(mac, &m))
    }

    /// The connection's keys: client-to-server into `c2s`, server-to-client into `s2c`
    /// (written in place, so that the caller decides where keys live and how they are
    /// wiped). `None` if the primitive failed; the keys are then zero.
    pub fn session_keys(&self, h: &impl HmacSha256, c2s: &mut Key, s2c: &mut Key) -> Option<()> {
        let mut salt = [0u8; 2 * NONCE_LEN];
        let (a, b) = salt.split_at_mut(NONCE_LEN);
        a.copy_from_slice(&self.nonce_c);
        b.copy_from_slice(&self.nonce_s);
        let mut prk = hkdf_extract(h, &salt, self.secret);
        let ctx = self.ctx();
        let mut info = [0u8; 10 + CTX_LEN];
        let r = prk.as_ref().and_then(|prk| {
            for (label, out) in [(C2S_LABEL, &mut *c2s), (S2C_LABEL, &mut *s2c)] {
                let (l, c) = info.split_at_mut(label.len());
                l.copy_from_slice(label);
                c.get_mut(..CTX_LEN)?.copy_from_slice(&ctx);
                hkdf_expand(h, prk, info.get(..label.len() + CTX_LEN)?, out)?;
            }
            Some(())
        });
        if let Some(p) = prk.as_mut() {
            wipe(p);
        }
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
            let prk = hkdf_extract(&HostHmac, salt, ikm).unwrap();
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
            let prk = hkdf_extract(&HostHmac, salt, ikm).unwrap();
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

    fn sample<'a>(secret: &'a [u8]) -> Handshake<'a> {
        Handshake {
            secret,
            tag: 0x0102_0304_0506_0708,
            client_id: 3,
            server_id: 5,
            channel: 0,
            transport: 1,
            nonce_c: [1; 16],
            nonce_s: [2; 16],
        }
    }

    #[test]
    fn handshake_mac_layout() {
        let hs = sample(b"s3cret");
        let mut ctx = Vec::new();
        ctx.extend_from_slice(&hs.tag.to_le_bytes());
        ctx.extend_from_slice(&3u32.to_le_bytes());
        ctx.extend_from_slice(&5u32.to_le_bytes());
        ctx.extend_from_slice(&0u32.to_le_bytes());
        ctx.extend_from_slice(&1u32.to_le_bytes());
        let msg = [b"fvp-server".as_slice(), &ctx, &[1; 16], &[2; 16]].concat();
        assert_eq!(hs.server_mac(&HostHmac), HostHmac.mac(b"s3cret", &[&msg]));
        let msg = [b"fvp-client".as_slice(), &ctx, &[2; 16], &[1; 16]].concat();
        assert_eq!(hs.client_mac(&HostHmac), HostHmac.mac(b"s3cret", &[&msg]));
        let m = hs.server_mac(&HostHmac).unwrap();
        assert!(hs.verify_server_mac(&HostHmac, &m));
        assert!(!hs.verify_client_mac(&HostHmac, &m));
        assert!(!hs.verify_server_mac(&Failing, &m));
    }

    #[test]
    fn session_keys_layout() {
        let hs = sample(b"s3cret");
        let (mut c2s, mut s2c) = ([0u8; 32], [0u8; 32]);
        hs.session_keys(&HostHmac, &mut c2s, &mut s2c).unwrap();
        let salt = [[1u8; 16], [2u8; 16]].concat();
        let kdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), b"s3cret");
        let ctx = hs.ctx();
        let (mut want_c, mut want_s) = ([0u8; 32], [0u8; 32]);
        kdf.expand(&[b"fvp-v6 c2s".as_slice(), &ctx].concat(), &mut want_c).unwrap();
        kdf.expand(&[b"fvp-v6 s2c".as_slice(), &ctx].concat(), &mut want_s).unwrap();
        assert_eq!((c2s, s2c), (want_c, want_s));
        assert_ne!(c2s, s2c);
        let (mut a, mut b) = ([9u8; 32], [9u8; 32]);
        assert_eq!(hs.session_keys(&Failing, &mut a, &mut b), None);
        assert_eq!((a, b), ([0; 32], [0; 32]));
    }

    /// Every input of the handshake changes both MACs and both keys; the two MACs and the
    /// two keys differ from each other.
    #[test]
    fn macs_and_keys_depend_on_every_input() {
        let base = sample(b"cluster secret");
        let keys = |hs: &Handshake<'_>| {
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            hs.session_keys(&HostHmac, &mut a, &mut b).unwrap();
            (a, b)
        };
        let (bs, bc, bk) = (base.server_mac(&HostHmac), base.client_mac(&HostHmac), keys(&base));
        assert_ne!(bs, bc);
        let variants = [
            Handshake { secret: b"cluster secreT", ..base },
            Handshake { tag: base.tag ^ 1, ..base },
            Handshake { client_id: 4, ..base },
            Handshake { server_id: 6, ..base },
            Handshake { client_id: 5, server_id: 3, ..base },
            Handshake { channel: 1, ..base },
            Handshake { transport: 0, ..base },
            Handshake { nonce_c: [3; 16], ..base },
            Handshake { nonce_s: [3; 16], ..base },
            Handshake { nonce_c: base.nonce_s, nonce_s: base.nonce_c, ..base },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.server_mac(&HostHmac), bs, "server mac, variant {i}");
            assert_ne!(v.client_mac(&HostHmac), bc, "client mac, variant {i}");
            let k = keys(v);
            assert_ne!(k.0, bk.0, "c2s key, variant {i}");
            assert_ne!(k.1, bk.1, "s2c key, variant {i}");
        }
        // Equal nonces: only the label tells the two MACs apart.
        let same = Handshake { nonce_s: base.nonce_c, ..base };
        assert_ne!(same.server_mac(&HostHmac), same.client_mac(&HostHmac));
        let k = keys(&same);
        assert_ne!(k.0, k.1);
    }

    proptest! {
        #[test]
        fn hkdf_matches_the_crate_for_any_input(salt in proptest::collection::vec(any::<u8>(), 0..80),
                                               ikm in proptest::collection::vec(any::<u8>(), 0..80),
                                               info in proptest::collection::vec(any::<u8>(), 0..80),
                                               len in 0usize..200) {
            let prk = hkdf_extract(&HostHmac, &salt, &ikm).unwrap();
            let mut ours = std::vec![0u8; len];
            hkdf_expand(&HostHmac, &prk, &info, &mut ours).unwrap();
            let mut theirs = std::vec![0u8; len];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm).expand(&info, &mut theirs).unwrap();
            prop_assert_eq!(ours, theirs);
        }
    }
}
