// SPDX-License-Identifier: GPL-2.0

//! The replication wire format: message headers, payloads and the per-connection
//! validator (`docs/replication.md`, sections 2 and 3).
//!
//! Every message is a 32-byte [`Header`] followed by `payload_len` bytes, all integers
//! little-endian. The header's CRC-32C covers the header (with its `crc` field as zero)
//! and the whole payload.
//!
//! # Sending
//!
//! A payload is a small fixed part, plus for REPLICATE the block's data and for DESTAGED
//! the `(block, version)` entries. [`Message::encode`] validates a message and returns an
//! [`Encoded`]: the header and the fixed part in one small buffer, with the checksum
//! already computed over the header, the fixed part *and* [`Message::data`]. The sender
//! writes [`Encoded::as_bytes`] and then `Message::data()` as they are, so a 4 KiB page is
//! sent without being copied. [`encode_message`] is the same for a fixed part the caller
//! laid out itself.
//!
//! # Receiving
//!
//! 1. Read [`HEADER_LEN`] bytes and [`Header::decode`] them: this checks magic, version,
//!    kind, flags, reserved, the sender's range and that `payload_len` is right for the
//!    kind, so the receiver knows how much to read before reading it.
//! 2. [`Session::check_incoming`]: sequence number, sender and whether the kind is allowed
//!    in this direction and state.
//! 3. Read `payload_len` bytes and [`Message::decode`] them: this checks the checksum, the
//!    zero padding and each field, and returns a [`Message`] borrowing the payload.
//! 4. During the handshake, check the message's contents (cluster tag, host, MAC; see
//!    [`super::auth`]) and call the matching [`Session`] step
//!    ([`Session::hello_received`], [`Session::challenge_received`],
//!    [`Session::auth_verified`], [`Session::welcome_received`]).
//!
//! Any error closes the connection; [`WireError::reason`] says why, for the log.
//!
//! Nothing here allocates or panics, whatever the input.

use super::auth::{Mac, Nonce, PublicKey, DIGEST_LEN, KEY_LEN, NONCE_LEN};
use super::crc32c::Crc32c;
use super::membership::JOINT_MAX;
use super::seal::Transport;
use core::fmt;

/// The header's magic, `"FVPR"` read as a little-endian `u32`.
pub const MAGIC: u32 = 0x5250_5646;
/// The protocol version this code speaks.
pub const VERSION: u8 = 7;
/// Length of a message header.
pub const HEADER_LEN: usize = 32;
/// Header flag of every message after the handshake: `crc` is zero and a
/// [`super::seal::TAG_LEN`]-byte tag follows the payload ([`super::seal`]).
pub const FLAG_SEALED: u16 = 1;
/// Largest payload of any message.
pub const MAX_PAYLOAD: usize = 4096 + 64;
/// Largest message, header included.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + MAX_PAYLOAD;
/// Most entries in one DESTAGED message.
pub const MAX_DESTAGED: usize = 256;
/// Length of one DESTAGED entry (`block u64, version u64`).
pub const DESTAGED_ENTRY_LEN: usize = 16;
/// Room for the entries of the largest DESTAGED message.
pub const DESTAGED_BUF_LEN: usize = MAX_DESTAGED * DESTAGED_ENTRY_LEN;
/// Largest fixed part of a payload (the part [`Encoded`] holds).
pub const MAX_FIXED_LEN: usize = 96;
/// Host ids are `1..=MAX_HOST_ID` (one bit each in `heard`, `fenced`, `recovering`).
pub const MAX_HOST_ID: u32 = 64;
/// Smallest block size a REPLICATE may carry.
pub const MIN_BLOCK_SIZE: u32 = 512;
/// Largest block size a REPLICATE may carry.
pub const MAX_BLOCK_SIZE: u32 = 4096;
/// Length of VOLUME_OPEN's NUL-padded name field.
pub const NAME_FIELD_LEN: usize = 32;
/// Length of VOLUME_OPEN's device identity field: the configured uuid, as the ABI
/// carries it.
pub const DEVICE_UUID_LEN: usize = super::abi::DEVICE_UUID_LEN;
/// Longest volume name (the name field always ends with a NUL).
pub const MAX_NAME_LEN: usize = NAME_FIELD_LEN - 1;
/// Largest errno an ACK's status may carry (as `-errno`).
pub const MAX_ERRNO: i32 = 4095;

/// Length of the fixed part of a REPLICATE payload, before the data.
pub const REPLICATE_FIXED_LEN: usize = 24;
/// Length of the fixed part of a DESTAGED payload, before the entries.
pub const DESTAGED_FIXED_LEN: usize = 8;

// Header field offsets.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_KIND: usize = 5;
const OFF_FLAGS: usize = 6;
const OFF_PAYLOAD_LEN: usize = 8;
const OFF_SENDER: usize = 12;
const OFF_SEQ: usize = 16;
const OFF_CRC: usize = 24;
const OFF_RESERVED: usize = 28;

/// Why a message, or a step of a connection, was refused.
///
/// Every variant is a reason to close the connection; [`WireError::reason`] is the text
/// for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than [`HEADER_LEN`] bytes where a header was expected.
    ShortHeader,
    /// The header does not start with [`MAGIC`].
    BadMagic,
    /// A protocol version other than [`VERSION`].
    BadVersion,
    /// A kind byte that names no [`Kind`].
    UnknownKind,
    /// Header flags other than [`FLAG_SEALED`], or a sealed header with a checksum.
    BadFlags,
    /// Header reserved field not zero.
    BadReserved,
    /// A sender or host id outside `1..=MAX_HOST_ID`.
    BadSender,
    /// `payload_len` above [`MAX_PAYLOAD`].
    PayloadTooLong,
    /// `payload_len` wrong for the kind.
    BadPayloadLength,
    /// A block size (REPLICATE data length, VOLUME_OPEN field) that is not a power of two
    /// in `MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE`.
    BadBlockSize,
    /// More than [`MAX_DESTAGED`] DESTAGED entries.
    TooManyEntries,
    /// The payload handed in is not `payload_len` bytes long.
    PayloadMismatch,
    /// The CRC-32C does not match.
    BadChecksum,
    /// A padding field not zero.
    NonZeroPad,
    /// HELLO's or CHALLENGE's host id differs from the header's sender.
    HostIdMismatch,
    /// A volume name that is empty, too long, not NUL-padded or has a byte outside
    /// `[A-Za-z0-9_.-]`.
    BadName,
    /// DESTAGED's count disagrees with its payload length.
    BadDestagedCount,
    /// VOLUME_OPEN's device size is less than one block.
    BadDeviceSize,
    /// DROP_RANGE with no block, or one past the last block number.
    BadRange,
    /// HELLO's channel is neither [`CHANNEL_DATA`] nor [`CHANNEL_HEARTBEAT`].
    BadChannel,
    /// ACK status neither 0 nor a negative errno.
    BadStatus,
    /// Encoding: the fixed part's length is wrong for the kind.
    BadFixedLength,
    /// Encoding: the output buffer is too small.
    BufferTooSmall,
    /// A sequence number that is not the previous one plus one (the first is 1).
    BadSeq,
    /// A sender other than the authenticated (or, for a client, the connected) peer.
    WrongSender,
    /// A kind the peer never sends in this direction.
    WrongDirection,
    /// A kind not allowed in the connection's state (e.g. anything but the next
    /// handshake message before WELCOME).
    UnexpectedKind,
    /// A handshake step taken out of order or by the wrong side.
    WrongState,
    /// HELLO's cluster tag is not this cluster's.
    BadClusterTag,
    /// HELLO names a host that is not configured, or this host itself.
    UnknownHost,
    /// A handshake MAC did not verify.
    BadMac,
    /// A sealed message's tag did not verify: altered, replayed, or not from the peer.
    BadTag,
    /// A message after the handshake that is not sealed, or a handshake message that is.
    BadSealing,
    /// HELLO's transport mode is unknown or not this host's.
    BadTransport,
}

impl WireError {
    /// A short explanation for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::ShortHeader => "truncated header",
            WireError::BadMagic => "bad magic",
            WireError::BadVersion => "unsupported protocol version",
            WireError::UnknownKind => "unknown message kind",
            WireError::BadFlags => "unknown header flags, or a sealed header with a checksum",
            WireError::BadReserved => "header reserved field not zero",
            WireError::BadSender => "host id out of range",
            WireError::PayloadTooLong => "payload too long",
            WireError::BadPayloadLength => "payload length wrong for the message kind",
            WireError::BadBlockSize => "bad block size",
            WireError::TooManyEntries => "too many DESTAGED entries",
            WireError::PayloadMismatch => "payload size differs from the header's length",
            WireError::BadChecksum => "bad checksum",
            WireError::NonZeroPad => "padding not zero",
            WireError::HostIdMismatch => "host id differs from the header's sender",
            WireError::BadName => "bad volume name",
            WireError::BadDeviceSize => "device smaller than one block",
            WireError::BadDestagedCount => "DESTAGED count disagrees with the payload length",
            WireError::BadRange => "DROP_RANGE is empty or overflows",
            WireError::BadChannel => "unknown connection channel",
            WireError::BadStatus => "ACK status neither 0 nor -errno",
            WireError::BadFixedLength => "fixed payload length wrong for the message kind",
            WireError::BufferTooSmall => "buffer too small",
            WireError::BadSeq => "sequence number out of order",
            WireError::WrongSender => "sender is not the authenticated peer",
            WireError::WrongDirection => "message kind not sent in this direction",
            WireError::UnexpectedKind => "message kind not allowed in the connection's state",
            WireError::WrongState => "handshake step out of order",
            WireError::BadClusterTag => "wrong cluster tag",
            WireError::UnknownHost => "unknown host id",
            WireError::BadMac => "bad MAC",
            WireError::BadTag => "message authentication failed",
            WireError::BadSealing => "message sealed where it must not be, or not sealed where it must",
            WireError::BadTransport => "transport mode differs from this host's",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Which end of a connection: the side that connected sends requests, the side that
/// accepted sends replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connected; sends HELLO, AUTH and the requests.
    Client,
    /// Accepted; sends CHALLENGE, WELCOME and the replies.
    Server,
}

/// A message kind (header byte 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client opens the handshake.
    Hello = 1,
    /// Server answers HELLO with its nonce and MAC.
    Challenge = 2,
    /// Client proves it knows the secret.
    Auth = 3,
    /// Server accepts the client.
    Welcome = 4,
    /// Heartbeat request.
    Ping = 5,
    /// Heartbeat reply.
    Pong = 6,
    /// Client starts replicating a volume to the server.
    VolumeOpen = 7,
    /// One block's data and version.
    Replicate = 8,
    /// Blocks now safely on the backing device.
    Destaged = 9,
    /// Client stops replicating a volume.
    VolumeClose = 10,
    /// Reply to every request but PING.
    Ack = 11,
    /// Drop every replica of a range of blocks (discard, write-zeroes, writes that
    /// went around the pool).
    DropRange = 12,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 12] = [
        Kind::Hello,
        Kind::Challenge,
        Kind::Auth,
        Kind::Welcome,
        Kind::Ping,
        Kind::Pong,
        Kind::VolumeOpen,
        Kind::Replicate,
        Kind::Destaged,
        Kind::VolumeClose,
        Kind::Ack,
        Kind::DropRange,
    ];

    /// The kind with wire value `v`, if any.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_u8() == v)
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The protocol document's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Challenge => "CHALLENGE",
            Kind::Auth => "AUTH",
            Kind::Welcome => "WELCOME",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::VolumeOpen => "VOLUME_OPEN",
            Kind::Replicate => "REPLICATE",
            Kind::Destaged => "DESTAGED",
            Kind::VolumeClose => "VOLUME_CLOSE",
            Kind::Ack => "ACK",
            Kind::DropRange => "DROP_RANGE",
        }
    }

    /// The side that sends this kind.
    pub fn sent_by(self) -> Role {
        match self {
            Kind::Hello
            | Kind::Auth
            | Kind::Ping
            | Kind::VolumeOpen
            | Kind::Replicate
            | Kind::Destaged
            | Kind::VolumeClose
            | Kind::DropRange => Role::Client,
            Kind::Challenge | Kind::Welcome | Kind::Pong | Kind::Ack => Role::Server,
        }
    }

    /// Length of the payload's fixed part (the whole payload but for REPLICATE's data
    /// and DESTAGED's entries).
    pub fn fixed_len(self) -> usize {
        match self {
            Kind::Hello => 8 + 4 + 4 + 4 + 4 + 8 + NONCE_LEN + KEY_LEN,
            Kind::Challenge => 4 + 4 + NONCE_LEN + KEY_LEN + DIGEST_LEN,
            Kind::Auth => DIGEST_LEN,
            Kind::Welcome => 0,
            Kind::Ping | Kind::Pong => (5 + JOINT_MAX) * 8,
            Kind::VolumeOpen => 4 + 4 + 8 + 8 + DEVICE_UUID_LEN + NAME_FIELD_LEN,
            Kind::Replicate => REPLICATE_FIXED_LEN,
            Kind::Destaged => DESTAGED_FIXED_LEN,
            Kind::VolumeClose => 4 + 4 + NAME_FIELD_LEN,
            Kind::Ack => 8 + 4 + 4 + 8,
            Kind::DropRange => 4 + 4 + 8 + 8 + 8,
        }
    }

    /// Checks that `len` is a valid payload length for this kind: exactly the fixed part,
    /// or for REPLICATE the fixed part and a valid block size, or for DESTAGED the fixed
    /// part and at most [`MAX_DESTAGED`] whole entries.
    pub fn check_payload_len(self, len: u32) -> Result<(), WireError> {
        let len = len as usize;
        if len > MAX_PAYLOAD {
            return Err(WireError::PayloadTooLong);
        }
        match self {
            Kind::Replicate => {
                let data = len.checked_sub(REPLICATE_FIXED_LEN).ok_or(WireError::BadPayloadLength)?;
                if valid_block_size(data) {
                    Ok(())
                } else {
                    Err(WireError::BadBlockSize)
                }
            }
            Kind::Destaged => {
                let rest = len.checked_sub(DESTAGED_FIXED_LEN).ok_or(WireError::BadPayloadLength)?;
                if !rest.is_multiple_of(DESTAGED_ENTRY_LEN) {
                    Err(WireError::BadPayloadLength)
                } else if rest / DESTAGED_ENTRY_LEN > MAX_DESTAGED {
                    Err(WireError::TooManyEntries)
                } else {
                    Ok(())
                }
            }
            k if len == k.fixed_len() => Ok(()),
            _ => Err(WireError::BadPayloadLength),
        }
    }
}

