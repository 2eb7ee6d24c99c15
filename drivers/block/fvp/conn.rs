// SPDX-License-Identifier: GPL-2.0

//! One authenticated replication connection: framing, sealing, sending, and the queue
//! of requests waiting for their ACK. See `docs/replication.md`, sections 2 and 3.
#![forbid(unsafe_code)]

use crate::fvp_kernel::crypto::{self, HmacSha256, SecretKey};
use crate::fvp_kernel::mempool::Notifier;
use crate::fvp_kernel::net::TcpSocket;
use crate::fvp_kernel::sync::WaitQueue;
use crate::logic::auth::{self, Key, Mac};
use crate::logic::seal::{self, Transport, TAG_LEN};
use crate::logic::wire::{self, Header, Message, WireError, HEADER_LEN};
use core::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::time::Ktime;

/// Requests in flight on one connection at most; a sender finding the queue full
/// treats the connection as failed rather than wait.
const MAX_IN_FLIGHT: usize = 4096;

/// Requests awaiting their ACK on one connection before a new request waits for one to
/// be ACKed (16 REPLICATEs, 64 KiB). Whatever is queued in the two sockets and at the
/// peer lies ahead of every PING that follows on this connection, and a lease counts
/// from the PING's sending: without a bound, a burst of writes queued megabytes and a
/// PING behind them missed the timeout (lease lost, peers dropped, everything re-sent:
/// the peer-kill flap). 64 was still 3 s of queue at a peer that stores 20 REPLICATEs a
/// second (a KASAN guest under emulation); 16 keeps it under a second there, and is
/// 64 KiB in flight per peer, more than a LAN's bandwidth-delay product.
const SEND_WINDOW: usize = 16;

/// How long a sender waits for room in the window before it looks again (an ACK or a
/// close wakes it at once; this only bounds a missed wake-up).
const WINDOW_WAIT_MS: u32 = 100;

/// Who waits for a request's ACK.
pub(crate) enum Waiter {
    /// Nobody (the request's effect is best effort, e.g. DESTAGED).
    Nobody,
    /// A write, told how its replica fared (one reference of its pending count). The
    /// network does not know what a write is: the volume implements the notification.
    Write(Notifier<AckOutcome>),
    /// A caller sleeping in [`Conn::call`].
    Call(Arc<CallWait>),
    /// One of a group of requests a caller waits for together.
    Batch(Arc<BatchWait>),
}

/// What became of a request a [`Waiter::Write`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// The peer stored it.
    Stored,
    /// It will never be ACKed (the connection closed) or the peer failed it.
    Failed,
    /// Host `peer` holds no store for the volume (ENOENT: it was fenced and discarded
    /// it, or its store is untrusted): the owner must stop counting on it.
    Refused { peer: u32 },
}

/// The outcome of a group of requests (re-sending a volume's dirty blocks).
///
/// # Invariants
///
/// `pending` counts the waiters handed out and not yet ACKed or failed, plus one for
/// the caller until [`BatchWait::wait`]; `done` completes when it reaches zero.
#[pin_data]
pub(crate) struct BatchWait {
    #[pin]
    done: crate::fvp_kernel::sync::Completion,
    pending: AtomicU64,
    failed: AtomicBool,
    /// Hosts (bit per id) that refused a request of the group (ENOENT: no store).
    refused: AtomicU64,
}

