// SPDX-License-Identifier: GPL-2.0

//! Hosts' X25519 keys (ABI 8): private key files, public keys in hex, and the public key
//! of a private key (x25519-dalek's base-point multiplication).
//!
//! A private key file holds 64 hexadecimal digits and an optional newline. fvpctl reads
//! one only if it is a regular file owned by root that neither its group nor others may
//! access (mode 0600 or stricter), and writes one only as a new file of mode 0600.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use fvp_logic::abi::KEY_LEN;
use zeroize::{Zeroize, Zeroizing};

/// The owner every private key file must have: root.
pub const KEY_FILE_OWNER: u32 = 0;

/// The mode of a new private key file.
const KEY_FILE_MODE: u32 = 0o600;

/// Hex digits of a key.
const HEX_LEN: usize = 2 * KEY_LEN;

/// How many hex digits `cluster show` shows of a key.
pub const SHORT_HEX_LEN: usize = 16;

/// Where `key generate` takes its random bytes.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// The value of a hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The key written as exactly 64 hex digits (either case); `None` if it is not.
pub fn decode_hex(text: &[u8]) -> Option<[u8; KEY_LEN]> {
    if text.len() != HEX_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => {
                key.zeroize();
                return None;
            }
        }
    }
    Some(key)
}

/// `bytes` as lowercase hex digits, into `out`.
fn encode_hex_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// A host's public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Parses 64 hex digits; refuses anything else, and the all-zero key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = decode_hex(text.as_bytes()).ok_or_else(|| {
            let shown: String = text.chars().take(HEX_LEN + 8).collect();
            let more = if shown.len() < text.len() { "..." } else { "" };
            format!("invalid key '{}{more}': expected {HEX_LEN} hex digits", shown.escape_debug())
        })?;
        if key == [0; KEY_LEN] {
            return Err("the key is all zero".to_owned());
        }
        Ok(Self(key))
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(HEX_LEN);
        encode_hex_into(&self.0, &mut out);
        out
    }

    /// The first `SHORT_HEX_LEN` hex digits.
    pub fn short(&self) -> String {
        let mut hex = self.hex();
        hex.truncate(SHORT_HEX_LEN);
        hex
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.hex())
    }
}

/// A host's private key: wiped from memory when dropped; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// The private key made of `random` bytes, clamped as X25519 wants (RFC 7748,
    /// section 5). `random` is wiped.
    pub fn clamped(random: &mut [u8; KEY_LEN]) -> Self {
        let mut key = Zeroizing::new(*random);
        random.zeroize();
        key[0] &= 248;
        key[KEY_LEN - 1] &= 127;
        key[KEY_LEN - 1] |= 64;
        Self(key)
    }

    /// A new random private key.
    pub fn generate() -> io::Result<Self> {
        let mut random = Zeroizing::new([0u8; KEY_LEN]);
        File::open(RANDOM_SOURCE)?.read_exact(&mut random[..])?;
        Ok(Self::clamped(&mut random))
    }

    /// The key in a private key file's `content`: 64 hex digits, then an optional newline.
    /// The error never quotes the content.
    pub fn from_file_content(content: &[u8]) -> Result<Self, String> {
        let digits = content.strip_suffix(b"\n").unwrap_or(content);
        if digits.len() != HEX_LEN {
            let found = if content.len() > HEX_LEN + 1 {
                format!("more than {} bytes", HEX_LEN + 1)
            } else {
                format!("{} bytes", content.len())
            };
            return Err(format!("expected {HEX_LEN} hex digits and an optional newline, found {found}"));
        }
        let key = Zeroizing::new(decode_hex(digits).ok_or_else(|| format!("not {HEX_LEN} hex digits"))?);
        if *key == [0; KEY_LEN] {
            return Err("the key is all zero".to_owned());
        }
        Ok(Self(key))
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The public key: X25519 of the (clamped) key and the base point.
    pub fn public_key(&self) -> PublicKey {
        // `StaticSecret` wipes its copy when dropped.
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// What a private key file holds: the 64 hex digits and a newline.
    fn file_content(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(HEX_LEN + 1));
        encode_hex_into(&self.0[..], &mut text);
        text.push('\n');
        text
    }
}

