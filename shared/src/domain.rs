//! Domain newtypes: parse, don't validate. A value of one of these types has
//! already passed its checks, so code downstream never re-checks it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

/// Which deployment a credential belongs to. A credential of one stage is
/// refused by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Test,
    Live,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Test => "test",
            Stage::Live => "live",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(Stage::Test),
            "live" => Ok(Stage::Live),
            other => Err(format!("stage must be `test` or `live`, not `{other}`")),
        }
    }
}

/// A tenant's plan, which sets its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// Requests per hour; `None` is unlimited.
    pub fn hourly_limit(self) -> Option<u32> {
        match self {
            Plan::Free => Some(100),
            Plan::Pro => Some(1000),
            Plan::Enterprise => None,
        }
    }
}

impl FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "free" => Ok(Plan::Free),
            "pro" => Ok(Plan::Pro),
            "enterprise" => Ok(Plan::Enterprise),
            other => Err(format!("plan must be free, pro or enterprise, not `{other}`")),
        }
    }
}

/// A per-key rate limit set by an administrator, replacing the tenant's
/// plan limit for that key's requests (which then count on the key's own
/// counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitOverride {
    PerHour(u32),
    Unlimited,
}

impl RateLimitOverride {
    /// Requests per hour; `None` is unlimited.
    pub fn hourly_limit(self) -> Option<u32> {
        match self {
            RateLimitOverride::PerHour(limit) => Some(limit),
            RateLimitOverride::Unlimited => None,
        }
    }
}

impl fmt::Display for RateLimitOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitOverride::PerHour(limit) => write!(f, "{limit}/h"),
            RateLimitOverride::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for RateLimitOverride {
    type Err = String;
    /// `500`, `500/h` or `unlimited`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(RateLimitOverride::Unlimited);
        }
        let number = text.strip_suffix("/h").unwrap_or(text);
        match number.parse::<u32>() {
            Ok(limit) if limit > 0 => Ok(RateLimitOverride::PerHour(limit)),
            _ => Err(format!("rate limit must be a positive number of requests per hour or `unlimited`, not `{text}`")),
        }
    }
}

/// Why a piece of input was refused; the text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(text: impl Into<String>) -> InvalidInput {
    InvalidInput(text.into())
}

/// Implements Display/AsRef/serde for a string newtype whose constructor
/// validates, so that deserialising runs the same checks.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
    };
}

/// A tenant identifier: 1-64 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid("tenant id must be 1-64 characters of a-z, 0-9, '-', '_'"))
        }
    }
}
string_newtype!(TenantId);

/// A webhook source's name, the `{source}` of `/v1/webhooks/{source}`:
/// 1-64 of `a-z 0-9 - _`, starting with a letter or digit. Unique in a
/// deployment (the URL carries no tenant).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookSourceName(String);

impl WebhookSourceName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "webhook source name must be 1-64 characters of a-z, 0-9, '-', '_', starting with a letter or digit",
            ))
        }
    }
}
string_newtype!(WebhookSourceName);

/// A user identifier minted by Latchkey: `usr_` + 26 base32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn generate() -> Self {
        Self(format!("usr_{}", crate::crypto::random_id()))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.starts_with("usr_") && raw.len() <= 64 && raw.is_ascii() {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid("not a user id"))
        }
    }
}
string_newtype!(UserId);

fn is_base32_id(raw: &str) -> bool {
    raw.len() == 26 && raw.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// An API key's id: 26 lower-case base32 characters (128 random bits). Not
/// secret: it appears in the key string, in listings and as the `sub` and
/// `client_id` of the tokens the key gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub fn generate() -> Self {
        Self(crate::crypto::random_id())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if is_base32_id(raw) { Ok(Self(raw.to_owned())) } else { Err(invalid("not an API key id")) }
    }
}
string_newtype!(ApiKeyId);

/// An app's id (`X-App-Id`): `app_` + 26 base32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppId(String);

impl AppId {
    pub fn generate() -> Self {
        Self(format!("app_{}", crate::crypto::random_id()))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw.strip_prefix("app_") {
            Some(rest) if is_base32_id(rest) => Ok(Self(raw.to_owned())),
            _ => Err(invalid("not an app id")),
        }
    }
}
string_newtype!(AppId);

