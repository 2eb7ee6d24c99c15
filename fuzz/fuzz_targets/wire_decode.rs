// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the receive path of the replication protocol: header decode, session check
//! and message decode, over a stream of messages fed to one server-side and one
//! client-side session, as a connection would see them.
//!
//! Input: one mode byte, then messages back to back (header, then as many payload bytes
//! as the header says, or what is left). Mode bit 0 set: the target writes the correct
//! checksum into each header before decoding (zero for a sealed one), so the fuzzer
//! reaches the payload checks without having to forge CRCs. Mode bits 1..: the host id
//! the client session expects.
//!
//! Sealed messages (`FLAG_SEALED`, after the handshake) appear without their tag: the
//! target models what the receiver does once a tag verified (`logic/seal.rs` and its
//! property tests cover the tags).
//!
//! Beyond "no panic", it checks: an accepted message's checksum matches; it re-encodes
//! to exactly the bytes received; a session accepts exactly seqs 1, 2, 3, … and leaves
//! itself unchanged when it refuses a message.

#![no_main]

use fvp_logic::crc32c::crc32c;
use fvp_logic::wire::{Header, Message, Session, FLAG_SEALED, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fn feed(s: &mut Session, h: &Header, m: Option<&Message<'_>>) {
    let before = *s;
    match s.check_incoming(h) {
        Ok(()) => {
            assert_eq!(h.seq, before.next_rx_seq());
            // Sealed exactly after the handshake.
            assert_eq!(h.sealed(), before.is_established());
            assert_eq!(s.next_rx_seq(), before.next_rx_seq() + 1);
            if let Some(p) = before.peer_id() {
                assert_eq!(h.sender, p);
            }
            // Take the handshake step as if the MACs had verified.
            let stepped = match m {
                Some(Message::Hello { host_id, .. }) => s.hello_received(*host_id),
                Some(Message::Challenge { .. }) => s.challenge_received(),
                Some(Message::Auth { .. }) => s.auth_verified(),
                Some(Message::Welcome) => s.welcome_received(),
                _ => Ok(()),
            };
            let _ = stepped;
        }
        Err(_) => assert_eq!(*s, before),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let fix_crc = mode & 1 != 0;
    let mut server = Session::server();
    let mut client = Session::client(u32::from(mode >> 1));
    while rest.len() >= HEADER_LEN {
        let (head, tail) = rest.split_at(HEADER_LEN);
        let mut hdr = [0u8; HEADER_LEN];
        hdr.copy_from_slice(head);
        let declared = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
        let (payload, next) = tail.split_at(declared.min(tail.len()));
        rest = next;
        let sealed = u16::from_le_bytes([hdr[6], hdr[7]]) & FLAG_SEALED != 0;
        if fix_crc && sealed {
            hdr[24..28].fill(0);
        } else if fix_crc {
            let mut z = hdr.to_vec();
            z[24..28].fill(0);
            z.extend_from_slice(payload);
            hdr[24..28].copy_from_slice(&crc32c(&z).to_le_bytes());
        }
        let Ok(h) = Header::decode(&hdr) else { continue };
        let decoded = Message::decode(&h, payload);
        if let Ok(m) = &decoded {
            let mut z = hdr.to_vec();
            z[24..28].fill(0);
            z.extend_from_slice(payload);
            if h.sealed() {
                assert_eq!(h.crc, 0, "accepted a sealed message with a checksum");
            } else {
                assert_eq!(crc32c(&z), h.crc, "accepted a message with a bad checksum");
            }
            let e = if h.sealed() { m.encode_sealed(h.sender, h.seq) } else { m.encode(h.sender, h.seq) }
                .expect("an accepted message re-encodes");
            let mut again = e.as_bytes().to_vec();
            again.extend_from_slice(m.data());
            assert_eq!(&again[..HEADER_LEN], &hdr[..]);
            assert_eq!(&again[HEADER_LEN..], payload);
        }
        let m = decoded.ok();
        feed(&mut server, &h, m.as_ref());
        feed(&mut client, &h, m.as_ref());
    }
});
