// SPDX-License-Identifier: GPL-2.0

//! The kernel's cryptography for the replication transport: lib/crypto's
//! ChaCha20-Poly1305 (`chacha20poly1305_encrypt`/`_decrypt`, 64-bit nonce) and X25519
//! (`curve25519`), the crypto API's `hmac(sha256)`, and `memzero_explicit` for keys.
//! 6.12's `kernel` crate binds none of them.

use super::bindings;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::error::{to_result, Result};
use kernel::prelude::*;

/// Length of a ChaCha20-Poly1305 key.
pub const AEAD_KEY_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 tag.
pub const AEAD_TAG_LEN: usize = 16;
/// Length of an HMAC-SHA256 tag.
pub const HMAC_SHA256_LEN: usize = 32;
/// Most parts one [`HmacSha256::mac`] call takes.
pub const HMAC_PARTS_MAX: usize = 8;

/// Overwrites `buf` with zeros in a way the compiler cannot drop (`memzero_explicit`).
pub fn wipe(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::fvp_helper_memzero_explicit(buf.as_mut_ptr().cast(), buf.len()) };
}

/// A 32-byte secret key, wiped with `memzero_explicit` when dropped. Not `Clone` and not
/// `Debug`, so that copies are deliberate.
pub struct SecretKey {
    bytes: [u8; AEAD_KEY_LEN],
}

impl SecretKey {
    /// An all-zero key, to be filled in place ([`SecretKey::bytes_mut`]).
    pub const fn zeroed() -> Self {
        Self { bytes: [0; AEAD_KEY_LEN] }
    }

    /// The key.
    pub fn bytes(&self) -> &[u8; AEAD_KEY_LEN] {
        &self.bytes
    }

    /// The key, to be written in place.
    pub fn bytes_mut(&mut self) -> &mut [u8; AEAD_KEY_LEN] {
        &mut self.bytes
    }
}

impl SecretKey {
    /// A new random X25519 private key, clamped (may sleep until the CSPRNG is ready).
    pub fn generate_x25519() -> Self {
        let mut k = Self::zeroed();
        // SAFETY: `k.bytes` is valid for writes of 32 bytes.
        unsafe { bindings::fvp_helper_x25519_generate_secret(k.bytes.as_mut_ptr()) };
        k
    }

    /// X25519 of this private key and `public` into a new secret; `None` if `public` is
    /// a low-order point (the result would be all zero).
    pub fn x25519(&self, public: &[u8; AEAD_KEY_LEN]) -> Option<SecretKey> {
        let mut out = Self::zeroed();
        // SAFETY: `out.bytes`, `self.bytes` and `public` are valid for 32 bytes each
        // (written, read, read).
        let ok = unsafe { bindings::fvp_helper_x25519(out.bytes.as_mut_ptr(), self.bytes.as_ptr(), public.as_ptr()) };
        ok.then_some(out)
    }

