// SPDX-License-Identifier: GPL-2.0

//! Cluster descriptions (`fvpctl cluster apply FILE`): reading and checking the TOML
//! file, finding this host in it, and the changes that make the module's host and
//! device lists equal to it. Nothing here talks to the module.
//!
//! ```toml
//! name = "lab"
//! secret = "at-least-16-bytes-secret"   # or secret_file = "/path"
//! heartbeat_ms = 200                    # optional
//! timeout_ms = 2000                     # optional
//! transport = "encrypted"               # optional, default "authenticated"
//! key_file = "/etc/fvp/host.key"        # this host's private key (fvpctl key generate)
//! [[host]]
//! id = 1
//! addr = "10.0.0.1:7790"
//! domain = "rack-a"
//! key = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"  # its public key
//! [[device]]
//! name = "shared0"
//! path = "/dev/disk/by-id/virtio-fvp-shared"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use fvp_logic::abi::{
    self, ClusterCfg, DeviceReq, HostInfo, HostReq, DEFAULT_HEARTBEAT_MS, DEFAULT_TIMEOUT_MS, HEARTBEAT_MS_MAX,
    HEARTBEAT_MS_MIN, MAX_HOSTS, NAME_LEN, PATH_LEN, SECRET_LEN, SECRET_LEN_MIN, TIMEOUT_HEARTBEATS_MIN,
    TIMEOUT_MS_MAX,
};
use fvp_logic::seal::Transport;
use serde::Deserialize;
use toml::Spanned;

use crate::keys::{self, PrivateKey, PublicKey};

/// One mistake in a cluster description: the line it is on, when known, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

/// Everything wrong with a cluster description (at least one problem).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl FileError {
    /// A single problem with no line.
    pub fn whole(file: &Path, message: String) -> Self {
        Self { file: file.to_path_buf(), problems: vec![Problem { line: None, message }] }
    }
}

/// `FILE:LINE: message`, one line per problem.
impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}", problem.message)?;
        }
        Ok(())
    }
}

/// The shared secret; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A host of a cluster description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub id: u32,
    pub addr: SocketAddrV4,
    pub domain: String,
    /// Its public key.
    pub key: PublicKey,
    /// Where it is in the file.
    pub line: usize,
}

impl HostEntry {
    /// The `FVP_IOC_HOST_ADD` request.
    pub fn to_req(&self) -> HostReq {
        HostReq::new(self.id, self.addr.ip().octets(), self.addr.port(), abi_name(&self.domain))
    }
}

/// A shared device of a cluster description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    pub name: String,
    pub path: String,
    /// Its configured identity (`uuid`), if any.
    pub uuid: Option<[u8; abi::DEVICE_UUID_LEN]>,
    /// Where it is in the file.
    pub line: usize,
}

impl DeviceEntry {
    /// The `FVP_IOC_DEVICE_ADD` request.
    pub fn to_req(&self) -> DeviceReq {
        let req = DeviceReq::new(abi_name(&self.name), self.path.as_bytes())
            .expect("paths are checked when the file is read");
        DeviceReq { uuid: self.uuid.unwrap_or_default(), ..req }
    }
}

/// A checked cluster description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFile {
    pub name: String,
    pub secret: Secret,
    pub heartbeat_ms: u32,
    pub timeout_ms: u32,
    /// How replication messages are protected (`transport`, default authenticated).
    pub transport: Transport,
    /// Where this host's private key was read from (`key_file`, made absolute or
    /// relative to the working directory).
    pub key_file: PathBuf,
    /// This host's private key.
    pub private_key: PrivateKey,
    /// In the file's order.
    pub hosts: Vec<HostEntry>,
    /// In the file's order.
    pub devices: Vec<DeviceEntry>,
}

impl ClusterFile {
    /// The `FVP_IOC_CLUSTER_SET` argument for the host `local_id`.
    pub fn cluster_cfg(&self, local_id: u32) -> ClusterCfg {
        let mut cfg = ClusterCfg {
            name: abi_name(&self.name),
            local_id,
            heartbeat_ms: self.heartbeat_ms,
            timeout_ms: self.timeout_ms,
            transport: self.transport.as_u32(),
            ..Default::default()
        };
        cfg.set_secret(&self.secret.0).expect("the secret's length is checked when the file is read");
        cfg
    }

    /// Checks that the public key of `key_file` is the key listed for host `local_id`
    /// (which must be listed): else the other hosts would not know this one.
    pub fn check_local_key(&self, file: &Path, local_id: u32) -> Result<(), FileError> {
        let host = self.hosts.iter().find(|h| h.id == local_id).expect("the local host is listed");
        let public = self.private_key.public_key();
        if public == host.key {
            return Ok(());
        }
        Err(FileError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                line: Some(host.line),
                message: format!(
                    "key_file's public key is not the key listed for host {local_id}: the public key of {} \
                     is {public} (fvpctl key public FILE)",
                    self.key_file.display()
                ),
            }],
        })
    }
}

/// The file as TOML gives it, before any check but the types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<PathBuf>>,
    heartbeat_ms: Option<Spanned<u32>>,
    timeout_ms: Option<Spanned<u32>>,
    transport: Option<Spanned<String>>,
    key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    id: Spanned<u32>,
    addr: Spanned<String>,
    domain: Spanned<String>,
    key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    path: Spanned<String>,
    uuid: Option<Spanned<String>>,
}

/// A device's configured identity from its text, or why it is not one.
pub fn parse_device_uuid(text: &str) -> Result<[u8; abi::DEVICE_UUID_LEN], String> {
    match abi::parse_uuid(text.as_bytes()) {
        None => Err(format!(
            "uuid {text:?} is not a uuid (32 hex digits as 8-4-4-4-12, e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)"
        )),
        Some(u) if u == [0; abi::DEVICE_UUID_LEN] => {
            Err("the nil uuid means no uuid: leave the key out instead".to_owned())
        }
        Some(u) => Ok(u),
    }
}

/// The NUL-padded form of a name already checked by [`check_name`].
fn abi_name(name: &str) -> [u8; NAME_LEN] {
    abi::pool_name(name.as_bytes()).expect("names are checked before use")
}

/// `None` if `text` is a valid name (1 to 31 of `[A-Za-z0-9_.-]`), else why not.
pub fn check_name(text: &str, what: &str) -> Option<String> {
    match abi::pool_name(text.as_bytes()) {
        Some(name) if abi::name_str(&name) == text => None,
        _ => Some(format!("invalid {what} '{}': use 1 to {} of A-Z a-z 0-9 _ . -", text.escape_debug(), NAME_LEN - 1)),
    }
}

/// Parses a host's `IPv4:PORT`: a unicast address other than 0.0.0.0, and a port other
/// than 0.
pub fn parse_host_addr(text: &str) -> Result<SocketAddrV4, String> {
    let addr: SocketAddrV4 = text
        .parse()
        .map_err(|_| format!("invalid address '{}': expected IPv4:PORT, e.g. 10.0.0.1:7790", text.escape_debug()))?;
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("invalid address '{text}': {ip} cannot be a host's address"));
    }
    if addr.port() == 0 {
        return Err(format!("invalid address '{text}': the port must not be 0"));
    }
    Ok(addr)
}