/// Whether `size` is a block size a REPLICATE may carry: a power of two in
/// `MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE`.
pub fn valid_block_size(size: usize) -> bool {
    size.is_power_of_two() && (MIN_BLOCK_SIZE as usize..=MAX_BLOCK_SIZE as usize).contains(&size)
}

/// Whole blocks of `block_size` bytes (a valid [`valid_block_size`]) in a device of
/// `sectors` 512-byte sectors: the block numbers a volume on it may use.
pub fn device_blocks(sectors: u64, block_size: u32) -> u64 {
    let per_block = u64::from(block_size / 512).max(1);
    sectors / per_block
}

/// Whether `name` is a valid volume name: 1 to [`MAX_NAME_LEN`] bytes of
/// `[A-Za-z0-9_.-]`.
pub fn valid_volume_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The name in a NUL-padded name field: a valid volume name, then NULs only.
fn name_field(field: &[u8]) -> Result<&[u8], WireError> {
    let end = field.iter().position(|&b| b == 0).ok_or(WireError::BadName)?;
    let (name, padding) = field.split_at(end);
    if !valid_volume_name(name) || padding.iter().any(|&b| b != 0) {
        return Err(WireError::BadName);
    }
    Ok(name)
}

/// HELLO's channel of a data connection: requests, their ACKs, and PINGs as well.
pub const CHANNEL_DATA: u32 = 0;
/// HELLO's channel of a heartbeat connection: PING and PONG only, so that liveness and
/// leases never wait behind replication traffic (`docs/replication.md`, section 2).
pub const CHANNEL_HEARTBEAT: u32 = 1;

/// Whether `channel` is a known HELLO channel.
pub fn valid_channel(channel: u32) -> bool {
    channel <= CHANNEL_HEARTBEAT
}

/// Whether `id` is a valid host id (`1..=MAX_HOST_ID`).
pub fn valid_host_id(id: u32) -> bool {
    (1..=MAX_HOST_ID).contains(&id)
}

/// A message header. Magic, version and reserved are implicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: Kind,
    /// 0 during the handshake, [`FLAG_SEALED`] after it.
    pub flags: u16,
    /// Length of the payload that follows.
    pub payload_len: u32,
    /// Host id of the sender.
    pub sender: u32,
    /// Per connection and direction: 1, 2, 3, …
    pub seq: u64,
    /// CRC-32C of the header (this field as zero) and the payload; zero in a sealed
    /// message (its tag covers both).
    pub crc: u32,
}

impl Header {
    /// The wire form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        put(&mut b, OFF_MAGIC, &MAGIC.to_le_bytes());
        put(&mut b, OFF_VERSION, &[VERSION]);
        put(&mut b, OFF_KIND, &[self.kind.as_u8()]);
        put(&mut b, OFF_FLAGS, &self.flags.to_le_bytes());
        put(&mut b, OFF_PAYLOAD_LEN, &self.payload_len.to_le_bytes());
        put(&mut b, OFF_SENDER, &self.sender.to_le_bytes());
        put(&mut b, OFF_SEQ, &self.seq.to_le_bytes());
        put(&mut b, OFF_CRC, &self.crc.to_le_bytes());
        put(&mut b, OFF_RESERVED, &0u32.to_le_bytes());
        b
    }

    /// Parses and validates a header: magic, version, kind, flags and reserved zero,
    /// sender in range, `payload_len` right for the kind. The checksum is checked by
    /// [`Message::decode`], once the payload is in.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let mut r = Reader::new(bytes);
        if r.u32()? != MAGIC {
            return Err(WireError::BadMagic);
        }
        if r.u8()? != VERSION {
            return Err(WireError::BadVersion);
        }
        let kind = Kind::from_u8(r.u8()?).ok_or(WireError::UnknownKind)?;
        let flags = r.u16()?;
        let payload_len = r.u32()?;
        let sender = r.u32()?;
        let seq = r.u64()?;
        let crc = r.u32()?;
        if r.u32()? != 0 {
            return Err(WireError::BadReserved);
        }
        let h = Header { kind, flags, payload_len, sender, seq, crc };
        h.check()?;
        Ok(h)
    }

    /// [`Header::decode`] of the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        let head = bytes.get(..HEADER_LEN).ok_or(WireError::ShortHeader)?;
        let head = <&[u8; HEADER_LEN]>::try_from(head).map_err(|_| WireError::ShortHeader)?;
        Header::decode(head)
    }

    /// Checks the fields a [`Header`] can hold wrong: flags 0 or [`FLAG_SEALED`] (and
    /// then `crc` zero), sender in range, `payload_len` right for the kind.
    pub fn check(&self) -> Result<(), WireError> {
        if self.flags & !FLAG_SEALED != 0 || (self.sealed() && self.crc != 0) {
            return Err(WireError::BadFlags);
        }
        if !valid_host_id(self.sender) {
            return Err(WireError::BadSender);
        }
        self.kind.check_payload_len(self.payload_len)
    }

    /// Whether the message is sealed ([`FLAG_SEALED`]).
    pub fn sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }

    /// `payload_len` as a `usize`.
    pub fn payload_len(&self) -> usize {
        self.payload_len as usize
    }

    /// The CRC-32C of this header with its `crc` field as zero, followed by `parts`
    /// (the payload, possibly in several pieces).
    pub fn compute_crc(&self, parts: &[&[u8]]) -> u32 {
        let zeroed = Header { crc: 0, ..*self };
        let mut c = Crc32c::new();
        c.update(&zeroed.encode());
        for p in parts {
            c.update(p);
        }
        c.finish()
    }
}

/// A header and a payload's fixed part, ready to send; the payload's variable part
/// ([`Message::data`], or the `data` given to [`encode_message`]) follows them on the
/// wire and is already covered by the checksum.
#[derive(Clone, Copy, Debug)]
pub struct Encoded {
    /// Header then fixed part; only the first `len` bytes are used.
    buf: [u8; HEADER_LEN + MAX_FIXED_LEN],
    /// Bytes used in `buf`.
    len: usize,
    /// The header, checksum included.
    header: Header,
}

impl Encoded {
    /// The header and fixed part: the first bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }

    /// The header that was encoded.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// Lays out a message of `kind` whose payload is `fixed` followed by `data`: builds
/// the header (checksum over header, `fixed` and `data`) and returns it with `fixed`.
///
/// `fixed` must be exactly [`Kind::fixed_len`] bytes and the total payload length must
/// be valid for the kind; the fields inside `fixed` are not checked (see
/// [`Message::encode`], which does).
pub fn encode_message(kind: Kind, sender: u32, seq: u64, fixed: &[u8], data: &[u8]) -> Result<Encoded, WireError> {
    encode_with_flags(kind, 0, sender, seq, fixed, data)
}

/// [`encode_message`] with `flags`: [`FLAG_SEALED`] leaves the checksum zero (the
/// sender then seals the message, [`super::seal::seal_message`]).
pub fn encode_with_flags(
    kind: Kind,
    flags: u16,
    sender: u32,
    seq: u64,
    fixed: &[u8],
    data: &[u8],
) -> Result<Encoded, WireError> {
    if fixed.len() != kind.fixed_len() {
        return Err(WireError::BadFixedLength);
    }
    let total = fixed.len().checked_add(data.len()).ok_or(WireError::PayloadTooLong)?;
    if total > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLong);
    }
    let payload_len = u32::try_from(total).map_err(|_| WireError::PayloadTooLong)?;
    let mut header = Header { kind, flags, payload_len, sender, seq, crc: 0 };
    header.check()?;
    if !header.sealed() {
        header.crc = header.compute_crc(&[fixed, data]);
    }
    let mut buf = [0u8; HEADER_LEN + MAX_FIXED_LEN];
    put(&mut buf, 0, &header.encode());
    put(&mut buf, HEADER_LEN, fixed);
    let len = HEADER_LEN.checked_add(fixed.len()).ok_or(WireError::BadFixedLength)?;
    Ok(Encoded { buf, len, header })
}

/// The `(block, version)` entries of a DESTAGED message, read in place from their
/// wire bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestagedEntries<'a> {
    /// A whole number of entries, at most [`MAX_DESTAGED`].
    bytes: &'a [u8],
}

impl<'a> DestagedEntries<'a> {
    /// No entries.
    pub const EMPTY: DestagedEntries<'static> = DestagedEntries { bytes: &[] };

    /// The entries in `bytes`, which must hold a whole number of entries, at most
    /// [`MAX_DESTAGED`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        if !bytes.len().is_multiple_of(DESTAGED_ENTRY_LEN) {
            return Err(WireError::BadPayloadLength);
        }
        if bytes.len() / DESTAGED_ENTRY_LEN > MAX_DESTAGED {
            return Err(WireError::TooManyEntries);
        }
        Ok(DestagedEntries { bytes })
    }

    /// Writes `entries` in wire form at the start of `out` (which needs 16 bytes per
    /// entry; [`DESTAGED_BUF_LEN`] is always enough) and returns them.
    pub fn encode_into(
        entries: impl IntoIterator<Item = (u64, u64)>,
        out: &'a mut [u8],
    ) -> Result<DestagedEntries<'a>, WireError> {
        let mut n = 0usize;
        for (block, version) in entries {
            if n >= MAX_DESTAGED {
                return Err(WireError::TooManyEntries);
            }
            let at = n * DESTAGED_ENTRY_LEN;
            let slot = out.get_mut(at..at + DESTAGED_ENTRY_LEN).ok_or(WireError::BufferTooSmall)?;
            put(slot, 0, &block.to_le_bytes());
            put(slot, 8, &version.to_le_bytes());
            n += 1;
        }
        let out: &'a [u8] = out;
        let bytes = out.get(..n * DESTAGED_ENTRY_LEN).ok_or(WireError::BufferTooSmall)?;
        Ok(DestagedEntries { bytes })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.bytes.len() / DESTAGED_ENTRY_LEN
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < DESTAGED_ENTRY_LEN
    }

    /// Entry `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<(u64, u64)> {
        let at = i.checked_mul(DESTAGED_ENTRY_LEN)?;
        let e = self.bytes.get(at..at.checked_add(DESTAGED_ENTRY_LEN)?)?;
        entry(e)
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The entries, in order.
    pub fn iter(&self) -> DestagedIter<'a> {
        DestagedIter { rest: self.bytes }
    }
}

impl<'a> IntoIterator for DestagedEntries<'a> {
    type Item = (u64, u64);
    type IntoIter = DestagedIter<'a>;
    fn into_iter(self) -> DestagedIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &DestagedEntries<'a> {
    type Item = (u64, u64);
    type IntoIter = DestagedIter<'a>;
    fn into_iter(self) -> DestagedIter<'a> {
        self.iter()
    }
}

/// Iterator over [`DestagedEntries`]: `(block, version)` pairs.
#[derive(Clone, Debug)]
pub struct DestagedIter<'a> {
    /// The remaining entries.
    /// The remaining entries' bytes (a whole number of entries). Iterated by hand, not
    /// with `chunks_exact`, whose division leaves a panic path in the kernel build.
    rest: &'a [u8],
}