    /// The X25519 public key of this private key; `None` if it is degenerate.
    pub fn x25519_public(&self) -> Option<[u8; AEAD_KEY_LEN]> {
        let mut out = [0u8; AEAD_KEY_LEN];
        // SAFETY: `out` is valid for writes and `self.bytes` for reads of 32 bytes.
        let ok = unsafe { bindings::fvp_helper_x25519_public(out.as_mut_ptr(), self.bytes.as_ptr()) };
        ok.then_some(out)
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Up to `N` secret bytes (a shared secret of variable length), wiped with
/// `memzero_explicit` when dropped. Not `Clone` and not `Debug`.
///
/// # Invariants
///
/// `len <= N`.
pub struct SecretBytes<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> SecretBytes<N> {
    /// A copy of `src`; `None` if it is longer than `N`.
    pub fn new(src: &[u8]) -> Option<Self> {
        let mut s = Self { bytes: [0; N], len: src.len() };
        // INVARIANT: `get_mut` fails (and nothing is returned) unless `src.len() <= N`.
        s.bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(s)
    }

    /// The secret.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

impl<const N: usize> Drop for SecretBytes<N> {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Feeds `data` to the CRC-32C register `crc` (no pre- or post-inversion: start from
/// `!0`, invert at the end), with the kernel's `crc32c()` (libcrc32c, the crypto API's
/// "crc32c"). `logic/crc32c.rs` is its one user.
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of its length; the helper reads nothing else.
    unsafe { bindings::fvp_helper_crc32c(crc, data.as_ptr(), data.len()) }
}

/// ChaCha20-Poly1305 with a 64-bit nonce: `sealed` holds the text followed by
/// [`AEAD_TAG_LEN`] bytes of room; encrypts the text in place and writes the tag over
/// `ad` and the ciphertext. `false` (nothing done) if `sealed` is shorter than a tag.
pub fn aead_seal(key: &[u8; AEAD_KEY_LEN], nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool {
    let Some(text_len) = sealed.len().checked_sub(AEAD_TAG_LEN) else { return false };
    // SAFETY: `sealed` is valid for reads and writes of `text_len + AEAD_TAG_LEN` bytes
    // (the function writes the text in place and the tag after it), `ad` for reads of
    // its length, `key` for reads of 32 bytes; lib/crypto allows `dst == src`.
    unsafe {
        bindings::fvp_helper_aead_seal(sealed.as_mut_ptr(), text_len, ad.as_ptr(), ad.len(), nonce, key.as_ptr())
    };
    true
}

/// Opens what [`aead_seal`] sealed: whether the tag at the end of `sealed` is right for
/// `ad` and the text; only then is the text decrypted in place.
pub fn aead_open(key: &[u8; AEAD_KEY_LEN], nonce: u64, ad: &[u8], sealed: &mut [u8]) -> bool {
    if sealed.len() < AEAD_TAG_LEN {
        return false;
    }
    // SAFETY: `sealed` is valid for reads and writes of its length (the text is
    // decrypted in place, only after the tag verified), `ad` for reads of its length,
    // `key` for reads of 32 bytes.
    unsafe {
        bindings::fvp_helper_aead_open(sealed.as_mut_ptr(), sealed.len(), ad.as_ptr(), ad.len(), nonce, key.as_ptr())
    }
}

/// A `hmac(sha256)` transform of the crypto API.
///
/// Keying and digesting modify the transform, so it is neither `Send` nor `Sync` (the
/// raw pointer sees to that): one per thread, e.g. one per handshake.
///
/// # Invariants
///
/// `tfm` is a transform returned by `crypto_alloc_shash("hmac(sha256)")`, freed only
/// when this is dropped.
pub struct HmacSha256 {
    tfm: NonNull<c_void>,
}

impl HmacSha256 {
    /// Allocates a transform (sleeps). `ENOMEM` if the crypto API has none.
    pub fn new() -> Result<Self> {
        // SAFETY: no preconditions; sleeps, which callers of `new` may.
        let tfm = unsafe { bindings::fvp_helper_hmac_sha256_alloc() };
        // INVARIANT: a non-NULL result is an allocated transform.
        NonNull::new(tfm).map(|tfm| Self { tfm }).ok_or(ENOMEM)
    }

    /// The HMAC-SHA256 under `key` of the concatenation of `parts` (at most
    /// [`HMAC_PARTS_MAX`]), into `out`. `EINVAL` for too many parts or a key longer
    /// than `u32::MAX`; the crypto API's error if it fails.
    pub fn mac(&self, key: &[u8], parts: &[&[u8]], out: &mut [u8; HMAC_SHA256_LEN]) -> Result {
        if parts.len() > HMAC_PARTS_MAX {
            return Err(EINVAL);
        }
        let key_len = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        let mut slices = [bindings::fvp_helper_slice { ptr: core::ptr::null(), len: 0 }; HMAC_PARTS_MAX];
        for (s, p) in slices.iter_mut().zip(parts) {
            *s = bindings::fvp_helper_slice { ptr: p.as_ptr(), len: p.len() };
        }
        // SAFETY: `tfm` is a live transform (invariant) that no other thread uses (not
        // `Sync`); `key` is valid for `key_len` bytes; the first `parts.len()` entries of
        // `slices` point at live slices of their lengths; `out` has room for the 32-byte
        // digest.
        to_result(unsafe {
            bindings::fvp_helper_hmac_sha256(
                self.tfm.as_ptr(),
                key.as_ptr(),
                key_len,
                slices.as_ptr(),
                parts.len() as u32,
                out.as_mut_ptr(),
            )
        })
    }
}

impl Drop for HmacSha256 {
    fn drop(&mut self) {
        // SAFETY: `tfm` is our live transform (invariant), not used after this.
        unsafe { bindings::fvp_helper_hmac_sha256_free(self.tfm.as_ptr()) };
    }
}
