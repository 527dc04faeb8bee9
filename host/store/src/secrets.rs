//! Secrets at rest, and keeping them out of logs.
//!
//! Connection secrets (API tokens, OAuth refresh tokens, webhook secrets) are
//! stored sealed with the host's master key: XChaCha20-Poly1305 with a random
//! 192-bit nonce per seal, which is large enough that random nonces never
//! repeat in practice. A sealed value is text:
//!
//! ```text
//! v1:<key id>:<base64(nonce || ciphertext || tag)>
//! ```
//!
//! The key id (8 hex digits of a hash of the key, revealing nothing usable
//! about it) lets [`SecretBox::open`] tell "sealed under another key" apart
//! from "altered", and leaves room for key rotation. Version and key id are
//! authenticated along with the ciphertext.
//!
//! [`Redacted`] wraps a value so that `Debug`, `Display` and `Serialize`
//! print `<redacted>`.
//!
//! ```
//! use junction_store::secrets::{SecretBox, generate_key};
//!
//! let sealer = SecretBox::from_config(&generate_key())?;
//! let sealed = sealer.seal(b"xoxb-slack-token");
//! assert!(sealed.starts_with("v1:"));
//! assert_eq!(sealer.open(&sealed)?, b"xoxb-slack-token");
//! # Ok::<(), junction_store::secrets::SecretError>(())
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The version prefix of values sealed by this module.
const VERSION: &str = "v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What [`Redacted`] prints and serializes as.
pub const REDACTED: &str = "<redacted>";

/// Why a key could not be loaded or a sealed secret could not be opened.
/// No message contains key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The configured master key is not base64 of exactly 32 bytes.
    #[error(
        "invalid secrets key: {reason}; expected standard base64 of exactly 32 random bytes \
         (44 characters ending in '='), e.g. from `openssl rand -base64 32`"
    )]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The value does not start with a version this host can open (it may
    /// be plaintext that was never sealed).
    #[error("not a sealed secret: expected the prefix `v1:<key id>:`")]
    UnsupportedVersion,
    /// The value has the right prefix but cannot be parsed.
    #[error("sealed secret is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The value was sealed under a different master key.
    #[error(
        "secret was sealed with a different key (key id {sealed_with}, this host's key id is \
         {current}); configure the key it was sealed with"
    )]
    WrongKey {
        /// The key id recorded in the sealed value.
        sealed_with: String,
        /// The key id of the key this box holds.
        current: String,
    },
    /// Authentication failed: the ciphertext was altered or corrupted.
    #[error("sealed secret failed authentication: it was altered or corrupted")]
    Tampered,
}

/// Seals and opens secrets with one 256-bit master key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    key_id: String,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.key_id)
            .field("key", &REDACTED)
            .finish()
    }
}

