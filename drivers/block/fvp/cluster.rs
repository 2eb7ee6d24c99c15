// SPDX-License-Identifier: GPL-2.0

//! The cluster: configuration, connections to the other hosts, heartbeats, fencing
//! and leases. See `docs/replication.md`.
//!
//! Threads (all kthreads, stopped by [`Cluster::stop`]):
//! - one listener, accepting connections and starting one inbound thread per
//!   connection, which runs the server handshake then serves requests;
//! - one outbound thread per other host, connecting, running the client handshake,
//!   sending PINGs and reading PONGs and ACKs;
//! - one ticker, which every heartbeat updates fences and leases, watches the lease for
//!   the replica stores' trust, and runs each replicated volume's owner state machine;
//! - one recoverer, which every heartbeat takes over the volumes of owners a majority
//!   fenced (a long recovery no longer delays heartbeats and DESTAGED notices).
#![forbid(unsafe_code)]

use crate::conn::{Conn, KernelHmac, Polled, Reader, RxError, Sealing};
use crate::fvp_kernel::block;
use crate::fvp_kernel::crypto::{SecretBytes, SecretKey};
use crate::fvp_kernel::errno::estale;
use crate::fvp_kernel::net::{random_bytes, wall_clock_ns, SockAddr, TcpSocket};
use crate::fvp_kernel::thread::{StopToken, Thread};
use crate::fvp_kernel::vec;
use crate::logic::abi;
use crate::logic::admission::{HandshakeSlots, RateLimit, Verdict};
use crate::logic::auth;
use crate::logic::membership::{Membership, MembershipError, View};
use crate::logic::owner;
use crate::logic::placement::{self, DomainRule, HostEntry};
use crate::logic::replica::DeviceIdentity;
use crate::logic::seal::Transport;
use crate::logic::wire::{self, Message, PendingPings, Session, WireError, CHANNEL_DATA, CHANNEL_HEARTBEAT, PINGS_MAX};
use crate::replica::{OpenRefusal, OpenRequest, ReplicaStore};
use crate::shared::Shared;
use core::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::time::Ktime;

/// This host's settings (`FVP_IOC_CLUSTER_SET`), the secret left out (zero): it is
/// kept apart (`Cluster::secret`), so that copies of the settings carry none.
#[derive(Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) cfg: abi::ClusterCfg,
    pub(crate) tag: u64,
}

impl Settings {
    pub(crate) fn timeout_ns(&self) -> u64 {
        u64::from(self.cfg.timeout_ms) * 1_000_000
    }

    /// The transport mode (validated with the settings).
    pub(crate) fn transport(&self) -> Transport {
        Transport::from_u32(self.cfg.transport).unwrap_or(Transport::Authenticated)
    }

    /// The public inputs of a handshake between `client_id` and `server_id` over
    /// `channel`, nonces, keys and incarnation still to be filled in.
    fn handshake(&self, client_id: u32, server_id: u32, channel: u32) -> auth::Handshake {
        auth::Handshake {
            tag: self.tag,
            client_id,
            server_id,
            channel,
            transport: self.cfg.transport,
            incarnation: 0,
            nonce_c: [0; auth::NONCE_LEN],
            nonce_s: [0; auth::NONCE_LEN],
            eph_c: [0; auth::KEY_LEN],
            eph_s: [0; auth::KEY_LEN],
        }
    }
}

/// This end's secrets of one handshake: X25519 of the host keys and of the ephemeral
/// keys (wiped when dropped, `SecretKey`).
struct DhResults {
    static_dh: SecretKey,
    ephemeral_dh: SecretKey,
}

impl DhResults {
    /// `local` with `peer_public`, and `ephemeral` with `peer_ephemeral`; `None` if a
    /// public key is a low-order point.
    fn compute(
        local: &SecretKey,
        peer_public: &auth::PublicKey,
        ephemeral: &SecretKey,
        peer_ephemeral: &auth::PublicKey,
    ) -> Option<Self> {
        Some(DhResults { static_dh: local.x25519(peer_public)?, ephemeral_dh: ephemeral.x25519(peer_ephemeral)? })
    }

    /// The key schedule of `hs` with the cluster's `secret`.
    fn schedule(&self, hs: &auth::Handshake, hmac: &KernelHmac, secret: &[u8]) -> Option<auth::Schedule> {
        let secrets = auth::Secrets {
            cluster_secret: secret,
            static_dh: self.static_dh.bytes(),
            ephemeral_dh: self.ephemeral_dh.bytes(),
        };
        hs.schedule(hmac, &secrets)
    }
}

/// The two directions of a connection whose handshake succeeded.
struct Keys {
    /// What this host sends with.
    tx: Sealing,
    /// What it receives with.
    rx: Sealing,
}

impl Keys {
    /// Derives the connection's keys (`logic/auth.rs`); `client`: this host connected.
    fn derive(
        schedule: &auth::Schedule,
        hs: &auth::Handshake,
        hmac: &KernelHmac,
        transport: Transport,
        client: bool,
    ) -> Option<Keys> {
        let (mut c2s, mut s2c) = (SecretKey::zeroed(), SecretKey::zeroed());
        schedule.session_keys(hmac, hs, c2s.bytes_mut(), s2c.bytes_mut())?;
        let (tx, rx) = if client { (c2s, s2c) } else { (s2c, c2s) };
        Some(Keys { tx: Sealing { key: tx, transport }, rx: Sealing { key: rx, transport } })
    }
}

/// A shared backing device: cluster-wide name and this host's path to it (resolved
/// each time it is used: device numbers can change across hotplug).
#[derive(Clone, Copy)]
pub(crate) struct Device {
    pub(crate) req: abi::DeviceReq,
}

struct Config {
    settings: Option<Settings>,
    hosts: KVec<abi::HostReq>,
    devices: KVec<Device>,
    /// Host changes made with `HOST_DEFER`, not yet in force.
    pending: bool,
    /// The other hosts' X25519 public keys (`FVP_IOC_KEY_SET`), by id - 1.
    keys: [Option<auth::PublicKey>; wire::MAX_HOST_ID as usize],
}

/// The link to one other host.
#[pin_data]
pub(crate) struct Link {
    pub(crate) host: abi::HostReq,
    /// Our connection to it (we send requests), once authenticated.
    #[pin]
    out: Mutex<Option<Arc<Conn>>>,
    /// Its connection to us (it sends requests), once authenticated.
    #[pin]
    inbound: Mutex<Option<Arc<Conn>>>,
    /// Our heartbeat connection to it (PING and PONG only), once authenticated.
    #[pin]
    hb: Mutex<Option<Arc<Conn>>>,
    #[pin]
    thread: Mutex<Option<Thread>>,
    /// Runs the heartbeat connection.
    #[pin]
    hb_thread: Mutex<Option<Thread>>,
    rtt_us: AtomicU64,
    /// When a valid message last arrived from the host (ns, local clock; 0: never).
    last_rx_ns: AtomicU64,
    /// The incarnation of the host's connection in `inbound`: a later connection of an
    /// earlier incarnation does not replace it while it is alive.
    inbound_incarnation: AtomicU64,
}

impl Link {
    pub(crate) fn out_conn(&self) -> Option<Arc<Conn>> {
        self.out.lock().as_ref().filter(|c| !c.is_broken()).cloned()
    }

    fn both_up(&self) -> bool {
        let out = self.out_conn().is_some();
        let inb = self.inbound.lock().as_ref().is_some_and(|c| !c.is_broken());
        out && inb
    }
}

/// An accepted connection and the thread serving it.
#[pin_data]
struct Inbound {
    sock: Arc<TcpSocket>,
    done: AtomicBool,
    #[pin]
    thread: Mutex<Option<Thread>>,
}

/// A replicated volume this host owns, as the cluster sees it: the cluster holds it for
/// the ticker without knowing what a volume is (the volume layer sits above this one).
pub(crate) trait OwnedVolume: Send + Sync {
    /// Runs the volume's owner state machine once, after this heartbeat's membership
    /// changes (`repl.rs`).
    fn heartbeat(&self);

    /// Hosts that hold or may hold its replicas: its peers and stale hosts.
    fn replica_hosts(&self) -> u64;
}

