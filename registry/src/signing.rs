//! Ed25519 keys for signing packages, and the set of keys a host trusts.
//!
//! A public key is written `ed25519:<base64 of its 32 bytes>`; its key id is
//! the first 16 hex characters of sha256 of those 32 bytes. A signing key is
//! kept in a text file:
//!
//! ```text
//! -----BEGIN JUNCTION ED25519 SIGNING KEY-----
//! <base64 of the 32-byte secret seed>
//! -----END JUNCTION ED25519 SIGNING KEY-----
//! ```
//!
//! ```
//! use junction_registry::{PublicKey, SigningKey, TrustedKeys};
//!
//! let key = SigningKey::generate();
//! let public = key.public_key().to_string();
//! assert!(public.starts_with("ed25519:"));
//! let trusted = TrustedKeys::parse([public.as_str()]).unwrap();
//! assert!(trusted.get(&key.key_id()).is_some());
//! let again = SigningKey::from_text(&key.to_text()).unwrap();
//! assert_eq!(again.public_key(), key.public_key());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

/// The only signature algorithm there is, as written in `signature.toml`.
pub const ALGORITHM: &str = "ed25519";

const PEM_BEGIN: &str = "-----BEGIN JUNCTION ED25519 SIGNING KEY-----";
const PEM_END: &str = "-----END JUNCTION ED25519 SIGNING KEY-----";

/// Why a key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A public key is not `ed25519:<base64>` of 32 bytes.
    #[error("{0:?} is not a public key; expected `ed25519:<base64 of 32 bytes>`")]
    BadPublicKey(String),
    /// A signing key file does not hold a base64 32-byte seed.
    #[error("not a Junction signing key: {0}")]
    BadSigningKey(String),
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A public key that can check package signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// The key id: the first 16 hex characters of sha256 of the key's bytes.
    pub fn key_id(&self) -> String {
        let hash = hex::encode(Sha256::digest(self.0.as_bytes()));
        hash[..16].to_string()
    }

    /// Whether `signature` is this key's signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // Strict: refuses weak keys and malleable signatures.
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{}", BASE64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        let bad = || KeyError::BadPublicKey(text.to_string());
        let encoded = text.trim().strip_prefix("ed25519:").ok_or_else(bad)?;
        let bytes: [u8; 32] = BASE64
            .decode(encoded)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| bad())
    }
}

/// A secret key that signs packages. Its `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key id of its public half.
    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// The 64-byte signature of `message`.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }

    /// The key as the text of a key file (see the module docs).
    pub fn to_text(&self) -> String {
        format!(
            "{PEM_BEGIN}\n{}\n{PEM_END}\n",
            BASE64.encode(self.0.to_bytes())
        )
    }

    /// Reads the text of a key file, or a bare base64 seed.
    pub fn from_text(text: &str) -> Result<SigningKey, KeyError> {
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("-----"))
            .collect();
        let begins = text.trim_start().starts_with(PEM_BEGIN) == text.contains(PEM_END);
        if !begins {
            return Err(KeyError::BadSigningKey(
                "the BEGIN and END lines do not match".into(),
            ));
        }
        let seed: [u8; 32] = BASE64
            .decode(body.as_bytes())
            .map_err(|e| KeyError::BadSigningKey(format!("bad base64: {e}")))?
            .try_into()
            .map_err(|b: Vec<u8>| {
                KeyError::BadSigningKey(format!("the seed is {} bytes, not 32", b.len()))
            })?;
        Ok(SigningKey::from_seed(seed))
    }

    /// Writes the key file, readable by its owner only (on Unix). An existing
    /// file is not overwritten.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads a key file written by [`SigningKey::save`].
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        SigningKey::from_text(&text)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey {{ key_id: {} }}", self.key_id())
    }
}

/// The public keys whose signatures a host accepts, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(BTreeMap<String, PublicKey>);

impl TrustedKeys {
    /// No trusted keys.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Parses `ed25519:<base64>` strings; refuses the first bad one.
    pub fn parse<I, S>(keys: I) -> Result<TrustedKeys, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut trusted = TrustedKeys::new();
        for key in keys {
            trusted.insert(key.as_ref().parse()?);
        }
        Ok(trusted)
    }

    /// Trusts `key`.
    pub fn insert(&mut self, key: PublicKey) {
        self.0.insert(key.key_id(), key);
    }

    /// The trusted key with this id, if any.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.0.get(key_id)
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trusted keys, ordered by key id.
    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_a_sha256_prefix_of_the_public_key() {
        let key = SigningKey::from_seed([7; 32]);
        let public = key.public_key();
        let expected = hex::encode(Sha256::digest(public.0.as_bytes()));
        assert_eq!(key.key_id(), expected[..16]);
        assert_eq!(key.key_id().len(), 16);
        assert_eq!(
            format!("{key:?}"),
            format!("SigningKey {{ key_id: {} }}", key.key_id())
        );
        assert!(!format!("{key:?}").contains(&BASE64.encode([7u8; 32])));
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_refused() {
        let public = SigningKey::generate().public_key();
        let text = public.to_string();
        assert_eq!(text.parse::<PublicKey>().unwrap(), public);
        for bad in [
            "",
            "ed25519:",
            "ed25519:not base64!",
            "rsa:AAAA",
            &text.replace("ed25519:", ""),
            "ed25519:AAAA",
        ] {
            let err = bad.parse::<PublicKey>().unwrap_err();
            assert!(matches!(err, KeyError::BadPublicKey(_)), "{bad}");
        }
        assert_eq!(
            "rsa:AAAA".parse::<PublicKey>().unwrap_err().to_string(),
            "\"rsa:AAAA\" is not a public key; expected `ed25519:<base64 of 32 bytes>`"
        );
    }

    #[test]
    fn signing_keys_round_trip_as_text_and_files() {
        let key = SigningKey::generate();
        let text = key.to_text();
        assert!(text.starts_with(PEM_BEGIN));
        assert_eq!(
            SigningKey::from_text(&text).unwrap().public_key(),
            key.public_key()
        );
        let bare = BASE64.encode(key.0.to_bytes());
        assert_eq!(
            SigningKey::from_text(&bare).unwrap().public_key(),
            key.public_key()
        );
        assert!(SigningKey::from_text("AAAA").is_err());
        assert!(SigningKey::from_text(&format!("{PEM_BEGIN}\n{bare}\n")).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        key.save(&path).unwrap();
        assert_eq!(
            SigningKey::load(&path).unwrap().public_key(),
            key.public_key()
        );
        assert!(matches!(key.save(&path), Err(KeyError::Io { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn signatures_verify_only_under_their_key_and_message() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let sig = key.sign_bytes(b"message");
        assert!(key.public_key().verifies(b"message", &sig));
        assert!(!key.public_key().verifies(b"messagf", &sig));
        assert!(!other.public_key().verifies(b"message", &sig));
        assert!(!key.public_key().verifies(b"message", &sig[..63]));
    }

    #[test]
    fn trusted_keys_are_found_by_id() {
        let a = SigningKey::generate();
        let b = SigningKey::generate();
        let trusted = TrustedKeys::parse([a.public_key().to_string()]).unwrap();
        assert!(trusted.get(&a.key_id()).is_some());
        assert!(trusted.get(&b.key_id()).is_none());
        assert_eq!(trusted.iter().count(), 1);
        assert!(TrustedKeys::parse(["nope"]).is_err());
        assert!(TrustedKeys::new().is_empty());
    }
}