impl Iterator for DestagedIter<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let (e, rest) = self.rest.split_at_checked(DESTAGED_ENTRY_LEN)?;
        self.rest = rest;
        entry(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() >> 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for DestagedIter<'_> {}

/// Reads one 16-byte entry.
fn entry(e: &[u8]) -> Option<(u64, u64)> {
    let mut r = Reader::new(e);
    Some((r.u64().ok()?, r.u64().ok()?))
}

/// A decoded (or to be encoded) message; variable-length parts borrow the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Client → server, first message.
    Hello {
        /// First 8 bytes of SHA-256 of the cluster name ([`super::auth::cluster_tag`]).
        cluster_tag: u64,
        /// The client's host id (equal to the header's sender).
        host_id: u32,
        /// What the connection carries: [`CHANNEL_DATA`] or [`CHANNEL_HEARTBEAT`]
        /// (covered by both handshake MACs).
        channel: u32,
        /// The client's transport mode (`seal::TRANSPORT_*`, covered by both MACs): the
        /// server refuses a mode other than its own.
        transport: u32,
        /// The client's incarnation (covered by both MACs): a data connection never
        /// replaces a live one of a later incarnation (`docs/replication.md`, section 2).
        incarnation: u64,
        /// The client's nonce.
        nonce: Nonce,
        /// The client's ephemeral X25519 public key.
        ephemeral: PublicKey,
    },
    /// Server → client, answer to HELLO.
    Challenge {
        /// The server's host id (equal to the header's sender).
        host_id: u32,
        /// The server's nonce.
        nonce: Nonce,
        /// The server's ephemeral X25519 public key.
        ephemeral: PublicKey,
        /// [`super::auth::Schedule::server_mac`].
        mac: Mac,
    },
    /// Client → server, answer to CHALLENGE.
    Auth {
        /// [`super::auth::Schedule::client_mac`].
        mac: Mac,
    },
    /// Server → client: the handshake is done.
    Welcome,
    /// Client → server heartbeat.
    Ping {
        /// Sender's monotonic time, echoed by the PONG.
        sent_ns: u64,
        /// Bit `h-1`: host `h` was heard from within the timeout.
        heard: u64,
        /// Bit `h-1`: host `h` is fenced.
        fenced: u64,
        /// Bit `h-1`: host `h`'s volumes are being recovered by the sender.
        recovering: u64,
        /// Bit `h-1`: host `h` is in the sender's configuration.
        configured: u64,
        /// The sender's earlier configurations still in force (0: unused slot).
        joint: [u64; JOINT_MAX],
    },
    /// Server → client heartbeat reply.
    Pong {
        /// The PING's `sent_ns`.
        echo_ns: u64,
        /// Bit `h-1`: host `h` was heard from within the timeout.
        heard: u64,
        /// Bit `h-1`: host `h` is fenced.
        fenced: u64,
        /// Bit `h-1`: host `h`'s volumes are being recovered by the sender.
        recovering: u64,
        /// Bit `h-1`: host `h` is in the sender's configuration.
        configured: u64,
        /// The sender's earlier configurations still in force (0: unused slot).
        joint: [u64; JOINT_MAX],
    },
    /// Client → server: start holding replicas of a volume.
    VolumeOpen {
        /// The owner's id for the volume on this connection.
        volume_id: u32,
        /// The volume's block size (a valid [`valid_block_size`]).
        block_size: u32,
        /// The owner's epoch for the volume.
        epoch: u64,
        /// The size of the owner's shared backing device, in 512-byte sectors: a peer
        /// checks its own path to the device against it, and refuses blocks past its end.
        /// At least one block.
        sectors: u64,
        /// The shared device's configured identity (`[[device]] uuid`), all zero if none.
        device_uuid: [u8; DEVICE_UUID_LEN],
        /// The cluster-wide volume name (without the NUL padding).
        name: &'a [u8],
    },
    /// Client → server: one block's newest data.
    Replicate {
        /// The volume, as opened by VOLUME_OPEN.
        volume_id: u32,
        /// Block number.
        block: u64,
        /// The owner's version of this write.
        version: u64,
        /// The block's data (a valid block size long).
        data: &'a [u8],
    },
    /// Client → server: these block versions are on the backing device.
    Destaged {
        /// The volume, as opened by VOLUME_OPEN.
        volume_id: u32,
        /// `(block, version)` pairs.
        entries: DestagedEntries<'a>,
    },
    /// Client → server: drop every replica of blocks `first .. first + count` whose
    /// version is not newer than `version`.
    DropRange {
        /// The volume, as opened by VOLUME_OPEN.
        volume_id: u32,
        /// First block of the range.
        first: u64,
        /// Blocks in the range (at least 1; `first + count` does not overflow).
        count: u64,
        /// The owner's version of this drop: replicas written later survive it.
        version: u64,
    },
    /// Client → server: drop the volume's replicas (and deal with the orphans of the
    /// volume's name, `logic/replica.rs`).
    VolumeClose {
        /// The volume, as opened by VOLUME_OPEN.
        volume_id: u32,
        /// The cluster-wide volume name (without the NUL padding).
        name: &'a [u8],
    },
    /// Server → client: reply to a request.
    Ack {
        /// The request's seq.
        acked_seq: u64,
        /// 0 or `-errno`.
        status: i32,
        /// Request-specific result.
        value: u64,
    },
}

impl<'a> Message<'a> {
    /// The message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello { .. } => Kind::Hello,
            Message::Challenge { .. } => Kind::Challenge,
            Message::Auth { .. } => Kind::Auth,
            Message::Welcome => Kind::Welcome,
            Message::Ping { .. } => Kind::Ping,
            Message::Pong { .. } => Kind::Pong,
            Message::VolumeOpen { .. } => Kind::VolumeOpen,
            Message::Replicate { .. } => Kind::Replicate,
            Message::Destaged { .. } => Kind::Destaged,
            Message::VolumeClose { .. } => Kind::VolumeClose,
            Message::Ack { .. } => Kind::Ack,
            Message::DropRange { .. } => Kind::DropRange,
        }
    }

    /// The payload's variable part, sent after the fixed part: REPLICATE's data,
    /// DESTAGED's entries, empty for the other kinds.
    pub fn data(&self) -> &'a [u8] {
        match self {
            Message::Replicate { data, .. } => data,
            Message::Destaged { entries, .. } => entries.as_bytes(),
            _ => &[],
        }
    }

    /// Decodes the payload that followed `header`: checks its length and checksum
    /// (a sealed message's tag was checked when it was opened), that padding is zero
    /// and every field is valid.
    pub fn decode(header: &Header, payload: &'a [u8]) -> Result<Message<'a>, WireError> {
        header.check()?;
        if payload.len() != header.payload_len() {
            return Err(WireError::PayloadMismatch);
        }
        if !header.sealed() && header.compute_crc(&[payload]) != header.crc {
            return Err(WireError::BadChecksum);
        }
        let mut r = Reader::new(payload);
        let m = match header.kind {
            Kind::Hello => {
                let cluster_tag = r.u64()?;
                let host_id = r.u32()?;
                let channel = r.u32()?;
                let transport = r.u32()?;
                r.pad32()?;
                let incarnation = r.u64()?;
                let nonce = r.array()?;
                let ephemeral = r.array()?;
                if host_id != header.sender {
                    return Err(WireError::HostIdMismatch);
                }
                if !valid_channel(channel) {
                    return Err(WireError::BadChannel);
                }
                if Transport::from_u32(transport).is_none() {
                    return Err(WireError::BadTransport);
                }
                Message::Hello { cluster_tag, host_id, channel, transport, incarnation, nonce, ephemeral }
            }
            Kind::Challenge => {
                let host_id = r.u32()?;
                r.pad32()?;
                let nonce = r.array()?;
                let ephemeral = r.array()?;
                let mac = r.array()?;
                if host_id != header.sender {
                    return Err(WireError::HostIdMismatch);
                }
                Message::Challenge { host_id, nonce, ephemeral, mac }
            }
            Kind::Auth => Message::Auth { mac: r.array()? },
            Kind::Welcome => Message::Welcome,
            Kind::Ping => Message::Ping {
                sent_ns: r.u64()?,
                heard: r.u64()?,
                fenced: r.u64()?,
                recovering: r.u64()?,
                configured: r.u64()?,
                joint: [r.u64()?, r.u64()?],
            },
            Kind::Pong => Message::Pong {
                echo_ns: r.u64()?,
                heard: r.u64()?,
                fenced: r.u64()?,
                recovering: r.u64()?,
                configured: r.u64()?,
                joint: [r.u64()?, r.u64()?],
            },
            Kind::VolumeOpen => {
                let volume_id = r.u32()?;
                let block_size = r.u32()?;
                let epoch = r.u64()?;
                let sectors = r.u64()?;
                let mut device_uuid = [0u8; DEVICE_UUID_LEN];
                device_uuid.copy_from_slice(r.bytes(DEVICE_UUID_LEN)?);
                let name = name_field(r.bytes(NAME_FIELD_LEN)?)?;
                if !valid_block_size(block_size as usize) {
                    return Err(WireError::BadBlockSize);
                }
                if device_blocks(sectors, block_size) == 0 {
                    return Err(WireError::BadDeviceSize);
                }
                Message::VolumeOpen { volume_id, block_size, epoch, sectors, device_uuid, name }
            }
            Kind::Replicate => {
                let volume_id = r.u32()?;
                r.pad32()?;
                let block = r.u64()?;
                let version = r.u64()?;
                // The header check made the rest a valid block size.
                Message::Replicate { volume_id, block, version, data: r.rest() }
            }
            Kind::Destaged => {
                let volume_id = r.u32()?;
                let count = r.u32()?;
                let entries = DestagedEntries::new(r.rest())?;
                if count as usize != entries.len() {
                    return Err(WireError::BadDestagedCount);
                }
                Message::Destaged { volume_id, entries }
            }
            Kind::VolumeClose => {
                let volume_id = r.u32()?;
                r.pad32()?;
                let name = name_field(r.bytes(NAME_FIELD_LEN)?)?;
                Message::VolumeClose { volume_id, name }
            }
            Kind::DropRange => {
                let volume_id = r.u32()?;
                r.pad32()?;
                let first = r.u64()?;
                let count = r.u64()?;
                let version = r.u64()?;
                if !valid_range(first, count) {
                    return Err(WireError::BadRange);
                }
                Message::DropRange { volume_id, first, count, version }
            }
            Kind::Ack => {
                let acked_seq = r.u64()?;
                let status = r.i32()?;
                r.pad32()?;
                let value = r.u64()?;
                if !valid_status(status) {
                    return Err(WireError::BadStatus);
                }
                Message::Ack { acked_seq, status, value }
            }
        };
        Ok(m)
    }

    /// Validates the message and writes its fixed part into `out`; returns its length
    /// ([`Kind::fixed_len`]).
    pub fn encode_fixed(&self, out: &mut [u8; MAX_FIXED_LEN]) -> Result<usize, WireError> {
        *out = [0; MAX_FIXED_LEN];
        let mut w = Writer { buf: out, at: 0 };
        match *self {
            Message::Hello { cluster_tag, host_id, channel, transport, incarnation, nonce, ephemeral } => {
                if !valid_host_id(host_id) {
                    return Err(WireError::BadSender);
                }
                if !valid_channel(channel) {
                    return Err(WireError::BadChannel);
                }
                if Transport::from_u32(transport).is_none() {
                    return Err(WireError::BadTransport);
                }
                w.u64(cluster_tag)
                    .u32(host_id)
                    .u32(channel)
                    .u32(transport)
                    .u32(0)
                    .u64(incarnation)
                    .bytes(&nonce)
                    .bytes(&ephemeral);
            }
            Message::Challenge { host_id, nonce, ephemeral, mac } => {
                if !valid_host_id(host_id) {
                    return Err(WireError::BadSender);
                }
                w.u32(host_id).u32(0).bytes(&nonce).bytes(&ephemeral).bytes(&mac);
            }
            Message::Auth { mac } => {
                w.bytes(&mac);
            }
            Message::Welcome => {}
            Message::Ping { sent_ns: a, heard, fenced, recovering, configured, joint }
            | Message::Pong { echo_ns: a, heard, fenced, recovering, configured, joint } => {
                w.u64(a).u64(heard).u64(fenced).u64(recovering).u64(configured);
                for j in joint {
                    w.u64(j);
                }
            }
            Message::VolumeOpen { volume_id, block_size, epoch, sectors, device_uuid, name } => {
                if !valid_volume_name(name) {
                    return Err(WireError::BadName);
                }
                if !valid_block_size(block_size as usize) {
                    return Err(WireError::BadBlockSize);
                }
                if device_blocks(sectors, block_size) == 0 {
                    return Err(WireError::BadDeviceSize);
                }
                w.u32(volume_id).u32(block_size).u64(epoch).u64(sectors).bytes(&device_uuid).bytes(name);
                w.at = w.at.saturating_add(NAME_FIELD_LEN - name.len());
            }
            Message::Replicate { volume_id, block, version, data } => {
                if !valid_block_size(data.len()) {
                    return Err(WireError::BadBlockSize);
                }
                w.u32(volume_id).u32(0).u64(block).u64(version);
            }
            Message::Destaged { volume_id, entries } => {
                let count = u32::try_from(entries.len()).map_err(|_| WireError::TooManyEntries)?;
                // Re-checks entries built by hand rather than by `new`/`encode_into`.
                DestagedEntries::new(entries.as_bytes())?;
                w.u32(volume_id).u32(count);
            }
            Message::VolumeClose { volume_id, name } => {
                if !valid_volume_name(name) {
                    return Err(WireError::BadName);
                }
                w.u32(volume_id).u32(0).bytes(name);
                w.at = w.at.saturating_add(NAME_FIELD_LEN - name.len());
            }
            Message::DropRange { volume_id, first, count, version } => {
                if !valid_range(first, count) {
                    return Err(WireError::BadRange);
                }
                w.u32(volume_id).u32(0).u64(first).u64(count).u64(version);
            }
            Message::Ack { acked_seq, status, value } => {
                if !valid_status(status) {
                    return Err(WireError::BadStatus);
                }
                w.u64(acked_seq).i32(status).u32(0).u64(value);
            }
        }
        if w.at != self.kind().fixed_len() || w.at > MAX_FIXED_LEN {
            return Err(WireError::BadFixedLength);
        }
        Ok(w.at)
    }

    /// Validates the message and lays it out as message `seq` from `sender`: the
    /// returned [`Encoded`] is sent first, then [`Message::data`].
    ///
    /// HELLO's and CHALLENGE's `host_id` must be `sender`.
    pub fn encode(&self, sender: u32, seq: u64) -> Result<Encoded, WireError> {
        self.encode_flags(0, sender, seq)
    }

    /// [`Message::encode`] of a message after the handshake: [`FLAG_SEALED`], no
    /// checksum; the sender seals it ([`super::seal::seal_message`]).
    pub fn encode_sealed(&self, sender: u32, seq: u64) -> Result<Encoded, WireError> {
        self.encode_flags(FLAG_SEALED, sender, seq)
    }

    fn encode_flags(&self, flags: u16, sender: u32, seq: u64) -> Result<Encoded, WireError> {
        match *self {
            Message::Hello { host_id, .. } | Message::Challenge { host_id, .. } if host_id != sender => {
                return Err(WireError::HostIdMismatch);
            }
            _ => {}
        }
        let mut fixed = [0u8; MAX_FIXED_LEN];
        let n = self.encode_fixed(&mut fixed)?;
        let fixed = fixed.get(..n).ok_or(WireError::BadFixedLength)?;
        encode_with_flags(self.kind(), flags, sender, seq, fixed, self.data())
    }
}