/// Module-wide cluster state.
#[pin_data]
pub(crate) struct Cluster {
    pub(crate) shared: Arc<Shared>,
    #[pin]
    cfg: Mutex<Config>,
    #[pin]
    links: Mutex<KVec<Arc<Link>>>,
    #[pin]
    members: Mutex<Option<KBox<Membership>>>,
    #[pin]
    listener: Mutex<Option<(Arc<TcpSocket>, Thread)>>,
    #[pin]
    ticker: Mutex<Option<Thread>>,
    /// Takeovers run in their own thread: a recovery writing a large store must not
    /// hold back the ticker's heartbeats, fences and DESTAGED notices.
    #[pin]
    recoverer: Mutex<Option<Thread>>,
    #[pin]
    inbound: Mutex<KVec<Arc<Inbound>>>,
    /// This host's replicated volumes.
    #[pin]
    pub(crate) volumes: Mutex<KVec<(u32, Arc<dyn OwnedVolume>)>>,
    /// VOLUME_CLOSEs of removed volumes that some hosts did not confirm, retried every
    /// heartbeat (a store left behind would be an orphan, written at this host's next
    /// failure, possibly over newer data).
    #[pin]
    pending_closes: Mutex<KVec<PendingClose>>,
    #[pin]
    pub(crate) replicas: ReplicaStore,
    pub(crate) refused: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    /// The cluster's shared secret (`FVP_IOC_CLUSTER_SET`).
    #[pin]
    secret: Mutex<Option<Arc<SecretBytes<{ abi::SECRET_LEN }>>>>,
    /// This host's X25519 private key (`FVP_IOC_KEY_SET` with `KEY_PRIVATE`).
    #[pin]
    local_key: Mutex<Option<Arc<SecretKey>>>,
    /// This host's incarnation, sent in HELLO: the wall clock when the module loaded.
    incarnation: u64,
    /// Handshakes in progress by source address, capped (`logic/admission.rs`).
    #[pin]
    handshakes: Mutex<HandshakeSlots>,
    /// Log lines about refused connections and protocol errors: what an attacker can
    /// make a host print is bounded.
    #[pin]
    log_limit: Mutex<RateLimit>,
    /// Whether this host learnt it is fenced by a majority (its stores are untrusted).
    pub(crate) self_fenced: AtomicBool,
    /// Until the first start after loading: this host may have restarted quickly, so it
    /// stays silent long enough for the others to fence it and take its volumes over
    /// (replicas of its previous life would otherwise be orphaned).
    first_start: AtomicBool,
    /// `Membership::lease_until` after the last change to `members`: lets the write
    /// path and the destager check the lease without taking that lock.
    lease_until_ns: AtomicU64,
    /// When the lease held now has been held for `T + T/5` (`u64::MAX`: not held).
    lease_settled_ns: AtomicU64,
    /// Hosts whose removal waits for the volumes here to move their replicas off them:
    /// no longer chosen as peers, and no longer counted as configured by the volumes.
    leaving: AtomicU64,
}

/// A removed volume's VOLUME_CLOSE that `hosts` have not confirmed yet.
struct PendingClose {
    volume_id: u32,
    name: [u8; abi::NAME_LEN],
    hosts: u64,
}

pub(crate) fn now_ns() -> u64 {
    Ktime::ktime_get().to_ns() as u64
}

fn addr_of(h: &abi::HostReq) -> SockAddr {
    SockAddr { addr_be: h.addr, port: h.port }
}