/// Checks a shared device's local path: absolute, no NUL, shorter than `FVP_PATH_LEN`.
pub fn check_device_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the device path is empty".to_owned())
    } else if !path.starts_with('/') {
        Err(format!("device path '{}' is not absolute", path.escape_debug()))
    } else if path.contains('\0') {
        Err(format!("device path '{}' contains a NUL", path.escape_debug()))
    } else if path.len() >= PATH_LEN {
        Err(format!("device path is {} bytes long; at most {} are allowed", path.len(), PATH_LEN - 1))
    } else {
        Ok(())
    }
}

/// Parses a host id, 1..=64.
pub fn parse_host_id(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(id) if abi::host_id_valid(id) => Ok(id),
        _ => Err(format!("invalid host id '{}': use 1 to {MAX_HOSTS}", text.escape_debug())),
    }
}

/// A secret as stored in a file: its bytes, less the trailing line ends.
pub fn secret_from_file_content(mut content: Vec<u8>) -> Vec<u8> {
    while matches!(content.last(), Some(b'\n' | b'\r')) {
        content.pop();
    }
    content
}

/// Longest secret file read: a secret and its line end fit many times over; a file
/// longer than this (or `/dev/zero`) is refused rather than read whole.
const SECRET_FILE_MAX: u64 = 4096;

/// Reads a secret file: a regular file of at most [`SECRET_FILE_MAX`] bytes.
pub fn read_secret(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut content = Vec::new();
    file.take(SECRET_FILE_MAX + 1).read_to_end(&mut content)?;
    if content.len() as u64 > SECRET_FILE_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("longer than {SECRET_FILE_MAX} bytes")));
    }
    Ok(secret_from_file_content(content))
}

/// `None` if a secret's length is right, else why not.
pub fn check_secret_len(len: usize) -> Option<String> {
    (!(SECRET_LEN_MIN..=SECRET_LEN).contains(&len))
        .then(|| format!("the secret is {len} bytes long; it must be {SECRET_LEN_MIN} to {SECRET_LEN} bytes"))
}

/// `None` if the timers are right, else why not.
pub fn check_timers(heartbeat_ms: u32, timeout_ms: u32) -> Option<String> {
    if !(HEARTBEAT_MS_MIN..=HEARTBEAT_MS_MAX).contains(&heartbeat_ms) {
        Some(format!("heartbeat_ms {heartbeat_ms} is not in {HEARTBEAT_MS_MIN}..={HEARTBEAT_MS_MAX}"))
    } else if u64::from(timeout_ms) < u64::from(TIMEOUT_HEARTBEATS_MIN) * u64::from(heartbeat_ms) {
        Some(format!(
            "timeout_ms {timeout_ms} is less than {TIMEOUT_HEARTBEATS_MIN} x heartbeat_ms ({})",
            TIMEOUT_HEARTBEATS_MIN * heartbeat_ms
        ))
    } else if timeout_ms > TIMEOUT_MS_MAX {
        Some(format!("timeout_ms {timeout_ms} is more than {TIMEOUT_MS_MAX}"))
    } else {
        None
    }
}

