//! Symmetric crypto: the sealing key and the keys derived from it, sealing of
//! secrets at rest (AES-256-GCM), keyed hashes, and randomness.
//!
//! One 32-byte sealing key comes from the environment. Every purpose gets its
//! own subkey through HKDF-SHA256 with a distinct label, so a sealed signing
//! key, a refresh-token MAC and a throttle-counter key never share a key.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// 128 random bits as 26 lower-case base32 characters (RFC 4648 alphabet),
/// for identifiers that must be unguessable and URL- and key-safe.
pub fn random_id() -> String {
    base32(u128::from_be_bytes(random_bytes(16).try_into().expect("16 bytes")))
}

/// 128 bits as 26 lower-case base32 characters.
pub fn base32(value: u128) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..26u32).rev().map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize])).collect()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        use fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// URL-safe base64 without padding, the encoding of every token we mint.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

/// The deployment's root secret. Never logged, never stored.
#[derive(Clone)]
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// Accepts standard or URL-safe base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| "must be base64")?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| "must decode to exactly 32 bytes")?;
        Ok(Self(Zeroizing::new(key)))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// A 32-byte subkey for one purpose.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"latchkey/v1"), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(label.as_bytes(), out.as_mut_slice()).expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.derive("seal/aes-256-gcm"))
    }

    pub fn mac_key(&self, label: &str) -> MacKey {
        MacKey(self.derive(label))
    }
}

/// Why an unseal failed: wrong key, tampered blob, or a blob for another
/// record (the associated data binds each blob to its record).
#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened (wrong sealing key, or tampered)")]
pub struct UnsealError;

/// AES-256-GCM with a random 96-bit nonce per message.
/// Layout: `version (1) || nonce (12) || ciphertext+tag`.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer")
    }
}

const SEAL_VERSION: u8 = 1;

impl Sealer {
    fn new(key: &[u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(key.into()) }
    }

    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 12] = random_bytes(12).try_into().expect("12 bytes");
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), Payload { msg: plaintext, aad: associated_data })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + 12 + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn unseal(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
        if sealed.len() < 1 + 12 + 16 || sealed[0] != SEAL_VERSION {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| UnsealError)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: associated_data })
            .map(Zeroizing::new)
            .map_err(|_| UnsealError)
    }
}

/// An HMAC-SHA256 key for one purpose.
pub struct MacKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey([redacted])")
    }
}

impl Clone for MacKey {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl MacKey {
    /// Reads a key exported with [`MacKey::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        SealingKey::from_base64(text).map(|key| Self(key.0))
    }

    /// Standard base64 of the key, for handing one purpose's key (and only
    /// it) to another system.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.as_slice())
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(self.0.as_slice()).expect("HMAC accepts any key length")
    }

    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            // Length-prefix each part so ("ab","c") and ("a","bc") differ.
            mac.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of a presented tag.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        let expected = self.sign(parts);
        tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
    }

    /// Hex of a keyed hash: a stable, non-reversible lookup key.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        hex(&self.sign(&[value])[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_bytes([7u8; 32])
    }

    #[test]
    fn seal_round_trips_and_binds_associated_data() {
        let sealer = key().sealer();
        let blob = sealer.seal(b"private key", b"kid-1");
        assert_eq!(sealer.unseal(&blob, b"kid-1").expect("opens").as_slice(), b"private key");
        assert!(sealer.unseal(&blob, b"kid-2").is_err(), "blob moved to another record");
        let mut tampered = blob.clone();
        *tampered.last_mut().expect("non-empty") ^= 1;
        assert!(sealer.unseal(&tampered, b"kid-1").is_err());
        assert!(SealingKey::from_bytes([8u8; 32]).sealer().unseal(&blob, b"kid-1").is_err());
        assert!(sealer.unseal(&blob[..10], b"kid-1").is_err());
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let sealer = key().sealer();
        assert_ne!(sealer.seal(b"x", b""), sealer.seal(b"x", b""));
    }

    #[test]
    fn derived_keys_differ_by_label() {
        assert_ne!(*key().derive("a"), *key().derive("b"));
        assert_eq!(*key().derive("a"), *key().derive("a"));
    }

    #[test]
    fn mac_verifies_in_constant_time_and_rejects_changes() {
        let mac = key().mac_key("test");
        let tag = mac.sign(&[b"family", b"1"]);
        assert!(mac.verify(&[b"family", b"1"], &tag));
        assert!(!mac.verify(&[b"family", b"2"], &tag));
        assert!(!mac.verify(&[b"famil", b"y1"], &tag));
        assert!(!mac.verify(&[b"family", b"1"], &tag[..31]));
    }

    #[test]
    fn sealing_key_parses_both_base64_alphabets() {
        let std = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let url = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        assert_eq!(*SealingKey::from_base64(std).expect("std").0, *SealingKey::from_base64(url).expect("url").0);
        assert!(SealingKey::from_base64("not base64!").is_err());
        assert!(SealingKey::from_base64("c2hvcnQ=").is_err());
    }
}