impl Cluster {
    pub(crate) fn new(shared: Arc<Shared>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            shared,
            cfg <- new_mutex!(
                Config {
                    settings: None,
                    hosts: KVec::new(),
                    devices: KVec::new(),
                    pending: false,
                    keys: [None; wire::MAX_HOST_ID as usize],
                },
                "fvp::Cluster::cfg"
            ),
            secret <- new_mutex!(None, "fvp::Cluster::secret"),
            local_key <- new_mutex!(None, "fvp::Cluster::local_key"),
            incarnation: wall_clock_ns(),
            links <- new_mutex!(KVec::new(), "fvp::Cluster::links"),
            members <- new_mutex!(None, "fvp::Cluster::members"),
            listener <- new_mutex!(None, "fvp::Cluster::listener"),
            ticker <- new_mutex!(None, "fvp::Cluster::ticker"),
            recoverer <- new_mutex!(None, "fvp::Cluster::recoverer"),
            inbound <- new_mutex!(KVec::new(), "fvp::Cluster::inbound"),
            volumes <- new_mutex!(KVec::new(), "fvp::Cluster::volumes"),
            pending_closes <- new_mutex!(KVec::new(), "fvp::Cluster::pending_closes"),
            replicas <- ReplicaStore::new(),
            refused: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            handshakes <- new_mutex!(HandshakeSlots::new(), "fvp::Cluster::handshakes"),
            log_limit <- new_mutex!(RateLimit::new(), "fvp::Cluster::log_limit"),
            self_fenced: AtomicBool::new(false),
            first_start: AtomicBool::new(true),
            lease_until_ns: AtomicU64::new(0),
            lease_settled_ns: AtomicU64::new(u64::MAX),
            leaving: AtomicU64::new(0),
        })
    }

    pub(crate) fn settings(&self) -> Option<Settings> {
        self.cfg.lock().settings
    }

    pub(crate) fn local_id(&self) -> u32 {
        self.settings().map(|s| s.cfg.local_id).unwrap_or(0)
    }

    /// The configured hosts other than this one (bit `h-1` for host `h`).
    pub(crate) fn other_hosts(&self) -> u64 {
        let local = placement::host_bit(self.local_id());
        self.members.lock().as_ref().map_or(0, |m| m.configured()) & !local
    }

    // ---- configuration (control ioctls) ----

    /// `FVP_IOC_CLUSTER_SET`.
    pub(crate) fn set(self: &Arc<Self>, mut cfg: abi::ClusterCfg) -> Result {
        if let Err(e) = cfg.validate() {
            crate::fvp_kernel::crypto::wipe(&mut cfg.secret);
            pr_warn!("cluster set refused: {}\n", e.message());
            return Err(EINVAL);
        }
        // The secret is kept apart from the settings, which are copied freely.
        let secret = SecretBytes::new(cfg.secret()).ok_or(EINVAL);
        crate::fvp_kernel::crypto::wipe(&mut cfg.secret);
        let secret = secret?;
        let same_secret = self.secret.lock().as_ref().is_some_and(|s| s.as_slice() == secret.as_slice());
        // A removal that was left waiting for volumes to move off a host (EAGAIN) is
        // given up: `cluster apply` asks again if its file still removes the host.
        self.leaving.store(0, Relaxed);
        if let Some(old) = self.settings() {
            // Re-applying the same description (as configuration management does on
            // every run) must not drop connections and leases: a restart on each host
            // in turn fenced healthy peers.
            if old.cfg == cfg && same_secret {
                // ... but it puts deferred host changes in force.
                return if self.cfg.lock().pending { self.restart() } else { Ok(()) };
            }
            let same_identity = old.cfg.name == cfg.name && old.cfg.local_id == cfg.local_id && same_secret;
            if !same_identity && !self.volumes.lock().is_empty() {
                pr_warn!("cluster set refused: replicated volumes exist\n");
                return Err(EBUSY);
            }
        }
        let tag = auth::cluster_tag(&KernelHmac::new()?, abi::name_bytes(&cfg.name)).ok_or(ENOMEM)?;
        if self.settings().is_some_and(|old| old.cfg.local_id != cfg.local_id) {
            // The private key was this host's under its old id.
            *self.local_key.lock() = None;
        }
        let secret = Arc::new(secret, GFP_KERNEL)?;
        self.stop();
        *self.secret.lock() = Some(secret);
        {
            let mut c = self.cfg.lock();
            c.settings = Some(Settings { cfg, tag });
        }
        self.start()
    }

    /// `FVP_IOC_KEY_SET`: this host's private key (`KEY_PRIVATE`) or another host's
    /// public key. A changed key restarts the connections (they were authenticated with
    /// the old one); the same key again changes nothing.
    pub(crate) fn set_key(self: &Arc<Self>, req: &abi::KeyReq) -> Result {
        if let Err(e) = req.validate_set() {
            pr_warn!("key set refused: {}\n", e.message());
            return Err(EINVAL);
        }
        let Some(local) = self.settings().map(|s| s.cfg.local_id) else {
            pr_warn!("key set refused: the cluster is not set\n");
            return Err(EINVAL);
        };
        let private = req.flags & abi::KEY_PRIVATE != 0;
        if private != (req.id == local) {
            pr_warn!("key set refused: only this host's key is private, and its public key comes from it\n");
            return Err(EINVAL);
        }
        if private {
            let mut key = SecretKey::zeroed();
            key.bytes_mut().copy_from_slice(&req.key);
            let Some(public) = key.x25519_public() else {
                pr_warn!("key set refused: not a usable X25519 private key\n");
                return Err(EINVAL);
            };
            let mut slot = self.local_key.lock();
            if slot.as_ref().and_then(|k| k.x25519_public()) == Some(public) {
                return Ok(());
            }
            *slot = Some(Arc::new(key, GFP_KERNEL)?);
        } else {
            let mut c = self.cfg.lock();
            let Some(slot) = c.keys.get_mut(req.id as usize - 1) else { return Err(EINVAL) };
            if *slot == Some(req.key) {
                return Ok(());
            }
            *slot = Some(req.key);
        }
        pr_info!("key of host {} set\n", req.id);
        self.restart()
    }

    /// `FVP_IOC_KEY_INFO`: host `id`'s public key (this host's: of its private key).
    pub(crate) fn public_key(&self, id: u32) -> Option<auth::PublicKey> {
        if self.settings().is_some_and(|s| s.cfg.local_id == id) {
            return self.local_key.lock().as_ref().and_then(|k| k.x25519_public());
        }
        self.cfg.lock().keys.get((id as usize).checked_sub(1)?).copied().flatten()
    }

    /// `FVP_IOC_HOST_ADD`.
    pub(crate) fn add_host(self: &Arc<Self>, h: abi::HostReq) -> Result {
        if let Err(e) = h.validate() {
            pr_warn!("host add refused: {}\n", e.message());
            return Err(EINVAL);
        }
        let mut host = h;
        host.flags = 0;
        {
            let mut c = self.cfg.lock();
            if c.hosts.iter().any(|x| x.id == h.id || (x.addr == h.addr && x.port == h.port)) {
                return Err(EEXIST);
            }
            self.check_host_list(&c, h.id, true)?;
            c.hosts.push(host, GFP_KERNEL)?;
            self.leaving.fetch_and(!placement::host_bit(h.id), Relaxed);
            c.pending = c.settings.is_some();
        }
        if h.flags & abi::HOST_DEFER != 0 {
            return Ok(());
        }
        self.restart()
    }

    /// Whether the membership accepts the host list `c` with host `id` added (`add`) or
    /// removed: hosts removed must not be a majority of a list in force, and at most
    /// `JOINT_MAX` earlier lists may be.
    fn check_host_list(&self, c: &Config, id: u32, add: bool) -> Result {
        let local = c.settings.map_or(0, |s| s.cfg.local_id);
        let mut mask = c.hosts.iter().fold(placement::host_bit(local), |m, x| m | placement::host_bit(x.id));
        if add {
            mask |= placement::host_bit(id);
        } else {
            mask &= !placement::host_bit(id);
        }
        let Some(m) = self.members.lock().as_ref().map(|m| m.check_configured(mask)) else {
            return Ok(());
        };
        match m {
            Ok(()) => Ok(()),
            Err(MembershipError::ChangeInProgress) => {
                pr_warn!("host list change refused: two earlier host lists are still in force (some host has not applied them)\n");
                Err(EBUSY)
            }
            Err(MembershipError::RemovesMajority) => {
                pr_warn!("host list change refused: it removes a majority of the hosts of a list in force\n");
                Err(EINVAL)
            }
            Err(_) => Err(EINVAL),
        }
    }

    /// `FVP_IOC_HOST_UPDATE`: a new fault domain for a configured host. Domains only
    /// steer placement, which reads them when it chooses peers, so nothing restarts.
    pub(crate) fn update_host(&self, h: abi::HostReq) -> Result {
        if let Err(e) = h.validate() {
            pr_warn!("host update refused: {}\n", e.message());
            return Err(EINVAL);
        }
        let mut c = self.cfg.lock();
        let host = c.hosts.iter_mut().find(|x| x.id == h.id).ok_or(ENOENT)?;
        if (host.addr, host.port) != (h.addr, h.port) {
            pr_warn!("host update refused: host {} has another address (remove and add it)\n", h.id);
            return Err(EINVAL);
        }
        host.domain = h.domain;
        Ok(())
    }

    /// `FVP_IOC_HOST_REMOVE` (`flags` may hold `HOST_DEFER`).
    pub(crate) fn remove_host(self: &Arc<Self>, id: u32, flags: u16) -> Result {
        if flags & !abi::HOST_DEFER != 0 {
            return Err(EINVAL);
        }
        // Read before taking the configuration lock: the volumes' own locks are taken
        // before it on the heartbeat path.
        let held = self.replica_hosts();
        {
            let mut c = self.cfg.lock();
            let i = c.hosts.iter().position(|x| x.id == id).ok_or(ENOENT)?;
            if c.settings.is_some_and(|s| s.cfg.local_id == id) && !self.volumes.lock().is_empty() {
                return Err(EBUSY);
            }
            self.check_host_list(&c, id, false)?;
            // A host that holds replicas of a volume here, or may (a stale one, or one
            // asked to close a removed volume's), would be forgotten by the volume
            // while it may still take it over with older blocks (the simulator's
            // host list changes). It leaves once the volume moved off it.
            let bit = placement::host_bit(id);
            if held & bit != 0 {
                if self.leaving.fetch_or(bit, Relaxed) & bit == 0 {
                    pr_info!("host {}: volumes here are moving their replicas off it before it is removed\n", id);
                }
                return Err(EAGAIN);
            }
            vec::remove(&mut c.hosts, i);
            self.leaving.fetch_and(!bit, Relaxed);
            c.pending = c.settings.is_some();
        }
        if flags & abi::HOST_DEFER != 0 {
            return Ok(());
        }
        self.restart()
    }

    pub(crate) fn host_at(&self, index: u32) -> Option<abi::HostReq> {
        self.cfg.lock().hosts.get(index as usize).copied()
    }

    /// `FVP_IOC_DEVICE_ADD`: the path is resolved now, and again when used.
    pub(crate) fn add_device(&self, d: abi::DeviceReq) -> Result {
        if let Err(e) = d.validate() {
            pr_warn!("device add refused: {}\n", e.message());
            return Err(EINVAL);
        }
        let mut c = self.cfg.lock();
        if c.devices.iter().any(|x| x.req.name == d.name) {
            return Err(EEXIST);
        }
        c.devices.push(Device { req: d }, GFP_KERNEL)?;
        Ok(())
    }

    /// `FVP_IOC_DEVICE_REMOVE`.
    pub(crate) fn remove_device(&self, name: &[u8; abi::NAME_LEN]) -> Result {
        let mut c = self.cfg.lock();
        let i = c.devices.iter().position(|x| &x.req.name == name).ok_or(ENOENT)?;
        vec::remove(&mut c.devices, i);
        Ok(())
    }

    pub(crate) fn device_at(&self, index: u32) -> Option<Device> {
        self.cfg.lock().devices.get(index as usize).copied()
    }

    /// The configured shared device whose path resolves to `devt`.
    pub(crate) fn device_by_devt(&self, devt: u32) -> Option<Device> {
        let devices: KVec<Device> = {
            let c = self.cfg.lock();
            let mut v = KVec::new();
            for d in c.devices.iter() {
                v.push(*d, GFP_KERNEL).ok()?;
            }
            v
        };
        devices.iter().find(|d| block::lookup_devt(&d.req.path).ok() == Some(devt)).copied()
    }

    /// This host's view of the shared device called `name` (its size through this host's
    /// path, its configured uuid); `None` if there is none or its path does not open.
    /// Sleeps.
    fn local_device(&self, name: &[u8]) -> Option<DeviceIdentity> {
        let d = self.device_by_name(name)?;
        let bdev = block::OpenedBdev::open(block::lookup_devt(&d.req.path).ok()?).ok()?;
        Some(DeviceIdentity { sectors: bdev.bdev().nr_sectors(), uuid: d.req.uuid })
    }

    /// The configured shared device called `name`.
    pub(crate) fn device_by_name(&self, name: &[u8]) -> Option<Device> {
        let c = self.cfg.lock();
        c.devices.iter().find(|d| abi::name_str(&d.req.name).as_bytes() == name).copied()
    }

    /// Counts for `FVP_IOC_CLUSTER_INFO`.
    pub(crate) fn info(&self) -> abi::ClusterInfo {
        let mut info = abi::ClusterInfo::default();
        let (hosts, devices) = {
            let c = self.cfg.lock();
            if let Some(s) = c.settings {
                info.cfg = s.cfg;
                info.cfg.secret = [0; abi::SECRET_LEN];
                info.flags |= abi::CLUSTER_CONFIGURED;
            }
            (c.hosts.len() as u32, c.devices.len() as u32)
        };
        info.hosts = hosts;
        info.devices = devices;
        if self.listener.lock().is_some() {
            info.flags |= abi::CLUSTER_LISTENING;
        }
        let now = now_ns();
        if self.cfg.lock().pending {
            info.flags |= abi::CLUSTER_PENDING;
        }
        if let Some(m) = self.members.lock().as_ref() {
            if m.holds_lease(now) {
                info.flags |= abi::CLUSTER_LEASE;
            }
            if m.unconfirmed() != 0 {
                info.flags |= abi::CLUSTER_JOINT;
            }
            info.hosts_up = m.heard(now).count_ones() + 1;
        }
        info.replica_blocks = self.replicas.blocks(None);
        info.refused_connections = self.refused.load(Relaxed);
        info.protocol_errors = self.protocol_errors.load(Relaxed);
        info
    }

    /// State of host `h` for `FVP_IOC_HOST_INFO`.
    pub(crate) fn host_state(&self, h: &abi::HostReq) -> (u32, u64, u64, u64) {
        let local = self.local_id();
        let replicas = self.replicas.blocks(Some(h.id));
        if h.id == local {
            return (abi::HOST_SELF, 0, 0, replicas);
        }
        let now = now_ns();
        let fenced = self.members.lock().as_ref().is_some_and(|m| m.fenced() & placement::host_bit(h.id) != 0);
        let link = self.link(h.id);
        let heard_ago = link
            .as_ref()
            .map(|l| l.last_rx_ns.load(Relaxed))
            .filter(|&t| t != 0)
            .map(|t| now.saturating_sub(t) / 1_000_000);
        let rtt = link.as_ref().map(|l| l.rtt_us.load(Relaxed)).unwrap_or(0);
        let state = if fenced {
            abi::HOST_FENCED
        } else if link.as_ref().is_some_and(|l| l.both_up()) {
            abi::HOST_UP
        } else if heard_ago.is_some_and(|ms| ms < u64::from(self.settings().map(|s| s.cfg.timeout_ms).unwrap_or(0))) {
            abi::HOST_CONNECTING
        } else {
            abi::HOST_DOWN
        };
        (state, heard_ago.unwrap_or(u64::MAX), rtt, replicas)
    }

    pub(crate) fn link(&self, id: u32) -> Option<Arc<Link>> {
        self.links.lock().iter().find(|l| l.host.id == id).cloned()
    }

    /// A removed volume's VOLUME_CLOSE that `hosts` did not confirm: the ticker asks them
    /// again every heartbeat, until each confirms, leaves the configuration or is fenced
    /// by a majority for the takeover wait (its stores are untrusted then).
    pub(crate) fn add_pending_close(&self, volume_id: u32, name: [u8; abi::NAME_LEN], hosts: u64) {
        let mut list = self.pending_closes.lock();
        if list.push(PendingClose { volume_id, name, hosts }, GFP_KERNEL).is_err() {
            pr_err!("volume {}: cannot remember to close its replicas (out of memory)\n", abi::name_str(&name));
        }
    }

    /// A new volume of `name`: its own VOLUME_CLOSE and VOLUME_OPEN deal with the stores
    /// of earlier ones (orphans), and a close of an earlier volume id sent after them
    /// would take the new volume's store for an orphan. Called before its first
    /// heartbeat, which runs on the ticker thread, after any close in progress.
    pub(crate) fn cancel_pending_closes(&self, name: &[u8; abi::NAME_LEN]) {
        let mut list = self.pending_closes.lock();
        let mut i = 0;
        while i < list.len() {
            if &list[i].name == name {
                drop(vec::remove(&mut list, i));
            } else {
                i += 1;
            }
        }
    }

    /// Asks the hosts of every pending close again (the ticker, every heartbeat).
    fn retry_closes(&self) {
        let work: KVec<(u32, [u8; abi::NAME_LEN], u64)> = {
            let list = self.pending_closes.lock();
            let mut v = KVec::new();
            for p in list.iter() {
                if v.push((p.volume_id, p.name, p.hosts), GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        if work.is_empty() {
            return;
        }
        let timeout = self.timeout_ms();
        for &(volume_id, name, hosts) in work.iter() {
            let mut done = 0u64;
            for id in 1..=64u32 {
                let bit = placement::host_bit(id);
                if hosts & bit == 0 {
                    continue;
                }
                let gone = {
                    let now = now_ns();
                    self.members.lock().as_ref().is_none_or(|m| m.configured() & bit == 0 || m.takeover_ready(id, now))
                };
                let msg = Message::VolumeClose { volume_id, name: abi::name_bytes(&name) };
                // ESTALE: that host took the volume over, and holds nothing of it.
                let closed = |c: &Arc<Conn>| match c.call(&msg, timeout) {
                    Ok(_) => true,
                    Err(e) => e == estale(),
                };
                if gone || self.link(id).and_then(|l| l.out_conn()).is_some_and(|c| closed(&c)) {
                    done |= bit;
                }
            }
            if done == 0 {
                continue;
            }
            let mut list = self.pending_closes.lock();
            if let Some(i) = list.iter().position(|p| p.volume_id == volume_id && p.name == name) {
                list[i].hosts &= !done;
                if list[i].hosts == 0 {
                    pr_info!("volume {}: every host closed its replicas\n", abi::name_str(&name));
                    drop(vec::remove(&mut list, i));
                }
            }
        }
    }

    /// Hosts that hold or may hold replicas of volumes here: their peers, stale hosts,
    /// and hosts asked to close a removed volume's replicas that have not confirmed.
    fn replica_hosts(&self) -> u64 {
        let closing = self.pending_closes.lock().iter().fold(0u64, |m, p| m | p.hosts);
        self.volumes.lock().iter().fold(closing, |m, (_, v)| m | v.replica_hosts())
    }

    /// Registers a replicated volume with the ticker, under its replication volume id.
    pub(crate) fn add_volume(&self, volume_id: u32, v: Arc<dyn OwnedVolume>) -> Result {
        self.volumes.lock().push((volume_id, v), GFP_KERNEL)?;
        Ok(())
    }

    pub(crate) fn remove_volume(&self, volume_id: u32) {
        let mut list = self.volumes.lock();
        if let Some(i) = list.iter().position(|(id, _)| *id == volume_id) {
            let removed = vec::remove(&mut list, i);
            drop(list);
            drop(removed);
        }
    }

    // ---- membership queries used by the data path and the ticker ----

    /// Hosts for placement: every configured host, up if both connections are
    /// authenticated and it is not fenced.
    pub(crate) fn placement_hosts(&self, out: &mut KVec<HostEntry>) -> Result {
        vec::clear(out);
        let (hosts, local) = {
            let c = self.cfg.lock();
            let mut v = KVec::new();
            for h in c.hosts.iter() {
                v.push(*h, GFP_KERNEL)?;
            }
            (v, c.settings.map(|s| s.cfg.local_id).unwrap_or(0))
        };
        let fenced = self.members.lock().as_ref().map(|m| m.fenced()).unwrap_or(0);
        let leaving = self.leaving.load(Relaxed);
        for h in hosts.iter() {
            let bit = placement::host_bit(h.id);
            let up = h.id == local
                || (fenced & bit == 0 && leaving & bit == 0 && self.link(h.id).is_some_and(|l| l.both_up()));
            out.push(HostEntry { id: h.id, domain: domain_index(&hosts, &h.domain), up }, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Whether this host may write to backing devices for replicated volumes and
    /// acknowledge their writes (section 4, owner rule): it holds its lease, and has
    /// held it without interruption for `T + T/5`, so that every fence attested before
    /// a host lifted its fence of this one has expired at any recovering peer (model
    /// finding 3, `fix::LEASE_SETTLES`).
    pub(crate) fn holds_lease(&self) -> bool {
        let until = self.lease_until_ns.load(Acquire);
        let settled = self.lease_settled_ns.load(Acquire);
        let now = now_ns();
        now < until && now >= settled
    }

    /// Records the lease's start and end after a change to the membership (called with
    /// its lock held). The start is stored first: a reader that sees the new end sees
    /// the new start too.
    fn lease_changed(&self, m: &Membership, now: u64) {
        let settled = m.lease_held_since().map_or(u64::MAX, |since| since.saturating_add(m.takeover_wait_ns()));
        self.lease_settled_ns.store(settled, Release);
        self.lease_until_ns.store(m.lease_until(now), Release);
    }

    /// What a replicated volume's owner state machine looks at each heartbeat
    /// (`logic/owner.rs`), or `None` without a configuration.
    pub(crate) fn owner_observation(
        &self,
        name: &[u8; abi::NAME_LEN],
        peers_wanted: u32,
        rule: DomainRule,
    ) -> Option<owner::Observation> {
        let local = self.settings()?.cfg.local_id;
        let (configured, fenced_by_majority, fence_settled) = {
            let m = self.members.lock();
            let m = m.as_ref()?;
            let now = now_ns();
            let configured = m.configured();
            let mask = |f: &dyn Fn(u32) -> bool| {
                (1..=64u32)
                    .filter(|&id| configured & placement::host_bit(id) != 0 && f(id))
                    .fold(0u64, |acc, id| acc | placement::host_bit(id))
            };
            let fenced = mask(&|id| m.majority_fences(id, now));
            let settled = mask(&|id| m.takeover_ready(id, now));
            // A leaving host is no longer a healthy peer (logic/owner.rs).
            (configured & !self.leaving.load(Relaxed), fenced, settled)
        };
        let connected = {
            let links = self.links.lock();
            links.iter().filter(|l| l.out_conn().is_some()).fold(0u64, |acc, l| acc | placement::host_bit(l.host.id))
        };
        let mut hosts = KVec::new();
        let placement = match self.placement_hosts(&mut hosts) {
            Ok(()) => match placement::place(abi::name_bytes(name), local, &hosts, peers_wanted, rule) {
                Ok(chosen) if chosen.len() >= peers_wanted as usize => {
                    let mut ids = [0u32; 2];
                    for (slot, &id) in ids.iter_mut().zip(chosen.as_slice()) {
                        *slot = id;
                    }
                    Some(ids)
                }
                _ => None,
            },
            Err(_) => None,
        };
        let lease = self.holds_lease();
        // `clean` is the volume's to fill in.
        Some(owner::Observation {
            lease,
            fenced_by_majority,
            fence_settled,
            configured,
            connected,
            placement,
            clean: false,
        })
    }

    /// Checked before every batch of recovery writes, not only the first: the lease or
    /// the majority fence may end during a recovery (model finding "rejoin races
    /// recovery").
    /// Whether this host may write `owner`'s replicas now: the takeover rule holds, or
    /// the owner was told its volume was taken over (`yielded`: it writes nothing more)
    /// and this host holds its lease.
    fn may_recover(&self, owner: u32, yielded: bool) -> bool {
        let now = now_ns();
        self.members.lock().as_mut().is_some_and(|m| m.takeover_ready(owner, now) || (yielded && m.holds_lease(now)))
    }

    pub(crate) fn timeout_ms(&self) -> u32 {
        self.settings().map(|s| s.cfg.timeout_ms).unwrap_or(2000)
    }

    // ---- runtime ----

    fn restart(self: &Arc<Self>) -> Result {
        if self.settings().is_none() {
            return Ok(());
        }
        self.stop();
        self.start()
    }

    /// Starts the listener, one outbound thread per other host, and the ticker.
    fn start(self: &Arc<Self>) -> Result {
        let Some(s) = self.settings() else { return Ok(()) };
        let local = s.cfg.local_id;
        let hosts: KVec<abi::HostReq> = {
            let c = self.cfg.lock();
            let mut v = KVec::new();
            for h in c.hosts.iter() {
                v.push(*h, GFP_KERNEL)?;
            }
            v
        };
        let mut configured = 0u64;
        for h in hosts.iter() {
            configured |= placement::host_bit(h.id);
        }
        configured |= placement::host_bit(local);
        // Each other host's share of the replica budget here.
        let others = hosts.iter().filter(|h| h.id != local).count() as u32;
        self.replicas
            .set_quota(crate::logic::replica::owner_quota(crate::fvp_kernel::pages::total_ram_pages(), others));
        // A new membership is set up in a box allocated zeroed, outside the lock: some
        // KiB, too large for the stack of this ioctl (`vec::zeroed_box`).
        let fresh = if self.members.lock().as_ref().is_some_and(|m| m.local_id() == local) {
            None
        } else {
            let mut m = vec::zeroed_box::<Membership>()?;
            m.reset(local, configured, s.timeout_ns()).map_err(|_| EINVAL)?;
            Some(m)
        };
        {
            // A host list change keeps what this host knows (fences, grants, views) and
            // the list in force until now, jointly with the new one (logic/membership.rs).
            let mut members = self.members.lock();
            match members.as_mut() {
                Some(m) if m.local_id() == local => {
                    m.set_timeout(s.timeout_ns()).map_err(|_| EINVAL)?;
                    if let Err(e) = m.set_configured(configured) {
                        pr_err!("host list not put in force: {:?}\n", e);
                        return Err(EBUSY);
                    }
                }
                _ => match fresh {
                    Some(m) => *members = Some(m),
                    // Set up by another host list change meanwhile: one of the same
                    // local id (the ioctls are serialised; this only keeps it sound).
                    None => return Err(EBUSY),
                },
            }
        }
        self.cfg.lock().pending = false;
        self.lease_until_ns.store(0, Release);
        self.lease_settled_ns.store(u64::MAX, Release);
        // Fencing takes timeout_ms and a takeover another 1.2 x timeout_ms: stay silent
        // three timeouts after a (re)load.
        let quiet_ms = if self.first_start.swap(false, Relaxed) { 3 * s.cfg.timeout_ms } else { 0 };
        if quiet_ms > 0 {
            pr_info!("host {} stays silent for {} ms before joining (it may have restarted)\n", local, quiet_ms);
        }
        self.self_fenced.store(false, Relaxed);

        if let Some(me) = hosts.iter().find(|h| h.id == local) {
            match TcpSocket::listen(addr_of(me), 64) {
                Ok(sock) => {
                    sock.set_timeouts(500, 500);
                    let sock = Arc::new(sock, GFP_KERNEL)?;
                    let (c, l) = (self.clone(), sock.clone());
                    let t = Thread::start(c"fvp-listen", move |stop| {
                        stop.nap(quiet_ms);
                        c.listen_loop(&l, stop)
                    })?;
                    *self.listener.lock() = Some((sock, t));
                    pr_info!("host {} listening on {}\n", local, addr_of(me));
                }
                Err(e) => pr_err!("cannot listen on {}: error {}\n", addr_of(me), e.to_errno()),
            }
        } else {
            pr_warn!("host {} is not in the host list: not listening\n", local);
        }

        for h in hosts.iter().filter(|h| h.id != local) {
            let link = Arc::pin_init(
                pin_init!(Link {
                    host: *h,
                    out <- new_mutex!(None, "fvp::Link::out"),
                    inbound <- new_mutex!(None, "fvp::Link::inbound"),
                    hb <- new_mutex!(None, "fvp::Link::hb"),
                    thread <- new_mutex!(None, "fvp::Link::thread"),
                    hb_thread <- new_mutex!(None, "fvp::Link::hb_thread"),
                    rtt_us: AtomicU64::new(0),
                    last_rx_ns: AtomicU64::new(0),
                    inbound_incarnation: AtomicU64::new(0),
                }),
                GFP_KERNEL,
            )?;
            self.links.lock().push(link.clone(), GFP_KERNEL)?;
            let (c, l) = (self.clone(), link.clone());
            let t = Thread::start(c"fvp-link", move |stop| {
                stop.nap(quiet_ms);
                c.link_loop(&l, stop)
            })?;
            *link.thread.lock() = Some(t);
            let (c, l) = (self.clone(), link.clone());
            let t = Thread::start(c"fvp-hb", move |stop| {
                stop.nap(quiet_ms);
                c.heartbeat_loop(&l, stop)
            })?;
            *link.hb_thread.lock() = Some(t);
        }
        let c = self.clone();
        let t = Thread::start(c"fvp-tick", move |stop| c.tick_loop(stop))?;
        *self.ticker.lock() = Some(t);
        let c = self.clone();
        let t = Thread::start(c"fvp-recover", move |stop| {
            while !stop.should_stop() {
                let Some(s) = c.settings() else { return };
                c.recover_orphans();
                c.recover_lost_owners();
                stop.nap(s.cfg.heartbeat_ms);
            }
        })?;
        *self.recoverer.lock() = Some(t);
        Ok(())
    }

    /// Stops every thread and closes every connection. Sleeps.
    pub(crate) fn stop(&self) {
        let ticker = self.ticker.lock().take();
        drop(ticker);
        let recoverer = self.recoverer.lock().take();
        drop(recoverer);
        let listener = self.listener.lock().take();
        if let Some((sock, mut t)) = listener {
            sock.shutdown();
            t.stop();
        }
        let links = core::mem::take(&mut *self.links.lock());
        for l in links.iter() {
            if let Some(c) = l.out.lock().take() {
                c.close();
            }
            if let Some(c) = l.inbound.lock().take() {
                c.close();
            }
            if let Some(c) = l.hb.lock().take() {
                c.close();
            }
            let t = l.thread.lock().take();
            drop(t);
            let t = l.hb_thread.lock().take();
            drop(t);
        }
        let inbound = core::mem::take(&mut *self.inbound.lock());
        for i in inbound.iter() {
            i.sock.shutdown();
            let t = i.thread.lock().take();
            drop(t);
        }
    }

    fn protocol_error(&self, peer: &dyn core::fmt::Display, what: &str) {
        self.protocol_errors.fetch_add(1, Relaxed);
        if self.may_log() {
            pr_warn!("closing connection with {}: {}\n", peer, what);
        }
    }

    /// Whether a line about a refusal or a protocol error may be printed now (at most
    /// `admission::LOG_BURST` per interval); prints how many were dropped before it.
    fn may_log(&self) -> bool {
        let verdict = self.log_limit.lock().check(now_ns());
        match verdict {
            Verdict::Print { suppressed } => {
                if suppressed > 0 {
                    pr_warn!("{} messages about refused connections and protocol errors suppressed\n", suppressed);
                }
                true
            }
            Verdict::Suppress => false,
        }
    }

    // ---- listener and inbound connections (server side) ----

    fn listen_loop(self: &Arc<Self>, sock: &TcpSocket, stop: &StopToken) {
        while !stop.should_stop() {
            self.reap_inbound();
            let (conn, from) = match sock.accept() {
                Ok(x) => x,
                Err(e) if e == EAGAIN || e == EINTR => continue,
                Err(_) => {
                    stop.nap(100);
                    continue;
                }
            };
            // Bounded before anything is spent on it: a thread and buffers per handshake.
            let admitted = self.handshakes.lock().admit(from.addr_be);
            if let Err(why) = admitted {
                self.refused.fetch_add(1, Relaxed);
                if self.may_log() {
                    pr_warn!("refused connection from {}: {}\n", from, why.reason());
                }
                drop(conn);
                continue;
            }
            let release = || self.handshakes.lock().release(from.addr_be);
            let Ok(conn) = Arc::new(conn, GFP_KERNEL) else {
                release();
                continue;
            };
            let Ok(entry) = Arc::pin_init(
                pin_init!(Inbound {
                    sock: conn.clone(),
                    done: AtomicBool::new(false),
                    thread <- new_mutex!(None, "fvp::Inbound::thread"),
                }),
                GFP_KERNEL,
            ) else {
                release();
                continue;
            };
            if self.inbound.lock().push(entry.clone(), GFP_KERNEL).is_err() {
                release();
                continue;
            }
            let (c, e) = (self.clone(), entry.clone());
            // `serve` releases the slot when the handshake ends.
            match Thread::start(c"fvp-in", move |stop| {
                c.serve(&e.sock, from, stop);
                e.done.store(true, Relaxed);
            }) {
                Ok(t) => *entry.thread.lock() = Some(t),
                Err(_) => {
                    release();
                    entry.done.store(true, Relaxed);
                }
            }
        }
    }

    /// Joins inbound threads that finished.
    fn reap_inbound(&self) {
        let mut finished = KVec::new();
        {
            let mut list = self.inbound.lock();
            let mut i = 0;
            while i < list.len() {
                if list[i].done.load(Relaxed) {
                    if finished.reserve(1, GFP_KERNEL).is_err() {
                        break;
                    }
                    if let Some(e) = vec::remove(&mut list, i) {
                        let _ = finished.push(e, GFP_KERNEL);
                    }
                } else {
                    i += 1;
                }
            }
        }
        for e in finished.iter() {
            let t = e.thread.lock().take();
            drop(t);
        }
    }

    /// Runs the server handshake on an accepted connection, then serves its requests.
    /// Serves an accepted connection whose handshake `listen_loop` admitted: releases
    /// the admission when the handshake ends.
    fn serve(self: &Arc<Self>, sock: &Arc<TcpSocket>, from: SockAddr, stop: &StopToken) {
        let handshake = self.settings().ok_or("not configured").and_then(|s| {
            let mut reader = Reader::new().map_err(|_| "out of memory")?;
            let mut session = Session::server();
            let r = self.server_handshake(sock, from, &mut reader, &mut session, &s)?;
            Ok((s, reader, session, r))
        });
        self.handshakes.lock().release(from.addr_be);
        let (s, mut reader, mut session, (peer, channel, incarnation, keys)) = match handshake {
            Ok(h) => h,
            Err(why) => {
                self.refused.fetch_add(1, Relaxed);
                if self.may_log() {
                    pr_warn!("refused connection from {}: {}\n", from, why);
                }
                return;
            }
        };
        let Some(link) = self.link(peer) else { return };
        // The connection's receive side now belongs to this thread; the Conn is used to
        // send replies and to close it.
        reader.set_sealing(keys.rx);
        let Ok(conn) = Conn::new(sock.clone(), s.cfg.local_id, peer, 3, keys.tx) else { return };
        // A heartbeat connection only answers PINGs; the data connection is the link's.
        let heartbeat = channel == CHANNEL_HEARTBEAT;
        if !heartbeat {
            let mut slot = link.inbound.lock();
            // A live connection gives way only to the same incarnation of its host (which
            // reconnects only once its previous connection ended) or a later one (the host
            // restarted): never to an earlier one.
            if slot.as_ref().is_some_and(|c| !c.is_broken()) && incarnation < link.inbound_incarnation.load(Relaxed) {
                drop(slot);
                conn.close();
                self.refused.fetch_add(1, Relaxed);
                if self.may_log() {
                    pr_warn!("refused connection from {}: an earlier incarnation of host {}\n", from, peer);
                }
                return;
            }
            link.inbound_incarnation.store(incarnation, Relaxed);
            self.replicas.owner_connected(peer, incarnation);
            if let Some(old) = slot.replace(conn.clone()) {
                old.close();
            }
            drop(slot);
            pr_info!("host {} connected from {}\n", peer, from);
        }
        sock.set_timeouts(s.cfg.heartbeat_ms, s.cfg.timeout_ms);
        loop {
            if stop.should_stop() || conn.is_broken() {
                break;
            }
            let h = match reader.poll(sock) {
                Ok(Polled::Idle) => continue,
                Ok(Polled::Message(h)) => h,
                Err(RxError::Closed) => break,
                Err(RxError::Wire(e)) => {
                    self.protocol_error(&from, e.reason());
                    break;
                }
            };
            if let Err(e) = session.check_incoming(&h) {
                self.protocol_error(&from, e.reason());
                break;
            }
            let msg = match Message::decode(&h, reader.payload(&h)) {
                Ok(m) => m,
                Err(e) => {
                    self.protocol_error(&from, e.reason());
                    break;
                }
            };
            self.heard(&link, peer);
            if heartbeat && !matches!(msg, Message::Ping { .. }) {
                self.protocol_error(&from, "a request on a heartbeat connection");
                break;
            }
            if let Err(why) = self.handle_request(peer, incarnation, &conn, h.seq, &msg) {
                self.protocol_error(&from, why);
                break;
            }
        }
        conn.close();
        if heartbeat {
            return;
        }
        let mut slot = link.inbound.lock();
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
            *slot = None;
        }
    }

    /// The server side of a handshake on a connection from `from`; returns the client's
    /// id, the channel, the client's incarnation and the connection's keys.
    fn server_handshake(
        &self,
        sock: &TcpSocket,
        from: SockAddr,
        reader: &mut Reader,
        session: &mut Session,
        s: &Settings,
    ) -> core::result::Result<(u32, u32, u64, Keys), &'static str> {
        let local = s.cfg.local_id;
        // One deadline for the whole handshake, however the client paces its bytes.
        let deadline = now_ns().saturating_add(s.timeout_ns());
        let h = wait_message(sock, reader, deadline)?;
        session.check_incoming(&h).map_err(|e| e.reason())?;
        let (mut hs, peer_key) = match Message::decode(&h, reader.payload(&h)).map_err(|e| e.reason())? {
            Message::Hello { cluster_tag, host_id, channel, transport, incarnation, nonce, ephemeral } => {
                if cluster_tag != s.tag {
                    return Err(WireError::BadClusterTag.reason());
                }
                let c = self.cfg.lock();
                // A host id is bound to its configured address and its key.
                let host = c.hosts.iter().find(|x| x.id == host_id && host_id != local);
                let Some(host) = host else { return Err(WireError::UnknownHost.reason()) };
                if host.addr != from.addr_be {
                    return Err("not the configured address of the host it claims to be");
                }
                let Some(peer_key) = c.keys.get(host_id as usize - 1).copied().flatten() else {
                    return Err("no key is configured for the host it claims to be");
                };
                drop(c);
                if transport != s.cfg.transport {
                    return Err(WireError::BadTransport.reason());
                }
                let mut hs = s.handshake(host_id, local, channel);
                (hs.nonce_c, hs.eph_c, hs.incarnation) = (nonce, ephemeral, incarnation);
                (hs, peer_key)
            }
            _ => return Err("expected HELLO"),
        };
        session.hello_received(hs.client_id).map_err(|e| e.reason())?;
        let local_key = self.local_key.lock().clone().ok_or("this host has no key")?;
        random_bytes(&mut hs.nonce_s);
        let ephemeral = SecretKey::generate_x25519();
        hs.eph_s = ephemeral.x25519_public().ok_or("X25519 failed")?;
        let hmac = KernelHmac::new().map_err(|_| "out of memory")?;
        let dh = DhResults::compute(&local_key, &peer_key, &ephemeral, &hs.eph_c).ok_or("a low-order public key")?;
        drop(ephemeral);
        let secret = self.secret.lock().clone().ok_or("not configured")?;
        let schedule = dh.schedule(&hs, &hmac, secret.as_slice()).ok_or("HMAC failed")?;
        drop(dh);
        let mac = schedule.server_mac(&hmac, &hs).ok_or("HMAC failed")?;
        send_raw(sock, local, 1, &Message::Challenge { host_id: local, nonce: hs.nonce_s, ephemeral: hs.eph_s, mac })?;
        let h = wait_message(sock, reader, deadline)?;
        session.check_incoming(&h).map_err(|e| e.reason())?;
        match Message::decode(&h, reader.payload(&h)).map_err(|e| e.reason())? {
            Message::Auth { mac } => {
                if !schedule.verify_client_mac(&hmac, &hs, &mac) {
                    return Err(WireError::BadMac.reason());
                }
            }
            _ => return Err("expected AUTH"),
        }
        session.auth_verified().map_err(|e| e.reason())?;
        let keys = Keys::derive(&schedule, &hs, &hmac, s.transport(), false).ok_or("HMAC failed")?;
        send_raw(sock, local, 2, &Message::Welcome)?;
        Ok((hs.client_id, hs.channel, hs.incarnation, keys))
    }

    /// Serves one request from host `peer`, connected as `incarnation`. `Err`: a
    /// protocol violation.
    fn handle_request(
        &self,
        peer: u32,
        incarnation: u64,
        conn: &Conn,
        seq: u64,
        msg: &Message<'_>,
    ) -> core::result::Result<(), &'static str> {
        let ack = |status: i32, value: u64| {
            let _ = conn.send(&Message::Ack { acked_seq: seq, status, value }, None);
        };
        match *msg {
            Message::Ping { sent_ns, fenced, recovering, heard, configured, joint } => {
                let reply = {
                    let mut m = self.members.lock();
                    let Some(m) = m.as_mut() else { return Ok(()) };
                    let now = now_ns();
                    m.on_ping(peer, now, View { heard, fenced, recovering, configured, joint });
                    self.lease_changed(m, now);
                    let v = m.outgoing(now);
                    Message::Pong {
                        echo_ns: sent_ns,
                        heard: v.heard,
                        fenced: v.fenced,
                        recovering: v.recovering,
                        configured: v.configured,
                        joint: v.joint,
                    }
                };
                let _ = conn.send(&reply, None);
            }
            Message::VolumeOpen { volume_id, block_size, epoch, sectors, device_uuid, name } => {
                let device = DeviceIdentity { sectors, uuid: device_uuid };
                let req = OpenRequest { owner: peer, incarnation, volume_id, block_size, epoch, device, name };
                // Only a VOLUME_OPEN that may create or reset a store needs this host's
                // view of the device (epoch 0 is a probe).
                let local = if epoch != 0 { self.local_device(name) } else { None };
                let r = self.replicas.open(&req, local);
                if let Err(OpenRefusal::Device(why)) = &r {
                    if self.may_log() {
                        pr_warn!(
                            "refused replicas of volume {} of host {}: this host's path to the device: {} (owner: {} sectors; here: {})\n",
                            core::str::from_utf8(name).unwrap_or("?"),
                            peer,
                            why.reason(),
                            sectors,
                            local.map_or(0, |l| l.sectors)
                        );
                    }
                }
                ack(r.err().map(|e| e.to_errno()).unwrap_or(0), epoch);
            }
            Message::Replicate { volume_id, block, version, data } => {
                let r = self.replicas.store(peer, volume_id, block, version, data);
                ack(r.err().map(|e| e.to_errno()).unwrap_or(0), 0);
            }
            Message::Destaged { volume_id, entries } => {
                let r = self.replicas.drop_entries(peer, volume_id, entries.iter());
                ack(r.err().map(|e| e.to_errno()).unwrap_or(0), 0);
            }
            Message::VolumeClose { volume_id, name } => {
                let r = self.replicas.close(peer, volume_id, name);
                ack(r.err().map(|e| e.to_errno()).unwrap_or(0), 0);
            }
            Message::DropRange { volume_id, first, count, version } => {
                let r = self.replicas.drop_range(peer, volume_id, first, count, version);
                ack(r.err().map(|e| e.to_errno()).unwrap_or(0), 0);
            }
            _ => return Err(WireError::WrongDirection.reason()),
        }
        Ok(())
    }

    /// Notes a valid message from `peer` on `link`. Membership counts silence in
    /// timeouts, so it is told at most once a millisecond: on the data path (REPLICATE
    /// and its ACK) that spares its lock and its update. PING and PONG record
    /// themselves anyway.
    fn heard(&self, link: &Link, peer: u32) {
        let now = now_ns();
        let last = link.last_rx_ns.swap(now, Relaxed);
        if now.saturating_sub(last) < 1_000_000 {
            return;
        }
        // No lease_changed: hearing a host changes no grant (only PING and PONG do).
        if let Some(m) = self.members.lock().as_mut() {
            m.on_message(peer, now);
        }
    }

    // ---- outbound connections (client side) ----

    /// Connects to `link`'s host, runs the client handshake for `channel` and publishes
    /// the connection in `slot` (the caller empties it when the connection ends); `None`
    /// after a failure, logged (an unreachable host only once while `logged_down`), with
    /// the pause before the next try taken.
    fn connect_to(
        &self,
        link: &Link,
        channel: u32,
        slot: &Mutex<Option<Arc<Conn>>>,
        s: &Settings,
        stop: &StopToken,
        logged_down: &mut bool,
    ) -> Option<(Arc<Conn>, Arc<TcpSocket>, Reader, Session)> {
        let remote = addr_of(&link.host);
        let sock = match TcpSocket::connect(remote, s.cfg.timeout_ms) {
            Ok(sock) => sock,
            Err(e) => {
                if !*logged_down {
                    pr_info!("cannot connect to host {} at {}: error {}\n", link.host.id, remote, e.to_errno());
                    *logged_down = true;
                }
                stop.nap(s.cfg.heartbeat_ms);
                return None;
            }
        };
        sock.set_timeouts(s.cfg.timeout_ms, s.cfg.timeout_ms);
        let (Ok(mut reader), Ok(sock)) = (Reader::new(), Arc::new(sock, GFP_KERNEL)) else {
            stop.nap(s.cfg.heartbeat_ms);
            return None;
        };
        let mut session = Session::client(link.host.id);
        let keys = match self.client_handshake(&sock, &mut reader, &mut session, s, link.host.id, channel) {
            Ok(keys) => keys,
            Err(why) => {
                self.refused.fetch_add(1, Relaxed);
                if self.may_log() {
                    pr_warn!("handshake with host {} at {} failed: {}\n", link.host.id, remote, why);
                }
                stop.nap(s.cfg.timeout_ms);
                return None;
            }
        };
        *logged_down = false;
        reader.set_sealing(keys.rx);
        let Ok(conn) = Conn::new(sock.clone(), s.cfg.local_id, link.host.id, 3, keys.tx) else {
            stop.nap(s.cfg.heartbeat_ms);
            return None;
        };
        *slot.lock() = Some(conn.clone());
        sock.set_timeouts(s.cfg.heartbeat_ms / 2 + 1, s.cfg.timeout_ms);
        Some((conn, sock, reader, session))
    }

    /// The data connection to `link`'s host: this host's requests and their ACKs.
    fn link_loop(self: &Arc<Self>, link: &Arc<Link>, stop: &StopToken) {
        let remote = addr_of(&link.host);
        let mut logged_down = false;
        while !stop.should_stop() {
            let Some(s) = self.settings() else { return };
            let Some((conn, sock, mut reader, mut session)) =
                self.connect_to(link, CHANNEL_DATA, &link.out, &s, stop, &mut logged_down)
            else {
                continue;
            };
            pr_info!("connected to host {} at {}\n", link.host.id, remote);
            self.client_loop(link, &conn, &sock, &mut reader, &mut session, &s, stop);
            conn.close();
            *link.out.lock() = None;
            pr_info!("connection to host {} closed\n", link.host.id);
        }
    }

    /// The heartbeat connection to `link`'s host (`wire::CHANNEL_HEARTBEAT`): a PING
    /// every heartbeat and its PONG, on a connection of their own, so that leases and
    /// liveness never wait behind the data connection's replication traffic.
    fn heartbeat_loop(self: &Arc<Self>, link: &Arc<Link>, stop: &StopToken) {
        let remote = addr_of(&link.host);
        // The data connection's thread logs the host being unreachable.
        let mut quiet = true;
        while !stop.should_stop() {
            let Some(s) = self.settings() else { return };
            let Some((conn, sock, mut reader, mut session)) =
                self.connect_to(link, CHANNEL_HEARTBEAT, &link.hb, &s, stop, &mut quiet)
            else {
                quiet = true;
                continue;
            };
            let why = self.heartbeat_exchange(link, &conn, &sock, &mut reader, &mut session, &s, stop);
            conn.close();
            *link.hb.lock() = None;
            if let Some(why) = why {
                pr_warn!("heartbeat connection to host {} at {} closed: {}\n", link.host.id, remote, why);
                // The data connection goes too: idle, it sends nothing that would find a
                // restarted host's reset, and the host would wait for it forever.
                if let Some(c) = link.out_conn() {
                    c.close();
                }
            }
        }
    }

    /// PINGs every heartbeat on a heartbeat connection and takes the PONGs; returns
    /// why it ended (`None`: stopping).
    #[allow(clippy::too_many_arguments)]
    fn heartbeat_exchange(
        &self,
        link: &Link,
        conn: &Arc<Conn>,
        sock: &TcpSocket,
        reader: &mut Reader,
        session: &mut Session,
        s: &Settings,
        stop: &StopToken,
    ) -> Option<&'static str> {
        let peer = link.host.id;
        let hb_ns = u64::from(s.cfg.heartbeat_ms) * 1_000_000;
        let mut last_ping = 0u64;
        let mut last_pong = now_ns();
        // A PONG must answer a PING sent here, oldest first: its echo dates a lease.
        let mut pings = PendingPings::new();
        while !stop.should_stop() {
            if conn.is_broken() {
                return Some("send failed");
            }
            let now = now_ns();
            if now.saturating_sub(last_ping) >= hb_ns && pings.len() < PINGS_MAX {
                last_ping = now;
                let ping = self.ping(now)?;
                if conn.send(&ping, None).is_err() {
                    return Some("send failed");
                }
                pings.sent(now);
            }
            if now.saturating_sub(last_pong) > s.timeout_ns() {
                return Some("no PONG within the timeout");
            }
            let h = match reader.poll(sock) {
                Ok(Polled::Idle) => continue,
                Ok(Polled::Message(h)) => h,
                Err(RxError::Closed) => return Some("closed by the host"),
                Err(RxError::Wire(e)) => return Some(self.protocol_failure(&addr_of(&link.host), e.reason())),
            };
            if let Err(e) = session.check_incoming(&h) {
                return Some(self.protocol_failure(&addr_of(&link.host), e.reason()));
            }
            let msg = match Message::decode(&h, reader.payload(&h)) {
                Ok(m) => m,
                Err(e) => return Some(self.protocol_failure(&addr_of(&link.host), e.reason())),
            };
            self.heard(link, peer);
            match msg {
                Message::Pong { echo_ns, heard, fenced, recovering, configured, joint } => {
                    if !pings.pong(echo_ns) {
                        return Some(self.protocol_failure(&addr_of(&link.host), "PONG answers no PING sent"));
                    }
                    if let Err(why) = self.on_pong(link, echo_ns, View { heard, fenced, recovering, configured, joint })
                    {
                        return Some(self.protocol_failure(&addr_of(&link.host), why));
                    }
                    last_pong = now_ns();
                }
                _ => return Some(self.protocol_failure(&addr_of(&link.host), WireError::WrongDirection.reason())),
            }
        }
        None
    }

    /// This host's PING at `now`, with its view.
    fn ping(&self, now: u64) -> Option<Message<'static>> {
        let m = self.members.lock();
        let v = m.as_ref()?.outgoing(now);
        Some(Message::Ping {
            sent_ns: now,
            heard: v.heard,
            fenced: v.fenced,
            recovering: v.recovering,
            configured: v.configured,
            joint: v.joint,
        })
    }

    /// A PONG from `link`'s host echoing `echo_ns`: its round trip and its grant.
    fn on_pong(&self, link: &Link, echo_ns: u64, view: View) -> core::result::Result<(), &'static str> {
        let now = now_ns();
        if echo_ns > now {
            return Err("PONG from the future");
        }
        link.rtt_us.store((now - echo_ns) / 1000, Relaxed);
        if let Some(m) = self.members.lock().as_mut() {
            m.on_pong(link.host.id, now, echo_ns, view);
            self.lease_changed(m, now);
        }
        Ok(())
    }

    /// [`Cluster::protocol_error`], returning its reason.
    fn protocol_failure(&self, peer: &dyn core::fmt::Display, what: &'static str) -> &'static str {
        self.protocol_error(peer, what);
        what
    }

    /// The client side of a handshake with host `server` for `channel`.
    fn client_handshake(
        &self,
        sock: &TcpSocket,
        reader: &mut Reader,
        session: &mut Session,
        s: &Settings,
        server: u32,
        channel: u32,
    ) -> core::result::Result<Keys, &'static str> {
        let local = s.cfg.local_id;
        let deadline = now_ns().saturating_add(s.timeout_ns());
        let local_key = self.local_key.lock().clone().ok_or("this host has no key")?;
        let server_key = self.cfg.lock().keys.get(server as usize - 1).copied().flatten();
        let server_key = server_key.ok_or("no key is configured for the host")?;
        let mut hs = s.handshake(local, server, channel);
        hs.incarnation = self.incarnation;
        random_bytes(&mut hs.nonce_c);
        let ephemeral = SecretKey::generate_x25519();
        hs.eph_c = ephemeral.x25519_public().ok_or("X25519 failed")?;
        let hmac = KernelHmac::new().map_err(|_| "out of memory")?;
        let hello = Message::Hello {
            cluster_tag: s.tag,
            host_id: local,
            channel,
            transport: hs.transport,
            incarnation: hs.incarnation,
            nonce: hs.nonce_c,
            ephemeral: hs.eph_c,
        };
        send_raw(sock, local, 1, &hello)?;
        let h = wait_message(sock, reader, deadline)?;
        session.check_incoming(&h).map_err(|e| e.reason())?;
        let schedule = match Message::decode(&h, reader.payload(&h)).map_err(|e| e.reason())? {
            Message::Challenge { host_id, nonce, ephemeral: eph_s, mac } => {
                if host_id != server {
                    return Err(WireError::WrongSender.reason());
                }
                (hs.nonce_s, hs.eph_s) = (nonce, eph_s);
                let dh = DhResults::compute(&local_key, &server_key, &ephemeral, &hs.eph_s)
                    .ok_or("a low-order public key")?;
                let secret = self.secret.lock().clone().ok_or("not configured")?;
                let schedule = dh.schedule(&hs, &hmac, secret.as_slice()).ok_or("HMAC failed")?;
                if !schedule.verify_server_mac(&hmac, &hs, &mac) {
                    return Err(WireError::BadMac.reason());
                }
                session.challenge_received().map_err(|e| e.reason())?;
                let mac = schedule.client_mac(&hmac, &hs).ok_or("HMAC failed")?;
                send_raw(sock, local, 2, &Message::Auth { mac })?;
                schedule
            }
            _ => return Err("expected CHALLENGE"),
        };
        drop(ephemeral);
        let h = wait_message(sock, reader, deadline)?;
        session.check_incoming(&h).map_err(|e| e.reason())?;
        match Message::decode(&h, reader.payload(&h)).map_err(|e| e.reason())? {
            Message::Welcome => session.welcome_received().map_err(|e| e.reason())?,
            _ => return Err("expected WELCOME"),
        }
        Keys::derive(&schedule, &hs, &hmac, s.transport(), true).ok_or("HMAC failed")
    }

    #[allow(clippy::too_many_arguments)]
    fn client_loop(
        &self,
        link: &Link,
        conn: &Arc<Conn>,
        sock: &TcpSocket,
        reader: &mut Reader,
        session: &mut Session,
        s: &Settings,
        stop: &StopToken,
    ) {
        let peer = link.host.id;
        let remote = addr_of(&link.host);
        // No PINGs here: they have their own connection (`heartbeat_loop`).
        while !stop.should_stop() && !conn.is_broken() {
            if conn.stalled_ms(Ktime::ktime_get()) > u64::from(s.cfg.timeout_ms) {
                pr_warn!("host {} did not answer within {} ms\n", peer, s.cfg.timeout_ms);
                return;
            }
            let h = match reader.poll(sock) {
                Ok(Polled::Idle) => continue,
                Ok(Polled::Message(h)) => h,
                Err(RxError::Closed) => return,
                Err(RxError::Wire(e)) => {
                    self.protocol_error(&remote, e.reason());
                    return;
                }
            };
            if let Err(e) = session.check_incoming(&h) {
                self.protocol_error(&remote, e.reason());
                return;
            }
            let msg = match Message::decode(&h, reader.payload(&h)) {
                Ok(m) => m,
                Err(e) => {
                    self.protocol_error(&remote, e.reason());
                    return;
                }
            };
            self.heard(&link, peer);
            match msg {
                Message::Ack { acked_seq, status, value } => {
                    if !conn.ack(acked_seq, status, value) {
                        self.protocol_error(&remote, "ACK out of order");
                        return;
                    }
                }
                _ => {
                    self.protocol_error(&remote, WireError::WrongDirection.reason());
                    return;
                }
            }
        }
    }

    // ---- ticker ----

    fn tick_loop(self: &Arc<Self>, stop: &StopToken) {
        while !stop.should_stop() {
            let Some(s) = self.settings() else { return };
            let now = now_ns();
            let (fenced_by_majority, lease_since) = {
                let mut m = self.members.lock();
                match m.as_mut() {
                    Some(m) => {
                        m.tick(now);
                        self.lease_changed(m, now);
                        (m.fenced_by_majority(now), m.lease_held_since())
                    }
                    None => (false, None),
                }
            };
            // Before any takeover decision: a lease interruption untrusts every store.
            self.replicas.observe_lease(lease_since);
            // Fenced by a majority: our replicas may be older than what their owners wrote
            // since, so no takeover may write them. A fence implies a lost lease (so the
            // line above untrusted them already); they are kept, since one may be the last
            // copy of acknowledged writes (`logic/replica.rs`). Our own volumes have no
            // lease and wait; whether a peer took them over is asked when it returns.
            if fenced_by_majority && !self.self_fenced.swap(true, Relaxed) {
                pr_err!("this host is fenced by a majority\n");
                self.replicas.untrust_all("fenced by a majority");
            } else if !fenced_by_majority {
                self.self_fenced.store(false, Relaxed);
            }
            let volumes: KVec<Arc<dyn OwnedVolume>> = {
                let list = self.volumes.lock();
                let mut v = KVec::new();
                for (_, x) in list.iter() {
                    let _ = v.push(x.clone(), GFP_KERNEL);
                }
                v
            };
            for v in volumes.iter() {
                v.heartbeat();
            }
            self.retry_closes();
            stop.nap(s.cfg.heartbeat_ms);
        }
    }

    /// Writes the orphans that owners' new volumes wait for (`logic/replica.rs`): with
    /// the lease held since this call began (an interruption may hide a fence, and
    /// the stores would be untrusted).
    fn recover_orphans(self: &Arc<Self>) {
        let since = self.members.lock().as_ref().and_then(|m| m.lease_held_since());
        self.replicas.observe_lease(since);
        if since.is_none() {
            return;
        }
        self.replicas.recover_orphans(&|name| self.device_by_name(name).map(|d| d.req), &self.shared.bioset, &|| {
            let now = now_ns();
            self.members.lock().as_ref().is_some_and(|m| m.holds_lease(now) && m.lease_held_since() == since)
        });
    }

    /// Takes over the volumes of owners that a majority fenced (section 4).
    fn recover_lost_owners(self: &Arc<Self>) {
        // The ticker watches the lease too; looking here as well means no takeover
        // decision is taken on a store a lease gap since the last tick should untrust.
        let since = self.members.lock().as_ref().and_then(|m| m.lease_held_since());
        self.replicas.observe_lease(since);
        let owners = self.replicas.owners();
        // Owners told that this host took their volume over: they write nothing more.
        let yielded = self.replicas.yielded_owners();
        for owner in 0..64u32 {
            if owners & (1u64 << owner) == 0 {
                continue;
            }
            let id = owner + 1;
            let has_yielded = yielded & (1u64 << owner) != 0;
            if !self.may_recover(id, has_yielded) {
                continue;
            }
            if let Some(m) = self.members.lock().as_mut() {
                m.set_recovering(id, true);
            }
            pr_warn!("host {} is fenced by a majority: writing its replicated blocks to the backing devices\n", id);
            self.replicas.recover_owner(
                id,
                &|name| self.device_by_name(name).map(|d| d.req),
                &self.shared.bioset,
                &|| self.may_recover(id, has_yielded),
            );
            if let Some(m) = self.members.lock().as_mut() {
                m.set_recovering(id, false);
            }
        }
    }
}

