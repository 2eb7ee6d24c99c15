// SPDX-License-Identifier: GPL-2.0

//! System access: the control device, sysfs, signals, network interfaces and helper
//! programs.
//!
//! This is the only module with `unsafe` code (the raw ioctl calls and `sigaction`).
//! The control device reports failures as a bare [`Errno`]; callers add what was being
//! done, and to what.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command as Process, Output};

use fvp_logic::abi::{
    self, ClusterCfg, ClusterInfo, Command, DeviceReq, FlashInfo, FlashOpen, HostInfo, HostReq, KeyReq, PoolInfo,
    PoolReq, Status, Version, VolumeDiscard, VolumeHealth, VolumeInfo, VolumeRepl, KEY_LEN, KEY_PRESENT,
};
use nix::errno::Errno;
use zeroize::Zeroize;

/// Exists while fvp.ko is loaded.
const MODULE_SYSFS_DIR: &str = "/sys/module/fvp";

/// Block devices, among them device-mapper's `dm-N`.
const SYS_BLOCK_DIR: &str = "/sys/block";

/// Whether the fvp module is loaded.
pub fn module_loaded() -> bool {
    Path::new(MODULE_SYSFS_DIR).is_dir()
}

/// An open fvp control device.
#[derive(Debug)]
pub struct ControlDevice {
    file: File,
    /// The module's device commands take the structure of ABI 3 to 8 (no `uuid`).
    devices_before_abi9: bool,
}

impl ControlDevice {
    /// Opens the control device at `path`.
    pub fn open(path: &Path) -> Result<Self, Errno> {
        // Read-only is enough even for the commands that change pools: the module
        // checks CAP_SYS_ADMIN per ioctl rather than relying on the open mode.
        File::open(path).map(|file| Self { file, devices_before_abi9: false }).map_err(|err| errno_of(&err))
    }

    /// Tells the device the module's ABI version (`FVP_IOC_VERSION`), for the commands
    /// whose structure changed since.
    pub fn set_abi_version(&mut self, abi_version: u32) {
        self.devices_before_abi9 = abi_version < 9;
    }

    /// `FVP_IOC_VERSION`.
    pub fn version(&self) -> Result<Version, Errno> {
        self.read(Command::Version).map(|bytes| Version::from_bytes(&bytes))
    }

    /// `FVP_IOC_STATUS`.
    pub fn status(&self) -> Result<Status, Errno> {
        self.read(Command::Status).map(|bytes| Status::from_bytes(&bytes))
    }

    /// `FVP_IOC_POOL_CREATE`, `FVP_IOC_POOL_RESIZE` or `FVP_IOC_POOL_DESTROY`.
    pub fn pool_request(&self, command: Command, request: &PoolReq) -> Result<(), Errno> {
        assert!(
            matches!(command, Command::PoolCreate | Command::PoolResize | Command::PoolDestroy),
            "{command:?} does not take a pool request"
        );
        self.write(command, &request.to_bytes())
    }