/// Why a private key file whose owner is `uid` and whose `st_mode` is `mode` must not be
/// used, if it must not: it must be a regular file owned by root, with no permission for
/// its group or others.
pub fn check_key_file_access(uid: u32, mode: u32) -> Result<(), String> {
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Err("not a regular file".to_owned());
    }
    if uid != KEY_FILE_OWNER {
        return Err(format!("owned by uid {uid}, not by root: a private key file must be root's"));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {:04o} lets its group or others access it: a private key file must be mode 0600 \
             (chmod 600)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Reads the private key file at `path`, refusing it unless `check(uid, mode)` of the
/// opened file passes. The error says why, without the path.
pub fn read_private_key_checked(
    path: &Path,
    check: impl FnOnce(u32, u32) -> Result<(), String>,
) -> Result<PrivateKey, String> {
    // O_NONBLOCK: a FIFO put there does not hang the open (and is then refused).
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| format!("cannot open: {err}"))?;
    // The file opened, not whatever the path names by now.
    let meta = file.metadata().map_err(|err| format!("cannot stat: {err}"))?;
    check(meta.uid(), meta.mode())?;
    // Room for a few bytes more than a key file holds: a longer file is refused, and the
    // buffer never grows (which would leave a copy behind).
    let mut content = Zeroizing::new(Vec::with_capacity(2 * HEX_LEN));
    (&mut file).take(HEX_LEN as u64 + 2).read_to_end(&mut content).map_err(|err| format!("cannot read: {err}"))?;
    PrivateKey::from_file_content(&content)
}

/// Reads the private key file at `path` (root's, mode 0600 or stricter).
pub fn read_private_key(path: &Path) -> Result<PrivateKey, String> {
    read_private_key_checked(path, check_key_file_access)
}

/// Writes `key` to a new file at `path`, of mode 0600; an existing file is not touched.
pub fn write_private_key(path: &Path, key: &PrivateKey) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(KEY_FILE_MODE).open(path)?;
    let written = file.write_all(key.file_content().as_bytes()).and_then(|()| file.sync_all());
    if written.is_err() {
        // Not a key file: do not leave it for a later run to find.
        let _ = fs::remove_file(path);
    }
    written
}

/// RFC 7748, section 6.1: Alice's and Bob's key pairs, for tests. Not `cfg(test)`: the
/// binary's tests and the fuzz target use them from the library. They are published.
pub mod rfc7748 {
    pub const ALICE_PRIVATE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    pub const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    pub const BOB_PRIVATE: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    pub const BOB_PUBLIC: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
}

#[cfg(test)]
mod tests {
    use super::rfc7748::*;
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fvpctl-keys-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A file check that only wants the mode right (tests do not run as root).
    fn mode_only(_uid: u32, mode: u32) -> Result<(), String> {
        check_key_file_access(KEY_FILE_OWNER, mode)
    }