/// The transport mode called `text` (`authenticated` or `encrypted`), else why not.
pub fn parse_transport(text: &str) -> Result<Transport, String> {
    [Transport::Authenticated, Transport::Encrypted].into_iter().find(|t| t.name() == text).ok_or_else(|| {
        format!(
            "invalid transport '{}': use {} or {}",
            text.escape_debug(),
            Transport::Authenticated.name(),
            Transport::Encrypted.name()
        )
    })
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Reads and checks the cluster description at `file`.
pub fn load(file: &Path) -> Result<ClusterFile, FileError> {
    let text = fs::read_to_string(file).map_err(|err| FileError::whole(file, format!("cannot read: {err}")))?;
    parse(&text, file)
}

/// Checks the cluster description `text`, read from `file`. A relative `secret_file` or
/// `key_file` is taken from the directory of `file`. Every problem found is reported, not
/// just the first.
pub fn parse(text: &str, file: &Path) -> Result<ClusterFile, FileError> {
    parse_with(text, file, &keys::read_private_key)
}

/// [`parse`], reading the private key file with `read_key` (which says why it cannot).
pub fn parse_with(
    text: &str,
    file: &Path,
    read_key: &dyn Fn(&Path) -> Result<PrivateKey, String>,
) -> Result<ClusterFile, FileError> {
    let raw: RawFile = toml::from_str(text).map_err(|err| FileError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            line: err.span().map(|span| line_of(text, span.start)),
            message: err.message().trim_end().to_owned(),
        }],
    })?;
    let mut problems = Vec::new();
    let mut problem = |span: std::ops::Range<usize>, message: String| {
        problems.push(Problem { line: Some(line_of(text, span.start)), message });
    };

    if let Some(why) = check_name(raw.name.get_ref(), "cluster name") {
        problem(raw.name.span(), why);
    }

    let secret = match (&raw.secret, &raw.secret_file) {
        (Some(secret), None) => Some((secret.span(), secret.get_ref().as_bytes().to_vec())),
        (None, Some(path)) => {
            let full = file.parent().unwrap_or(Path::new(".")).join(path.get_ref());
            match read_secret(&full) {
                Ok(secret) => Some((path.span(), secret)),
                Err(err) => {
                    problem(path.span(), format!("cannot read secret_file {}: {err}", full.display()));
                    None
                }
            }
        }
        (Some(_), Some(path)) => {
            problem(path.span(), "give either secret or secret_file, not both".to_owned());
            None
        }
        (None, None) => {
            problem(raw.name.span(), "no secret: give secret = \"...\" or secret_file = \"/path\"".to_owned());
            None
        }
    };
    if let Some((span, secret)) = &secret {
        if let Some(why) = check_secret_len(secret.len()) {
            problem(span.clone(), why);
        }
    }

    let heartbeat_ms = raw.heartbeat_ms.as_ref().map_or(DEFAULT_HEARTBEAT_MS, |h| *h.get_ref());
    let timeout_ms = raw.timeout_ms.as_ref().map_or(DEFAULT_TIMEOUT_MS, |t| *t.get_ref());
    if let Some(why) = check_timers(heartbeat_ms, timeout_ms) {
        // Blame the key the message is about if it was written, else the other one.
        let (heartbeat, timeout) = (raw.heartbeat_ms.as_ref(), raw.timeout_ms.as_ref());
        let blamed = if why.starts_with("timeout") { timeout.or(heartbeat) } else { heartbeat.or(timeout) };
        problem(blamed.map_or(raw.name.span(), Spanned::span), why);
    }

    let transport = match &raw.transport {
        None => Transport::Authenticated,
        Some(text) => parse_transport(text.get_ref()).unwrap_or_else(|why| {
            problem(text.span(), why);
            Transport::Authenticated
        }),
    };

    let private_key = match &raw.key_file {
        Some(path) => {
            let full = file.parent().unwrap_or(Path::new(".")).join(path.get_ref());
            match read_key(&full) {
                Ok(key) => Some((full, key)),
                Err(why) => {
                    problem(path.span(), format!("key_file {}: {why}", full.display()));
                    None
                }
            }
        }
        None => {
            problem(
                raw.name.span(),
                "no key_file: give key_file = \"/path\", this host's private key (fvpctl key generate FILE \
                 makes one)"
                    .to_owned(),
            );
            None
        }
    };

    if raw.host.is_empty() {
        problem(raw.name.span(), "no [[host]]: list every host of the cluster, this one included".to_owned());
    }
    let mut hosts = Vec::new();
    let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
    let mut ips: BTreeMap<Ipv4Addr, (u32, usize)> = BTreeMap::new();
    let mut host_keys: BTreeMap<PublicKey, (u32, usize)> = BTreeMap::new();
    for host in &raw.host {
        let (span, line) = (host.span(), line_of(text, host.span().start));
        let host = host.get_ref();
        let id = *host.id.get_ref();
        let mut ok = true;
        if !abi::host_id_valid(id) {
            problem(host.id.span(), format!("host id {id} is not in 1..={MAX_HOSTS}"));
            ok = false;
        } else if let Some(first) = ids.insert(id, line) {
            problem(host.id.span(), format!("host id {id} is already used by the host on line {first}"));
            ids.insert(id, first);
            ok = false;
        }
        let addr = match parse_host_addr(host.addr.get_ref()) {
            Ok(addr) => {
                if let Some(&(other, first)) = ips.get(addr.ip()) {
                    problem(
                        host.addr.span(),
                        format!("address {} is already used by host {other} on line {first}", addr.ip()),
                    );
                    ok = false;
                } else {
                    ips.insert(*addr.ip(), (id, line));
                }
                Some(addr)
            }
            Err(why) => {
                problem(host.addr.span(), why);
                None
            }
        };
        if let Some(why) = check_name(host.domain.get_ref(), "fault domain") {
            problem(host.domain.span(), why);
            ok = false;
        }
        let key = match &host.key {
            None => {
                problem(
                    span,
                    format!(
                        "host {id} has no key: give key = \"<64 hex digits>\", its public key \
                         (fvpctl key public FILE prints it)"
                    ),
                );
                None
            }
            Some(text) => match PublicKey::parse(text.get_ref()) {
                Ok(key) => {
                    if let Some(&(other, first)) = host_keys.get(&key) {
                        problem(text.span(), format!("key is already used by host {other} on line {first}"));
                        ok = false;
                    } else {
                        host_keys.insert(key, (id, line));
                    }
                    Some(key)
                }
                Err(why) => {
                    problem(text.span(), why);
                    None
                }
            },
        };
        if let (true, Some(addr), Some(key)) = (ok, addr, key) {
            hosts.push(HostEntry { id, addr, domain: host.domain.get_ref().clone(), key, line });
        }
    }

    let mut devices = Vec::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut paths: BTreeMap<&str, usize> = BTreeMap::new();
    for device in &raw.device {
        let line = line_of(text, device.span().start);
        let device = device.get_ref();
        let (name, path) = (device.name.get_ref().as_str(), device.path.get_ref().as_str());
        let mut ok = true;
        if let Some(why) = check_name(name, "device name") {
            problem(device.name.span(), why);
            ok = false;
        } else if let Some(first) = names.get(name) {
            problem(device.name.span(), format!("device {name} is already listed on line {first}"));
            ok = false;
        } else {
            names.insert(name, line);
        }
        if let Err(why) = check_device_path(path) {
            problem(device.path.span(), why);
            ok = false;
        } else if let Some(first) = paths.get(path) {
            problem(device.path.span(), format!("path {path} is already used by the device on line {first}"));
            ok = false;
        } else {
            paths.insert(path, line);
        }
        let mut uuid = None;
        if let Some(text) = &device.uuid {
            match parse_device_uuid(text.get_ref()) {
                Ok(u) => uuid = Some(u),
                Err(why) => {
                    problem(text.span(), why);
                    ok = false;
                }
            }
        }
        if ok {
            devices.push(DeviceEntry { name: name.to_owned(), path: path.to_owned(), uuid, line });
        }
    }

    match (secret, private_key) {
        (Some((_, secret)), Some((key_file, private_key))) if problems.is_empty() => Ok(ClusterFile {
            name: raw.name.into_inner(),
            secret: Secret(secret),
            heartbeat_ms,
            timeout_ms,
            transport,
            key_file,
            private_key,
            hosts,
            devices,
        }),
        _ => {
            problems.sort_by_key(|p| p.line);
            Err(FileError { file: file.to_path_buf(), problems })
        }
    }
}

/// Which host of `cluster` this one is: `local_id` if given (it must be listed), else
/// the one host whose IP address is among `local_addrs` (this machine's addresses).
pub fn local_host(
    cluster: &ClusterFile,
    file: &Path,
    local_id: Option<u32>,
    local_addrs: &[Ipv4Addr],
) -> Result<u32, FileError> {
    if let Some(id) = local_id {
        return if cluster.hosts.iter().any(|h| h.id == id) {
            Ok(id)
        } else {
            Err(FileError::whole(file, format!("--local-id {id}: no [[host]] has id {id}")))
        };
    }
    let here: Vec<&HostEntry> = cluster.hosts.iter().filter(|h| local_addrs.contains(h.addr.ip())).collect();
    match here.as_slice() {
        [host] => Ok(host.id),
        [] => {
            let addrs: Vec<String> = local_addrs.iter().map(Ipv4Addr::to_string).collect();
            let addrs = if addrs.is_empty() { "none".to_owned() } else { addrs.join(", ") };
            Err(FileError::whole(
                file,
                format!(
                    "no [[host]] has an address of this machine (its IPv4 addresses: {addrs}); \
                     pass --local-id"
                ),
            ))
        }
        several => {
            let ids: Vec<String> = several.iter().map(|h| h.id.to_string()).collect();
            Err(FileError::whole(
                file,
                format!("the addresses of hosts {} are all on this machine; pass --local-id", ids.join(", ")),
            ))
        }
    }
}

/// What one host or device entry needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<T> {
    /// In the file, not in the module.
    Add(T),
    /// In the module, not in the file.
    Remove(T),
    /// In both, different: removed, then added as the file says.
    Replace { old: T, new: T },
    /// A host in both that differs only in its fault domain, on a module that changes
    /// it in place (`FVP_IOC_HOST_UPDATE`, ABI 5): no restart of the connections.
    Update { old: T, new: T },
}

impl<T> Change<T> {
    /// What to remove from the module, if anything.
    pub fn removed(&self) -> Option<&T> {
        match self {
            Change::Remove(old) | Change::Replace { old, .. } => Some(old),
            Change::Add(_) | Change::Update { .. } => None,
        }
    }

    /// What to add to the module, if anything.
    pub fn added(&self) -> Option<&T> {
        match self {
            Change::Add(new) | Change::Replace { new, .. } => Some(new),
            Change::Remove(_) | Change::Update { .. } => None,
        }
    }

    /// What to change in place, if anything.
    pub fn updated(&self) -> Option<&T> {
        match self {
            Change::Update { new, .. } => Some(new),
            _ => None,
        }
    }
}

/// A key `cluster apply` sets (`FVP_IOC_KEY_SET`, ABI 8). The module keeps a key that is
/// set again unchanged, so every key is set every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// This host's private key (`key_file`), for its id.
    Private(u32),
    /// Another host's public key.
    Public(u32, PublicKey),
}