/// A human label for a key or an app: 1-100 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let label = raw.trim();
        if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(invalid("name must be 1-100 printable characters"));
        }
        Ok(Self(label.to_owned()))
    }
}
string_newtype!(Label);

/// An IPv4 or IPv6 network in CIDR notation; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let bad = || invalid(format!("`{}` is not an IP address or CIDR block", raw.escape_debug()));
        let (address, prefix) = if let Some((address, prefix)) = raw.trim().split_once('/') {
            let address: IpAddr = address.parse().map_err(|_| bad())?;
            let prefix: u8 = prefix.parse().map_err(|_| bad())?;
            (address, prefix)
        } else {
            let address: IpAddr = raw.trim().parse().map_err(|_| bad())?;
            (address, if address.is_ipv4() { 32 } else { 128 })
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        // Normalise to the network address, so `10.0.0.7/8` reads back `10.0.0.0/8`.
        let network = Self { address, prefix };
        Ok(Self { address: network.masked(address), prefix })
    }

    fn masked(self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `ip` is inside the network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) counts as its IPv4 address.
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        ip.is_ipv4() == self.address.is_ipv4() && self.masked(ip) == self.address
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// At most this many networks in one allow list.
pub const MAX_ALLOWED_IPS: usize = 32;

/// Parses an allow list; empty means "any address".
pub fn parse_allow_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<IpNetwork>, InvalidInput> {
    let networks = items.into_iter().map(IpNetwork::parse).collect::<Result<Vec<_>, _>>()?;
    if networks.len() > MAX_ALLOWED_IPS {
        return Err(invalid(format!("at most {MAX_ALLOWED_IPS} allowed_ips entries")));
    }
    Ok(networks)
}

/// An email address, trimmed and lower-cased. Emails are unique within a
/// deployment: login takes only an email and a password.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let email = raw.trim().to_lowercase();
        if email.len() > 254 {
            return Err(invalid("email is longer than 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("email must look like name@example.com"));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.is_empty()
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if well_formed { Ok(Self(email)) } else { Err(invalid("email must look like name@example.com")) }
    }
}
string_newtype!(Email);

/// A password as typed. Never logged: `Debug` is redacted by `secrecy`.
#[derive(Debug)]
pub struct Password(SecretString);

/// Passwords longer than this are refused before hashing (argon2 accepts any
/// length; the cap bounds the work an anonymous request can cause).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// OWASP ASVS v4 2.1.1 (NIST SP 800-63B asks for 8; ASVS for 12).
pub const MIN_NEW_PASSWORD_CHARS: usize = 12;

impl Password {
    /// A password presented at login: any non-empty string up to the cap.
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(invalid("password must not be empty"));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(invalid(format!("password is longer than {MAX_PASSWORD_BYTES} bytes")));
        }
        Ok(Self(raw.into()))
    }

    /// A password being set: also at least twelve characters.
    pub fn parse_new(raw: String) -> Result<Self, InvalidInput> {
        if raw.chars().count() < MIN_NEW_PASSWORD_CHARS {
            return Err(invalid(format!("password must be at least {MIN_NEW_PASSWORD_CHARS} characters")));
        }
        Self::parse(raw)
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Password::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Who an access token is for. Fixed for a refresh family's life, so a
/// refresh token can carry it (see [`crate::refresh_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub tenant_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The app or API key the token was issued to.
    pub client_id: Option<String>,
}

