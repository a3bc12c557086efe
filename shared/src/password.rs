//! Password hashing with argon2id at OWASP's recommended parameters
//! (19 MiB, 2 passes, 1 lane), off the async runtime in `spawn_blocking`.
//!
//! Unknown emails are checked against a dummy hash with the same parameters,
//! so a miss costs the same time as a wrong password.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;
use crate::error::ApiError;

/// OWASP Password Storage Cheat Sheet, argon2id option 2: m=19 MiB, t=2, p=1.
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// A PHC string with exactly the parameters above (a unit test holds the two
/// together) whose salt and digest are random bytes, so no password matches
/// it. Verifying against it costs what verifying a real user's hash costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$jMkXwS9xQ1mlzCkGqqMDJQ$Jk/bXDIG9MgqvWJUeBLxLcbp8AU63IQWCzm8ILUOJUc";

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC-format argon2id hash, as stored on a user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl PasswordHashString {
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes a new password with a fresh random salt.
pub async fn hash_password(password: Password) -> Result<PasswordHashString, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&crate::crypto::random_bytes(16)).expect("16 bytes is a valid salt");
        argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| PasswordHashString(hash.to_string()))
            .map_err(|err| ApiError::Internal(format!("argon2 hashing failed: {err}").into()))
    })
    .await
    .map_err(|err| ApiError::Internal(Box::new(err)))?
}

/// Checks `password` against `stored`, or against the dummy hash when there
/// is no such user, taking the same time either way. True only for a real
/// hash that matches.
pub async fn verify_password(password: Password, stored: Option<PasswordHashString>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let is_real = stored.is_some();
        let phc = stored.map_or_else(|| DUMMY_HASH.to_owned(), |h| h.0);
        let Ok(parsed) = PasswordHash::new(&phc) else {
            // A corrupt stored hash: still spend the time, then refuse.
            let dummy = PasswordHash::new(DUMMY_HASH).expect("dummy hash parses");
            let _ = argon2().verify_password(password.expose().as_bytes(), &dummy);
            return Err(ApiError::Internal("stored password hash is not a PHC string".into()));
        };
        let matches = argon2().verify_password(password.expose().as_bytes(), &parsed).is_ok();
        Ok(is_real && matches)
    })
    .await
    .map_err(|err| ApiError::Internal(Box::new(err)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::parse(text.to_owned()).expect("valid")
    }

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let hash = hash_password(password("correct horse")).await.expect("hashes");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
        assert!(verify_password(password("correct horse"), Some(hash.clone())).await.expect("verifies"));
        assert!(!verify_password(password("wrong horse"), Some(hash)).await.expect("verifies"));
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        assert!(!verify_password(password("anything"), None).await.expect("runs"));
    }

    #[test]
    fn dummy_hash_has_the_live_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("parses");
        let params = Params::try_from(&parsed).expect("argon2 params");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (MEMORY_KIB, ITERATIONS, PARALLELISM));
    }

    #[tokio::test]
    async fn corrupt_stored_hashes_are_internal_errors() {
        let err = verify_password(password("x"), Some(PasswordHashString::from_stored("plain".into())))
            .await
            .expect_err("refused");
        assert_eq!(err.error_code(), "server_error");
    }
}