/// The changes that make the module's lists equal to a cluster description.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The keys to set, after `FVP_IOC_CLUSTER_SET` and before the host and device
    /// changes: this host's private key, then the other hosts' public keys, in the file's
    /// order. None on a module without keys (before ABI 8).
    pub keys: Vec<KeyChange>,
    /// By host id.
    pub hosts: Vec<Change<HostReq>>,
    /// Host ids already as the file says.
    pub hosts_unchanged: Vec<u32>,
    /// By device name.
    pub devices: Vec<Change<DeviceReq>>,
    /// Device names already as the file says.
    pub devices_unchanged: Vec<String>,
}

impl Plan {
    /// How many ioctls applying the plan takes (`FVP_IOC_CLUSTER_SET` not counted).
    pub fn steps(&self) -> usize {
        fn count<T>(c: &Change<T>) -> usize {
            usize::from(c.removed().is_some()) + usize::from(c.added().is_some()) + usize::from(c.updated().is_some())
        }
        self.keys.len() + self.hosts.iter().map(count).chain(self.devices.iter().map(count)).sum::<usize>()
    }
}

/// Whether two hosts are configured alike (the name compared up to its NUL).
fn same_host(a: &HostReq, b: &HostReq) -> bool {
    (a.id, a.addr, a.port, abi::name_str(&a.domain)) == (b.id, b.addr, b.port, abi::name_str(&b.domain))
}

/// Whether two devices are configured alike.
fn same_device(a: &DeviceReq, b: &DeviceReq) -> bool {
    abi::name_str(&a.name) == abi::name_str(&b.name) && a.path_bytes() == b.path_bytes() && a.uuid == b.uuid
}

/// What a module is able to do, as far as a plan cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleCaps {
    /// It has `FVP_IOC_HOST_UPDATE` (ABI 5): a host whose only change is its fault
    /// domain is updated in place rather than replaced.
    pub update_domains: bool,
    /// It has host keys (`FVP_IOC_KEY_SET`, ABI 8).
    pub keys: bool,
    /// Its shared devices have a uuid (ABI 9); before, the file's are checked only.
    pub device_uuids: bool,
}

/// The changes from the module's `current` hosts and devices to `cluster`'s, on the host
/// `local_id` of it, with a module that can do `caps`.
pub fn plan(
    cluster: &ClusterFile,
    local_id: u32,
    current_hosts: &[HostInfo],
    current_devices: &[DeviceReq],
    caps: ModuleCaps,
) -> Plan {
    let update_domains = caps.update_domains;
    let mut plan = Plan::default();
    if caps.keys {
        plan.keys.push(KeyChange::Private(local_id));
        plan.keys.extend(cluster.hosts.iter().filter(|h| h.id != local_id).map(|h| KeyChange::Public(h.id, h.key)));
    }
    let current: BTreeMap<u32, HostReq> = current_hosts.iter().map(|h| (h.host.id, h.host)).collect();
    let wanted: BTreeMap<u32, HostReq> = cluster.hosts.iter().map(|h| (h.id, h.to_req())).collect();
    let ids: BTreeSet<u32> = current.keys().chain(wanted.keys()).copied().collect();
    for id in ids {
        match (current.get(&id), wanted.get(&id)) {
            (Some(old), Some(new)) if same_host(old, new) => plan.hosts_unchanged.push(id),
            (Some(old), Some(new)) if update_domains && (old.addr, old.port) == (new.addr, new.port) => {
                plan.hosts.push(Change::Update { old: *old, new: *new })
            }
            (Some(old), Some(new)) => plan.hosts.push(Change::Replace { old: *old, new: *new }),
            (Some(old), None) => plan.hosts.push(Change::Remove(*old)),
            (None, Some(new)) => plan.hosts.push(Change::Add(*new)),
            (None, None) => unreachable!("every id comes from one of the two maps"),
        }
    }
    let current: BTreeMap<&str, &DeviceReq> = current_devices.iter().map(|d| (abi::name_str(&d.name), d)).collect();
    let wanted: Vec<DeviceReq> = cluster
        .devices
        .iter()
        .map(DeviceEntry::to_req)
        .map(|d| if caps.device_uuids { d } else { DeviceReq { uuid: [0; abi::DEVICE_UUID_LEN], ..d } })
        .collect();
    let wanted: BTreeMap<&str, &DeviceReq> = wanted.iter().map(|d| (abi::name_str(&d.name), d)).collect();
    let names: BTreeSet<&str> = current.keys().chain(wanted.keys()).copied().collect();
    for name in names {
        match (current.get(name), wanted.get(name)) {
            (Some(old), Some(new)) if same_device(old, new) => {
                plan.devices_unchanged.push(name.to_owned());
            }
            (Some(old), Some(new)) => {
                plan.devices.push(Change::Replace { old: DeviceReq { index: 0, ..**old }, new: **new })
            }
            (Some(old), None) => plan.devices.push(Change::Remove(DeviceReq { index: 0, ..**old })),
            (None, Some(new)) => plan.devices.push(Change::Add(**new)),
            (None, None) => unreachable!("every name comes from one of the two maps"),
        }
    }
    plan
}