    #[test]
    fn hex_is_64_digits() {
        let key = decode_hex(ALICE_PUBLIC.as_bytes()).unwrap();
        assert_eq!(key[0], 0x85);
        assert_eq!(key[31], 0x6a);
        assert_eq!(decode_hex(ALICE_PUBLIC.to_uppercase().as_bytes()), Some(key));
        assert_eq!(PublicKey(key).hex(), ALICE_PUBLIC);
        assert_eq!(PublicKey(key).to_string(), ALICE_PUBLIC);
        assert_eq!(PublicKey(key).short(), "8520f0098930a754");
        for bad in ["", "85", &ALICE_PUBLIC[..63], &format!("{ALICE_PUBLIC}0"), &ALICE_PUBLIC.replace('8', "g")] {
            assert_eq!(decode_hex(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(decode_hex(format!(" {}", &ALICE_PUBLIC[1..]).as_bytes()), None);
        assert_eq!(decode_hex(format!("{}\n", &ALICE_PUBLIC[..63]).as_bytes()), None);
        assert_eq!(decode_hex("é".repeat(32).as_bytes()), None);
    }

    #[test]
    fn public_keys_parse() {
        assert_eq!(PublicKey::parse(ALICE_PUBLIC).unwrap().hex(), ALICE_PUBLIC);
        assert_eq!(PublicKey::parse(&ALICE_PUBLIC.to_uppercase()).unwrap().hex(), ALICE_PUBLIC);
        assert_eq!(PublicKey::parse(&"0".repeat(64)).unwrap_err(), "the key is all zero");
        assert_eq!(PublicKey::parse("abc").unwrap_err(), "invalid key 'abc': expected 64 hex digits");
        let long = "a".repeat(100);
        assert_eq!(
            PublicKey::parse(&long).unwrap_err(),
            format!("invalid key '{}...': expected 64 hex digits", "a".repeat(72))
        );
        assert!(format!("{:?}", PublicKey::parse(BOB_PUBLIC).unwrap()).contains(BOB_PUBLIC));
    }

    #[test]
    fn public_keys_are_rfc_7748s() {
        for (private, public) in [(ALICE_PRIVATE, ALICE_PUBLIC), (BOB_PRIVATE, BOB_PUBLIC)] {
            let key = PrivateKey::from_file_content(private.as_bytes()).unwrap();
            assert_eq!(key.public_key().hex(), public);
        }
        // Clamping the private key does not change its public key.
        let mut bytes = decode_hex(ALICE_PRIVATE.as_bytes()).unwrap();
        let clamped = PrivateKey::clamped(&mut bytes);
        assert_eq!(bytes, [0; KEY_LEN], "the random bytes are wiped");
        assert_eq!(clamped.public_key().hex(), ALICE_PUBLIC);
    }

    #[test]
    fn new_keys_are_clamped() {
        let mut ones = [0xff; KEY_LEN];
        let key = PrivateKey::clamped(&mut ones);
        assert_eq!(key.bytes()[0], 0xf8);
        assert_eq!(key.bytes()[31], 0x7f);
        assert!(key.bytes()[1..31].iter().all(|&b| b == 0xff));
        let mut zeros = [0; KEY_LEN];
        let key = PrivateKey::clamped(&mut zeros);
        assert_eq!((key.bytes()[0], key.bytes()[31]), (0, 0x40));
        let a = PrivateKey::generate().unwrap();
        let b = PrivateKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.bytes()[0] & 7, 0);
        assert_eq!(a.bytes()[31] & 0xc0, 0x40);
    }

    #[test]
    fn private_keys_never_show() {
        let key = PrivateKey::from_file_content(ALICE_PRIVATE.as_bytes()).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(debug, "PrivateKey(<redacted>)");
        assert!(!debug.contains("77"));
        assert_eq!(&*key.file_content(), &format!("{ALICE_PRIVATE}\n"));
    }

    #[test]
    fn key_file_content_is_64_hex_digits_and_a_newline() {
        let alice = PrivateKey::from_file_content(ALICE_PRIVATE.as_bytes()).unwrap();
        assert_eq!(PrivateKey::from_file_content(format!("{ALICE_PRIVATE}\n").as_bytes()).unwrap(), alice);
        assert_eq!(
            PrivateKey::from_file_content(ALICE_PRIVATE.to_uppercase().as_bytes()).unwrap(),
            alice,
            "either case"
        );
        for (content, why) in [
            (String::new(), "found 0 bytes"),
            ("\n".to_owned(), "found 1 bytes"),
            (format!("{ALICE_PRIVATE}\n\n"), "found more than 65 bytes"),
            (format!("{ALICE_PRIVATE}\r\n"), "found more than 65 bytes"),
            (format!("{ALICE_PRIVATE} "), "found 65 bytes"),
            (format!(" {ALICE_PRIVATE}"), "found 65 bytes"),
            (ALICE_PRIVATE[..62].to_owned(), "found 62 bytes"),
            (ALICE_PRIVATE.replace('7', "x"), "not 64 hex digits"),
            ("0".repeat(64), "the key is all zero"),
        ] {
            let err = PrivateKey::from_file_content(content.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{content:?}: {err}");
            assert!(!err.contains("076d0a"), "the error quotes the key: {err}");
        }
    }

    #[test]
    fn key_files_must_be_roots_regular_files_for_root_only() {
        let file = libc::S_IFREG;
        assert_eq!(check_key_file_access(0, file | 0o600), Ok(()));
        assert_eq!(check_key_file_access(0, file | 0o400), Ok(()));
        assert_eq!(check_key_file_access(0, file | 0o700), Ok(()));
        assert_eq!(check_key_file_access(0, file), Ok(()));
        for mode in [0o640, 0o604, 0o644, 0o660, 0o601, 0o610, 0o666, 0o777] {
            let err = check_key_file_access(0, file | mode).unwrap_err();
            assert!(err.starts_with(&format!("mode {mode:04o} lets its group or others access it")), "{err}");
        }
        let err = check_key_file_access(1000, file | 0o600).unwrap_err();
        assert_eq!(err, "owned by uid 1000, not by root: a private key file must be root's");
        for kind in [libc::S_IFDIR, libc::S_IFIFO, libc::S_IFCHR, libc::S_IFBLK, libc::S_IFSOCK] {
            assert_eq!(check_key_file_access(0, kind | 0o600).unwrap_err(), "not a regular file");
        }
        // Setuid and the sticky bit are shown, though they do not matter.
        assert!(check_key_file_access(0, file | 0o4644).unwrap_err().starts_with("mode 4644"));
    }

    #[test]
    fn key_files_are_written_once_and_read_back() {
        let dir = scratch_dir("files");
        let path = dir.join("host.key");
        let key = PrivateKey::generate().unwrap();
        write_private_key(&path, &key).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text[..64].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text}");
        assert_eq!(read_private_key_checked(&path, mode_only).unwrap(), key);
        // The check gets the file's owner and mode.
        let (uid, mode) = (meta.uid(), meta.mode());
        read_private_key_checked(&path, |u, m| {
            assert_eq!((u, m), (uid, mode));
            Ok(())
        })
        .unwrap();
        // As root, the file is root's; otherwise it is refused for its owner.
        match read_private_key(&path) {
            Ok(read) => assert_eq!((uid, read), (0, key.clone())),
            Err(why) => assert!(uid != 0 && why.starts_with(&format!("owned by uid {uid}")), "{why}"),
        }
        // Never overwritten.
        let other = PrivateKey::generate().unwrap();
        let err = write_private_key(&path, &other).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(read_private_key_checked(&path, mode_only).unwrap(), key);
        // Readable by others: refused.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private_key_checked(&path, mode_only).unwrap_err();
        assert!(err.starts_with("mode 0644 lets its group or others access it"), "{err}");
        // Wrong content, missing files, directories.
        fs::write(dir.join("short.key"), "abcd\n").unwrap();
        fs::set_permissions(dir.join("short.key"), fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_private_key_checked(&dir.join("short.key"), mode_only).unwrap_err();
        assert_eq!(err, "expected 64 hex digits and an optional newline, found 5 bytes");
        fs::write(dir.join("long.key"), "a".repeat(4096)).unwrap();
        fs::set_permissions(dir.join("long.key"), fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_private_key_checked(&dir.join("long.key"), mode_only).unwrap_err();
        assert_eq!(err, "expected 64 hex digits and an optional newline, found more than 65 bytes");
        let err = read_private_key_checked(&dir.join("missing.key"), mode_only).unwrap_err();
        assert!(err.starts_with("cannot open: "), "{err}");
        fs::create_dir(dir.join("dir.key")).unwrap();
        fs::set_permissions(dir.join("dir.key"), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(read_private_key_checked(&dir.join("dir.key"), mode_only).unwrap_err(), "not a regular file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_known_key_file_gives_rfc_7748s_public_key() {
        let dir = scratch_dir("alice");
        let path = dir.join("alice.key");
        fs::write(&path, format!("{ALICE_PRIVATE}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let key = read_private_key_checked(&path, mode_only).unwrap();
        assert_eq!(key.public_key().hex(), ALICE_PUBLIC);
        fs::remove_dir_all(&dir).unwrap();
    }
}
