// SPDX-License-Identifier: GPL-2.0

//! SHA-256, HMAC-SHA256 and the MACs of the replication handshake.
//!
//! The handshake (`docs/replication.md`, section 2) is a mutual challenge-response keyed
//! by the cluster's shared secret, which never crosses the wire:
//!
//! - `mac_s = HMAC(secret, "fvp-server" | cluster_tag | client_id | server_id | channel | nonce_c | nonce_s)`
//!   ([`server_mac`]), sent by the server in CHALLENGE;
//! - `mac_c = HMAC(secret, "fvp-client" | cluster_tag | client_id | server_id | channel | nonce_s | nonce_c)`
//!   ([`client_mac`]), sent by the client in AUTH;
//!
//! with `cluster_tag` as a little-endian `u64` and the ids and the channel (HELLO's:
//! data or heartbeat connection) as little-endian `u32`. The
//! label makes a server's MAC useless as a client's and the nonce order differs too, so a
//! peer cannot reflect one side's MAC back at it. MACs are compared with
//! [`constant_time_eq`].
//!
//! Everything here is plain `core`: no allocation, no `unsafe`, no panic on any input.

/// Length of a SHA-256 digest and of an HMAC-SHA256 tag.
pub const DIGEST_LEN: usize = 32;
/// Length of a handshake nonce.
pub const NONCE_LEN: usize = 16;
/// SHA-256's block length (also HMAC's key block).
pub const BLOCK_LEN: usize = 64;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_LEN];
/// An HMAC-SHA256 tag.
pub type Mac = [u8; DIGEST_LEN];

/// Label that starts the server's MAC input.
pub const SERVER_LABEL: &[u8] = b"fvp-server";
/// Label that starts the client's MAC input.
pub const CLIENT_LABEL: &[u8] = b"fvp-client";

// Eight to a row, as FIPS 180-4 prints them.
#[rustfmt::skip]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// An incremental SHA-256 computation (FIPS 180-4).
#[derive(Clone)]
pub struct Sha256 {
    /// Chaining state.
    h: [u32; 8],
    /// Bytes of the current, incomplete block.
    buf: [u8; BLOCK_LEN],
    /// How many bytes of `buf` are filled (always below `BLOCK_LEN` between calls).
    buf_len: usize,
    /// Total bytes fed, modulo 2^64 (SHA-256 hashes the length in bits modulo 2^64).
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// A computation over no bytes yet.
    pub const fn new() -> Self {
        Sha256 { h: H0, buf: [0; BLOCK_LEN], buf_len: 0, total: 0 }
    }

    /// Feeds `data`; returns `self` for chaining.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.total = self.total.wrapping_add(data.len() as u64);
        let mut rest = data;
        if self.buf_len > 0 {
            let room = BLOCK_LEN.saturating_sub(self.buf_len);
            let take = room.min(rest.len());
            let (head, tail) = rest.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.buf_len..self.buf_len + take) {
                dst.copy_from_slice(head);
            }
            self.buf_len += take;
            rest = tail;
            if self.buf_len < BLOCK_LEN {
                return self;
            }
            let block = self.buf;
            compress(&mut self.h, &block);
            self.buf_len = 0;
        }
        let (blocks, tail) = rest.as_chunks::<BLOCK_LEN>();
        for block in blocks {
            compress(&mut self.h, block);
        }
        if let Some(dst) = self.buf.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
            self.buf_len = tail.len();
        }
        self
    }

    /// The digest of everything fed.
    pub fn finish(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.total.wrapping_mul(8);
        // Padding: 0x80, zeros up to 56 mod 64, then the length in bits, big-endian.
        let pad_len = if self.buf_len < 56 { 56 - self.buf_len } else { 120 - self.buf_len };
        let mut pad = [0u8; BLOCK_LEN + 8];
        pad[0] = 0x80;
        let total = self.total;
        self.update(pad.get(..pad_len).unwrap_or(&[]));
        self.update(&bits.to_be_bytes());
        // `update` counted the padding; that no longer matters.
        self.total = total;
        let mut out = [0u8; DIGEST_LEN];
        for (o, h) in out.as_chunks_mut::<4>().0.iter_mut().zip(self.h.iter()) {
            *o = h.to_be_bytes();
        }
        out
    }
}

