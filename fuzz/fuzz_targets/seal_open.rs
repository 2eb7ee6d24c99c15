// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the sealing of replication messages (`logic/seal.rs`): `open_message` over
//! arbitrary bytes, and `seal_message` then `open_message` of arbitrary messages, with
//! ChaCha20-Poly1305 from the `chacha20poly1305` crate behind the logic's `Aead` trait
//! (`fvp_fuzz::aead::HostAead`: the logic's `seal::host` adapter, which is test-only
//! there) and a fixed key (`fvp_fuzz::seeds::SEAL_KEY`).
//!
//! Input: one mode byte (bit 0: `Transport::Encrypted`, else `Authenticated`), the seq
//! (u64, little-endian), the position of the byte to alter (u16, little-endian, modulo
//! the sealed message's length), the value to xor it with (0 is taken as 0x01), then
//! the message.
//!
//! Checks:
//! - `open_message` of the message as received (header, payload, tag) never panics:
//!   `ShortHeader` when shorter than a header and a tag, otherwise `BadTag` leaving the
//!   bytes as they were, or `Ok`, and then sealing the opened message again gives back
//!   the bytes received (the seeds are real sealed messages, so `Ok` is reached).
//! - The message taken as header and payload, with room for the tag: `seal_message`
//!   refuses it only when shorter than a header; the sealed message keeps the header in
//!   clear (and the payload too when authenticated), opens with the same key, seq and
//!   transport, and gives back the message.
//! - The sealed message with the one byte altered (header, payload or tag), opened with
//!   another seq, another key, or (when it has a payload) the other transport, is
//!   refused with `BadTag`, and its bytes are left as they were.
//!
//! With no payload, both transports authenticate the same bytes (the header) with
//! nothing to encrypt, so such a message opens in either: a receiver learns the
//! transport from the cluster settings and HELLO, not from the message.

#![no_main]

use fvp_fuzz::aead::HostAead;
use fvp_fuzz::seeds::SEAL_KEY;
use fvp_logic::seal::{open_message, seal_message, Transport, TAG_LEN};
use fvp_logic::wire::{WireError, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

const PREFIX: usize = 1 + 8 + 2 + 1;

fn other(t: Transport) -> Transport {
    match t {
        Transport::Authenticated => Transport::Encrypted,
        Transport::Encrypted => Transport::Authenticated,
    }
}

/// Opening `msg` this way must fail with `BadTag` and change nothing.
fn refused(key: &[u8; 32], t: Transport, seq: u64, msg: &[u8], what: &str) {
    let mut x = msg.to_vec();
    assert_eq!(open_message(&HostAead, key, t, seq, &mut x), Err(WireError::BadTag), "{what}");
    assert_eq!(x, msg, "{what}: a refused message was changed");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PREFIX {
        return;
    }
    let (head, msg) = data.split_at(PREFIX);
    let t = if head[0] & 1 != 0 { Transport::Encrypted } else { Transport::Authenticated };
    let seq = u64::from_le_bytes(head[1..9].try_into().unwrap());
    let at = usize::from(u16::from_le_bytes([head[9], head[10]]));
    let xor = if head[11] == 0 { 1 } else { head[11] };

    // 1. As received.
    let mut raw = msg.to_vec();
    match open_message(&HostAead, &SEAL_KEY, t, seq, &mut raw) {
        Err(WireError::ShortHeader) => {
            assert!(msg.len() < HEADER_LEN + TAG_LEN);
            assert_eq!(raw, msg);
        }
        Err(WireError::BadTag) => {
            assert!(msg.len() >= HEADER_LEN + TAG_LEN);
            assert_eq!(raw, msg, "a refused message was changed");
        }
        Ok(()) => {
            assert!(msg.len() >= HEADER_LEN + TAG_LEN);
            assert_eq!(raw[..HEADER_LEN], msg[..HEADER_LEN], "the header is never encrypted");
            if t == Transport::Authenticated {
                assert_eq!(raw[..raw.len() - TAG_LEN], msg[..msg.len() - TAG_LEN]);
            }
            let mut again = raw.clone();
            again[msg.len() - TAG_LEN..].fill(0);
            seal_message(&HostAead, &SEAL_KEY, t, seq, &mut again).unwrap();
            assert_eq!(again, msg, "an opened message seals back to what was received");
        }
        Err(e) => panic!("open_message: unexpected {e:?}"),
    }

    // 2. Sealed here, then opened.
    let mut sealed = msg.to_vec();
    sealed.extend_from_slice(&[0; TAG_LEN]);
    if msg.len() < HEADER_LEN {
        assert_eq!(seal_message(&HostAead, &SEAL_KEY, t, seq, &mut sealed), Err(WireError::ShortHeader));
        return;
    }
    seal_message(&HostAead, &SEAL_KEY, t, seq, &mut sealed).expect("a whole header seals");
    assert_eq!(sealed[..HEADER_LEN], msg[..HEADER_LEN], "the header stays in clear");
    if t == Transport::Authenticated {
        assert_eq!(sealed[..msg.len()], *msg, "authenticated: the payload stays in clear");
    }
    let mut opened = sealed.clone();
    assert_eq!(open_message(&HostAead, &SEAL_KEY, t, seq, &mut opened), Ok(()), "a sealed message opens");
    assert_eq!(opened[..msg.len()], *msg, "and gives back the message");

    // 3. Altered, or opened with something else.
    let mut altered = sealed.clone();
    let at = at % altered.len();
    altered[at] ^= xor;
    refused(&SEAL_KEY, t, seq, &altered, "one byte altered");
    refused(&SEAL_KEY, t, seq.wrapping_add(1), &sealed, "the next seq");
    let mut key = SEAL_KEY;
    key[at % key.len()] ^= xor;
    refused(&key, t, seq, &sealed, "another key");
    if msg.len() > HEADER_LEN {
        refused(&SEAL_KEY, other(t), seq, &sealed, "the other transport");
    } else {
        // Nothing to encrypt: the same AEAD input either way.
        let mut x = sealed.clone();
        assert_eq!(open_message(&HostAead, &SEAL_KEY, other(t), seq, &mut x), Ok(()));
    }
});
