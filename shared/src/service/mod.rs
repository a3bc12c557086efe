//! The services the functions call: one method per operation, typed input
//! in, a domain result out. They know nothing of HTTP.

pub mod api_keys;
pub mod exchange;
pub mod login;
pub mod refresh;
pub mod tokens;
pub mod webhooks;

pub use api_keys::{ApiKeyAuthenticator, ApiKeyService};
pub use exchange::{ExchangeRequest, ExchangeService, Grant};
pub use login::{LoginRequest, LoginService};
pub use refresh::{RefreshRequest, RefreshService, RevokeRequest};
pub use tokens::{Principal, TokenIssuer, TokenResponse};
pub use webhooks::WebhookService;
