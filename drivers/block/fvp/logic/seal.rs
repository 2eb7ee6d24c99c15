// SPDX-License-Identifier: GPL-2.0

//! Sealing of replication messages after the handshake (`docs/replication.md`,
//! section 2).
//!
//! Every message after WELCOME carries [`super::wire::FLAG_SEALED`], a zero `crc` field,
//! and [`TAG_LEN`] bytes of ChaCha20-Poly1305 tag after its payload. The key is the
//! connection's key for the direction ([`super::auth::Handshake::session_keys`]); the
//! nonce is the message's seq, which the receiver requires to be the previous one plus
//! one ([`super::wire::Session::check_incoming`]). So a message altered, replayed,
//! reordered, dropped (the next one fails) or moved to another connection or direction
//! is refused.
//!
//! - [`Transport::Authenticated`]: the whole message (header and payload) is the
//!   associated data, nothing is encrypted: the tag is a Poly1305 MAC.
//! - [`Transport::Encrypted`]: the header is the associated data and the payload is
//!   encrypted.
//!
//! The primitive is not written here: the kernel uses lib/crypto's
//! `chacha20poly1305_encrypt`/`_decrypt`, the host tests the `chacha20poly1305` crate,
//! both behind [`Aead`].

use super::auth::Key;
use super::wire::{WireError, HEADER_LEN};

/// Length of a message's tag.
pub const TAG_LEN: usize = 16;

/// `transport` of the cluster settings and of HELLO: every message authenticated.
pub const TRANSPORT_AUTHENTICATED: u32 = 0;
/// `transport` of the cluster settings and of HELLO: payloads encrypted too.
pub const TRANSPORT_ENCRYPTED: u32 = 1;

/// How messages are protected after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Header and payload authenticated, in clear.
    Authenticated,
    /// Header authenticated, payload encrypted and authenticated.
    Encrypted,
}

impl Transport {
    /// The mode of a `transport` value; `None` for an unknown one.
    pub fn from_u32(v: u32) -> Option<Transport> {
        match v {
            TRANSPORT_AUTHENTICATED => Some(Transport::Authenticated),
            TRANSPORT_ENCRYPTED => Some(Transport::Encrypted),
            _ => None,
        }
    }

    /// The `transport` value.
    pub fn as_u32(self) -> u32 {
        match self {
            Transport::Authenticated => TRANSPORT_AUTHENTICATED,
            Transport::Encrypted => TRANSPORT_ENCRYPTED,
        }
    }

    /// The mode's name in the cluster file and the status.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Authenticated => "authenticated",
            Transport::Encrypted => "encrypted",
        }
    }
}

/// ChaCha20-Poly1305 (RFC 8439) with a 64-bit nonce, laid out as lib/crypto's
/// `chacha20poly1305_encrypt` (and WireGuard) lay it out: the 96-bit RFC nonce is four
/// zero bytes then the nonce, little-endian.
pub trait Aead {
    /// `sealed` is the text followed by [`TAG_LEN`] bytes of room (callers guarantee
    /// the length): encrypts the text in place and writes the tag over `ad` and it.
    fn seal(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]);

    /// `sealed` is the text followed by its tag: whether the tag is right for `ad` and
    /// the text; only then is the text decrypted in place.
    fn open(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool;
}

/// Where a message of `len` bytes (tag included) splits into associated data and
/// sealed part.
fn split_point(transport: Transport, len: usize) -> Result<usize, WireError> {
    if len < HEADER_LEN + TAG_LEN {
        return Err(WireError::ShortHeader);
    }
    Ok(match transport {
        Transport::Authenticated => len - TAG_LEN,
        Transport::Encrypted => HEADER_LEN,
    })
}

/// Seals message `seq` in `msg`: its header (already encoded with
/// [`super::wire::FLAG_SEALED`]) and payload, followed by [`TAG_LEN`] bytes of room
/// that receive the tag.
pub fn seal_message(
    aead: &impl Aead,
    key: &Key,
    transport: Transport,
    seq: u64,
    msg: &mut [u8],
) -> Result<(), WireError> {
    let at = split_point(transport, msg.len())?;
    let (ad, sealed) = msg.split_at_mut(at);
    aead.seal(key, seq, ad, sealed);
    Ok(())
}

/// Opens message `seq` in `msg` (header, payload, tag): `Err(BadTag)` unless the tag is
/// right; then the payload is in clear in place.
pub fn open_message(
    aead: &impl Aead,
    key: &Key,
    transport: Transport,
    seq: u64,
    msg: &mut [u8],
) -> Result<(), WireError> {
    let at = split_point(transport, msg.len())?;
    let (ad, sealed) = msg.split_at_mut(at);
    if aead.open(key, seq, ad, sealed) {
        Ok(())
    } else {
        Err(WireError::BadTag)
    }
}

/// ChaCha20-Poly1305 by the `chacha20poly1305` crate, for host tests.
#[cfg(test)]
pub(crate) mod host {
    use super::{Aead, Key, TAG_LEN};
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