    /// `FVP_IOC_POOL_INFO` for pool `index`; `None` past the last pool.
    pub fn pool_info(&self, index: u32) -> Result<Option<PoolInfo>, Errno> {
        let mut buf = PoolInfo { index, ..Default::default() }.to_bytes();
        match self.read_write(Command::PoolInfo, &mut buf) {
            Ok(()) => Ok(Some(PoolInfo::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// `FVP_IOC_VOLUME_INFO` for volume `index`; `None` past the last volume.
    pub fn volume_info(&self, index: u32) -> Result<Option<VolumeInfo>, Errno> {
        let mut buf = VolumeInfo { index, ..Default::default() }.to_bytes();
        match self.read_write(Command::VolumeInfo, &mut buf) {
            Ok(()) => Ok(Some(VolumeInfo::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// `FVP_IOC_FLASH_OPEN` (ABI 7).
    pub fn flash_open(&self, request: &FlashOpen) -> Result<FlashOpen, Errno> {
        let mut buf = request.to_bytes();
        self.read_write(Command::FlashOpen, &mut buf)?;
        Ok(FlashOpen::from_bytes(&buf))
    }

    /// Every flash pool (ABI 7), by `FVP_IOC_FLASH_INFO`; none on an older module.
    pub fn flash_pools(&self) -> Result<Vec<FlashInfo>, Errno> {
        collect(|index| {
            let mut buf = FlashInfo { index, ..Default::default() }.to_bytes();
            match self.read_write(Command::FlashInfo, &mut buf) {
                Ok(()) => Ok(Some(FlashInfo::from_bytes(&buf))),
                Err(Errno::ENOENT | Errno::ENOTTY) => Ok(None),
                Err(errno) => Err(errno),
            }
        })
    }

    /// Every pool, by `FVP_IOC_POOL_INFO` with index 0, 1, ... until ENOENT.
    pub fn pools(&self) -> Result<Vec<PoolInfo>, Errno> {
        collect(|index| self.pool_info(index))
    }

    /// Every volume, by `FVP_IOC_VOLUME_INFO` with index 0, 1, ... until ENOENT.
    pub fn volumes(&self) -> Result<Vec<VolumeInfo>, Errno> {
        collect(|index| self.volume_info(index))
    }

    /// `FVP_IOC_VOLUME_REPL` for volume `index`; `None` past the last volume.
    pub fn volume_repl(&self, index: u32) -> Result<Option<VolumeRepl>, Errno> {
        let mut buf = VolumeRepl { index, ..Default::default() }.to_bytes();
        match self.read_write(Command::VolumeRepl, &mut buf) {
            Ok(()) => Ok(Some(VolumeRepl::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// `FVP_IOC_VOLUME_HEALTH` (ABI 4) for volume `index`; `None` past the last volume.
    pub fn volume_health(&self, index: u32) -> Result<Option<VolumeHealth>, Errno> {
        let mut buf = VolumeHealth { index, ..Default::default() }.to_bytes();
        match self.read_write(Command::VolumeHealth, &mut buf) {
            Ok(()) => Ok(Some(VolumeHealth::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// `FVP_IOC_VOLUME_DISCARD` (ABI 5) of the detached volume over `major:minor`.
    pub fn volume_discard(&self, major: u32, minor: u32) -> Result<VolumeDiscard, Errno> {
        let mut buf = VolumeDiscard { backing_major: major, backing_minor: minor, ..Default::default() }.to_bytes();
        self.read_write(Command::VolumeDiscard, &mut buf)?;
        Ok(VolumeDiscard::from_bytes(&buf))
    }

    /// `FVP_IOC_CLUSTER_SET`.
    pub fn cluster_set(&self, cfg: &ClusterCfg) -> Result<(), Errno> {
        let mut bytes = cfg.to_bytes();
        let result = self.write(Command::ClusterSet, &bytes);
        // The copy holds the secret: do not leave it on the stack (best effort).
        bytes.fill(0);
        std::hint::black_box(&bytes);
        result
    }

    /// `FVP_IOC_CLUSTER_INFO`.
    pub fn cluster_info(&self) -> Result<ClusterInfo, Errno> {
        self.read(Command::ClusterInfo).map(|bytes| ClusterInfo::from_bytes(&bytes))
    }

    /// `FVP_IOC_HOST_ADD`, `FVP_IOC_HOST_REMOVE` or `FVP_IOC_HOST_UPDATE`.
    pub fn host_request(&self, command: Command, request: &HostReq) -> Result<(), Errno> {
        assert!(takes_host_request(command), "{command:?} does not take a host request");
        self.write(command, &request.to_bytes())
    }

    /// `FVP_IOC_HOST_INFO` for host `index`; `None` past the last host.
    pub fn host_info(&self, index: u32) -> Result<Option<HostInfo>, Errno> {
        let mut buf = HostInfo { index, ..Default::default() }.to_bytes();
        match self.read_write(Command::HostInfo, &mut buf) {
            Ok(()) => Ok(Some(HostInfo::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// Every configured host, by `FVP_IOC_HOST_INFO` with index 0, 1, ... until ENOENT.
    pub fn hosts(&self) -> Result<Vec<HostInfo>, Errno> {
        collect(|index| self.host_info(index))
    }

    /// `FVP_IOC_DEVICE_ADD` or `FVP_IOC_DEVICE_REMOVE`.
    pub fn device_request(&self, command: Command, request: &DeviceReq) -> Result<(), Errno> {
        assert!(
            matches!(command, Command::DeviceAdd | Command::DeviceRemove),
            "{command:?} does not take a device request"
        );
        if self.devices_before_abi9 {
            let mut old = [0u8; abi::DEVICE_REQ_V3_SIZE];
            old.copy_from_slice(&request.to_bytes()[..abi::DEVICE_REQ_V3_SIZE]);
            return self.write_request(before_abi9::<{ abi::DEVICE_REQ_V3_SIZE }>(command, abi::IOC_WRITE), &old);
        }
        self.write(command, &request.to_bytes())
    }

    /// `FVP_IOC_DEVICE_INFO` for shared device `index`; `None` past the last one.
    pub fn device_info(&self, index: u32) -> Result<Option<DeviceReq>, Errno> {
        let mut buf = DeviceReq { index, ..Default::default() }.to_bytes();
        let done = if self.devices_before_abi9 {
            // The same structure less `uuid`, which stays zero.
            let mut old = [0u8; abi::DEVICE_REQ_V3_SIZE];
            old.copy_from_slice(&buf[..abi::DEVICE_REQ_V3_SIZE]);
            let request =
                before_abi9::<{ abi::DEVICE_REQ_V3_SIZE }>(Command::DeviceInfo, abi::IOC_READ | abi::IOC_WRITE);
            let done = self.read_write_request(request, &mut old);
            buf[..abi::DEVICE_REQ_V3_SIZE].copy_from_slice(&old);
            done
        } else {
            self.read_write(Command::DeviceInfo, &mut buf)
        };
        match done {
            Ok(()) => Ok(Some(DeviceReq::from_bytes(&buf))),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// Every configured shared device, by `FVP_IOC_DEVICE_INFO` with index 0, 1, ...
    /// until ENOENT.
    pub fn shared_devices(&self) -> Result<Vec<DeviceReq>, Errno> {
        collect(|index| self.device_info(index))
    }

    /// `FVP_IOC_KEY_SET` (ABI 8): a host's public key, or this host's private key.
    pub fn key_set(&self, request: &KeyReq) -> Result<(), Errno> {
        let mut bytes = request.to_bytes();
        let result = self.write(Command::KeySet, &bytes);
        // The copy may hold a private key: do not leave it on the stack.
        bytes.zeroize();
        result
    }

    /// `FVP_IOC_KEY_INFO` (ABI 8): host `id`'s public key; `None` if it has none.
    pub fn key_info(&self, id: u32) -> Result<Option<[u8; KEY_LEN]>, Errno> {
        let mut buf = KeyReq { id, ..Default::default() }.to_bytes();
        self.read_write(Command::KeyInfo, &mut buf)?;
        let info = KeyReq::from_bytes(&buf);
        Ok((info.flags & KEY_PRESENT != 0).then_some(info.key))
    }

    /// Issues the `_IOR` ioctl for `command` and returns the `N` bytes the module wrote.
    fn read<const N: usize>(&self, command: Command) -> Result<[u8; N], Errno> {
        let request = request::<N>(command, abi::IOC_READ);
        let mut buf = [0u8; N];
        // The driver writes at most the size `request` encodes, asserted equal to `N`.
        // SAFETY: `self.file` keeps the descriptor open; `buf` is `N` writable bytes that
        // outlive the call, no reference to it is alive, and any bytes are valid `u8`s.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), request, buf.as_mut_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(buf)
        }
    }

    /// Issues the `_IOW` ioctl for `command`, passing the `N` bytes of `buf`.
    fn write<const N: usize>(&self, command: Command, buf: &[u8; N]) -> Result<(), Errno> {
        self.write_request(request::<N>(command, abi::IOC_WRITE), buf)
    }

    /// Issues the `_IOW` ioctl `request` (checked by [`request`] or [`before_abi9`] to
    /// encode `N` bytes written by user space), passing the `N` bytes of `buf`.
    fn write_request<const N: usize>(&self, request: libc::Ioctl, buf: &[u8; N]) -> Result<(), Errno> {
        // SAFETY: `self.file` owns the descriptor, so it stays open during the call.
        // `request` is an `_IOW` command encoding a size of `N` bytes (callers take it
        // from `request::<N>` or `before_abi9::<N>`, which assert it), so the driver only reads, and at most `N` bytes, through the
        // pointer; `buf` is `N` initialized bytes borrowed for the whole call.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), request, buf.as_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    /// Issues the `_IOWR` ioctl for `command`: the module reads the `N` bytes of `buf`
    /// and writes its answer over them.
    fn read_write<const N: usize>(&self, command: Command, buf: &mut [u8; N]) -> Result<(), Errno> {
        self.read_write_request(request::<N>(command, abi::IOC_READ | abi::IOC_WRITE), buf)
    }

    /// Issues the `_IOWR` ioctl `request` (checked by [`request`] or [`before_abi9`] to
    /// encode `N` bytes both ways) on the `N` bytes of `buf`.
    fn read_write_request<const N: usize>(&self, request: libc::Ioctl, buf: &mut [u8; N]) -> Result<(), Errno> {
        // SAFETY: `self.file` owns the descriptor, so it stays open during the call.
        // `request` is an `_IOWR` command encoding a size of `N` bytes (callers take it
        // from `request::<N>` or `before_abi9::<N>`, which assert it), so the driver reads and writes at most `N` bytes through the
        // pointer; `buf` is `N` initialized, writable bytes exclusively borrowed for the
        // whole call, and every bit pattern is a valid `u8`.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), request, buf.as_mut_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }
}

/// The ioctl request for `command`, checked to move `N` bytes in direction `dir`
/// (`abi::IOC_READ`, `abi::IOC_WRITE` or both).
fn request<const N: usize>(command: Command, dir: u32) -> libc::Ioctl {
    let request = command.ioc();
    // The module copies as many bytes as the request encodes: the buffer must be
    // exactly that large, or the copy would overrun it.
    assert_eq!(abi::ioc_size(request), N, "{command:?} encodes a size different from its buffer");
    // And in the direction the caller's buffer allows (a read-only buffer must not be
    // written to).
    assert_eq!(
        request,
        abi::ioc(dir, abi::IOCTL_MAGIC, request & 0xff, N),
        "{command:?} does not transfer in direction {dir}"
    );
    // `as`, not `From`: the request type is `c_ulong` on glibc but `c_int` on musl,
    // where the kernel still reads the same 32 bits.
    request as libc::Ioctl
}

/// The ioctl request an ABI 3 to 8 module knows device `command` by, checked to move
/// `N` bytes (`abi::DEVICE_REQ_V3_SIZE`) in direction `dir`.
fn before_abi9<const N: usize>(command: Command, dir: u32) -> libc::Ioctl {
    let request = command.ioc_before_abi9().expect("a device command");
    assert_eq!(request, abi::ioc(dir, abi::IOCTL_MAGIC, request & 0xff, N), "{command:?} before ABI 9");
    // `as`, not `From`: see `request`.
    request as libc::Ioctl
}

/// Calls `info(0)`, `info(1)`, ... and collects the answers up to the first `None`.
fn collect<T>(mut info: impl FnMut(u32) -> Result<Option<T>, Errno>) -> Result<Vec<T>, Errno> {
    let mut all = Vec::new();
    for index in 0..=u32::MAX {
        match info(index)? {
            Some(item) => all.push(item),
            None => break,
        }
    }
    Ok(all)
}

/// The errno behind an I/O error from the standard library.
fn errno_of(err: &io::Error) -> Errno {
    // Errors that did not come from a system call (none are expected from `open` on a
    // path taken from argv, which cannot hold a NUL) have no errno.
    err.raw_os_error().map_or(Errno::UnknownErrno, Errno::from_raw)
}

/// This machine's IPv4 addresses, on every interface (up or not), without duplicates.
pub fn local_ipv4_addrs() -> Result<Vec<Ipv4Addr>, Errno> {
    let mut addrs: Vec<Ipv4Addr> =
        nix::ifaddrs::getifaddrs()?.filter_map(|ifaddr| Some(ifaddr.address?.as_sockaddr_in()?.ip())).collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// A device-mapper device, as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmDevice {
    /// Its name (`dmsetup ls`).
    pub name: String,
    /// Its device number.
    pub major: u32,
    /// Its device number.
    pub minor: u32,
}

/// Every device-mapper device: `/sys/block/dm-*/dm/name` and `/sys/block/dm-*/dev`.
pub fn dm_devices() -> Vec<DmDevice> {
    dm_devices_in(Path::new(SYS_BLOCK_DIR))
}

/// Every device-mapper device under `sys_block` (a `/sys/block` look-alike). Devices
/// that vanish or are half set up while being read are left out.
pub fn dm_devices_in(sys_block: &Path) -> Vec<DmDevice> {
    let Ok(entries) = fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut devices: Vec<DmDevice> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("dm-"))
        .filter_map(|entry| {
            let dir = entry.path();
            let name = fs::read_to_string(dir.join("dm/name")).ok()?;
            let (major, minor) = parse_dev(&fs::read_to_string(dir.join("dev")).ok()?)?;
            Some(DmDevice { name: name.trim_end_matches('\n').to_owned(), major, minor })
        })
        .collect();
    devices.sort_by_key(|d| (d.major, d.minor));
    devices
}

/// Parses `MAJ:MIN` (with an optional trailing newline, as in sysfs `dev` files).
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim_end_matches('\n').split_once(':')?;
    let number = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten();
    Some((number(major)?, number(minor)?))
}

/// Whether `command` is one that [`ControlDevice::host_request`] sends.
fn takes_host_request(command: Command) -> bool {
    matches!(command, Command::HostAdd | Command::HostRemove | Command::HostUpdate)
}

/// The device number of the block device node at `path`; `None` if it is not one.
pub fn block_device_number(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

/// Runs `program` with `args` and waits for it, capturing its output.
pub fn run_program<I, S>(program: &str, args: I) -> io::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Process::new(program).args(args).output()
}

/// The handler of [`interrupt_system_calls_on_signals`]: catching the signal is all it
/// takes for the interrupted system call to return EINTR.
extern "C" fn ignore_signal(_signal: libc::c_int) {}

/// Catches SIGINT and SIGTERM instead of dying of them, so that a long system call
/// they interrupt (a pool being filled or emptied) returns EINTR and fvpctl can say
/// what state it left. Without `SA_RESTART`, such calls are not restarted. A signal
/// that arrives outside a system call is lost: fvpctl goes on to its end.
pub fn interrupt_system_calls_on_signals() -> Result<(), Errno> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // `ignore_signal` does nothing, which is async-signal-safe.
        // SAFETY: all-zero bytes are a valid `sigaction`; `sigemptyset` initialises the
        // mask in `action`, which `sigaction` only reads during the call; null `oldact`
        // is allowed; the handler has the non-`SA_SIGINFO` signature.
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if ret == -1 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh, empty directory for one test.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fvpctl-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fake_dm(sys_block: &Path, node: &str, name: &str, dev: &str) {
        let dir = sys_block.join(node);
        fs::create_dir_all(dir.join("dm")).unwrap();
        fs::write(dir.join("dm/name"), format!("{name}\n")).unwrap();
        fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
    }

    #[test]
    fn dev_numbers_parse() {
        assert_eq!(parse_dev("253:0\n"), Some((253, 0)));
        assert_eq!(parse_dev("8:16"), Some((8, 16)));
        assert_eq!(parse_dev("253"), None);
        assert_eq!(parse_dev("253:"), None);
        assert_eq!(parse_dev(":1"), None);
        assert_eq!(parse_dev("a:b"), None);
        assert_eq!(parse_dev("-1:2"), None);
        assert_eq!(parse_dev("+1:2"), None);
        assert_eq!(parse_dev("1:2:3"), None);
        assert_eq!(parse_dev("99999999999:0"), None);
    }

    #[test]
    fn dm_devices_are_read_from_sysfs() {
        let root = scratch_dir("dm_devices");
        fake_dm(&root, "dm-1", "cache_b", "253:1");
        fake_dm(&root, "dm-0", "cache a", "253:0");
        // Not device-mapper, or not fully set up: ignored.
        fs::create_dir_all(root.join("sda")).unwrap();
        fs::write(root.join("sda/dev"), "8:0\n").unwrap();
        fs::create_dir_all(root.join("dm-2")).unwrap();
        fs::write(root.join("dm-2/dev"), "253:2\n").unwrap();
        assert_eq!(
            dm_devices_in(&root),
            [
                DmDevice { name: "cache a".into(), major: 253, minor: 0 },
                DmDevice { name: "cache_b".into(), major: 253, minor: 1 },
            ]
        );
        assert_eq!(dm_devices_in(&root.join("missing")), []);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn requests_match_their_buffers() {
        assert_eq!(request::<{ Version::SIZE }>(Command::Version, abi::IOC_READ) as u32, abi::IOC_VERSION);
        assert_eq!(request::<{ PoolReq::SIZE }>(Command::PoolCreate, abi::IOC_WRITE) as u32, abi::IOC_POOL_CREATE);
        assert_eq!(
            request::<{ VolumeInfo::SIZE }>(Command::VolumeInfo, abi::IOC_READ | abi::IOC_WRITE) as u32,
            abi::IOC_VOLUME_INFO
        );
    }

    #[test]
    fn cluster_requests_match_their_buffers() {
        let rw = abi::IOC_READ | abi::IOC_WRITE;
        assert_eq!(request::<{ ClusterCfg::SIZE }>(Command::ClusterSet, abi::IOC_WRITE) as u32, abi::IOC_CLUSTER_SET);
        assert_eq!(request::<{ ClusterInfo::SIZE }>(Command::ClusterInfo, abi::IOC_READ) as u32, abi::IOC_CLUSTER_INFO);
        for command in [Command::HostAdd, Command::HostRemove] {
            assert_eq!(request::<{ HostReq::SIZE }>(command, abi::IOC_WRITE) as u32, command.ioc());
        }
        assert_eq!(request::<{ HostInfo::SIZE }>(Command::HostInfo, rw) as u32, abi::IOC_HOST_INFO);
        for command in [Command::DeviceAdd, Command::DeviceRemove] {
            assert_eq!(request::<{ DeviceReq::SIZE }>(command, abi::IOC_WRITE) as u32, command.ioc());
        }
        assert_eq!(request::<{ DeviceReq::SIZE }>(Command::DeviceInfo, rw) as u32, abi::IOC_DEVICE_INFO);
        assert_eq!(request::<{ VolumeRepl::SIZE }>(Command::VolumeRepl, rw) as u32, abi::IOC_VOLUME_REPL);
        assert_eq!(request::<{ VolumeHealth::SIZE }>(Command::VolumeHealth, rw) as u32, abi::IOC_VOLUME_HEALTH);
        assert_eq!(request::<{ KeyReq::SIZE }>(Command::KeySet, abi::IOC_WRITE) as u32, abi::IOC_KEY_SET);
        assert_eq!(request::<{ KeyReq::SIZE }>(Command::KeyInfo, rw) as u32, abi::IOC_KEY_INFO);
    }

    #[test]
    #[should_panic(expected = "does not transfer in direction")]
    fn key_info_is_read_write() {
        request::<{ KeyReq::SIZE }>(Command::KeyInfo, abi::IOC_READ);
    }

    #[test]
    #[should_panic(expected = "does not transfer in direction")]
    fn volume_health_is_read_write() {
        request::<{ VolumeHealth::SIZE }>(Command::VolumeHealth, abi::IOC_READ);
    }

    #[test]
    #[should_panic(expected = "does not transfer in direction")]
    fn host_info_is_read_write() {
        request::<{ HostInfo::SIZE }>(Command::HostInfo, abi::IOC_READ);
    }

    #[test]
    fn host_requests_are_the_commands_that_carry_one() {
        let takes: Vec<Command> = Command::ALL.into_iter().filter(|&c| takes_host_request(c)).collect();
        assert_eq!(takes, [Command::HostAdd, Command::HostRemove, Command::HostUpdate]);
        for c in takes {
            assert_eq!(c.size(), HostReq::SIZE, "{c:?}");
        }
    }

    #[test]
    fn this_machine_has_addresses() {
        // Every Linux machine, even in an empty network namespace, has a loopback
        // interface; it may be down (and then without 127.0.0.1), so only check the call.
        let addrs = local_ipv4_addrs().unwrap();
        let mut sorted = addrs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(addrs, sorted);
    }

    #[test]
    #[should_panic(expected = "encodes a size different from its buffer")]
    fn a_wrong_buffer_size_is_caught() {
        request::<8>(Command::PoolInfo, abi::IOC_READ | abi::IOC_WRITE);
    }

    #[test]
    #[should_panic(expected = "does not transfer in direction")]
    fn a_wrong_direction_is_caught() {
        request::<{ PoolInfo::SIZE }>(Command::PoolInfo, abi::IOC_WRITE);
    }

    #[test]
    fn enumeration_stops_at_the_first_none() {
        let all = collect(|i| Ok((i < 3).then_some(i))).unwrap();
        assert_eq!(all, [0, 1, 2]);
        let err = collect::<u32>(|_| Err(Errno::EPERM)).unwrap_err();
        assert_eq!(err, Errno::EPERM);
    }

    #[test]
    fn programs_run_and_report() {
        let out = run_program("sh", ["-c", "echo oops >&2; exit 3"]).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stderr, b"oops\n");
        let err = run_program("/nonexistent/fvpctl-test", ["x"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