/// A set of OAuth scopes, kept sorted and de-duplicated; rendered
/// space-separated as the `scope` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Self::from_iter_checked(raw.split([' ', ',']).filter(|s| !s.is_empty()))
    }

    pub fn from_iter_checked<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidInput> {
        let mut scopes = Vec::new();
        for scope in items {
            // RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\'.
            let ok = (1..=128).contains(&scope.len())
                && scope.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
            if !ok {
                return Err(invalid(format!("invalid scope `{}`", scope.escape_debug())));
            }
            scopes.push(scope.to_owned());
        }
        scopes.sort();
        scopes.dedup();
        if scopes.len() > 64 {
            return Err(invalid("at most 64 scopes"));
        }
        Ok(Self(scopes))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every scope of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.iter().all(|scope| other.contains(scope))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").expect("valid").as_str(), "ada@example.com");
        for bad in ["", "ada", "@example.com", "ada@", "a@b@c", "ada @example.com", "ada@.com", "ada@com."] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_bounds() {
        assert!(Password::parse(String::new()).is_err());
        assert!(Password::parse("x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(Password::parse("short".into()).is_ok());
        assert!(Password::parse_new("short".into()).is_err());
        assert!(Password::parse_new("eleven char".into()).is_err());
        assert!(Password::parse_new("twelve chars".into()).is_ok());
        assert!(!format!("{:?}", Password::parse("hunter22".into()).expect("valid")).contains("hunter22"));
    }

    #[test]
    fn scopes_are_sorted_deduplicated_and_checked() {
        let scopes = Scopes::parse("write read,read").expect("valid");
        assert_eq!(scopes.to_string(), "read write");
        assert!(scopes.contains("write"));
        assert!(Scopes::parse("bad\"scope").is_err());
        assert!(Scopes::parse("").expect("empty is fine").is_empty());
    }

    #[test]
    fn tenant_ids_are_restricted() {
        assert!(TenantId::parse("acme-01").is_ok());
        for bad in ["", "Acme", "a b", "a#b", &"a".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn webhook_source_names_are_url_safe() {
        for good in ["stripe", "github-prod", "0day", "a_b"] {
            assert!(WebhookSourceName::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Stripe", "-x", "_x", "a/b", "a.b", "a%2f", &"a".repeat(65)] {
            assert!(WebhookSourceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ip_networks_match_their_addresses() {
        let net = IpNetwork::parse("10.1.2.3/8").expect("valid");
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains("10.200.0.1".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.0.0.9".parse().expect("ip")), "IPv4-mapped IPv6");
        let single = IpNetwork::parse("203.0.113.10").expect("valid");
        assert!(single.contains("203.0.113.10".parse().expect("ip")));
        assert!(!single.contains("203.0.113.11".parse().expect("ip")));
        let v6 = IpNetwork::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")));
        assert!(!v6.contains("10.0.0.1".parse().expect("ip")));
        assert!(IpNetwork::parse("0.0.0.0/0").expect("valid").contains("8.8.8.8".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0", "x/8", "10.0.0.0/", ""] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_have_one_shape() {
        let id = ApiKeyId::generate();
        assert_eq!(ApiKeyId::parse(id.as_str()), Ok(id));
        assert!(ApiKeyId::parse("UPPERCASE0000000000000000A").is_err());
        assert!(ApiKeyId::parse("abc").is_err());
        let app = AppId::generate();
        assert_eq!(AppId::parse(app.as_str()), Ok(app));
        assert!(AppId::parse("app_x").is_err());
        assert!(Label::parse("  ").is_err());
        assert_eq!(Label::parse(" CI deploys ").expect("valid").as_str(), "CI deploys");
    }

    #[test]
    fn enums_parse_their_spellings() {
        assert_eq!("live".parse::<Stage>(), Ok(Stage::Live));
        assert!("prod".parse::<Stage>().is_err());
        assert_eq!("pro".parse::<Plan>(), Ok(Plan::Pro));
        assert_eq!(Plan::Enterprise.hourly_limit(), None);
        assert_eq!(Plan::Free.hourly_limit(), Some(100));
        assert_eq!("500".parse::<RateLimitOverride>(), Ok(RateLimitOverride::PerHour(500)));
        assert_eq!("500/h".parse::<RateLimitOverride>(), Ok(RateLimitOverride::PerHour(500)));
        assert_eq!("Unlimited".parse::<RateLimitOverride>(), Ok(RateLimitOverride::Unlimited));
        assert!("0".parse::<RateLimitOverride>().is_err());
        assert!("-1".parse::<RateLimitOverride>().is_err());
        assert_eq!(RateLimitOverride::PerHour(7).to_string(), "7/h");
    }
}