    /// [`Aead`] on the host.
    pub(crate) struct HostAead;

    fn nonce_of(n: u64) -> Nonce {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        b.into()
    }

    impl Aead for HostAead {
        fn seal(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) {
            let c = ChaCha20Poly1305::new(key.into());
            let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
            let t = c.encrypt_in_place_detached(&nonce_of(nonce), ad, text).expect("seal");
            tag.copy_from_slice(&t);
        }

        fn open(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool {
            let c = ChaCha20Poly1305::new(key.into());
            let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
            let tag = Tag::clone_from_slice(tag);
            c.decrypt_in_place_detached(&nonce_of(nonce), ad, text, &tag).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host::HostAead;
    use super::*;
    use crate::logic::wire::{Message, FLAG_SEALED};
    use proptest::prelude::*;
    use std::vec::Vec;

    const KEY: Key = [0x42; 32];

    /// A REPLICATE as the kernel lays it out before sealing: header, payload, room.
    fn replicate(seq: u64, fill: u8) -> Vec<u8> {
        let data = [fill; 512];
        let m = Message::Replicate { volume_id: 1, block: 7, version: 9, data: &data };
        let e = m.encode_sealed(2, seq).unwrap();
        assert_eq!(e.header().flags, FLAG_SEALED);
        assert_eq!(e.header().crc, 0);
        let mut buf = e.as_bytes().to_vec();
        buf.extend_from_slice(&data);
        buf.extend_from_slice(&[0; TAG_LEN]);
        buf
    }

    #[test]
    fn transport_values() {
        for t in [Transport::Authenticated, Transport::Encrypted] {
            assert_eq!(Transport::from_u32(t.as_u32()), Some(t));
        }
        assert_eq!(Transport::from_u32(2), None);
        assert_eq!(Transport::Authenticated.as_u32(), 0, "zeroed settings mean authenticated");
    }

    #[test]
    fn authenticated_keeps_the_payload_in_clear_and_encrypted_does_not() {
        let clear = replicate(3, 0xab);
        let mut a = clear.clone();
        seal_message(&HostAead, &KEY, Transport::Authenticated, 3, &mut a).unwrap();
        assert_eq!(a[..a.len() - TAG_LEN], clear[..clear.len() - TAG_LEN]);
        let mut e = clear.clone();
        seal_message(&HostAead, &KEY, Transport::Encrypted, 3, &mut e).unwrap();
        assert_eq!(e[..HEADER_LEN], clear[..HEADER_LEN], "the header stays readable");
        assert_ne!(e[HEADER_LEN..e.len() - TAG_LEN], clear[HEADER_LEN..clear.len() - TAG_LEN]);
        for (mut m, t) in [(a, Transport::Authenticated), (e, Transport::Encrypted)] {
            open_message(&HostAead, &KEY, t, 3, &mut m).unwrap();
            assert_eq!(m[..m.len() - TAG_LEN], clear[..clear.len() - TAG_LEN], "{t:?}");
        }
    }

    #[test]
    fn wrong_seq_key_or_mode_is_refused() {
        for t in [Transport::Authenticated, Transport::Encrypted] {
            let mut m = replicate(5, 1);
            seal_message(&HostAead, &KEY, t, 5, &mut m).unwrap();
            // Replayed as another message of the connection (the receiver expects a later
            // seq), on another connection or direction (another key), or in the other mode.
            for (key, seq, mode) in [
                (KEY, 6, t),
                (KEY, 4, t),
                ([0x43; 32], 5, t),
                (KEY, 5, if t == Transport::Encrypted { Transport::Authenticated } else { Transport::Encrypted }),
            ] {
                let mut x = m.clone();
                assert_eq!(open_message(&HostAead, &key, mode, seq, &mut x), Err(WireError::BadTag));
            }
            let mut ok = m.clone();
            assert_eq!(open_message(&HostAead, &KEY, t, 5, &mut ok), Ok(()));
        }
    }

    #[test]
    fn too_short_is_refused() {
        let mut m = [0u8; HEADER_LEN + TAG_LEN - 1];
        assert_eq!(seal_message(&HostAead, &KEY, Transport::Encrypted, 1, &mut m), Err(WireError::ShortHeader));
        assert_eq!(open_message(&HostAead, &KEY, Transport::Authenticated, 1, &mut m), Err(WireError::ShortHeader));
    }

    proptest! {
        /// Any flipped bit anywhere in a sealed message (header, payload, tag) is caught.
        #[test]
        fn any_altered_bit_is_refused(at in 0usize..HEADER_LEN + 512 + TAG_LEN, bit in 0u8..8, enc in any::<bool>()) {
            let t = if enc { Transport::Encrypted } else { Transport::Authenticated };
            let mut m = replicate(9, 0x5a);
            seal_message(&HostAead, &KEY, t, 9, &mut m).unwrap();
            m[at] ^= 1 << bit;
            prop_assert_eq!(open_message(&HostAead, &KEY, t, 9, &mut m), Err(WireError::BadTag));
        }
    }
}