/// Notes on a cluster of `hosts` hosts that works, but not as one might expect.
pub fn quorum_notes(hosts: usize) -> Vec<String> {
    match hosts {
        1 => vec!["a single host has no peer: replicated volumes (peers=1|2) cannot be protected".to_owned()],
        2 => vec!["with 2 hosts a majority is both: a failure of either suspends replicated \
             volumes; add a third host (a witness) to survive one"
            .to_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_small_regular_files() {
        let dir = std::env::temp_dir().join(format!("fvpctl-secret-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        fs::write(&ok, b"0123456789abcdef-secret\n").unwrap();
        assert_eq!(read_secret(&ok).unwrap(), b"0123456789abcdef-secret");
        let big = dir.join("big");
        fs::write(&big, vec![b'x'; SECRET_FILE_MAX as usize + 1]).unwrap();
        assert!(read_secret(&big).unwrap_err().to_string().contains("longer than"));
        assert!(read_secret(&dir).is_err(), "a directory");
        assert!(read_secret(Path::new("/dev/zero")).unwrap_err().to_string().contains("not a regular file"));
        fs::remove_dir_all(&dir).unwrap();
    }
    use crate::keys::rfc7748::{ALICE_PRIVATE, ALICE_PUBLIC, BOB_PUBLIC};
    use fvp_logic::abi::HOST_UP;

    const FILE: &str = "/etc/fvp/cluster.toml";

    /// Host 2's key is the private key of `host.key` (RFC 7748's Alice).
    const GOOD: &str = r#"key_file = "host.key"
name = "lab"
secret = "at-least-16-bytes-secret"
[[host]]
id = 1
addr = "10.0.0.1:7790"
domain = "rack-a"
key = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
[[host]]
id = 2
addr = "10.0.0.2:7790"
domain = "rack-b"
key = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
[[host]]
id = 3
addr = "10.0.0.3:7790"
domain = "rack-b"
key = "3333333333333333333333333333333333333333333333333333333333333333"
[[device]]
name = "shared0"
path = "/dev/disk/by-id/virtio-fvp-shared"
"#;

    const HOST3_KEY: &str = "3333333333333333333333333333333333333333333333333333333333333333";

    /// Reads no file: a key file called `host.key` holds Alice's private key, and every
    /// other one is missing.
    fn test_key(path: &Path) -> Result<PrivateKey, String> {
        if path.file_name() == Some("host.key".as_ref()) {
            Ok(PrivateKey::from_file_content(ALICE_PRIVATE.as_bytes()).unwrap())
        } else {
            Err("cannot open: No such file or directory (os error 2)".to_owned())
        }
    }

    /// [`super::parse`] with the private key file of [`test_key`].
    fn parse(text: &str, file: &Path) -> Result<ClusterFile, FileError> {
        parse_with(text, file, &test_key)
    }

    fn good() -> ClusterFile {
        parse(GOOD, Path::new(FILE)).unwrap()
    }

    /// A module without host keys: plans have no keys.
    fn caps(update_domains: bool) -> ModuleCaps {
        ModuleCaps { update_domains, keys: false, device_uuids: true }
    }

    /// The problems found in `text`, as `LINE: message`.
    fn problems(text: &str) -> Vec<String> {
        parse(text, Path::new(FILE))
            .unwrap_err()
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line.map_or("-".to_owned(), |l| l.to_string()), p.message))
            .collect()
    }

    /// One problem, on `line`, whose message contains `what`.
    #[track_caller]
    fn assert_problem(text: &str, line: usize, what: &str) {
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with(&format!("{line}: ")), "{found:#?}");
        assert!(found[0].contains(what), "`{what}` missing: {found:#?}");
    }

    #[test]
    fn a_good_file_is_read_with_defaults() {
        let c = good();
        assert_eq!(c.name, "lab");
        assert_eq!(c.secret.0, b"at-least-16-bytes-secret");
        assert_eq!((c.heartbeat_ms, c.timeout_ms), (200, 2000));
        assert_eq!(c.hosts.len(), 3);
        assert_eq!(
            c.hosts[1],
            HostEntry {
                id: 2,
                addr: "10.0.0.2:7790".parse().unwrap(),
                domain: "rack-b".into(),
                key: PublicKey::parse(ALICE_PUBLIC).unwrap(),
                line: 9
            }
        );
        assert_eq!(c.hosts[0].key.hex(), BOB_PUBLIC);
        assert_eq!(
            c.devices,
            [DeviceEntry {
                name: "shared0".into(),
                path: "/dev/disk/by-id/virtio-fvp-shared".into(),
                uuid: None,
                line: 19
            }]
        );
        assert_eq!(c.key_file, Path::new("/etc/fvp/host.key"));
        assert_eq!(c.private_key.public_key().hex(), ALICE_PUBLIC);
        let cfg = c.cluster_cfg(2);
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(abi::name_str(&cfg.name), "lab");
        assert_eq!(cfg.secret(), b"at-least-16-bytes-secret");
        assert_eq!((cfg.local_id, cfg.heartbeat_ms, cfg.timeout_ms), (2, 200, 2000));
        assert_eq!((c.transport, cfg.transport), (Transport::Authenticated, abi::TRANSPORT_AUTHENTICATED));
        let req = c.hosts[0].to_req();
        assert_eq!(req.validate(), Ok(()));
        assert_eq!((req.octets(), req.port), ([10, 0, 0, 1], 7790));
        assert_eq!(c.devices[0].to_req().validate(), Ok(()));
        // The secret and the private key stay out of debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("at-least"));
        assert!(debug.contains("PrivateKey(<redacted>)"), "{debug}");
        assert!(!debug.contains("119, 7, 109") && !debug.contains("77076d"), "{debug}");
    }

    #[test]
    fn timers_can_be_set() {
        // Top-level keys go before the first [[host]], or they would belong to it.
        let text = format!("heartbeat_ms = 50\ntimeout_ms = 150\n{GOOD}");
        let c = parse(&text, Path::new(FILE)).unwrap();
        assert_eq!((c.heartbeat_ms, c.timeout_ms), (50, 150));
        // A heartbeat too slow for the default timeout: the heartbeat's line is blamed.
        assert_problem(&format!("heartbeat_ms = 1000\n{GOOD}"), 1, "timeout_ms 2000");
    }

    #[test]
    fn the_transport_can_be_chosen() {
        for (value, transport, abi_value) in [
            ("authenticated", Transport::Authenticated, abi::TRANSPORT_AUTHENTICATED),
            ("encrypted", Transport::Encrypted, abi::TRANSPORT_ENCRYPTED),
        ] {
            let c = parse(&format!("transport = \"{value}\"\n{GOOD}"), Path::new(FILE)).unwrap();
            assert_eq!(c.transport, transport);
            let cfg = c.cluster_cfg(1);
            assert_eq!(cfg.transport, abi_value);
            assert_eq!(cfg.validate(), Ok(()));
        }
        for bad in ["plain", "Encrypted", ""] {
            assert_problem(
                &format!("heartbeat_ms = 100\ntransport = \"{bad}\"\n{GOOD}"),
                2,
                &format!("invalid transport '{bad}': use authenticated or encrypted"),
            );
        }
        assert_problem(&format!("transport = 1\n{GOOD}"), 1, "invalid type");
        // Reported along with the other problems.
        let found = problems(&format!("transport = \"tls\"\n{}", GOOD.replace("id = 2", "id = 0")));
        assert_eq!(
            found,
            ["1: invalid transport 'tls': use authenticated or encrypted", "11: host id 0 is not in 1..=64"]
        );
        assert_eq!(parse_transport("encrypted"), Ok(Transport::Encrypted));
    }

    #[test]
    fn syntax_and_type_errors_have_lines() {
        assert_problem(&format!("bogus = 1\n{GOOD}"), 1, "unknown field `bogus`");
        // After [[device]], a key belongs to the device.
        assert_problem(
            &format!("{GOOD}bogus = 1\n"),
            22,
            "unknown field `bogus`, expected one of `name`, `path`, `uuid`",
        );
        assert_problem(
            &GOOD.replace("domain = \"rack-a\"", "domain = \"rack-a\"\nrack = 3"),
            8,
            "unknown field `rack`",
        );
        assert_problem(&GOOD.replace("id = 2", "id = \"two\""), 10, "invalid type");
        assert_problem(&GOOD.replace("id = 2", "id = -2"), 10, "");
        assert_problem(&GOOD.replace("name = \"lab\"", "name = lab"), 2, "");
        assert_problem(&format!("heartbeat_ms = 1.5\n{GOOD}"), 1, "invalid type");
        assert_problem(&GOOD.replace(HOST3_KEY, "").replace("key = \"\"", "key = 3"), 18, "invalid type");
        let missing = problems(&GOOD.replace("domain = \"rack-a\"\n", ""));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("missing field `domain`"), "{missing:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"name = "my lab"
secret = "short"
heartbeat_ms = 5
key_file = "other.key"
[[host]]
id = 0
addr = "10.0.0.1"
domain = "rack a"
key = "xyz"
[[host]]
id = 2
addr = "10.0.0.2:0"
domain = "r"
[[device]]
name = "a/b"
path = "dev/vdb"
"#;
        let found = problems(text);
        assert_eq!(
            found,
            [
                "1: invalid cluster name 'my lab': use 1 to 31 of A-Z a-z 0-9 _ . -",
                "2: the secret is 5 bytes long; it must be 16 to 64 bytes",
                "3: heartbeat_ms 5 is not in 10..=10000",
                "4: key_file /etc/fvp/other.key: cannot open: No such file or directory (os error 2)",
                "6: host id 0 is not in 1..=64",
                "7: invalid address '10.0.0.1': expected IPv4:PORT, e.g. 10.0.0.1:7790",
                "8: invalid fault domain 'rack a': use 1 to 31 of A-Z a-z 0-9 _ . -",
                "9: invalid key 'xyz': expected 64 hex digits",
                "10: host 2 has no key: give key = \"<64 hex digits>\", its public key (fvpctl key public FILE \
                 prints it)",
                "12: invalid address '10.0.0.2:0': the port must not be 0",
                "15: invalid device name 'a/b': use 1 to 31 of A-Z a-z 0-9 _ . -",
                "16: device path 'dev/vdb' is not absolute",
            ]
        );
        let err = parse(text, Path::new(FILE)).unwrap_err().to_string();
        assert!(err.starts_with("/etc/fvp/cluster.toml:1: invalid cluster name 'my lab'"), "{err}");
        assert_eq!(err.lines().count(), 12);
    }

    #[test]
    fn duplicates_are_refused() {
        assert_problem(&GOOD.replace("id = 3", "id = 1"), 15, "host id 1 is already used by the host on line 4");
        assert_problem(
            &GOOD.replace("10.0.0.3:7790", "10.0.0.1:7791"),
            16,
            "address 10.0.0.1 is already used by host 1 on line 4",
        );
        assert_problem(&GOOD.replace(HOST3_KEY, BOB_PUBLIC), 18, "key is already used by host 1 on line 4");
        // The same key in other letters is the same key.
        let upper = GOOD.replace(HOST3_KEY, &ALICE_PUBLIC.to_uppercase());
        assert_problem(&upper, 18, "key is already used by host 2 on line 9");
        let text = format!("{GOOD}[[device]]\nname = \"shared0\"\npath = \"/dev/vdc\"\n");
        assert_problem(&text, 23, "device shared0 is already listed on line 19");
        let text = format!("{GOOD}[[device]]\nname = \"shared1\"\npath = \"/dev/disk/by-id/virtio-fvp-shared\"\n");
        assert_problem(&text, 24, "already used by the device on line 19");
    }

    #[test]
    fn bad_values_are_refused() {
        for (from, to, line, what) in [
            ("id = 3", "id = 65", 15, "host id 65 is not in 1..=64"),
            ("10.0.0.3:7790", "0.0.0.0:7790", 16, "0.0.0.0 cannot be a host's address"),
            ("10.0.0.3:7790", "255.255.255.255:1", 16, "cannot be a host's address"),
            ("10.0.0.3:7790", "224.0.0.1:1", 16, "cannot be a host's address"),
            ("10.0.0.3:7790", "[::1]:7790", 16, "expected IPv4:PORT"),
            ("10.0.0.3:7790", "host3:7790", 16, "expected IPv4:PORT"),
            ("10.0.0.3:7790", "10.0.0.3:70000", 16, "expected IPv4:PORT"),
            ("domain = \"rack-a\"", "domain = \"\"", 7, "invalid fault domain ''"),
            ("domain = \"rack-a\"", "domain = \"abcdefghijklmnopqrstuvwxyz012345\"", 7, "invalid fault domain"),
            ("name = \"shared0\"", "name = \"\"", 20, "invalid device name"),
            ("path = \"/dev/disk/by-id/virtio-fvp-shared\"", "path = \"\"", 21, "the device path is empty"),
            ("path = \"/dev/disk/by-id/virtio-fvp-shared\"", "path = \"/dev/\\u0000x\"", 21, "contains a NUL"),
            ("name = \"lab\"", "name = \"\"", 2, "invalid cluster name"),
            (HOST3_KEY, "xyz", 18, "invalid key 'xyz': expected 64 hex digits"),
            (HOST3_KEY, &HOST3_KEY[1..], 18, "expected 64 hex digits"),
            (HOST3_KEY, &HOST3_KEY.replace('3', "g"), 18, "expected 64 hex digits"),
            (HOST3_KEY, &"0".repeat(64), 18, "the key is all zero"),
            (&format!("key = \"{HOST3_KEY}\"\n"), "", 14, "host 3 has no key: give key = "),
            ("key_file = \"host.key\"", "key_file = \"other.key\"", 1, "key_file /etc/fvp/other.key: cannot open"),
            ("key_file = \"host.key\"", "", 2, "no key_file: give key_file = \"/path\""),
        ] {
            assert_problem(&GOOD.replace(from, to), line, what);
        }
        let long = format!("/{}", "d".repeat(PATH_LEN - 1));
        assert_problem(
            &GOOD.replace("/dev/disk/by-id/virtio-fvp-shared", &long),
            21,
            "device path is 256 bytes long; at most 255 are allowed",
        );
        let longest = format!("/{}", "d".repeat(PATH_LEN - 2));
        assert!(parse(&GOOD.replace("/dev/disk/by-id/virtio-fvp-shared", &longest), Path::new(FILE)).is_ok());
    }

    #[test]
    fn timers_are_checked() {
        for (timers, line, what) in [
            ("heartbeat_ms = 9", 1, "heartbeat_ms 9 is not in 10..=10000"),
            ("heartbeat_ms = 10001\ntimeout_ms = 600000", 1, "heartbeat_ms 10001"),
            ("timeout_ms = 599", 1, "timeout_ms 599 is less than 3 x heartbeat_ms (600)"),
            ("heartbeat_ms = 100\ntimeout_ms = 299", 2, "timeout_ms 299 is less than 3 x heartbeat_ms (300)"),
            ("timeout_ms = 600001", 1, "timeout_ms 600001 is more than 600000"),
            ("heartbeat_ms = 4294967295", 1, "heartbeat_ms 4294967295"),
        ] {
            assert_problem(&format!("{timers}\n{GOOD}"), line, what);
        }
        for timers in
            ["heartbeat_ms = 10\ntimeout_ms = 30", "heartbeat_ms = 10000\ntimeout_ms = 30000", "timeout_ms = 600000"]
        {
            assert!(parse(&format!("{timers}\n{GOOD}"), Path::new(FILE)).is_ok(), "{timers}");
        }
    }

    #[test]
    fn secrets_come_from_the_file_or_a_file_beside_it() {
        let no_secret = GOOD.replace("secret = \"at-least-16-bytes-secret\"\n", "");
        assert_problem(&no_secret, 2, "no secret: give secret");
        let both = GOOD.replace("secret = ", "secret_file = \"s\"\nsecret = ");
        assert_problem(&both, 3, "either secret or secret_file, not both");
        assert_problem(&GOOD.replace("at-least-16-bytes-secret", &"x".repeat(65)), 3, "65 bytes long");
        assert!(parse(&GOOD.replace("at-least-16-bytes-secret", &"x".repeat(16)), Path::new(FILE)).is_ok());

        let dir = std::env::temp_dir().join(format!("fvpctl-cluster-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("secret"), "0123456789abcdef-from-file\r\n\n").unwrap();
        let text = GOOD.replace("secret = \"at-least-16-bytes-secret\"", "secret_file = \"secret\"");
        let c = parse(&text, &dir.join("cluster.toml")).unwrap();
        assert_eq!(c.secret.0, b"0123456789abcdef-from-file");
        let absolute = GOOD.replace(
            "secret = \"at-least-16-bytes-secret\"",
            &format!("secret_file = \"{}\"", dir.join("secret").display()),
        );
        assert_eq!(parse(&absolute, Path::new(FILE)).unwrap().secret, c.secret);
        fs::write(dir.join("short"), "tiny\n").unwrap();
        let short = text.replace("\"secret\"", "\"short\"");
        assert_problem_at(&short, &dir.join("cluster.toml"), 3, "the secret is 4 bytes long");
        let missing = text.replace("\"secret\"", "\"missing\"");
        assert_problem_at(&missing, &dir.join("cluster.toml"), 3, "cannot read secret_file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[track_caller]
    fn assert_problem_at(text: &str, file: &Path, line: usize, what: &str) {
        let err = parse(text, file).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].line, Some(line), "{err}");
        assert!(err.problems[0].message.contains(what), "{err}");
    }

    #[test]
    fn a_file_needs_hosts() {
        let text = "name = \"lab\"\nsecret = \"0123456789abcdef\"\nkey_file = \"host.key\"\n";
        assert_problem(text, 1, "no [[host]]");
        let host = format!("[[host]]\nid = 1\naddr = \"10.0.0.1:1\"\ndomain = \"d\"\nkey = \"{ALICE_PUBLIC}\"\n");
        let c = parse(&format!("{text}{host}"), Path::new(FILE)).unwrap();
        assert!(c.devices.is_empty());
        assert_eq!(c.check_local_key(Path::new(FILE), 1), Ok(()));
    }

    #[test]
    fn key_files_are_read_beside_the_file_and_checked() {
        let dir = std::env::temp_dir().join(format!("fvpctl-cluster-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("host.key");
        fs::write(&key, format!("{ALICE_PRIVATE}\n")).unwrap();
        let set_mode = |mode| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        };
        set_mode(0o600);
        let toml = dir.join("cluster.toml");
        // The real reader: the file must be root's (it is when the tests run as root).
        let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&key).unwrap());
        match super::parse(GOOD, &toml) {
            Ok(c) => {
                assert_eq!(owner, 0);
                assert_eq!(c.key_file, key);
                assert_eq!(c.private_key.public_key().hex(), ALICE_PUBLIC);
            }
            Err(err) => {
                assert_ne!(owner, 0, "{err}");
                assert_eq!(err.problems.len(), 1, "{err}");
                assert!(err.problems[0].message.contains("not by root"), "{err}");
            }
        }
        // Only the owner can be ignored for the test: the mode is checked.
        let ignore_owner =
            |path: &Path| keys::read_private_key_checked(path, |_, mode| keys::check_key_file_access(0, mode));
        assert_eq!(parse_with(GOOD, &toml, &ignore_owner).unwrap().private_key.public_key().hex(), ALICE_PUBLIC);
        set_mode(0o640);
        let err = parse_with(GOOD, &toml, &ignore_owner).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].line, Some(1));
        assert_eq!(
            err.problems[0].message,
            format!(
                "key_file {}: mode 0640 lets its group or others access it: a private key file must be mode \
                 0600 (chmod 600)",
                key.display()
            )
        );
        set_mode(0o600);
        fs::write(&key, "not a key\n").unwrap();
        let err = parse_with(GOOD, &toml, &ignore_owner).unwrap_err().to_string();
        assert!(err.ends_with("host.key: expected 64 hex digits and an optional newline, found 10 bytes"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_local_hosts_key_must_be_key_files() {
        let c = good();
        let file = Path::new(FILE);
        assert_eq!(c.check_local_key(file, 2), Ok(()));
        let err = c.check_local_key(file, 1).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].line, Some(4));
        assert_eq!(
            err.to_string(),
            format!(
                "/etc/fvp/cluster.toml:4: key_file's public key is not the key listed for host 1: the public key \
                 of /etc/fvp/host.key is {ALICE_PUBLIC} (fvpctl key public FILE)"
            )
        );
        assert!(c.check_local_key(file, 3).is_err());
    }

    #[test]
    fn files_that_cannot_be_read_are_explained() {
        let err = load(Path::new("/nonexistent/cluster.toml")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/cluster.toml: cannot read: "), "{err}");
    }

    #[test]
    fn the_local_host_is_named_or_found_by_address() {
        let c = good();
        let file = Path::new(FILE);
        assert_eq!(local_host(&c, file, Some(3), &[]), Ok(3));
        let err = local_host(&c, file, Some(4), &[]).unwrap_err();
        assert_eq!(err.to_string(), "/etc/fvp/cluster.toml: --local-id 4: no [[host]] has id 4");
        let here = ["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(local_host(&c, file, None, &here), Ok(2));
        // --local-id wins over addresses.
        assert_eq!(local_host(&c, file, Some(1), &here), Ok(1));
        let err = local_host(&c, file, None, &here[..1]).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "no [[host]] has an address of this machine (its IPv4 addresses: 127.0.0.1); pass --local-id"
            ),
            "{err}"
        );
        assert!(local_host(&c, file, None, &[]).unwrap_err().to_string().contains("addresses: none"));
        let both = [here[1], "10.0.0.3".parse().unwrap()];
        let err = local_host(&c, file, None, &both).unwrap_err().to_string();
        assert!(err.ends_with("the addresses of hosts 2, 3 are all on this machine; pass --local-id"), "{err}");
    }

    fn info(req: HostReq) -> HostInfo {
        HostInfo { host: req, state: HOST_UP, ..Default::default() }
    }

    #[test]
    fn a_plan_makes_the_lists_equal() {
        let c = good();
        // Empty module: everything is added.
        let p = plan(&c, 2, &[], &[], caps(true));
        assert!(p.keys.is_empty());
        assert_eq!(p.hosts.len(), 3);
        assert!(p.hosts.iter().all(|ch| matches!(ch, Change::Add(_))));
        assert_eq!(p.devices, [Change::Add(c.devices[0].to_req())]);
        assert_eq!(p.steps(), 4);
        // Already applied: nothing to do.
        let hosts: Vec<HostInfo> = c.hosts.iter().map(|h| info(h.to_req())).collect();
        let mut device = c.devices[0].to_req();
        device.index = 0;
        let p = plan(&c, 2, &hosts, &[device], caps(true));
        assert_eq!(p.steps(), 0);
        assert_eq!(p.hosts_unchanged, [1, 2, 3]);
        assert_eq!(p.devices_unchanged, ["shared0"]);
        // An extra host, a changed one, a missing one, a moved device and an extra one.
        let mut current = vec![hosts[0], hosts[1]];
        current[1].host.port = 7791;
        current.push(info(HostReq::new(9, [10, 0, 0, 9], 7790, abi::pool_name(b"x").unwrap())));
        let moved = DeviceReq { index: 0, ..DeviceReq::new(abi::pool_name(b"shared0").unwrap(), b"/dev/vdb").unwrap() };
        let extra = DeviceReq { index: 1, ..DeviceReq::new(abi::pool_name(b"old").unwrap(), b"/dev/vdc").unwrap() };
        let p = plan(&c, 2, &current, &[moved, extra], caps(true));
        assert_eq!(p.hosts_unchanged, [1]);
        assert_eq!(
            p.hosts,
            [
                Change::Replace { old: current[1].host, new: c.hosts[1].to_req() },
                Change::Add(c.hosts[2].to_req()),
                Change::Remove(current[2].host),
            ]
        );
        assert_eq!(
            p.devices,
            [
                Change::Remove(DeviceReq { index: 0, ..extra }),
                Change::Replace { old: moved, new: c.devices[0].to_req() },
            ]
        );
        assert_eq!(p.steps(), 2 + 1 + 1 + 1 + 2);
        assert!(p.devices_unchanged.is_empty());
    }

    #[test]
    fn a_new_domain_is_an_update_where_the_module_has_one() {
        let c = good();
        let mut current: Vec<HostInfo> = c.hosts.iter().map(|h| info(h.to_req())).collect();
        current[1].host.domain = abi::pool_name(b"elsewhere").unwrap();
        let p = plan(&c, 2, &current, &[], caps(true));
        assert_eq!(p.hosts, [Change::Update { old: current[1].host, new: c.hosts[1].to_req() }]);
        assert_eq!(p.hosts_unchanged, [1, 3]);
        assert_eq!(p.steps(), 1 + p.devices.len());
        // An ABI 4 module has no update: remove and add.
        let p = plan(&c, 2, &current, &[], caps(false));
        assert_eq!(p.hosts, [Change::Replace { old: current[1].host, new: c.hosts[1].to_req() }]);
        assert_eq!(p.steps(), 2 + p.devices.len());
        // A new address is never an update.
        current[1].host.port = 7799;
        let p = plan(&c, 2, &current, &[], caps(true));
        assert!(matches!(p.hosts[..], [Change::Replace { .. }]));
    }

    #[test]
    fn plans_ignore_bytes_after_the_nul() {
        let c = good();
        let mut hosts: Vec<HostInfo> = c.hosts.iter().map(|h| info(h.to_req())).collect();
        hosts[0].host.domain[NAME_LEN - 1] = b'z';
        assert_eq!(plan(&c, 2, &hosts, &[], caps(true)).hosts_unchanged, [1, 2, 3]);
    }

    #[test]
    fn device_uuids_are_checked_and_planned() {
        let text = GOOD.replace(
            "path = \"/dev/disk/by-id/virtio-fvp-shared\"",
            "path = \"/dev/disk/by-id/virtio-fvp-shared\"\nuuid = \"0F8FAD5B-d9cb-469f-a165-70867728950e\"",
        );
        let c = parse(&text, Path::new(FILE)).unwrap();
        let uuid = c.devices[0].uuid.expect("parsed");
        assert_eq!(abi::UuidText(&uuid).to_string(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        let hosts: Vec<HostInfo> = c.hosts.iter().map(|h| info(h.to_req())).collect();
        // The module has the device without a uuid: it is replaced, uuid and all.
        let without = DeviceReq { index: 0, ..good().devices[0].to_req() };
        let p = plan(&c, 2, &hosts, &[without], caps(true));
        assert_eq!(p.devices, [Change::Replace { old: without, new: DeviceReq { uuid, ..without } }]);
        // The same uuid: unchanged.
        let p = plan(&c, 2, &hosts, &[DeviceReq { uuid, ..without }], caps(true));
        assert!(p.devices.is_empty());
        // A module before ABI 9 keeps no uuid: nothing to change either.
        let old = ModuleCaps { device_uuids: false, ..caps(true) };
        assert!(plan(&c, 2, &hosts, &[without], old).devices.is_empty());
        for (bad, why) in [
            ("uuid = \"nope\"", "is not a uuid"),
            ("uuid = \"00000000-0000-0000-0000-000000000000\"", "the nil uuid means no uuid"),
            ("uuid = 5", "invalid type"),
        ] {
            let text = GOOD.replace(
                "path = \"/dev/disk/by-id/virtio-fvp-shared\"",
                &format!("path = \"/dev/disk/by-id/virtio-fvp-shared\"\n{bad}"),
            );
            let found = problems(&text);
            assert!(found.iter().any(|p| p.contains(why)), "{bad}: {found:?}");
        }
    }

    #[test]
    fn a_plan_sets_every_key_first() {
        let c = good();
        let with_keys = ModuleCaps { update_domains: true, keys: true, device_uuids: true };
        let key = |i: usize| c.hosts[i].key;
        // An empty module: the private key, the other hosts' public keys, then the lists.
        let p = plan(&c, 2, &[], &[], with_keys);
        assert_eq!(p.keys, [KeyChange::Private(2), KeyChange::Public(1, key(0)), KeyChange::Public(3, key(2))]);
        assert_eq!(p.steps(), 3 + 3 + 1);
        // Already applied: the keys are set again all the same (unchanged ones change nothing).
        let hosts: Vec<HostInfo> = c.hosts.iter().map(|h| info(h.to_req())).collect();
        let device = DeviceReq { index: 0, ..c.devices[0].to_req() };
        let p = plan(&c, 2, &hosts, &[device], with_keys);
        assert_eq!(p.steps(), 3);
        assert!(p.hosts.is_empty() && p.devices.is_empty());
        // Another local host: its private key, the others' public keys.
        let p = plan(&c, 1, &hosts, &[device], with_keys);
        assert_eq!(p.keys, [KeyChange::Private(1), KeyChange::Public(2, key(1)), KeyChange::Public(3, key(2))]);
        // The plan shows public keys, never the private one.
        let debug = format!("{p:?}");
        assert!(debug.contains("Private(1)") && !debug.contains("77076d"), "{debug}");
    }

    #[test]
    fn small_clusters_get_a_note() {
        assert_eq!(quorum_notes(1).len(), 1);
        assert!(quorum_notes(2)[0].contains("witness"));
        assert!(quorum_notes(3).is_empty());
    }

    #[test]
    fn command_line_values_are_checked() {
        assert_eq!(parse_host_id("1"), Ok(1));
        assert_eq!(parse_host_id("64"), Ok(64));
        for bad in ["0", "65", "-1", "x", ""] {
            assert_eq!(parse_host_id(bad), Err(format!("invalid host id '{bad}': use 1 to 64")));
        }
        assert_eq!(parse_host_addr("10.0.0.1:7790"), Ok("10.0.0.1:7790".parse().unwrap()));
        assert!(parse_host_addr("10.0.0.1").is_err());
        assert_eq!(check_device_path("/dev/vdb"), Ok(()));
        assert!(check_device_path("vdb").is_err());
        assert_eq!(check_name("rack-a", "fault domain"), None);
        assert_eq!(secret_from_file_content(b"abc\n\n".to_vec()), b"abc");
        assert_eq!(secret_from_file_content(b"a b \n".to_vec()), b"a b ");
        assert_eq!(check_secret_len(16), None);
        assert!(check_secret_len(15).is_some());
        assert_eq!(check_timers(200, 2000), None);
    }
}