/// Whether `status` is 0 or a negative errno.
/// A DROP_RANGE range: at least one block, and its end representable.
fn valid_range(first: u64, count: u64) -> bool {
    count > 0 && first.checked_add(count).is_some()
}

fn valid_status(status: i32) -> bool {
    (-MAX_ERRNO..=0).contains(&status)
}

/// Where a connection stands in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Server: waiting for HELLO.
    AwaitHello,
    /// Client: HELLO sent, waiting for CHALLENGE.
    AwaitChallenge,
    /// Server: CHALLENGE sent, waiting for AUTH.
    AwaitAuth,
    /// Client: AUTH sent, waiting for WELCOME.
    AwaitWelcome,
    /// Handshake done: requests and replies flow.
    Established,
}

/// The receive-side validator of one connection, used by both ends.
///
/// It enforces the rules the header alone cannot: sequence numbers 1, 2, 3, …, the
/// sender being the authenticated peer, and which kinds the peer may send in each
/// state. A refused message leaves the session unchanged (the caller closes the
/// connection anyway).
///
/// Handshake, server side: [`Session::server`] (`AwaitHello`); HELLO accepted, tag and
/// host checked: [`Session::hello_received`] (`AwaitAuth`), send CHALLENGE; AUTH accepted
/// and its MAC verified: [`Session::auth_verified`] (`Established`), send WELCOME.
///
/// Client side: send HELLO, [`Session::client`] (`AwaitChallenge`); CHALLENGE accepted and
/// its MAC verified: [`Session::challenge_received`] (`AwaitWelcome`), send AUTH; WELCOME
/// accepted: [`Session::welcome_received`] (`Established`).
///
/// The handshake messages are always seqs 1 and 2 of their direction, so a step that is
/// not taken makes the next message fail instead of being accepted twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// This end's role.
    role: Role,
    /// Handshake progress.
    state: State,
    /// The seq the next incoming message must carry.
    next_rx_seq: u64,
    /// The peer's host id: for a client, the host it connected to; for a server, the
    /// id HELLO announced (none before).
    peer_id: Option<u32>,
}

impl Session {
    /// The session of a connection this host opened to host `server_id`, after
    /// sending HELLO.
    pub const fn client(server_id: u32) -> Session {
        Session { role: Role::Client, state: State::AwaitChallenge, next_rx_seq: 1, peer_id: Some(server_id) }
    }

    /// The session of a connection this host accepted.
    pub const fn server() -> Session {
        Session { role: Role::Server, state: State::AwaitHello, next_rx_seq: 1, peer_id: None }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Handshake progress.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the handshake is done.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// The seq the next incoming message must carry.
    pub fn next_rx_seq(&self) -> u64 {
        self.next_rx_seq
    }

    /// The peer's host id, once known.
    pub fn peer_id(&self) -> Option<u32> {
        self.peer_id
    }

    /// Checks an incoming (already [`Header::decode`]d) header against the connection:
    /// its seq must be the previous one plus one (the first is 1), its sender the peer
    /// (once known), and its kind one the peer sends and this state allows. On success
    /// the seq is consumed.
    pub fn check_incoming(&mut self, header: &Header) -> Result<(), WireError> {
        if header.seq != self.next_rx_seq {
            return Err(WireError::BadSeq);
        }
        let next = self.next_rx_seq.checked_add(1).ok_or(WireError::BadSeq)?;
        if let Some(peer) = self.peer_id {
            if header.sender != peer {
                return Err(WireError::WrongSender);
            }
        }
        let kind = header.kind;
        if kind.sent_by() == self.role {
            return Err(WireError::WrongDirection);
        }
        // Sealed exactly once the handshake is done: WELCOME is the last message in clear.
        if header.sealed() != self.is_established() {
            return Err(WireError::BadSealing);
        }
        let allowed = match (self.role, self.state) {
            (Role::Server, State::AwaitHello) => kind == Kind::Hello && header.seq == 1,
            (Role::Server, State::AwaitAuth) => kind == Kind::Auth && header.seq == 2,
            (Role::Server, State::Established) => {
                matches!(
                    kind,
                    Kind::Ping
                        | Kind::VolumeOpen
                        | Kind::Replicate
                        | Kind::Destaged
                        | Kind::VolumeClose
                        | Kind::DropRange
                )
            }
            (Role::Client, State::AwaitChallenge) => kind == Kind::Challenge && header.seq == 1,
            (Role::Client, State::AwaitWelcome) => kind == Kind::Welcome && header.seq == 2,
            (Role::Client, State::Established) => matches!(kind, Kind::Pong | Kind::Ack),
            _ => false,
        };
        if !allowed {
            return Err(WireError::UnexpectedKind);
        }
        self.next_rx_seq = next;
        Ok(())
    }

    /// Server: HELLO (seq 1) was accepted and its cluster tag and `host_id` checked
    /// (a configured host other than this one); `host_id` becomes the peer. Next:
    /// send CHALLENGE.
    pub fn hello_received(&mut self, host_id: u32) -> Result<(), WireError> {
        if self.role != Role::Server || self.state != State::AwaitHello || self.next_rx_seq != 2 {
            return Err(WireError::WrongState);
        }
        if !valid_host_id(host_id) {
            return Err(WireError::BadSender);
        }
        self.peer_id = Some(host_id);
        self.state = State::AwaitAuth;
        Ok(())
    }

    /// Client: CHALLENGE (seq 1) was accepted and its MAC verified. Next: send AUTH.
    pub fn challenge_received(&mut self) -> Result<(), WireError> {
        if self.role != Role::Client || self.state != State::AwaitChallenge || self.next_rx_seq != 2 {
            return Err(WireError::WrongState);
        }
        self.state = State::AwaitWelcome;
        Ok(())
    }

    /// Server: AUTH (seq 2) was accepted and its MAC verified. Next: send WELCOME.
    pub fn auth_verified(&mut self) -> Result<(), WireError> {
        if self.role != Role::Server || self.state != State::AwaitAuth || self.next_rx_seq != 3 {
            return Err(WireError::WrongState);
        }
        self.state = State::Established;
        Ok(())
    }

    /// Client: WELCOME (seq 2) was accepted.
    pub fn welcome_received(&mut self) -> Result<(), WireError> {
        if self.role != Role::Client || self.state != State::AwaitWelcome || self.next_rx_seq != 3 {
            return Err(WireError::WrongState);
        }
        self.state = State::Established;
        Ok(())
    }
}

/// Sequence numbers of one connection's outgoing direction: 1, 2, 3, …
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqCounter {
    /// The last seq handed out (0: none yet).
    last: u64,
}

impl SeqCounter {
    /// A counter whose first seq is 1.
    pub const fn new() -> Self {
        SeqCounter { last: 0 }
    }

    /// The seq of the next outgoing message. After 2^64 - 1 messages it wraps to 0,
    /// which the receiver refuses.
    pub fn next_seq(&mut self) -> u64 {
        self.last = self.last.wrapping_add(1);
        self.last
    }

    /// The last seq handed out (0: none yet).
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// PINGs one heartbeat connection keeps track of at most. With that many unanswered,
/// the sender skips PINGs until a PONG comes back (the outstanding ones renew the lease
/// as well once answered).
pub const PINGS_MAX: usize = 64;

/// The PINGs of one heartbeat connection awaiting their PONG, oldest first. A server
/// answers PINGs in order, so a PONG must echo the oldest: one that echoes anything
/// else is not an answer to a PING this host sent (its `echo_ns` would date a lease).
#[derive(Clone, Debug)]
pub struct PendingPings {
    /// `sent_ns` of the PINGs, a ring of `len` entries from `head`.
    sent: [u64; PINGS_MAX],
    head: usize,
    len: usize,
}

impl Default for PendingPings {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingPings {
    /// None sent yet.
    pub const fn new() -> Self {
        PendingPings { sent: [0; PINGS_MAX], head: 0, len: 0 }
    }

    /// PINGs awaiting their PONG.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none awaits its PONG.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records a PING sent with `sent_ns`; `false` if [`PINGS_MAX`] await their PONG
    /// (the caller does not send it).
    pub fn sent(&mut self, sent_ns: u64) -> bool {
        if self.len >= PINGS_MAX {
            return false;
        }
        let at = (self.head + self.len) % PINGS_MAX;
        if let Some(slot) = self.sent.get_mut(at) {
            *slot = sent_ns;
        }
        self.len += 1;
        true
    }

    /// A PONG echoing `echo_ns`: `true` (and the PING is done) if it answers the oldest
    /// PING awaiting one, `false` otherwise.
    pub fn pong(&mut self, echo_ns: u64) -> bool {
        if self.len == 0 || self.sent.get(self.head) != Some(&echo_ns) {
            return false;
        }
        self.head = (self.head + 1) % PINGS_MAX;
        self.len -= 1;
        true
    }
}

/// Copies `bytes` to `buf[off..]`; does nothing if they do not fit (callers size
/// their buffers so that they always do).
fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(end) = off.checked_add(bytes.len()) {
        if let Some(dst) = buf.get_mut(off..end) {
            dst.copy_from_slice(bytes);
        }
    }
}

/// Little-endian writer into a fixed part; writes past the end are dropped, which
/// [`Message::encode_fixed`] detects by the final length.
struct Writer<'b> {
    buf: &'b mut [u8; MAX_FIXED_LEN],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        put(self.buf, self.at, b);
        self.at = self.at.saturating_add(b.len());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
}

/// Little-endian reader over a payload. Running short is [`WireError::BadPayloadLength`]
/// (lengths are checked before reading, so it does not happen).
struct Reader<'a> {
    p: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(p: &'a [u8]) -> Self {
        Reader { p }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.p.len() {
            return Err(WireError::BadPayloadLength);
        }
        let (head, tail) = self.p.split_at(n);
        self.p = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        <[u8; N]>::try_from(self.bytes(N)?).map_err(|_| WireError::BadPayloadLength)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn pad32(&mut self) -> Result<(), WireError> {
        if self.u32()? != 0 {
            return Err(WireError::NonZeroPad);
        }
        Ok(())
    }
    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.p)
    }
}

#[cfg(test)]
mod tests {
    use super::super::auth::host::HostHmac;
    use super::super::auth::{cluster_tag, Handshake, Secrets};
    use super::super::crc32c::crc32c;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The whole message on the wire.
    fn wire(m: &Message<'_>, sender: u32, seq: u64) -> Vec<u8> {
        let e = m.encode(sender, seq).unwrap();
        let mut v = e.as_bytes().to_vec();
        v.extend_from_slice(m.data());
        v
    }

    /// A message after the handshake as it goes out before sealing (the tag, which
    /// `seal.rs` tests, is left out).
    fn sealed(m: &Message<'_>, sender: u32, seq: u64) -> Vec<u8> {
        let e = m.encode_sealed(sender, seq).unwrap();
        let mut v = e.as_bytes().to_vec();
        v.extend_from_slice(m.data());
        v
    }

    /// Header then payload, as a receiver would.
    fn decode_all(bytes: &[u8]) -> Result<(Header, Message<'_>), WireError> {
        let h = Header::parse(bytes)?;
        let m = Message::decode(&h, bytes.get(HEADER_LEN..).unwrap_or(&[]))?;
        Ok((h, m))
    }

    /// Recomputes the checksum of a message whose payload was tampered with.
    fn refresh_crc(bytes: &mut [u8]) {
        let mut h = Header::parse(bytes).unwrap();
        h.crc = h.compute_crc(&[&bytes[HEADER_LEN..]]);
        bytes[..HEADER_LEN].copy_from_slice(&h.encode());
    }

    fn prng_fill(seed: u64, out: &mut [u8]) {
        let mut x = seed | 1;
        for chunk in out.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }

    fn page(seed: u64, len: usize) -> Vec<u8> {
        let mut v = std::vec![0u8; len];
        prng_fill(seed, &mut v);
        v
    }