/// SHA-256's compression function: absorbs one block into `h`.
fn compress(h: &mut [u32; 8], block: &[u8; BLOCK_LEN]) {
    let mut w = [0u32; 64];
    for (wi, b) in w.iter_mut().zip(block.as_chunks::<4>().0) {
        *wi = u32::from_be_bytes(*b);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for (k, wi) in K.iter().zip(w.iter()) {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(*k).wrapping_add(*wi);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (hi, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *hi = hi.wrapping_add(v);
    }
}

/// The SHA-256 digest of `data`.
pub fn sha256(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut s = Sha256::new();
    s.update(data);
    s.finish()
}

/// An incremental HMAC-SHA256 computation (RFC 2104).
#[derive(Clone)]
pub struct HmacSha256 {
    /// Hash of `(key ^ ipad) | message`.
    inner: Sha256,
    /// Hash started with `key ^ opad`.
    outer: Sha256,
}

impl HmacSha256 {
    /// Starts a MAC keyed by `key` (of any length; keys longer than a block are hashed).
    pub fn new(key: &[u8]) -> Self {
        let mut k = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            let d = sha256(key);
            if let Some(dst) = k.get_mut(..DIGEST_LEN) {
                dst.copy_from_slice(&d);
            }
        } else if let Some(dst) = k.get_mut(..key.len()) {
            dst.copy_from_slice(key);
        }
        let mut ipad = [0x36u8; BLOCK_LEN];
        let mut opad = [0x5cu8; BLOCK_LEN];
        for ((i, o), kb) in ipad.iter_mut().zip(opad.iter_mut()).zip(k.iter()) {
            *i ^= kb;
            *o ^= kb;
        }
        let mut inner = Sha256::new();
        inner.update(&ipad);
        let mut outer = Sha256::new();
        outer.update(&opad);
        HmacSha256 { inner, outer }
    }

    /// Feeds `data`; returns `self` for chaining.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.inner.update(data);
        self
    }

    /// The MAC of everything fed.
    pub fn finish(self) -> Mac {
        let inner = self.inner.finish();
        let mut outer = self.outer;
        outer.update(&inner);
        outer.finish()
    }
}

/// The HMAC-SHA256 of `data` keyed by `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Mac {
    let mut m = HmacSha256::new(key);
    m.update(data);
    m.finish()
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