impl BatchWait {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(BatchWait {
                done <- crate::fvp_kernel::sync::Completion::new(),
                pending: AtomicU64::new(1),
                failed: AtomicBool::new(false),
                refused: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// A waiter for one more request of the group.
    pub(crate) fn waiter(self: &Arc<Self>) -> Waiter {
        self.pending.fetch_add(1, Relaxed);
        Waiter::Batch(self.clone())
    }

    fn put(&self, ok: bool) {
        if !ok {
            self.failed.store(true, Relaxed);
        }
        if self.pending.fetch_sub(1, AcqRel) == 1 {
            self.done.complete_all();
        }
    }

    /// Hosts that refused a request of the group (ENOENT), as a mask of host bits.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Sleeps until every request of the group was ACKed or failed; gives up once a
    /// whole `timeout_ms` passes without one of them being ACKed or failed. True if all
    /// were ACKed without error. Call once.
    ///
    /// Progress, not the whole group, is held to the timeout: a peer that answers
    /// steadily but slowly (a loaded host) is not a failed peer, and failing the group
    /// made re-protection start over, with every dirty block, forever (a livelock seen
    /// under emulation). A peer that stops answering is caught here and by its
    /// connection's own ACK deadline, which closes it and fails every waiter.
    pub(crate) fn wait(&self, timeout_ms: u32) -> bool {
        self.put(true);
        let mut left = self.pending.load(Relaxed);
        loop {
            if self.done.wait_timeout_ms(timeout_ms) {
                return !self.failed.load(Relaxed);
            }
            let now = self.pending.load(Relaxed);
            if now >= left {
                return false;
            }
            left = now;
        }
    }
}

/// A synchronous request's outcome.
#[pin_data]
pub(crate) struct CallWait {
    #[pin]
    done: crate::fvp_kernel::sync::Completion,
    status: AtomicU64,
    value: AtomicU64,
}

struct InFlight {
    seq: u64,
    sent: Ktime,
    waiter: Waiter,
}

struct SendState {
    next_seq: u64,
    /// This direction's key and mode.
    tx: Sealing,
    /// Where a message is laid out and sealed: header, payload, tag. Allocated with the
    /// connection, so that sending allocates nothing.
    buf: KVec<u8>,
}

/// The kernel's ChaCha20-Poly1305 (lib/crypto) behind the logic's [`seal::Aead`].
pub(crate) struct KernelAead;

impl seal::Aead for KernelAead {
    fn seal(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) {
        // `seal_message` hands in at least a tag's room, so this cannot fail.
        let _ = crypto::aead_seal(key, nonce, ad, sealed);
    }

    fn open(&self, key: &Key, nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool {
        crypto::aead_open(key, nonce, ad, sealed)
    }
}

/// The crypto API's `hmac(sha256)` behind the logic's [`auth::HmacSha256`]: one per
/// handshake (the transform is keyed per call, so it is not shared).
pub(crate) struct KernelHmac(HmacSha256);

impl KernelHmac {
    /// Allocates the transform (sleeps).
    pub(crate) fn new() -> Result<Self> {
        HmacSha256::new().map(Self)
    }
}

impl auth::HmacSha256 for KernelHmac {
    fn mac(&self, key: &[u8], parts: &[&[u8]]) -> Option<Mac> {
        let mut out = [0u8; auth::DIGEST_LEN];
        self.0.mac(key, parts, &mut out).ok()?;
        Some(out)
    }
}

/// One direction of an established connection: its key (unique to the connection and
/// the direction, `logic/auth.rs`) and the cluster's transport mode.
pub(crate) struct Sealing {
    pub(crate) key: SecretKey,
    pub(crate) transport: Transport,
}

/// A replication connection after the handshake.
///
/// The client side sends requests and tracks their ACKs in `in_flight`; the server side
/// sends only replies. Senders are serialised by `send`; `in_flight` is ordered by
/// sequence number, which is the order ACKs must come back in.
#[pin_data]
pub(crate) struct Conn {
    pub(crate) sock: Arc<TcpSocket>,
    pub(crate) local_id: u32,
    pub(crate) peer_id: u32,
    #[pin]
    send: Mutex<SendState>,
    #[pin]
    in_flight: Mutex<KVVecDeque>,
    /// How many requests `in_flight` holds, changed with it under its lock: what a
    /// sender waiting for room reads without the lock.
    queued: AtomicUsize,
    /// Woken when a request leaves `in_flight` (ACKed or failed) and on close.
    #[pin]
    window: WaitQueue,
    broken: AtomicBool,
    /// When the last ACK arrived (ns, `ktime_get`): the peer is making progress.
    last_ack_ns: AtomicU64,
}

/// A FIFO of in-flight requests (6.12's alloc has no `VecDeque`).
pub(crate) struct KVVecDeque {
    items: KVVec<Option<InFlight>>,
    head: usize,
    len: usize,
}

impl KVVecDeque {
    /// Allocated with its connection, so that sending allocates nothing.
    fn new() -> Result<Self> {
        let mut items = KVVec::with_capacity(MAX_IN_FLIGHT, GFP_KERNEL)?;
        for _ in 0..MAX_IN_FLIGHT {
            items.push(None, GFP_KERNEL)?;
        }
        Ok(Self { items, head: 0, len: 0 })
    }

    fn push(&mut self, item: InFlight) -> core::result::Result<(), (Error, Waiter)> {
        if self.len >= MAX_IN_FLIGHT {
            return Err((EBUSY, item.waiter));
        }
        let i = (self.head + self.len) % MAX_IN_FLIGHT;
        self.items[i] = Some(item);
        self.len += 1;
        Ok(())
    }

    fn front(&self) -> Option<&InFlight> {
        if self.len == 0 {
            return None;
        }
        self.items.get(self.head).and_then(|x| x.as_ref())
    }

    fn pop(&mut self) -> Option<InFlight> {
        if self.len == 0 {
            return None;
        }
        let item = self.items.get_mut(self.head).and_then(|x| x.take());
        self.head = (self.head + 1) % MAX_IN_FLIGHT;
        self.len -= 1;
        item
    }
}

/// Tells a waiter its request will never be ACKed.
pub(crate) fn fail_waiter(waiter: Waiter) {
    match waiter {
        Waiter::Nobody => {}
        Waiter::Write(w) => w.notify(AckOutcome::Failed),
        Waiter::Call(c) => {
            c.status.store(EPIPE.to_errno() as i64 as u64, Relaxed);
            c.done.complete_all();
        }
        Waiter::Batch(b) => b.put(false),
    }
}

impl CallWait {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(CallWait {
                done <- crate::fvp_kernel::sync::Completion::new(),
                status: AtomicU64::new(0),
                value: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Sleeps until the ACK (or failure) or `timeout_ms`; the ACK's value.
    pub(crate) fn wait(&self, timeout_ms: u32) -> Result<u64> {
        if !self.done.wait_timeout_ms(timeout_ms) {
            return Err(crate::fvp_kernel::errno::etimedout());
        }
        let status = self.status.load(Relaxed) as i64 as i32;
        if status != 0 {
            return Err(Error::from_errno(status));
        }
        Ok(self.value.load(Relaxed))
    }
}

impl Conn {
    /// The connection over `sock` once its handshake is done: messages from `first_seq`
    /// on are sealed with `tx`.
    pub(crate) fn new(
        sock: Arc<TcpSocket>,
        local_id: u32,
        peer_id: u32,
        first_seq: u64,
        tx: Sealing,
    ) -> Result<Arc<Self>> {
        let in_flight = KVVecDeque::new()?;
        let mut buf = KVec::new();
        buf.extend_with(wire::MAX_MESSAGE_LEN + TAG_LEN, 0, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Conn {
                sock,
                local_id,
                peer_id,
                send <- new_mutex!(SendState { next_seq: first_seq, tx, buf }, "fvp::Conn::send"),
                in_flight <- new_mutex!(in_flight, "fvp::Conn::in_flight"),
                queued: AtomicUsize::new(0),
                window <- WaitQueue::new(),
                broken: AtomicBool::new(false),
                last_ack_ns: AtomicU64::new(Ktime::ktime_get().to_ns() as u64),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Relaxed)
    }

    /// Closes the connection: blocked I/O returns, and every waiter fails.
    pub(crate) fn close(&self) {
        self.broken.store(true, Relaxed);
        self.sock.shutdown();
        loop {
            let item = {
                let mut q = self.in_flight.lock();
                let item = q.pop();
                self.queued.store(q.len, Release);
                item
            };
            match item {
                Some(f) => fail_waiter(f.waiter),
                None => break,
            }
        }
        self.window.wake_all();
    }

    /// Sleeps until fewer than [`SEND_WINDOW`] requests await their ACK. False if the
    /// connection broke meanwhile. Never called by the thread that reads the ACKs (it
    /// sends only PINGs, which bypass the window), so the wait always ends: each request
    /// is ACKed, or failed when the connection closes (at the latest after the timeout).
    fn wait_for_window(&self) -> bool {
        // Uninterruptible: a caller with a signal pending (an ioctl's task, e.g. a
        // volume's removal) waits like any other.
        while !self
            .window
            .wait_timeout_ms(WINDOW_WAIT_MS, || self.queued.load(Acquire) < SEND_WINDOW || self.is_broken())
        {}
        !self.is_broken()
    }

    /// Sends `msg`. A request registers `waiter` for its ACK, first waiting for room in
    /// the send window (sleeps); a reply or a PING passes `None` and never waits.
    /// An error closes the connection (and fails the waiter).
    pub(crate) fn send(&self, msg: &Message<'_>, waiter: Option<Waiter>) -> Result {
        if waiter.is_some() && !self.wait_for_window() {
            if let Some(w) = waiter {
                fail_waiter(w);
            }
            return Err(EPIPE);
        }
        if self.is_broken() {
            if let Some(w) = waiter {
                fail_waiter(w);
            }
            return Err(EPIPE);
        }
        let mut guard = self.send.lock();
        let st = &mut *guard;
        let seq = st.next_seq;
        let len = match seal_into(&mut st.buf, &st.tx, self.local_id, seq, msg) {
            Ok(len) => len,
            Err(e) => {
                drop(guard);
                pr_err!("cannot encode {}: {}\n", msg.kind().name(), e.reason());
                if let Some(w) = waiter {
                    fail_waiter(w);
                }
                return Err(EINVAL);
            }
        };
        if let Some(w) = waiter {
            let pushed = {
                let mut q = self.in_flight.lock();
                let pushed = q.push(InFlight { seq, sent: Ktime::ktime_get(), waiter: w });
                self.queued.store(q.len, Release);
                pushed
            };
            if let Err((e, w)) = pushed {
                drop(guard);
                fail_waiter(w);
                self.close();
                return Err(e);
            }
        }
        st.next_seq += 1;
        let r = self.sock.send(st.buf.get(..len).unwrap_or(&[]), &[]);
        drop(guard);
        if r.is_err() {
            self.close();
        }
        r
    }

    /// Sends a request and sleeps until its ACK; returns the ACK's value.
    pub(crate) fn call(&self, msg: &Message<'_>, timeout_ms: u32) -> Result<u64> {
        let wait = CallWait::new()?;
        self.send(msg, Some(Waiter::Call(wait.clone())))?;
        let r = wait.wait(timeout_ms);
        if r == Err(crate::fvp_kernel::errno::etimedout()) {
            self.close();
        }
        r
    }

    /// Matches an ACK with the oldest request in flight. `false`: protocol error.
    pub(crate) fn ack(&self, acked_seq: u64, status: i32, value: u64) -> bool {
        let item = {
            let mut q = self.in_flight.lock();
            let item = match q.front() {
                Some(f) if f.seq == acked_seq => q.pop(),
                _ => None,
            };
            self.queued.store(q.len, Release);
            item
        };
        let Some(item) = item else { return false };
        self.last_ack_ns.store(Ktime::ktime_get().to_ns() as u64, Relaxed);
        self.window.wake_all();
        match item.waiter {
            Waiter::Nobody => {}
            Waiter::Write(w) => w.notify(if status == 0 {
                AckOutcome::Stored
            } else if status == ENOENT.to_errno() {
                AckOutcome::Refused { peer: self.peer_id }
            } else {
                AckOutcome::Failed
            }),
            Waiter::Call(c) => {
                c.value.store(value, Relaxed);
                c.status.store(status as i64 as u64, Relaxed);
                c.done.complete_all();
            }
            Waiter::Batch(b) => {
                if status == ENOENT.to_errno() {
                    b.refused.fetch_or(crate::logic::placement::host_bit(self.peer_id), Relaxed);
                }
                b.put(status == 0)
            }
        }
        true
    }

    /// How long the peer has made no progress, in ms: the time since the oldest request
    /// in flight was sent or since the last ACK, whichever is later (0 with nothing in
    /// flight). A slow peer that keeps ACKing is not a failed one: the oldest request of
    /// a full window may wait longer than the timeout behind the others.
    pub(crate) fn stalled_ms(&self, now: Ktime) -> u64 {
        let q = self.in_flight.lock();
        match q.front() {
            Some(f) => {
                let since = (f.sent.to_ns() as u64).max(self.last_ack_ns.load(Relaxed));
                (now.to_ns() as u64).saturating_sub(since) / 1_000_000
            }
            None => 0,
        }
    }
}

/// Lays out message `seq` (header, payload) in `buf` and seals it with `tx`; returns
/// how many bytes of `buf` to send (tag included).
fn seal_into(
    buf: &mut [u8],
    tx: &Sealing,
    sender: u32,
    seq: u64,
    msg: &Message<'_>,
) -> core::result::Result<usize, WireError> {
    let encoded = msg.encode_sealed(sender, seq)?;
    let (head, data) = (encoded.as_bytes(), msg.data());
    let body = head.len() + data.len();
    let msg_buf = buf.get_mut(..body + TAG_LEN).ok_or(WireError::BufferTooSmall)?;
    let (h, rest) = msg_buf.split_at_mut(head.len());
    h.copy_from_slice(head);
    rest.get_mut(..data.len()).ok_or(WireError::BufferTooSmall)?.copy_from_slice(data);
    seal::seal_message(&KernelAead, tx.key.bytes(), tx.transport, seq, msg_buf)?;
    Ok(body + TAG_LEN)
}

/// Reads whole messages from a socket whose receives time out: a partial message is
/// kept across timeouts. Once [`Reader::set_sealing`] was called (after the handshake)
/// it takes only sealed messages, and returns one only after its tag verified.
pub(crate) struct Reader {
    /// Header, payload and tag of the message being read, in one piece (a sealed
    /// message is opened in place).
    buf: KVec<u8>,
    got_head: usize,
    header: Option<Header>,
    got_body: usize,
    rx: Option<Sealing>,
}

/// What [`Reader::poll`] found.
pub(crate) enum Polled {
    /// Nothing complete before the receive timeout.
    Idle,
    /// A whole message: its header; the payload is in [`Reader::payload`].
    Message(Header),
}

impl Reader {
    pub(crate) fn new() -> Result<Self> {
        let mut buf = KVec::new();
        buf.extend_with(wire::MAX_MESSAGE_LEN + TAG_LEN, 0, GFP_KERNEL)?;
        Ok(Self { buf, got_head: 0, header: None, got_body: 0, rx: None })
    }

    /// From the next message on, takes only messages sealed with `rx`.
    pub(crate) fn set_sealing(&mut self, rx: Sealing) {
        self.rx = Some(rx);
    }

    /// The payload of the message last returned (in clear).
    pub(crate) fn payload(&self, header: &Header) -> &[u8] {
        self.buf.get(HEADER_LEN..HEADER_LEN + header.payload_len()).unwrap_or(&[])
    }

    /// Receives until a whole message arrived or the receive timeout hit.
    /// Errors: the peer closed (`ECONNRESET`), a socket error, a bad header, a message
    /// sealed when it must not be or not sealed when it must, or a tag that does not
    /// verify (altered, replayed, forged).
    pub(crate) fn poll(&mut self, sock: &TcpSocket) -> core::result::Result<Polled, RxError> {
        loop {
            if self.header.is_none() {
                let Some(head) = self.buf.get_mut(self.got_head..HEADER_LEN) else { return Err(RxError::Closed) };
                match sock.recv(head) {
                    Ok(0) => return Err(RxError::Closed),
                    Ok(n) => self.got_head += n,
                    Err(e) if e == EAGAIN || e == EINTR => return Ok(Polled::Idle),
                    Err(_) => return Err(RxError::Closed),
                }
                if self.got_head < HEADER_LEN {
                    continue;
                }
                let h = Header::parse(&self.buf).map_err(RxError::Wire)?;
                // Refused before its payload is read: nothing unauthenticated is taken
                // once the keys are in, and nothing sealed before.
                if h.sealed() != self.rx.is_some() {
                    return Err(RxError::Wire(WireError::BadSealing));
                }
                self.header = Some(h);
                self.got_body = 0;
            }
            let Some(h) = self.header else { continue };
            let body = h.payload_len() + if h.sealed() { TAG_LEN } else { 0 };
            if self.got_body < body {
                let Some(dst) = self.buf.get_mut(HEADER_LEN + self.got_body..HEADER_LEN + body) else {
                    return Err(RxError::Wire(WireError::PayloadTooLong));
                };
                match sock.recv(dst) {
                    Ok(0) => return Err(RxError::Closed),
                    Ok(n) => self.got_body += n,
                    Err(e) if e == EAGAIN || e == EINTR => return Ok(Polled::Idle),
                    Err(_) => return Err(RxError::Closed),
                }
                if self.got_body < body {
                    continue;
                }
            }
            self.header = None;
            self.got_head = 0;
            if let Some(rx) = &self.rx {
                let msg = self.buf.get_mut(..HEADER_LEN + body).ok_or(RxError::Wire(WireError::PayloadTooLong))?;
                seal::open_message(&KernelAead, rx.key.bytes(), rx.transport, h.seq, msg).map_err(RxError::Wire)?;
            }
            return Ok(Polled::Message(h));
        }
    }
}

/// Why reading a connection stopped.
pub(crate) enum RxError {
    /// The peer closed the connection, or the socket failed.
    Closed,
    /// A malformed header.
    Wire(wire::WireError),
}
