//! Opaque refresh tokens derived from (family, generation) with an HMAC.
//!
//! A token is `rt_` + base64url(family id (16 B) ‖ generation (8 B, BE) ‖
//! claims length (2 B, BE) ‖ claims ‖ HMAC-SHA256(key, all of that) (32 B)).
//! Nothing about it is stored: the table keeps only the family's current
//! generation, and the server re-derives any generation's token from the
//! key. So a successful refresh is one conditional write, a forged token is
//! refused without touching DynamoDB, and a dump of the table yields no
//! usable token.
//!
//! The claims are the family's `sub`, `tid`, `scope` and `client_id`, fixed
//! at login and also in every access token the family gets. Carrying them
//! (under the MAC) lets a refresh sign its access token while the
//! `UpdateItem` is in flight; the result is used only if the family the
//! write returns has the same claims. Claims longer than
//! [`MAX_EMBEDDED_CLAIMS`] are left out and the refresh signs afterwards.
//!
//! The key is derived from the sealing key and the stage, so a token of one
//! environment is refused by the other.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{MacKey, SealingKey, b64url, b64url_decode, base32, random_bytes};
use crate::domain::{Principal, Stage};

pub const PREFIX: &str = "rt_";
const FAMILY_LEN: usize = 16;
const GENERATION_LEN: usize = 8;
const LENGTH_LEN: usize = 2;
const TAG_LEN: usize = 32;
const FIXED_LEN: usize = FAMILY_LEN + GENERATION_LEN + LENGTH_LEN + TAG_LEN;
/// Longest claims encoding carried in a token.
pub const MAX_EMBEDDED_CLAIMS: usize = 512;
/// Longest token text `open` looks at.
const MAX_TOKEN_CHARS: usize = PREFIX.len() + (FIXED_LEN + MAX_EMBEDDED_CLAIMS).div_ceil(3) * 4;

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

/// A refresh token whose MAC checked out: which family and generation, and
/// the claims it carries, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenClaim {
    pub family: FamilyId,
    pub generation: u64,
    pub claims: Option<Principal>,
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

    fn tag(&self, family: FamilyId, generation: [u8; GENERATION_LEN], claims: &[u8]) -> [u8; 32] {
        self.key.sign(&[&family.0, &generation, claims])
    }

    /// The token for `generation` of `family`, carrying `claims` when they fit.
    pub fn mint(&self, family: FamilyId, generation: u64, claims: &Principal) -> SecretString {
        // A tuple keeps the encoding short: ["usr_…","acme","read write",null].
        let mut encoded = serde_json::to_vec(&(&claims.sub, &claims.tenant_id, &claims.scope, &claims.client_id))
            .expect("strings always serialise");
        if encoded.len() > MAX_EMBEDDED_CLAIMS {
            encoded.clear();
        }
        let generation = generation.to_be_bytes();
        let mut raw = Vec::with_capacity(FIXED_LEN + encoded.len());
        raw.extend_from_slice(&family.0);
        raw.extend_from_slice(&generation);
        raw.extend_from_slice(&u16::try_from(encoded.len()).unwrap_or(0).to_be_bytes());
        raw.extend_from_slice(&encoded);
        raw.extend_from_slice(&self.tag(family, generation, &encoded));
        format!("{PREFIX}{}", b64url(&raw)).into()
    }

    /// Checks the token's shape and MAC (constant time); `None` for anything
    /// we did not mint.
    pub fn open(&self, presented: &SecretString) -> Option<RefreshTokenClaim> {
        let text = presented.expose_secret();
        if text.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let raw = b64url_decode(text.strip_prefix(PREFIX)?)?;
        if raw.len() < FIXED_LEN {
            return None;
        }
        let (family, rest) = raw.split_at(FAMILY_LEN);
        let (generation, rest) = rest.split_at(GENERATION_LEN);
        let (length, rest) = rest.split_at(LENGTH_LEN);
        let length = usize::from(u16::from_be_bytes(length.try_into().ok()?));
        if rest.len() != length + TAG_LEN || length > MAX_EMBEDDED_CLAIMS {
            return None;
        }
        let (encoded, tag) = rest.split_at(length);
        let family = FamilyId(family.try_into().ok()?);
        let generation: [u8; GENERATION_LEN] = generation.try_into().ok()?;
        if !self.key.verify(&[&family.0, &generation, encoded], tag) {
            return None;
        }
        let claims = serde_json::from_slice::<(String, String, String, Option<String>)>(encoded)
            .ok()
            .map(|(sub, tenant_id, scope, client_id)| Principal { sub, tenant_id, scope, client_id });
        Some(RefreshTokenClaim { family, generation: u64::from_be_bytes(generation), claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(stage: Stage) -> RefreshTokenCodec {
        RefreshTokenCodec::new(&SealingKey::from_bytes([3u8; 32]), stage)
    }

    fn claims() -> Principal {
        Principal { sub: "usr_abc".into(), tenant_id: "acme".into(), scope: "read write".into(), client_id: None }
    }

    #[test]
    fn minted_tokens_open_to_their_family_generation_and_claims() {
        let family = FamilyId::generate();
        let token = codec(Stage::Test).mint(family, 7, &claims());
        assert!(token.expose_secret().starts_with("rt_"));
        assert_eq!(
            codec(Stage::Test).open(&token),
            Some(RefreshTokenClaim { family, generation: 7, claims: Some(claims()) })
        );
        assert_eq!(
            codec(Stage::Test).mint(family, 7, &claims()).expose_secret(),
            token.expose_secret(),
            "deterministic"
        );
        assert_ne!(codec(Stage::Test).mint(family, 8, &claims()).expose_secret(), token.expose_secret());
    }

    #[test]
    fn oversized_claims_are_left_out_but_the_token_still_works() {
        let family = FamilyId::generate();
        let big = Principal { scope: "s".repeat(MAX_EMBEDDED_CLAIMS), ..claims() };
        let token = codec(Stage::Test).mint(family, 1, &big);
        assert_eq!(codec(Stage::Test).open(&token), Some(RefreshTokenClaim { family, generation: 1, claims: None }));
    }

    #[test]
    fn tokens_of_another_stage_or_key_or_tampered_are_refused() {
        let token = codec(Stage::Test).mint(FamilyId::generate(), 0, &claims());
        assert_eq!(codec(Stage::Live).open(&token), None);
        let other_key = RefreshTokenCodec::new(&SealingKey::from_bytes([4u8; 32]), Stage::Test);
        assert_eq!(other_key.open(&token), None);

        // Flip every character in turn: no change survives the MAC.
        let text = token.expose_secret().to_owned();
        for i in PREFIX.len()..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = chars.into_iter().collect();
            assert_eq!(codec(Stage::Test).open(&tampered.into()), None, "position {i}");
        }
        for junk in
            ["", "rt_", "rt_abc", "xx_", &format!("{text}A"), &text.replacen("rt_", "at_", 1), &"A".repeat(5000)]
        {
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