/// The cluster tag of HELLO: the first 8 bytes of SHA-256 of the cluster name, read as a
/// little-endian `u64`.
pub fn cluster_tag(name: &[u8]) -> u64 {
    let d = sha256(name);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// MAC over `label | tag | client_id | server_id | channel | first | second`.
#[allow(clippy::too_many_arguments)]
fn handshake_mac(
    label: &[u8],
    secret: &[u8],
    tag: u64,
    client_id: u32,
    server_id: u32,
    channel: u32,
    first: &Nonce,
    second: &Nonce,
) -> Mac {
    let mut m = HmacSha256::new(secret);
    m.update(label)
        .update(&tag.to_le_bytes())
        .update(&client_id.to_le_bytes())
        .update(&server_id.to_le_bytes())
        .update(&channel.to_le_bytes())
        .update(first)
        .update(second);
    m.finish()
}

/// The server's MAC, sent in CHALLENGE:
/// `HMAC(secret, "fvp-server" | tag | client_id | server_id | channel | nonce_c | nonce_s)`.
pub fn server_mac(
    secret: &[u8],
    tag: u64,
    client_id: u32,
    server_id: u32,
    channel: u32,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
) -> Mac {
    handshake_mac(SERVER_LABEL, secret, tag, client_id, server_id, channel, nonce_c, nonce_s)
}

/// The client's MAC, sent in AUTH:
/// `HMAC(secret, "fvp-client" | tag | client_id | server_id | channel | nonce_s | nonce_c)`.
pub fn client_mac(
    secret: &[u8],
    tag: u64,
    client_id: u32,
    server_id: u32,
    channel: u32,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
) -> Mac {
    handshake_mac(CLIENT_LABEL, secret, tag, client_id, server_id, channel, nonce_s, nonce_c)
}

/// Whether `mac` is the server's MAC for these inputs (constant-time comparison).
#[allow(clippy::too_many_arguments)]
pub fn verify_server_mac(
    mac: &Mac,
    secret: &[u8],
    tag: u64,
    client_id: u32,
    server_id: u32,
    channel: u32,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
) -> bool {
    constant_time_eq(mac, &server_mac(secret, tag, client_id, server_id, channel, nonce_c, nonce_s))
}

/// Whether `mac` is the client's MAC for these inputs (constant-time comparison).
#[allow(clippy::too_many_arguments)]
pub fn verify_client_mac(
    mac: &Mac,
    secret: &[u8],
    tag: u64,
    client_id: u32,
    server_id: u32,
    channel: u32,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
) -> bool {
    constant_time_eq(mac, &client_mac(secret, tag, client_id, server_id, channel, nonce_c, nonce_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        s.chunks(2).map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    #[test]
    fn sha256_fips_180_2_vectors() {
        assert_eq!(sha256(b"").to_vec(), hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assert_eq!(sha256(b"abc").to_vec(), hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert_eq!(
            sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_vec(),
            hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        );
        let mut s = Sha256::new();
        let chunk = [b'a'; 1000];
        for _ in 0..1000 {
            s.update(&chunk);
        }
        assert_eq!(s.finish().to_vec(), hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    }

    #[test]
    fn sha256_padding_boundaries() {
        // Lengths around the 55/56/64-byte padding edges, fed whole and byte by byte.
        let known: [(usize, &str); 4] = [
            (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
            (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
            (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
            (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        ];
        for (len, digest) in known {
            let data = std::vec![b'a'; len];
            assert_eq!(sha256(&data).to_vec(), hex(digest), "len {len}");
            let mut s = Sha256::new();
            for b in &data {
                s.update(core::slice::from_ref(b));
            }
            assert_eq!(s.finish().to_vec(), hex(digest), "len {len} bytewise");
        }
    }

    #[test]
    fn hmac_rfc4231() {
        // (key, data, full HMAC-SHA256); case 5 checks only a 128-bit prefix.
        let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
            (
                std::vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                std::vec![0xaa; 20],
                std::vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (1u8..=25).collect(),
                std::vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (std::vec![0x0c; 20], b"Test With Truncation".to_vec(), "a3b6167473100ee06e0c796c2955552b"),
            (
                std::vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                std::vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            let want = hex(want);
            let got = hmac_sha256(key, data);
            assert_eq!(&got[..want.len()], &want[..], "RFC 4231 case {}", i + 1);
            // Incremental, in uneven pieces.
            let mut m = HmacSha256::new(key);
            for piece in data.chunks(7) {
                m.update(piece);
            }
            assert_eq!(m.finish(), got, "RFC 4231 case {} incremental", i + 1);
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
    fn cluster_tag_is_le_prefix_of_sha256() {
        // SHA-256("abc") starts ba 78 16 bf 8f 01 cf ea.
        assert_eq!(cluster_tag(b"abc"), 0xeacf_018f_bf16_78ba);
        assert_ne!(cluster_tag(b"prod"), cluster_tag(b"prod2"));
    }

    #[test]
    fn handshake_mac_layout() {
        let secret = b"s3cret";
        let (tag, c, s) = (0x0102_0304_0506_0708u64, 3u32, 5u32);
        let (nc, ns) = ([1u8; 16], [2u8; 16]);
        let mut msg = Vec::new();
        msg.extend_from_slice(b"fvp-server");
        msg.extend_from_slice(&tag.to_le_bytes());
        msg.extend_from_slice(&c.to_le_bytes());
        msg.extend_from_slice(&s.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.extend_from_slice(&nc);
        msg.extend_from_slice(&ns);
        assert_eq!(server_mac(secret, tag, c, s, 0, &nc, &ns), hmac_sha256(secret, &msg));
        let mut msg = Vec::new();
        msg.extend_from_slice(b"fvp-client");
        msg.extend_from_slice(&tag.to_le_bytes());
        msg.extend_from_slice(&c.to_le_bytes());
        msg.extend_from_slice(&s.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.extend_from_slice(&ns);
        msg.extend_from_slice(&nc);
        assert_eq!(client_mac(secret, tag, c, s, 0, &nc, &ns), hmac_sha256(secret, &msg));
        let m = server_mac(secret, tag, c, s, 0, &nc, &ns);
        assert!(verify_server_mac(&m, secret, tag, c, s, 0, &nc, &ns));
        assert!(!verify_client_mac(&m, secret, tag, c, s, 0, &nc, &ns));
    }

    #[test]
    fn server_and_client_macs_differ_and_depend_on_every_input() {
        let secret: &[u8] = b"cluster secret";
        let (tag, c, s) = (42u64, 1u32, 2u32);
        let (nc, ns) = ([0x11u8; 16], [0x22u8; 16]);
        let base_s = server_mac(secret, tag, c, s, 0, &nc, &ns);
        let base_c = client_mac(secret, tag, c, s, 0, &nc, &ns);
        assert_ne!(base_s, base_c);
        // Equal nonces: only the label tells the two apart.
        assert_ne!(server_mac(secret, tag, c, s, 0, &nc, &nc), client_mac(secret, tag, c, s, 0, &nc, &nc));
        let mut nc2 = nc;
        nc2[15] ^= 1;
        let mut ns2 = ns;
        ns2[0] ^= 1;
        type Inputs<'a> = (&'a [u8], u64, u32, u32, Nonce, Nonce);
        let variants: [Inputs<'_>; 6] = [
            (b"cluster secreT", tag, c, s, nc, ns),
            (secret, tag ^ 1, c, s, nc, ns),
            (secret, tag, c + 1, s, nc, ns),
            (secret, tag, c, s + 1, nc, ns),
            (secret, tag, c, s, nc2, ns),
            (secret, tag, c, s, nc, ns2),
        ];
        for (i, (k, t, ci, si, a, b)) in variants.iter().enumerate() {
            assert_ne!(server_mac(k, *t, *ci, *si, 0, a, b), base_s, "server, input {i}");
            assert_ne!(client_mac(k, *t, *ci, *si, 0, a, b), base_c, "client, input {i}");
        }
        // Swapping the nonces does not turn one MAC into the other.
        assert_ne!(server_mac(secret, tag, c, s, 0, &ns, &nc), base_c);
        // Swapping client and server ids changes both.
        assert_ne!(server_mac(secret, tag, s, c, 0, &nc, &ns), base_s);
        assert_ne!(client_mac(secret, tag, s, c, 0, &nc, &ns), base_c);
        // So does the channel: a data connection's handshake is no heartbeat one's.
        assert_ne!(server_mac(secret, tag, c, s, 1, &nc, &ns), base_s);
        assert_ne!(client_mac(secret, tag, c, s, 1, &nc, &ns), base_c);
    }

    proptest! {
        #[test]
        fn incremental_sha256_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..400),
                                              cut in 0usize..400) {
            let cut = cut.min(data.len());
            let mut s = Sha256::new();
            s.update(&data[..cut]).update(&data[cut..]);
            prop_assert_eq!(s.finish(), sha256(&data));
        }
    }
}
