//! Connector credentials, encrypted at rest with AES-256-GCM.
//!
//! The key comes from `GYRUS_SECRET_KEY` (32 bytes, base64) or from the file
//! named by `GYRUS_SECRET_KEY_FILE` (the same, or 32 raw bytes), never from
//! the store: whoever reads the store's files learns nothing. Each sealed
//! value is bound to its owner (tenant and connector id) as associated data,
//! so a ciphertext copied onto another connector does not open.
//!
//! ```
//! use gyrus_ingest::secrets::SecretKey;
//!
//! let key = SecretKey::from_bytes(&[7; 32]).unwrap();
//! let sealed = key.seal(b"acme/c1", b"refresh-token").unwrap();
//! assert_eq!(key.open(b"acme/c1", &sealed).unwrap(), b"refresh-token");
//! assert!(key.open(b"acme/c2", &sealed).is_err());
//! ```

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The variable holding the key (base64 of 32 bytes).
pub const KEY_VARIABLE: &str = "GYRUS_SECRET_KEY";
/// The variable naming a file that holds the key.
pub const KEY_FILE_VARIABLE: &str = "GYRUS_SECRET_KEY_FILE";
/// Marks the format of a sealed value, so that the scheme can change later.
const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no key to encrypt connector credentials: set {KEY_VARIABLE} to 32 random bytes in \
         base64 (e.g. `openssl rand -base64 32`) or {KEY_FILE_VARIABLE} to a file holding them"
    )]
    NoKey,
    #[error("the connector credential key is invalid: {0}")]
    BadKey(String),
    #[error(
        "stored credentials do not open with this key (a different {KEY_VARIABLE}, or a damaged record)"
    )]
    Open,
}

/// The key that seals and opens connector credentials.
pub struct SecretKey(LessSafeKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A key of exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(format!(
                "it is {} bytes; AES-256 needs 32",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SecretError::BadKey("rejected by AES-256-GCM".into()))?;
        Ok(SecretKey(LessSafeKey::new(key)))
    }

    /// The key from base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(format!("not base64: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// The key from `GYRUS_SECRET_KEY` or `GYRUS_SECRET_KEY_FILE`.
    pub fn from_env() -> Result<Self, SecretError> {
        if let Ok(text) = std::env::var(KEY_VARIABLE) {
            return Self::from_base64(&text);
        }
        match std::env::var(KEY_FILE_VARIABLE) {
            Ok(path) => Self::from_file(Path::new(&path)),
            Err(_) => Err(SecretError::NoKey),
        }
    }

    /// The key from a file of base64 text or of 32 raw bytes.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path)
            .map_err(|e| SecretError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() == 32 {
            return Self::from_bytes(&bytes);
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            SecretError::BadKey(format!("{} is neither base64 nor 32 bytes", path.display()))
        })?;
        Self::from_base64(&text)
    }

    /// Encrypts `plaintext` for `owner`: `v1:<base64 of nonce ‖ ciphertext ‖ tag>`.
    pub fn seal(&self, owner: &[u8], plaintext: &[u8]) -> Result<String, SecretError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut sealed = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(owner),
                &mut sealed,
            )
            .map_err(|_| SecretError::BadKey("encryption failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{}", BASE64.encode(out)))
    }

    /// Decrypts what [`SecretKey::seal`] made for the same `owner`.
    pub fn open(&self, owner: &[u8], sealed: &str) -> Result<Vec<u8>, SecretError> {
        let encoded = sealed
            .strip_prefix(VERSION)
            .and_then(|s| s.strip_prefix(':'))
            .ok_or(SecretError::Open)?;
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(owner), &mut buffer)
            .map_err(|_| SecretError::Open)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_twice_differs_and_both_open() {
        let key = SecretKey::from_bytes(&[1; 32]).unwrap();
        let a = key.seal(b"t/c", b"secret").unwrap();
        let b = key.seal(b"t/c", b"secret").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("secret"));
        assert_eq!(key.open(b"t/c", &a).unwrap(), b"secret");
        assert_eq!(key.open(b"t/c", &b).unwrap(), b"secret");
    }

    #[test]
    fn tampering_or_another_key_fails() {
        let key = SecretKey::from_bytes(&[1; 32]).unwrap();
        let sealed = key.seal(b"t/c", b"secret").unwrap();
        let other = SecretKey::from_bytes(&[2; 32]).unwrap();
        assert!(matches!(
            other.open(b"t/c", &sealed),
            Err(SecretError::Open)
        ));
        let mut bytes = BASE64.decode(&sealed[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:{}", BASE64.encode(bytes));
        assert!(matches!(
            key.open(b"t/c", &tampered),
            Err(SecretError::Open)
        ));
        assert!(matches!(key.open(b"t/c", "v2:abc"), Err(SecretError::Open)));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(SecretKey::from_base64(&BASE64.encode([9u8; 32])).is_ok());
        assert_eq!(
            format!("{:?}", SecretKey::from_bytes(&[3; 32]).unwrap()),
            "SecretKey(<redacted>)"
        );
    }
}