impl SecretBox {
    /// A box for `key`.
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        let key_id = key_id(&key);
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
            key_id,
        }
    }

    /// A box for a key written as in configuration: standard base64 of 32
    /// bytes (surrounding whitespace is ignored), as [`generate_key`] makes.
    pub fn from_config(text: &str) -> Result<Self, SecretError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretError::InvalidKey {
                reason: "not valid base64".into(),
            })?;
        let key: [u8; KEY_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::InvalidKey {
                    reason: format!("decodes to {} bytes, not {KEY_LEN}", bytes.len()),
                })?;
        Ok(Self::new(key))
    }

    /// The id of this box's key as recorded in sealed values (8 hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext` under a fresh random nonce; sealing the same
    /// plaintext twice gives different output.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, or the
    /// plaintext exceeds XChaCha20-Poly1305's limit of 256 GiB.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        self.seal_with_context(plaintext, "")
    }

    /// As [`seal`](Self::seal), binding the value to `context` (say, where it
    /// is stored): [`open_with_context`](Self::open_with_context) under any
    /// other context fails as [`SecretError::Tampered`], so a sealed value
    /// copied to another place does not open there. The context is
    /// authenticated, not stored.
    ///
    /// # Panics
    ///
    /// As [`seal`](Self::seal).
    pub fn seal_with_context(&self, plaintext: &[u8], context: &str) -> String {
        let nonce = XNonce::generate();
        let prefix = self.prefix();
        let aad = format!("{prefix}{context}");
        let ciphertext = match self.cipher.encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        ) {
            Ok(ciphertext) => ciphertext,
            Err(_) => panic!("secret of {} bytes is too large to seal", plaintext.len()),
        };
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!("{prefix}{}", BASE64.encode(blob))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with this key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        self.open_with_context(sealed, "")
    }

    /// Decrypts a value made by [`seal_with_context`](Self::seal_with_context)
    /// with this key and the same `context`.
    pub fn open_with_context(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let rest = sealed
            .trim()
            .strip_prefix(VERSION)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or(SecretError::UnsupportedVersion)?;
        let (key_id, payload) = rest.split_once(':').ok_or(SecretError::Malformed {
            reason: "missing key id",
        })?;
        if key_id.len() != 8 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecretError::Malformed {
                reason: "key id is not 8 hex digits",
            });
        }
        if key_id != self.key_id {
            return Err(SecretError::WrongKey {
                sealed_with: key_id.to_owned(),
                current: self.key_id.clone(),
            });
        }
        let blob = BASE64.decode(payload).map_err(|_| SecretError::Malformed {
            reason: "payload is not valid base64",
        })?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed {
                reason: "payload is too short",
            });
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Malformed {
            reason: "payload is too short",
        })?;
        let aad = format!("{}{context}", self.prefix());
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)
    }

    /// Whether `value` looks like something [`seal`](Self::seal) made (by any
    /// key), as opposed to plaintext that was never sealed.
    pub fn is_sealed(value: &str) -> bool {
        value
            .trim()
            .strip_prefix(VERSION)
            .is_some_and(|rest| rest.starts_with(':'))
    }

    /// The prefix of every sealed value, authenticated with it: `v1:<key id>:`.
    fn prefix(&self) -> String {
        format!("{VERSION}:{}:", self.key_id)
    }
}

/// A new random master key, in the form [`SecretBox::from_config`] reads.
///
/// # Panics
///
/// If the operating system's random number generator fails.
pub fn generate_key() -> String {
    BASE64.encode(<[u8; KEY_LEN]>::generate())
}

/// A short public identifier of `key`: a domain-separated SHA-256, truncated.
fn key_id(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"junction secretbox key id v1\0")
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..4])
}