/// Fault domains as small integers for placement: the index of the first host with
/// the same domain name.
fn domain_index(hosts: &[abi::HostReq], domain: &[u8; abi::NAME_LEN]) -> u32 {
    hosts.iter().position(|h| &h.domain == domain).unwrap_or(0) as u32
}

fn send_raw(sock: &TcpSocket, sender: u32, seq: u64, msg: &Message<'_>) -> core::result::Result<(), &'static str> {
    let e = msg.encode(sender, seq).map_err(|e| e.reason())?;
    sock.send(e.as_bytes(), msg.data()).map_err(|_| "send failed")
}

/// Waits for one whole message during a handshake, until `deadline` (ns, `now_ns`):
/// the socket's receive timeout is cut to what is left before each receive.
fn wait_message(
    sock: &TcpSocket,
    reader: &mut Reader,
    deadline: u64,
) -> core::result::Result<crate::logic::wire::Header, &'static str> {
    loop {
        let left_ms = deadline.saturating_sub(now_ns()) / 1_000_000;
        if left_ms == 0 {
            return Err("handshake not done within the timeout");
        }
        let left_ms = u32::try_from(left_ms).unwrap_or(u32::MAX);
        sock.set_timeouts(left_ms, left_ms);
        match reader.poll(sock) {
            Ok(Polled::Message(h)) => return Ok(h),
            Ok(Polled::Idle) => {}
            Err(RxError::Closed) => return Err("connection closed"),
            Err(RxError::Wire(e)) => return Err(e.reason()),
        }
    }
}
