//! Opaque refresh tokens derived from (family, generation) with an HMAC.
//!
//! A token is `rt_` + base64url(family id (16 B) ‖ generation (8 B, BE) ‖
//! HMAC-SHA256(key, family ‖ generation) (32 B)), 75 characters. Nothing
//! about it is stored: the table keeps only the family's current generation,
//! and the server re-derives any generation's token from the key. So a
//! successful refresh is one conditional write, a forged token is refused
//! without touching DynamoDB, and a dump of the table yields no usable token.
//!
//! The key is derived from the sealing key and the stage, so a token of one
//! environment is refused by the other.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{MacKey, SealingKey, b64url, b64url_decode, base32, random_bytes};
use crate::domain::Stage;

pub const PREFIX: &str = "rt_";
const FAMILY_LEN: usize = 16;
const GENERATION_LEN: usize = 8;
const TAG_LEN: usize = 32;
const RAW_LEN: usize = FAMILY_LEN + GENERATION_LEN + TAG_LEN;

/// One login session: every refresh token it ever issues shares this id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId([u8; FAMILY_LEN]);

impl FamilyId {
    pub fn generate() -> Self {
        Self(random_bytes(FAMILY_LEN).try_into().expect("16 bytes"))
    }

    /// The id as stored in the table's key.
    pub fn to_key_string(self) -> String {
        base32(u128::from_be_bytes(self.0))
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyId({})", self.to_key_string())
    }
}

/// A refresh token whose MAC checked out: which family and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenClaim {
    pub family: FamilyId,
    pub generation: u64,
}

/// Mints and opens refresh tokens for one stage.
pub struct RefreshTokenCodec {
    key: MacKey,
}

impl fmt::Debug for RefreshTokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenCodec")
    }
}

impl RefreshTokenCodec {
    pub fn new(sealing_key: &SealingKey, stage: Stage) -> Self {
        Self { key: sealing_key.mac_key(&format!("refresh-token/v1/{stage}")) }
    }

    fn tag(&self, family: FamilyId, generation: u64) -> [u8; 32] {
        self.key.sign(&[&family.0, &generation.to_be_bytes()])
    }

    /// The token for `generation` of `family`.
    pub fn mint(&self, family: FamilyId, generation: u64) -> SecretString {
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(&family.0);
        raw.extend_from_slice(&generation.to_be_bytes());
        raw.extend_from_slice(&self.tag(family, generation));
        format!("{PREFIX}{}", b64url(&raw)).into()
    }

    /// Checks the token's shape and MAC (constant time); `None` for anything
    /// we did not mint.
    pub fn open(&self, presented: &SecretString) -> Option<RefreshTokenClaim> {
        let body = presented.expose_secret().strip_prefix(PREFIX)?;
        if body.len() != (RAW_LEN * 4).div_ceil(3) {
            return None;
        }
        let raw = b64url_decode(body)?;
        if raw.len() != RAW_LEN {
            return None;
        }
        let family = FamilyId(raw[..FAMILY_LEN].try_into().ok()?);
        let generation_bytes: [u8; GENERATION_LEN] = raw[FAMILY_LEN..FAMILY_LEN + GENERATION_LEN].try_into().ok()?;
        let tag = &raw[FAMILY_LEN + GENERATION_LEN..];
        if !self.key.verify(&[&family.0, &generation_bytes], tag) {
            return None;
        }
        Some(RefreshTokenClaim { family, generation: u64::from_be_bytes(generation_bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(stage: Stage) -> RefreshTokenCodec {
        RefreshTokenCodec::new(&SealingKey::from_bytes([3u8; 32]), stage)
    }

    #[test]
    fn minted_tokens_open_to_their_family_and_generation() {
        let family = FamilyId::generate();
        let token = codec(Stage::Test).mint(family, 7);
        assert!(token.expose_secret().starts_with("rt_"));
        assert_eq!(token.expose_secret().len(), 3 + 75);
        assert_eq!(codec(Stage::Test).open(&token), Some(RefreshTokenClaim { family, generation: 7 }));
        assert_eq!(codec(Stage::Test).mint(family, 7).expose_secret(), token.expose_secret(), "deterministic");
        assert_ne!(codec(Stage::Test).mint(family, 8).expose_secret(), token.expose_secret());
    }

    #[test]
    fn tokens_of_another_stage_or_key_or_tampered_are_refused() {
        let token = codec(Stage::Test).mint(FamilyId::generate(), 0);
        assert_eq!(codec(Stage::Live).open(&token), None);
        let other_key = RefreshTokenCodec::new(&SealingKey::from_bytes([4u8; 32]), Stage::Test);
        assert_eq!(other_key.open(&token), None);

        let text = token.expose_secret();
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() - 5;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(codec(Stage::Test).open(&tampered.into()), None);
        for junk in ["", "rt_", "rt_abc", "xx_", &format!("{text}A"), &text.replacen("rt_", "at_", 1)] {
            assert_eq!(codec(Stage::Test).open(&junk.to_owned().into()), None, "{junk:?}");
        }
    }

    #[test]
    fn family_ids_are_unique_and_key_safe() {
        let a = FamilyId::generate();
        assert_ne!(a, FamilyId::generate());
        assert_eq!(a.to_key_string().len(), 26);
        assert!(a.to_key_string().bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