    /// The fuzz target's seeds (`fuzz/seeds/wire_decode`, format in
    /// `fuzz/fuzz_targets/wire_decode.rs`): what a server and a client receive on one
    /// connection of the current protocol, with the mode byte 0x0b (fix checksums,
    /// client of host 5).
    fn fuzz_seeds() -> [(&'static str, Vec<u8>); 2] {
        fn stream(sender: u32, msgs: &[Message<'_>]) -> Vec<u8> {
            let mut out = std::vec![0x0b];
            for (i, m) in msgs.iter().enumerate() {
                // Two handshake messages each way, then sealed ones (without their tags:
                // the target models what follows opening them).
                let seq = i as u64 + 1;
                let e = if seq <= 2 { m.encode(sender, seq) } else { m.encode_sealed(sender, seq) }.unwrap();
                out.extend_from_slice(e.as_bytes());
                out.extend_from_slice(m.data());
            }
            out
        }
        let data = page(7, 4096);
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        let entries = DestagedEntries::encode_into([(3, 1), (4, 2)], &mut buf).unwrap();
        let tag = cluster_tag(&HostHmac, b"fvp").unwrap();
        let to_server = [
            Message::Hello {
                cluster_tag: tag,
                host_id: 2,
                channel: CHANNEL_DATA,
                transport: 0,
                nonce: [0x11; 16],
                incarnation: 7,
                ephemeral: [0x5f; 32],
            },
            Message::Auth { mac: [0x22; 32] },
            Message::Ping {
                sent_ns: 1_000_000,
                heard: 0b111,
                fenced: 0,
                recovering: 0,
                configured: 0b111,
                joint: [0; JOINT_MAX],
            },
            Message::VolumeOpen {
                volume_id: 7,
                block_size: 4096,
                epoch: 1,
                sectors: 1 << 21,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"shared0",
            },
            Message::Replicate { volume_id: 7, block: 3, version: 1, data: &data },
            Message::Destaged { volume_id: 7, entries },
            Message::DropRange { volume_id: 7, first: 0, count: 8, version: 2 },
            Message::VolumeClose { volume_id: 7, name: b"shared0" },
        ];
        let to_client = [
            Message::Challenge { host_id: 5, nonce: [0x33; 16], ephemeral: [0x5e; 32], mac: [0x44; 32] },
            Message::Welcome,
            Message::Pong {
                echo_ns: 1_000_000,
                heard: 0b111,
                fenced: 0b100,
                recovering: 0,
                configured: 0b111,
                joint: [0; JOINT_MAX],
            },
            Message::Ack { acked_seq: 1, status: 0, value: 1 },
            Message::Ack { acked_seq: 2, status: -2, value: 0 },
        ];
        [("server_stream", stream(2, &to_server)), ("client_stream", stream(5, &to_client))]
    }

    fn fuzz_seed_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../fuzz/seeds/wire_decode")
    }

    /// The seeds must speak the current protocol, or the fuzzer starts from messages
    /// every header check refuses (they were version 1 until version 3).
    #[test]
    fn fuzz_seeds_are_current() {
        for (name, bytes) in fuzz_seeds() {
            let on_disk = std::fs::read(fuzz_seed_dir().join(name)).unwrap();
            assert!(
                on_disk == bytes,
                "fuzz/seeds/wire_decode/{name} is stale: run cargo test -p fvp-logic -- --ignored write_fuzz_seeds"
            );
        }
    }

    /// The guest test's attacker (`tests/selftests/fvp-cluster/attacker.py`) forges
    /// messages of this protocol version: one of another version is refused before its
    /// tag is checked (protocol 7 found its forgeries still at 6).
    #[test]
    fn attacker_speaks_the_current_protocol() {
        let path = fuzz_seed_dir().join("../../../tests/selftests/fvp-cluster/attacker.py");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = std::format!("PROTOCOL_VERSION = {VERSION}\n");
        assert!(text.contains(&line), "{}: set {line}", path.display());
    }

    /// Writes [`fuzz_seeds`] (after a protocol change).
    #[test]
    #[ignore = "writes fuzz/seeds/wire_decode; run after a protocol change"]
    fn write_fuzz_seeds() {
        for (name, bytes) in fuzz_seeds() {
            std::fs::write(fuzz_seed_dir().join(name), bytes).unwrap();
        }
    }

    fn sample_messages<'a>(data: &'a [u8], entries: DestagedEntries<'a>) -> Vec<Message<'a>> {
        std::vec![
            Message::Hello {
                cluster_tag: 0x1122_3344_5566_7788,
                host_id: 3,
                channel: CHANNEL_HEARTBEAT,
                transport: 1,
                nonce: [9; 16],
                incarnation: 7,
                ephemeral: [0x5f; 32]
            },
            Message::Challenge { host_id: 3, nonce: [7; 16], ephemeral: [0x5e; 32], mac: [0xab; 32] },
            Message::Auth { mac: [0xcd; 32] },
            Message::Welcome,
            Message::Ping {
                sent_ns: 1,
                heard: 2,
                fenced: 3,
                recovering: u64::MAX,
                configured: 0b111,
                joint: [0; JOINT_MAX]
            },
            Message::Pong { echo_ns: 5, heard: 6, fenced: 7, recovering: 8, configured: 0b111, joint: [0; JOINT_MAX] },
            Message::VolumeOpen {
                volume_id: 4,
                block_size: 4096,
                epoch: 99,
                sectors: 1 << 21,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"vol-a_1.x"
            },
            Message::Replicate { volume_id: 4, block: 1 << 40, version: 17, data },
            Message::Destaged { volume_id: 4, entries },
            Message::VolumeClose { volume_id: u32::MAX, name: b"v" },
            Message::Ack { acked_seq: 12, status: -28, value: 1 << 63 },
            Message::DropRange { volume_id: 4, first: 1 << 40, count: 262_144, version: 77 },
        ]
    }

    #[test]
    fn header_layout() {
        let h = Header {
            kind: Kind::Ack,
            flags: 0,
            payload_len: 24,
            sender: 7,
            seq: 0x0102_0304_0506_0708,
            crc: 0xdead_beef,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], b"FVPR");
        assert_eq!(b[4], 7);
        assert_eq!(b[5], 11);
        assert_eq!(&b[6..8], &[0, 0]);
        assert_eq!(&b[8..12], &24u32.to_le_bytes());
        assert_eq!(&b[12..16], &7u32.to_le_bytes());
        assert_eq!(&b[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[24..28], &0xdead_beefu32.to_le_bytes());
        assert_eq!(&b[28..32], &[0, 0, 0, 0]);
        assert_eq!(Header::decode(&b), Ok(h));
        assert_eq!(Header::parse(&b[..31]), Err(WireError::ShortHeader));
    }

    #[test]
    fn payload_layout_and_crc() {
        let m = Message::Hello {
            cluster_tag: 0x0807_0605_0403_0201,
            host_id: 2,
            channel: CHANNEL_DATA,
            transport: 0,
            nonce: [0xee; 16],
            incarnation: 7,
            ephemeral: [0x5f; 32],
        };
        let w = wire(&m, 2, 1);
        assert_eq!(w.len(), HEADER_LEN + 80);
        let p = &w[HEADER_LEN..];
        assert_eq!(&p[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&p[8..12], &2u32.to_le_bytes());
        assert_eq!(&p[12..16], &[0; 4]);
        assert_eq!(&p[16..20], &[0; 4], "transport");
        assert_eq!(&p[20..24], &[0; 4], "pad");
        assert_eq!(&p[24..32], &7u64.to_le_bytes(), "incarnation");
        assert_eq!(&p[32..48], &[0xee; 16]);
        assert_eq!(&p[48..80], &[0x5f; 32], "ephemeral");
        let c = wire(&Message::Challenge { host_id: 5, nonce: [1; 16], ephemeral: [2; 32], mac: [3; 32] }, 5, 1);
        assert_eq!(c.len(), HEADER_LEN + 88);
        assert_eq!(&c[HEADER_LEN + 8..HEADER_LEN + 24], &[1; 16]);
        assert_eq!(&c[HEADER_LEN + 24..HEADER_LEN + 56], &[2; 32]);
        assert_eq!(&c[HEADER_LEN + 56..HEADER_LEN + 88], &[3; 32]);
        // An unknown transport mode, or a non-zero pad, is refused.
        let mut bad = w.clone();
        bad[HEADER_LEN + 16] = 2;
        refresh_crc(&mut bad);
        assert_eq!(decode_all(&bad).map(|_| ()), Err(WireError::BadTransport));
        let mut bad = w.clone();
        bad[HEADER_LEN + 20] = 1;
        refresh_crc(&mut bad);
        assert_eq!(decode_all(&bad).map(|_| ()), Err(WireError::NonZeroPad));
        // The checksum covers the header with a zero crc field, then the payload.
        let mut z = w.clone();
        z[24..28].fill(0);
        assert_eq!(u32::from_le_bytes(w[24..28].try_into().unwrap()), crc32c(&z));

        let mut buf = [0u8; 32];
        let entries = DestagedEntries::encode_into([(1, 2), (3, 4)], &mut buf).unwrap();
        let w = wire(&Message::Destaged { volume_id: 9, entries }, 1, 1);
        let p = &w[HEADER_LEN..];
        assert_eq!(p.len(), 8 + 32);
        assert_eq!(&p[0..8], &[9, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&p[8..16], &1u64.to_le_bytes());
        assert_eq!(&p[16..24], &2u64.to_le_bytes());
        assert_eq!(&p[32..40], &4u64.to_le_bytes());

        let m = Message::VolumeOpen {
            volume_id: 1,
            block_size: 512,
            epoch: 3,
            sectors: 9,
            device_uuid: [0xab; DEVICE_UUID_LEN],
            name: b"ab",
        };
        let w = wire(&m, 1, 1);
        let p = &w[HEADER_LEN..];
        assert_eq!(p.len(), 72);
        assert_eq!(&p[16..24], &9u64.to_le_bytes());
        assert!(p[24..40].iter().all(|&b| b == 0xab));
        assert_eq!(&p[40..42], b"ab");
        assert!(p[42..72].iter().all(|&b| b == 0));

        let w = wire(&Message::Ack { acked_seq: 5, status: -5, value: 6 }, 1, 1);
        let p = &w[HEADER_LEN..];
        assert_eq!(&p[8..12], &(-5i32).to_le_bytes());
    }

    #[test]
    fn an_established_server_accepts_every_request_kind() {
        // Every kind a client sends after the handshake (a kind missing here closed
        // every connection that carried a DROP_RANGE).
        for kind in Kind::ALL {
            if kind.sent_by() != Role::Client || matches!(kind, Kind::Hello | Kind::Auth) {
                continue;
            }
            let mut s = Session::server();
            s.state = State::Established;
            s.next_rx_seq = 3;
            let len = kind.fixed_len() as u32 + if kind == Kind::Replicate { 4096 } else { 0 };
            let h = Header { kind, flags: FLAG_SEALED, payload_len: len, sender: 1, seq: 3, crc: 0 };
            s.peer_id = Some(1);
            assert_eq!(s.check_incoming(&h), Ok(()), "{}", kind.name());
        }
    }

    #[test]
    fn drop_range_is_never_empty_nor_past_the_last_block() {
        for (first, count) in [(0, 0), (u64::MAX, 1), (1, u64::MAX)] {
            let m = Message::DropRange { volume_id: 1, first, count, version: 1 };
            assert_eq!(m.encode_fixed(&mut [0; MAX_FIXED_LEN]), Err(WireError::BadRange));
            // The same fields from the wire: refused too.
            let mut payload = [0u8; 32];
            payload[0..4].copy_from_slice(&1u32.to_le_bytes());
            payload[8..16].copy_from_slice(&first.to_le_bytes());
            payload[16..24].copy_from_slice(&count.to_le_bytes());
            let h = Header { kind: Kind::DropRange, flags: 0, payload_len: 32, sender: 1, seq: 1, crc: 0 };
            let crc = h.compute_crc(&[&payload]);
            let h = Header { crc, ..h };
            assert_eq!(Message::decode(&h, &payload), Err(WireError::BadRange));
        }
        let m = Message::DropRange { volume_id: 1, first: u64::MAX - 1, count: 1, version: 1 };
        assert!(m.encode_fixed(&mut [0; MAX_FIXED_LEN]).is_ok());
    }

    #[test]
    fn every_kind_round_trips() {
        let data = page(1, 4096);
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        let entries = DestagedEntries::encode_into((0..256u64).map(|i| (i * 3, i + 100)), &mut buf).unwrap();
        let msgs = sample_messages(&data, entries);
        let mut kinds: Vec<Kind> = msgs.iter().map(|m| m.kind()).collect();
        kinds.dedup();
        assert_eq!(kinds, Kind::ALL.to_vec());
        for (i, m) in msgs.iter().enumerate() {
            let seq = i as u64 + 1;
            let w = wire(m, 3, seq);
            assert_eq!(w.len(), HEADER_LEN + m.kind().fixed_len() + m.data().len());
            let (h, back) = decode_all(&w).unwrap();
            assert_eq!(back, *m, "{}", m.kind().name());
            assert_eq!((h.kind, h.sender, h.seq, h.flags), (m.kind(), 3, seq, 0));
            assert_eq!(h.payload_len(), w.len() - HEADER_LEN);
            // The header and fixed part come from one buffer, the data is not copied.
            let e = m.encode(3, seq).unwrap();
            assert_eq!(e.header(), &h);
            assert_eq!(e.as_bytes().len(), HEADER_LEN + m.kind().fixed_len());
        }
        // Other block sizes and an empty DESTAGED.
        for bs in [512usize, 1024, 2048] {
            let d = page(bs as u64, bs);
            let m = Message::Replicate { volume_id: 1, block: 2, version: 3, data: &d };
            assert_eq!(decode_all(&wire(&m, 1, 1)).unwrap().1, m);
        }
        let m = Message::Destaged { volume_id: 1, entries: DestagedEntries::EMPTY };
        assert_eq!(decode_all(&wire(&m, 1, 1)).unwrap().1, m);
        let name = [b'z'; MAX_NAME_LEN];
        let m = Message::VolumeOpen {
            volume_id: 1,
            block_size: 1024,
            epoch: 0,
            sectors: 1 << 21,
            device_uuid: [0; DEVICE_UUID_LEN],
            name: &name,
        };
        assert_eq!(decode_all(&wire(&m, 1, 1)).unwrap().1, m);
    }

    #[test]
    fn destaged_entries() {
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        let e = DestagedEntries::encode_into([(10, 1), (20, 2), (30, 3)], &mut buf).unwrap();
        assert_eq!(e.len(), 3);
        assert!(!e.is_empty());
        assert_eq!(e.get(1), Some((20, 2)));
        assert_eq!(e.get(3), None);
        assert_eq!(e.get(usize::MAX), None);
        assert_eq!(e.iter().len(), 3);
        assert_eq!(e.into_iter().collect::<Vec<_>>(), std::vec![(10, 1), (20, 2), (30, 3)]);
        assert!(DestagedEntries::EMPTY.is_empty());
        let mut small = [0u8; 40];
        assert_eq!(DestagedEntries::encode_into([(1, 1); 3], &mut small), Err(WireError::BufferTooSmall));
        let mut big = [0u8; DESTAGED_BUF_LEN + 16];
        assert_eq!(DestagedEntries::encode_into((0..257u64).map(|i| (i, i)), &mut big), Err(WireError::TooManyEntries));
        assert_eq!(DestagedEntries::new(&big[..15]), Err(WireError::BadPayloadLength));
        assert_eq!(DestagedEntries::new(&big[..DESTAGED_BUF_LEN + 16]), Err(WireError::TooManyEntries));
        assert_eq!(DestagedEntries::new(&big[..DESTAGED_BUF_LEN]).map(|e| e.len()), Ok(256));
    }

    #[test]
    fn header_rejections() {
        let good = Header { kind: Kind::Ping, flags: 0, payload_len: 56, sender: 1, seq: 1, crc: 0 }.encode();
        assert!(Header::decode(&good).is_ok());
        let with = |off: usize, bytes: &[u8]| {
            let mut b = good;
            b[off..off + bytes.len()].copy_from_slice(bytes);
            Header::decode(&b)
        };
        assert_eq!(with(0, b"FVPS"), Err(WireError::BadMagic));
        assert_eq!(with(4, &[1]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[2]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[3]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[4]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[5]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[6]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[8]), Err(WireError::BadVersion));
        assert_eq!(with(4, &[0]), Err(WireError::BadVersion));
        assert_eq!(with(5, &[0]), Err(WireError::UnknownKind));
        assert_eq!(with(5, &[13]), Err(WireError::UnknownKind));
        assert_eq!(with(6, &[2, 0]), Err(WireError::BadFlags));
        // Sealed: the checksum field must be zero (the tag replaces it).
        assert_eq!(with(6, &[1, 0]).and_then(|_| with(24, &[1, 0, 0, 0])).map(|_| ()), Ok(()));
        let mut sealed_with_crc = good;
        sealed_with_crc[6] = 1;
        sealed_with_crc[24..28].copy_from_slice(&[1, 0, 0, 0]);
        assert_eq!(Header::decode(&sealed_with_crc), Err(WireError::BadFlags));
        let mut sealed_ok = sealed_with_crc;
        sealed_ok[24..28].fill(0);
        assert!(Header::decode(&sealed_ok).is_ok_and(|h| h.sealed()));
        assert_eq!(with(7, &[0x80]), Err(WireError::BadFlags));
        assert_eq!(with(28, &[0, 0, 0, 1]), Err(WireError::BadReserved));
        assert_eq!(with(12, &0u32.to_le_bytes()), Err(WireError::BadSender));
        assert_eq!(with(12, &65u32.to_le_bytes()), Err(WireError::BadSender));
        assert_eq!(with(12, &64u32.to_le_bytes()).map(|h| h.sender), Ok(64));
        assert_eq!(with(8, &31u32.to_le_bytes()), Err(WireError::BadPayloadLength));
        assert_eq!(with(8, &33u32.to_le_bytes()), Err(WireError::BadPayloadLength));
        assert_eq!(with(8, &u32::MAX.to_le_bytes()), Err(WireError::PayloadTooLong));
        assert_eq!(with(8, &(MAX_PAYLOAD as u32 + 1).to_le_bytes()), Err(WireError::PayloadTooLong));

        let len = |kind: Kind, n: u32| kind.check_payload_len(n);
        assert_eq!(len(Kind::Welcome, 0), Ok(()));
        assert_eq!(len(Kind::Welcome, 1), Err(WireError::BadPayloadLength));
        assert_eq!(len(Kind::Hello, 80), Ok(()));
        assert_eq!(len(Kind::Challenge, 88), Ok(()));
        assert_eq!(len(Kind::Auth, 32), Ok(()));
        assert_eq!(len(Kind::VolumeOpen, 72), Ok(()));
        assert_eq!(len(Kind::VolumeOpen, 48), Err(WireError::BadPayloadLength));
        assert_eq!(len(Kind::VolumeClose, 40), Ok(()));
        assert_eq!(len(Kind::VolumeClose, 8), Err(WireError::BadPayloadLength));
        assert_eq!(len(Kind::Ack, 24), Ok(()));
        assert_eq!(len(Kind::Pong, 56), Ok(()));
        assert_eq!(len(Kind::Pong, 32), Err(WireError::BadPayloadLength));
        for bs in [512, 1024, 2048, 4096] {
            assert_eq!(len(Kind::Replicate, 24 + bs), Ok(()));
        }
        assert_eq!(len(Kind::Replicate, 24 + 8192), Err(WireError::PayloadTooLong));
        for bs in [0, 1, 256, 511, 513, 3000, 4095] {
            assert_eq!(len(Kind::Replicate, 24 + bs), Err(WireError::BadBlockSize), "{bs}");
        }
        assert_eq!(len(Kind::Replicate, 23), Err(WireError::BadPayloadLength));
        assert_eq!(len(Kind::Destaged, 7), Err(WireError::BadPayloadLength));
        assert_eq!(len(Kind::Destaged, 8), Ok(()));
        assert_eq!(len(Kind::Destaged, 8 + 16 * 256), Ok(()));
        assert_eq!(len(Kind::Destaged, 8 + 16 * 257), Err(WireError::TooManyEntries));
        assert_eq!(len(Kind::Destaged, 8 + 17), Err(WireError::BadPayloadLength));
        for k in Kind::ALL {
            assert_eq!(Kind::from_u8(k.as_u8()), Some(k));
            assert!(k.fixed_len() <= MAX_FIXED_LEN);
        }
    }

    #[test]
    fn payload_rejections() {
        let data = page(2, 4096);
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        let entries = DestagedEntries::encode_into([(1, 1), (2, 2)], &mut buf).unwrap();
        let msgs = sample_messages(&data, entries);
        // (message index, payload offset, byte, expected error) after fixing the crc.
        let cases: [(usize, usize, u8, WireError); 15] = [
            (0, 12, 2, WireError::BadChannel),
            (0, 8, 4, WireError::HostIdMismatch),
            (1, 4, 1, WireError::NonZeroPad),
            (1, 0, 4, WireError::HostIdMismatch),
            (6, 40, 0, WireError::BadName),
            (6, 40, b' ', WireError::BadName),
            (6, 40, b'/', WireError::BadName),
            (6, 54, b'x', WireError::BadName),
            (6, 71, b'x', WireError::BadName),
            (6, 18, 0, WireError::BadDeviceSize),
            (6, 4, 1, WireError::BadBlockSize),
            (7, 4, 1, WireError::NonZeroPad),
            (8, 4, 3, WireError::BadDestagedCount),
            (9, 7, 1, WireError::NonZeroPad),
            (10, 12, 1, WireError::NonZeroPad),
        ];
        for (i, off, byte, err) in cases {
            let mut w = wire(&msgs[i], 3, 1);
            w[HEADER_LEN + off] = byte;
            refresh_crc(&mut w);
            assert_eq!(decode_all(&w).map(|x| x.1), Err(err), "case {i} @{off}");
        }
        // ACK status out of range.
        for status in [1i32, -4096, i32::MIN, i32::MAX] {
            let mut w = wire(&msgs[10], 3, 1);
            w[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&status.to_le_bytes());
            refresh_crc(&mut w);
            assert_eq!(decode_all(&w).map(|x| x.1), Err(WireError::BadStatus));
        }
        // Checksum and length.
        let mut w = wire(&msgs[4], 3, 1);
        w[HEADER_LEN] ^= 1;
        assert_eq!(decode_all(&w).map(|x| x.1), Err(WireError::BadChecksum));
        let w = wire(&msgs[4], 3, 1);
        let h = Header::parse(&w).unwrap();
        assert_eq!(Message::decode(&h, &w[HEADER_LEN..w.len() - 1]), Err(WireError::PayloadMismatch));
        let mut longer = w.clone();
        longer.push(0);
        assert_eq!(Message::decode(&h, &longer[HEADER_LEN..]), Err(WireError::PayloadMismatch));
        // A hand-made header is checked again.
        let bad = Header { flags: 1, ..h };
        assert_eq!(Message::decode(&bad, &w[HEADER_LEN..]), Err(WireError::BadFlags));
    }

    #[test]
    fn encode_rejections() {
        let d = page(3, 4096);
        let enc = |m: Message<'_>| m.encode(2, 1).map(|_| ());
        assert_eq!(
            enc(Message::Hello {
                cluster_tag: 0,
                host_id: 3,
                channel: 0,
                transport: 0,
                nonce: [0; 16],
                incarnation: 7,
                ephemeral: [0x5f; 32]
            }),
            Err(WireError::HostIdMismatch)
        );
        assert_eq!(
            enc(Message::Challenge { host_id: 1, nonce: [0; 16], ephemeral: [0x5e; 32], mac: [0; 32] }),
            Err(WireError::HostIdMismatch)
        );
        assert_eq!(
            Message::Hello {
                cluster_tag: 0,
                host_id: 0,
                channel: 0,
                transport: 0,
                nonce: [0; 16],
                incarnation: 7,
                ephemeral: [0x5f; 32]
            }
            .encode(0, 1)
            .map(|_| ()),
            Err(WireError::BadSender)
        );
        assert_eq!(Message::Welcome.encode(65, 1).map(|_| ()), Err(WireError::BadSender));
        for name in [&b""[..], b"a b", b"a/b", b"\0", &[b'a'; 32], "é".as_bytes()] {
            let m = Message::VolumeOpen {
                volume_id: 1,
                block_size: 4096,
                epoch: 1,
                sectors: 8,
                device_uuid: [0; DEVICE_UUID_LEN],
                name,
            };
            assert_eq!(enc(m), Err(WireError::BadName), "{name:?}");
        }
        // A device smaller than one block: nothing a volume could use.
        for (bs, sectors) in [(4096u32, 7u64), (512, 0), (1024, 1)] {
            let m = Message::VolumeOpen {
                volume_id: 1,
                block_size: bs,
                epoch: 1,
                sectors,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"v",
            };
            assert_eq!(enc(m), Err(WireError::BadDeviceSize), "{bs} {sectors}");
        }
        assert_eq!(device_blocks(u64::MAX, 4096), u64::MAX / 8);
        assert_eq!(device_blocks(15, 4096), 1);
        assert_eq!(device_blocks(15, 512), 15);
        for bs in [0u32, 256, 1000, 8192] {
            let m = Message::VolumeOpen {
                volume_id: 1,
                block_size: bs,
                epoch: 1,
                sectors: 1 << 21,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"v",
            };
            assert_eq!(enc(m), Err(WireError::BadBlockSize));
        }
        for len in [0usize, 100, 511, 4095] {
            let m = Message::Replicate { volume_id: 1, block: 1, version: 1, data: &d[..len] };
            assert_eq!(enc(m), Err(WireError::BadBlockSize));
        }
        assert_eq!(enc(Message::Ack { acked_seq: 1, status: 1, value: 0 }), Err(WireError::BadStatus));
        assert_eq!(enc(Message::Ack { acked_seq: 1, status: -4096, value: 0 }), Err(WireError::BadStatus));
        assert_eq!(enc(Message::Ack { acked_seq: 1, status: -4095, value: 0 }), Ok(()));
        // The low-level encoder checks lengths.
        assert_eq!(encode_message(Kind::Ping, 1, 1, &[0; 55], &[]).map(|_| ()), Err(WireError::BadFixedLength));
        assert_eq!(encode_message(Kind::Ping, 1, 1, &[0; 56], &[0]).map(|_| ()), Err(WireError::BadPayloadLength));
        assert_eq!(
            encode_message(Kind::Replicate, 1, 1, &[0; 24], &d[..100]).map(|_| ()),
            Err(WireError::BadBlockSize)
        );
        let huge = std::vec![0u8; MAX_PAYLOAD];
        assert_eq!(encode_message(Kind::Replicate, 1, 1, &[0; 24], &huge).map(|_| ()), Err(WireError::PayloadTooLong));
        assert_eq!(
            encode_message(Kind::Destaged, 1, 1, &[0; 8], &huge[..16 * 257]).map(|_| ()),
            Err(WireError::TooManyEntries)
        );
    }

    #[test]
    fn every_error_has_a_reason() {
        let all = [
            WireError::ShortHeader,
            WireError::BadMagic,
            WireError::BadVersion,
            WireError::UnknownKind,
            WireError::BadFlags,
            WireError::BadReserved,
            WireError::BadSender,
            WireError::PayloadTooLong,
            WireError::BadPayloadLength,
            WireError::BadBlockSize,
            WireError::TooManyEntries,
            WireError::PayloadMismatch,
            WireError::BadChecksum,
            WireError::NonZeroPad,
            WireError::HostIdMismatch,
            WireError::BadName,
            WireError::BadChannel,
            WireError::BadDestagedCount,
            WireError::BadStatus,
            WireError::BadFixedLength,
            WireError::BufferTooSmall,
            WireError::BadSeq,
            WireError::WrongSender,
            WireError::WrongDirection,
            WireError::UnexpectedKind,
            WireError::WrongState,
            WireError::BadClusterTag,
            WireError::UnknownHost,
            WireError::BadMac,
        ];
        let reasons: std::collections::BTreeSet<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(std::format!("{}", WireError::BadChecksum), "bad checksum");
    }

    fn header_of(w: &[u8]) -> Header {
        Header::parse(w).unwrap()
    }

    /// The full handshake as both ends run it, over encoded messages.
    #[test]
    fn handshake_and_established_traffic() {
        let secret = b"the secret";
        let tag = cluster_tag(&HostHmac, b"cluster-1").unwrap();
        let (client_id, server_id) = (2u32, 5u32);
        let (nc, ns) = ([1u8; 16], [2u8; 16]);
        let mut c_seq = SeqCounter::new();
        let mut s_seq = SeqCounter::new();
        let mut server = Session::server();
        let mut client = Session::client(server_id);
        assert_eq!((server.role(), server.state(), server.peer_id()), (Role::Server, State::AwaitHello, None));
        assert_eq!((client.role(), client.state(), client.peer_id()), (Role::Client, State::AwaitChallenge, Some(5)));

        // 1. HELLO
        let w = wire(
            &Message::Hello {
                cluster_tag: tag,
                host_id: client_id,
                channel: CHANNEL_DATA,
                transport: 0,
                nonce: nc,
                incarnation: 7,
                ephemeral: [0x5f; 32],
            },
            client_id,
            c_seq.next_seq(),
        );
        let h = header_of(&w);
        server.check_incoming(&h).unwrap();
        let Message::Hello { cluster_tag: t, host_id, nonce, .. } = Message::decode(&h, &w[HEADER_LEN..]).unwrap()
        else {
            panic!()
        };
        assert_eq!((t, host_id, nonce), (tag, client_id, nc));
        assert_eq!(server.auth_verified(), Err(WireError::WrongState));
        server.hello_received(host_id).unwrap();
        assert_eq!(server.hello_received(host_id), Err(WireError::WrongState));
        assert_eq!((server.state(), server.peer_id()), (State::AwaitAuth, Some(client_id)));

        // 2. CHALLENGE
        let hs = Handshake {
            tag,
            client_id,
            server_id,
            channel: CHANNEL_DATA,
            transport: 0,
            incarnation: 7,
            nonce_c: nc,
            nonce_s: ns,
            eph_c: [0x5f; 32],
            eph_s: [0x5e; 32],
        };
        // X25519 results stand in: `auth.rs` tests the real thing.
        let secrets = Secrets { cluster_secret: secret, static_dh: &[8; 32], ephemeral_dh: &[9; 32] };
        let sch = hs.schedule(&HostHmac, &secrets).unwrap();
        let mac_s = sch.server_mac(&HostHmac, &hs).unwrap();
        let w = wire(
            &Message::Challenge { host_id: server_id, nonce: ns, ephemeral: [0x5e; 32], mac: mac_s },
            server_id,
            s_seq.next_seq(),
        );
        let h = header_of(&w);
        client.check_incoming(&h).unwrap();
        let Message::Challenge { nonce, mac, .. } = Message::decode(&h, &w[HEADER_LEN..]).unwrap() else { panic!() };
        assert_eq!(nonce, ns);
        assert!(sch.verify_server_mac(&HostHmac, &hs, &mac));
        assert_eq!(client.welcome_received(), Err(WireError::WrongState));
        client.challenge_received().unwrap();
        assert_eq!(client.state(), State::AwaitWelcome);

        // 3. AUTH
        let mac_c = sch.client_mac(&HostHmac, &hs).unwrap();
        let w = wire(&Message::Auth { mac: mac_c }, client_id, c_seq.next_seq());
        let h = header_of(&w);
        server.check_incoming(&h).unwrap();
        let Message::Auth { mac } = Message::decode(&h, &w[HEADER_LEN..]).unwrap() else { panic!() };
        assert!(sch.verify_client_mac(&HostHmac, &hs, &mac));
        server.auth_verified().unwrap();
        assert!(server.is_established());

        // 4. WELCOME
        let w = wire(&Message::Welcome, server_id, s_seq.next_seq());
        let h = header_of(&w);
        client.check_incoming(&h).unwrap();
        assert_eq!(Message::decode(&h, &w[HEADER_LEN..]), Ok(Message::Welcome));
        client.welcome_received().unwrap();
        assert!(client.is_established());
        assert_eq!(client.welcome_received(), Err(WireError::WrongState));

        // Requests and replies.
        let d = page(4, 4096);
        let req = [
            Message::Ping { sent_ns: 1, heard: 0, fenced: 0, recovering: 0, configured: 0b111, joint: [0; JOINT_MAX] },
            Message::VolumeOpen {
                volume_id: 1,
                block_size: 4096,
                epoch: 1,
                sectors: 1 << 21,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"v",
            },
            Message::Replicate { volume_id: 1, block: 0, version: 1, data: &d },
            Message::Destaged { volume_id: 1, entries: DestagedEntries::EMPTY },
            Message::VolumeClose { volume_id: 1, name: b"v" },
        ];
        for m in req {
            // In clear, refused: after WELCOME every message is sealed.
            let mut copy = server;
            assert_eq!(
                copy.check_incoming(&header_of(&wire(&m, client_id, c_seq.last() + 1))),
                Err(WireError::BadSealing)
            );
            let w = sealed(&m, client_id, c_seq.next_seq());
            server.check_incoming(&header_of(&w)).unwrap();
            // The client never receives requests.
            let mut other = client;
            assert_eq!(
                other.check_incoming(&header_of(&wire(&m, server_id, other.next_rx_seq()))),
                Err(WireError::WrongDirection)
            );
        }
        for m in [
            Message::Pong { echo_ns: 1, heard: 0, fenced: 0, recovering: 0, configured: 0b111, joint: [0; JOINT_MAX] },
            Message::Ack { acked_seq: 3, status: 0, value: 0 },
        ] {
            let w = sealed(&m, server_id, s_seq.next_seq());
            client.check_incoming(&header_of(&w)).unwrap();
            let mut other = server;
            assert_eq!(
                other.check_incoming(&header_of(&wire(&m, client_id, other.next_rx_seq()))),
                Err(WireError::WrongDirection)
            );
        }
        assert_eq!(server.next_rx_seq(), 8);
        assert_eq!(client.next_rx_seq(), 5);
        assert_eq!(c_seq.last(), 7);

        // Replay, gap, impostor, handshake kinds after WELCOME.
        let replay = sealed(&Message::VolumeClose { volume_id: 1, name: b"v" }, client_id, 7);
        assert_eq!(server.check_incoming(&header_of(&replay)), Err(WireError::BadSeq));
        let gap = sealed(&Message::VolumeClose { volume_id: 1, name: b"v" }, client_id, 9);
        assert_eq!(server.check_incoming(&header_of(&gap)), Err(WireError::BadSeq));
        let impostor = sealed(&Message::VolumeClose { volume_id: 1, name: b"v" }, 9, 8);
        assert_eq!(server.check_incoming(&header_of(&impostor)), Err(WireError::WrongSender));
        let hello = sealed(
            &Message::Hello {
                cluster_tag: tag,
                host_id: client_id,
                channel: CHANNEL_DATA,
                transport: 0,
                nonce: nc,
                incarnation: 7,
                ephemeral: [0x5f; 32],
            },
            client_id,
            8,
        );
        assert_eq!(server.check_incoming(&header_of(&hello)), Err(WireError::UnexpectedKind));
        let auth = sealed(&Message::Auth { mac: mac_c }, client_id, 8);
        assert_eq!(server.check_incoming(&header_of(&auth)), Err(WireError::UnexpectedKind));
        assert_eq!(server.next_rx_seq(), 8);
    }

    #[test]
    fn nothing_but_the_handshake_before_welcome() {
        let d = page(5, 512);
        let reqs = [
            Message::Ping { sent_ns: 1, heard: 0, fenced: 0, recovering: 0, configured: 0b111, joint: [0; JOINT_MAX] },
            Message::VolumeOpen {
                volume_id: 1,
                block_size: 512,
                epoch: 1,
                sectors: 1 << 21,
                device_uuid: [0; DEVICE_UUID_LEN],
                name: b"v",
            },
            Message::Replicate { volume_id: 1, block: 0, version: 1, data: &d },
            Message::VolumeClose { volume_id: 1, name: b"v" },
            Message::Auth { mac: [0; 32] },
        ];
        for m in reqs {
            let mut s = Session::server();
            assert_eq!(
                s.check_incoming(&header_of(&wire(&m, 2, 1))),
                Err(WireError::UnexpectedKind),
                "{}",
                m.kind().name()
            );
            assert_eq!(s, Session::server());
        }
        // HELLO accepted but the step not taken: AUTH is refused, so is a second HELLO.
        let mut s = Session::server();
        let hello = Message::Hello {
            cluster_tag: 1,
            host_id: 2,
            channel: CHANNEL_DATA,
            transport: 0,
            nonce: [0; 16],
            incarnation: 7,
            ephemeral: [0x5f; 32],
        };
        s.check_incoming(&header_of(&wire(&hello, 2, 1))).unwrap();
        assert_eq!(s.check_incoming(&header_of(&wire(&hello, 2, 2))), Err(WireError::UnexpectedKind));
        assert_eq!(
            s.check_incoming(&header_of(&wire(&Message::Auth { mac: [0; 32] }, 2, 2))),
            Err(WireError::UnexpectedKind)
        );
        // After the step, AUTH must come from the host HELLO named.
        s.hello_received(2).unwrap();
        assert_eq!(
            s.check_incoming(&header_of(&wire(&Message::Auth { mac: [0; 32] }, 3, 2))),
            Err(WireError::WrongSender)
        );
        // Requests before AUTH is verified.
        let ping =
            Message::Ping { sent_ns: 1, heard: 0, fenced: 0, recovering: 0, configured: 0b111, joint: [0; JOINT_MAX] };
        assert_eq!(s.check_incoming(&header_of(&wire(&ping, 2, 2))), Err(WireError::UnexpectedKind));
        s.check_incoming(&header_of(&wire(&Message::Auth { mac: [0; 32] }, 2, 2))).unwrap();
        // AUTH accepted but not verified: nothing else gets in.
        assert_eq!(s.check_incoming(&header_of(&wire(&ping, 2, 3))), Err(WireError::UnexpectedKind));

        // Client: WELCOME before CHALLENGE, ACK before WELCOME, CHALLENGE from another host.
        let mut c = Session::client(5);
        assert_eq!(c.check_incoming(&header_of(&wire(&Message::Welcome, 5, 1))), Err(WireError::UnexpectedKind));
        let ack = Message::Ack { acked_seq: 1, status: 0, value: 0 };
        assert_eq!(c.check_incoming(&header_of(&wire(&ack, 5, 1))), Err(WireError::UnexpectedKind));
        let ch = |id| Message::Challenge { host_id: id, nonce: [0; 16], ephemeral: [0x5e; 32], mac: [0; 32] };
        assert_eq!(c.check_incoming(&header_of(&wire(&ch(6), 6, 1))), Err(WireError::WrongSender));
        assert_eq!(c.challenge_received(), Err(WireError::WrongState));
        c.check_incoming(&header_of(&wire(&ch(5), 5, 1))).unwrap();
        assert_eq!(c.hello_received(5), Err(WireError::WrongState));
        assert_eq!(c.auth_verified(), Err(WireError::WrongState));
        c.challenge_received().unwrap();
        assert_eq!(c.check_incoming(&header_of(&wire(&ack, 5, 2))), Err(WireError::UnexpectedKind));
        c.check_incoming(&header_of(&wire(&Message::Welcome, 5, 2))).unwrap();
        c.welcome_received().unwrap();
        assert_eq!(c.check_incoming(&header_of(&wire(&ack, 5, 3))), Err(WireError::BadSealing));
        c.check_incoming(&header_of(&sealed(&ack, 5, 3))).unwrap();

        let mut s = Session::server();
        assert_eq!(s.hello_received(1), Err(WireError::WrongState));
        s.check_incoming(&header_of(&wire(&hello, 2, 1))).unwrap();
        assert_eq!(s.hello_received(0), Err(WireError::BadSender));
        assert_eq!(s.challenge_received(), Err(WireError::WrongState));
    }

    #[test]
    fn pongs_must_echo_the_oldest_ping_sent() {
        let mut p = PendingPings::new();
        assert!(!p.pong(0), "no PING sent: no PONG is an answer");
        assert!(p.sent(10) && p.sent(20) && p.sent(30));
        assert!(!p.pong(20), "out of order");
        assert!(!p.pong(11), "never sent");
        assert!(p.pong(10));
        assert!(p.pong(20));
        assert!(!p.pong(20), "answered twice");
        assert!(p.pong(30));
        assert!(p.is_empty());
        // Full: the caller skips the PING; the ring wraps correctly.
        for i in 0..PINGS_MAX as u64 {
            assert!(p.sent(100 + i));
        }
        assert!(!p.sent(1));
        assert_eq!(p.len(), PINGS_MAX);
        for i in 0..PINGS_MAX as u64 {
            assert!(p.pong(100 + i), "{i}");
        }
        assert!(p.is_empty());
    }

    #[test]
    fn seq_counter() {
        let mut s = SeqCounter::new();
        assert_eq!(s.last(), 0);
        assert_eq!((s.next_seq(), s.next_seq(), s.next_seq()), (1, 2, 3));
        let mut s = SeqCounter { last: u64::MAX - 1 };
        assert_eq!(s.next_seq(), u64::MAX);
        assert_eq!(s.next_seq(), 0);
        // The receiver cannot go past u64::MAX.
        let mut r = Session { next_rx_seq: u64::MAX, state: State::Established, ..Session::server() };
        let h = Header { kind: Kind::Ping, flags: 0, payload_len: 56, sender: 1, seq: u64::MAX, crc: 0 };
        assert_eq!(r.check_incoming(&h), Err(WireError::BadSeq));
    }

    // ---- Property tests ----

    /// An owned message, for strategies.
    #[derive(Clone, Debug)]
    enum Owned {
        Hello(u64, [u8; 16]),
        Challenge([u8; 16], [u8; 32]),
        Auth([u8; 32]),
        Welcome,
        Ping(u64, u64, u64, u64),
        Pong(u64, u64, u64, u64),
        VolumeOpen(u32, u32, u64, u64, [u8; DEVICE_UUID_LEN], Vec<u8>),
        Replicate(u32, u64, u64, Vec<u8>),
        Destaged(u32, Vec<(u64, u64)>),
        VolumeClose(u32, Vec<u8>),
        Ack(u64, i32, u64),
    }

    impl Owned {
        fn message<'a>(&'a self, sender: u32, buf: &'a mut [u8; DESTAGED_BUF_LEN]) -> Message<'a> {
            match self {
                Owned::Hello(t, n) => Message::Hello {
                    cluster_tag: *t,
                    host_id: sender,
                    channel: CHANNEL_DATA,
                    transport: 0,
                    nonce: *n,
                    incarnation: 7,
                    ephemeral: [0x5f; 32],
                },
                Owned::Challenge(n, m) => {
                    Message::Challenge { host_id: sender, nonce: *n, ephemeral: [0x5e; 32], mac: *m }
                }
                Owned::Auth(m) => Message::Auth { mac: *m },
                Owned::Welcome => Message::Welcome,
                Owned::Ping(a, b, c, d) => Message::Ping {
                    sent_ns: *a,
                    heard: *b,
                    fenced: *c,
                    recovering: *d,
                    configured: a ^ d,
                    joint: [*b, *c],
                },
                Owned::Pong(a, b, c, d) => Message::Pong {
                    echo_ns: *a,
                    heard: *b,
                    fenced: *c,
                    recovering: *d,
                    configured: b ^ c,
                    joint: [*d, *a],
                },
                Owned::VolumeOpen(v, bs, e, sectors, id, n) => Message::VolumeOpen {
                    volume_id: *v,
                    block_size: *bs,
                    epoch: *e,
                    sectors: *sectors,
                    device_uuid: *id,
                    name: n,
                },
                Owned::Replicate(v, b, ver, d) => {
                    Message::Replicate { volume_id: *v, block: *b, version: *ver, data: d }
                }
                Owned::Destaged(v, e) => Message::Destaged {
                    volume_id: *v,
                    entries: DestagedEntries::encode_into(e.iter().copied(), buf).unwrap(),
                },
                Owned::VolumeClose(v, n) => Message::VolumeClose { volume_id: *v, name: n },
                Owned::Ack(s, st, v) => Message::Ack { acked_seq: *s, status: *st, value: *v },
            }
        }
    }

    fn block_size() -> impl Strategy<Value = u32> {
        prop_oneof![Just(512u32), Just(1024), Just(2048), Just(4096)]
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let a16 = || proptest::array::uniform16(any::<u8>());
        let a32 = || proptest::array::uniform32(any::<u8>());
        prop_oneof![
            (any::<u64>(), a16()).prop_map(|(t, n)| Owned::Hello(t, n)),
            (a16(), a32()).prop_map(|(n, m)| Owned::Challenge(n, m)),
            a32().prop_map(Owned::Auth),
            Just(Owned::Welcome),
            any::<(u64, u64, u64, u64)>().prop_map(|(a, b, c, d)| Owned::Ping(a, b, c, d)),
            any::<(u64, u64, u64, u64)>().prop_map(|(a, b, c, d)| Owned::Pong(a, b, c, d)),
            (any::<u32>(), block_size(), any::<u64>(), 8u64.., a16(), "[A-Za-z0-9_.-]{1,31}")
                .prop_map(|(v, bs, e, sectors, id, n)| Owned::VolumeOpen(v, bs, e, sectors, id, n.into_bytes())),
            (any::<u32>(), any::<u64>(), any::<u64>(), block_size(), any::<u64>())
                .prop_map(|(v, b, ver, bs, seed)| Owned::Replicate(v, b, ver, page(seed, bs as usize))),
            (any::<u32>(), proptest::collection::vec(any::<(u64, u64)>(), 0..=MAX_DESTAGED))
                .prop_map(|(v, e)| Owned::Destaged(v, e)),
            (any::<u32>(), "[A-Za-z0-9_.-]{1,31}").prop_map(|(v, n)| Owned::VolumeClose(v, n.into_bytes())),
            (any::<u64>(), prop_oneof![Just(0i32), -MAX_ERRNO..=0], any::<u64>())
                .prop_map(|(s, st, v)| Owned::Ack(s, st, v)),
        ]
    }

    /// Byte strings a receiver may see: headers that are mostly well-formed, payloads
    /// random, zero or sparse, lengths right or a little off, checksum right or not.
    fn arbitrary_input() -> impl Strategy<Value = (Vec<u8>, bool)> {
        (
            (
                prop_oneof![4 => Just(MAGIC), 1 => any::<u32>()],
                prop_oneof![8 => Just(VERSION), 1 => any::<u8>()],
                prop_oneof![8 => 1u8..=11, 1 => any::<u8>()],
                prop_oneof![8 => Just(0u16), 1 => any::<u16>()],
                prop_oneof![6 => Just(None), 1 => (0u32..=4200).prop_map(Some), 1 => any::<u32>().prop_map(Some)],
                prop_oneof![6 => 1u32..=MAX_HOST_ID, 1 => any::<u32>()],
                prop_oneof![4 => 1u64..4, 1 => any::<u64>()],
                prop_oneof![8 => Just(0u32), 1 => any::<u32>()],
            ),
            (0u8..3, any::<u64>(), prop_oneof![8 => Just(0i32), 1 => -2i32..=2], any::<bool>()),
        )
            .prop_map(|((magic, ver, kind, flags, len, sender, seq, reserved), (mode, seed, delta, fix))| {
                // Mostly a length that is right for the kind.
                let len = len.unwrap_or_else(|| match Kind::from_u8(kind) {
                    Some(Kind::Replicate) => 24 + (512u32 << (seed % 4)),
                    Some(Kind::Destaged) => 8 + 16 * (seed % 258) as u32,
                    Some(k) => k.fixed_len() as u32,
                    None => (seed % 64) as u32,
                });
                let mut b = std::vec![0u8; HEADER_LEN];
                b[0..4].copy_from_slice(&magic.to_le_bytes());
                b[4] = ver;
                b[5] = kind;
                b[6..8].copy_from_slice(&flags.to_le_bytes());
                b[8..12].copy_from_slice(&len.to_le_bytes());
                b[12..16].copy_from_slice(&sender.to_le_bytes());
                b[16..24].copy_from_slice(&seq.to_le_bytes());
                b[24..28].copy_from_slice(&((seed >> 7) as u32).to_le_bytes());
                b[28..32].copy_from_slice(&reserved.to_le_bytes());
                let plen = (len.min(5000) as i64 + delta as i64).max(0) as usize;
                let mut p = std::vec![0u8; plen];
                match mode {
                    0 => prng_fill(seed, &mut p),
                    1 => {}
                    _ => {
                        prng_fill(seed, &mut p);
                        for (i, c) in p.chunks_mut(8).enumerate() {
                            if (seed >> (i % 64)) & 3 != 0 {
                                c.fill(0);
                            }
                        }
                    }
                }
                if fix {
                    let mut z = b.clone();
                    z[24..28].fill(0);
                    z.extend_from_slice(&p);
                    b[24..28].copy_from_slice(&crc32c(&z).to_le_bytes());
                }
                b.extend_from_slice(&p);
                (b, fix)
            })
    }

    /// The model of which kinds the peer may send: (state the kind is valid in, or
    /// None for "Established").
    fn allowed(role: Role, state: State, kind: Kind, seq: u64) -> bool {
        if kind.sent_by() == role {
            return false;
        }
        match state {
            State::Established => !matches!(kind, Kind::Hello | Kind::Challenge | Kind::Auth | Kind::Welcome),
            State::AwaitHello => role == Role::Server && kind == Kind::Hello && seq == 1,
            State::AwaitAuth => role == Role::Server && kind == Kind::Auth && seq == 2,
            State::AwaitChallenge => role == Role::Client && kind == Kind::Challenge && seq == 1,
            State::AwaitWelcome => role == Role::Client && kind == Kind::Welcome && seq == 2,
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Incoming { seq_mode: u8, random_seq: u64, kind: u8, sender: u32 },
        Step(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, any::<u64>(), 1u8..=11, prop_oneof![4 => Just(5u32), 1 => 1u32..=64])
                .prop_map(|(seq_mode, random_seq, kind, sender)| Op::Incoming { seq_mode, random_seq, kind, sender }),
            1 => (0u8..4).prop_map(Op::Step),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// (a) Every valid message survives encode then decode.
        #[test]
        fn round_trip(o in owned(), sender in 1u32..=MAX_HOST_ID, seq in any::<u64>()) {
            let mut buf = [0u8; DESTAGED_BUF_LEN];
            let m = o.message(sender, &mut buf);
            let w = wire(&m, sender, seq);
            let (h, back) = decode_all(&w).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!((h.kind, h.sender, h.seq), (m.kind(), sender, seq));
        }

        /// (b) Any single bit flip, truncation or extension of a valid message is refused.
        #[test]
        fn corrupted_messages_are_refused(o in owned(), sender in 1u32..=MAX_HOST_ID, seq in any::<u64>(),
                                          at in any::<proptest::sample::Index>(), bit in 0u8..8,
                                          how in 0u8..3, extra in 1usize..40) {
            let mut buf = [0u8; DESTAGED_BUF_LEN];
            let m = o.message(sender, &mut buf);
            let mut w = wire(&m, sender, seq);
            match how {
                0 => { let i = at.index(w.len()); w[i] ^= 1 << bit; }
                1 => { let n = at.index(w.len()); w.truncate(n); }
                _ => w.extend(std::iter::repeat_n(bit, extra)),
            }
            prop_assert!(decode_all(&w).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// (b) Arbitrary input never panics, and a message is only ever accepted with a
        /// matching checksum; what is accepted re-encodes to the very same bytes.
        #[test]
        fn arbitrary_input_is_handled((bytes, _fixed) in arbitrary_input()) {
            let mut server = Session::server();
            let mut client = Session::client(5);
            if let Ok(h) = Header::parse(&bytes) {
                let _ = server.check_incoming(&h);
                let _ = client.check_incoming(&h);
                if let Ok(m) = Message::decode(&h, &bytes[HEADER_LEN..]) {
                    let mut z = bytes.clone();
                    z[24..28].fill(0);
                    prop_assert_eq!(crc32c(&z), h.crc);
                    prop_assert_eq!(wire(&m, h.sender, h.seq), bytes);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// (c) A session accepts exactly seqs 1, 2, 3, … and only kinds the model allows;
        /// a refused message changes nothing.
        #[test]
        fn session_never_accepts_out_of_order(server_side in any::<bool>(),
                                              ops in proptest::collection::vec(op(), 1..60)) {
            let role = if server_side { Role::Server } else { Role::Client };
            let mut s = if server_side { Session::server() } else { Session::client(5) };
            let mut expected = 1u64;
            for op in ops {
                let before = s;
                match op {
                    Op::Incoming { seq_mode, random_seq, kind, sender } => {
                        let seq = match seq_mode {
                            0..=3 => expected,
                            4 => expected + 1,
                            5 => expected - 1,
                            6 => expected.wrapping_add(1 << 32),
                            _ => random_seq,
                        };
                        let kind = Kind::from_u8(kind).unwrap();
                        let h = Header { kind, flags: 0, payload_len: 0, sender, seq, crc: 0 };
                        match s.check_incoming(&h) {
                            Ok(()) => {
                                prop_assert_eq!(seq, expected);
                                prop_assert!(allowed(role, before.state, kind, seq));
                                if let Some(p) = before.peer_id {
                                    prop_assert_eq!(sender, p);
                                }
                                expected += 1;
                                prop_assert_eq!(s.next_rx_seq(), expected);
                            }
                            Err(_) => prop_assert_eq!(s, before),
                        }
                    }
                    Op::Step(n) => {
                        let r = match n {
                            0 => s.hello_received(5),
                            1 => s.challenge_received(),
                            2 => s.auth_verified(),
                            _ => s.welcome_received(),
                        };
                        match r {
                            Ok(()) => prop_assert_eq!(s.next_rx_seq(), before.next_rx_seq()),
                            Err(_) => prop_assert_eq!(s, before),
                        }
                    }
                }
                prop_assert_eq!(s.next_rx_seq(), expected);
                prop_assert_eq!(s.role(), role);
            }
        }
    }
}