/// A value that must not appear in logs or API responses: `Debug`, `Display`
/// and `Serialize` all print `<redacted>`. Reach the value with
/// [`expose`](Self::expose) where it is really needed.
///
/// Deserializing reads the inner value as usual, so configuration and request
/// bodies can carry secrets straight into a `Redacted`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Every use is a place where the secret can leak,
    /// so keep them few.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Redacted<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Redacted<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> SecretBox {
        SecretBox::new([7; KEY_LEN])
    }

    #[test]
    fn round_trip() {
        let b = sealer();
        for plaintext in [
            &b""[..],
            b"hunter2",
            &[0u8, 255, 10, 13][..],
            &[b'x'; 10_000][..],
        ] {
            let sealed = b.seal(plaintext);
            assert!(
                sealed.starts_with(&format!("v1:{}:", b.key_id())),
                "{sealed}"
            );
            assert_eq!(b.open(&sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let b = sealer();
        let one = b.seal(b"same");
        let two = b.seal(b"same");
        assert_ne!(one, two);
        // The nonces themselves differ, not just the ciphertexts.
        let nonce =
            |s: &str| BASE64.decode(s.rsplit(':').next().unwrap()).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&one), nonce(&two));
        assert!(!one.contains("same"));
    }

    #[test]
    fn tampering_is_detected() {
        let b = sealer();
        let sealed = b.seal(b"api-token-123");
        let (prefix, payload) = sealed.rsplit_once(':').unwrap();
        let blob = BASE64.decode(payload).unwrap();
        // Flip one bit in the nonce, the ciphertext and the tag in turn.
        for index in [0, NONCE_LEN, blob.len() - 1] {
            let mut altered = blob.clone();
            altered[index] ^= 1;
            let forged = format!("{prefix}:{}", BASE64.encode(&altered));
            assert_eq!(b.open(&forged), Err(SecretError::Tampered), "byte {index}");
        }
        // Truncation.
        let short = format!("{prefix}:{}", BASE64.encode(&blob[..blob.len() - 1]));
        assert_eq!(b.open(&short), Err(SecretError::Tampered));
        let tiny = format!("{prefix}:{}", BASE64.encode(&blob[..NONCE_LEN]));
        assert!(matches!(b.open(&tiny), Err(SecretError::Malformed { .. })));
        let not_b64 = format!("{prefix}:!!!");
        assert!(matches!(
            b.open(&not_b64),
            Err(SecretError::Malformed { .. })
        ));
    }

    #[test]
    fn wrong_key_is_reported_as_such() {
        let sealed = sealer().seal(b"token");
        let other = SecretBox::new([8; KEY_LEN]);
        let err = other.open(&sealed).unwrap_err();
        assert_eq!(
            err,
            SecretError::WrongKey {
                sealed_with: sealer().key_id().to_owned(),
                current: other.key_id().to_owned(),
            }
        );
        assert!(err.to_string().contains("different key"));
    }

    #[test]
    fn context_binds_the_value() {
        let b = sealer();
        let sealed = b.seal_with_context(b"token", "connections/a/auth");
        assert_eq!(
            b.open_with_context(&sealed, "connections/a/auth").unwrap(),
            b"token"
        );
        for other in ["connections/b/auth", "connections/a/webhook", ""] {
            assert_eq!(
                b.open_with_context(&sealed, other),
                Err(SecretError::Tampered),
                "{other}"
            );
        }
        assert_eq!(b.open(&sealed), Err(SecretError::Tampered));
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!SecretBox::is_sealed(r#"{"type":"bearer","token":"t"}"#));
        assert!(!SecretBox::is_sealed("v1"));
    }

    #[test]
    fn bad_prefix() {
        let b = sealer();
        let sealed = b.seal(b"token");
        for value in [
            "plaintext-password".to_string(),
            sealed.replacen("v1:", "v2:", 1),
            sealed.replacen("v1:", "", 1),
            String::new(),
        ] {
            let err = b.open(&value).unwrap_err();
            assert_eq!(err, SecretError::UnsupportedVersion, "{value}");
            // The message never echoes the value (it may be a plaintext secret).
            assert!(!err.to_string().contains("plaintext-password"));
        }
        assert!(matches!(
            b.open("v1:nothex!!:AAAA"),
            Err(SecretError::Malformed { .. })
        ));
        assert!(matches!(
            b.open("v1:AAAA"),
            Err(SecretError::Malformed { .. })
        ));
    }

    #[test]
    fn key_from_config() {
        let text = generate_key();
        assert_eq!(BASE64.decode(&text).unwrap().len(), KEY_LEN);
        assert_ne!(generate_key(), text);
        let b = SecretBox::from_config(&format!("  {text}\n")).unwrap();
        assert_eq!(b.open(&b.seal(b"x")).unwrap(), b"x");
        // Same key, same id: values survive a restart.
        assert_eq!(SecretBox::from_config(&text).unwrap().key_id(), b.key_id());

        let err = SecretBox::from_config("c2hvcnQ=").unwrap_err();
        assert!(
            err.to_string().contains("decodes to 5 bytes, not 32"),
            "{err}"
        );
        assert!(err.to_string().contains("base64 of exactly 32"), "{err}");
        let err = SecretBox::from_config("not base64 at all").unwrap_err();
        assert!(matches!(err, SecretError::InvalidKey { .. }));
        assert!(!format!("{b:?}").contains(&text));
    }

    #[test]
    fn redacted_hides_value() {
        let secret = Redacted::new("sk_live_abc".to_string());
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        #[derive(Serialize, Deserialize, Debug)]
        struct Conn {
            name: String,
            token: Redacted<String>,
        }
        let conn = Conn {
            name: "stripe".into(),
            token: secret.clone(),
        };
        assert!(!format!("{conn:?}").contains("sk_live"));
        assert_eq!(
            serde_json::to_string(&conn).unwrap(),
            r#"{"name":"stripe","token":"<redacted>"}"#
        );
        assert_eq!(
            serde_json::to_string(secret.expose()).unwrap(),
            r#""sk_live_abc""#
        );
        let parsed: Conn = serde_json::from_str(r#"{"name":"s","token":"sk_test_1"}"#).unwrap();
        assert_eq!(parsed.token.into_inner(), "sk_test_1");
    }
}
