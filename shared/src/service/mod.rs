//! The services the functions call: one method per operation, typed input
//! in, a domain result out. They know nothing of HTTP, except the guard's
//! middleware entry point, which reads a request's headers for a team's own
//! Lambda.

pub mod api_keys;
pub mod discovery;
pub mod exchange;
pub mod guard;
pub mod login;
pub mod refresh;
pub mod tokens;
pub mod webhooks;

pub use api_keys::{ApiKeyAuthenticator, ApiKeyService};
pub use discovery::DiscoveryService;
pub use exchange::{ExchangeRequest, ExchangeService, Grant};
pub use guard::{Admission, Credential, Guard, VerifyRequest};
pub use login::{LoginRequest, LoginService};
pub use refresh::{RefreshRequest, RefreshService, RevokeRequest};
pub use tokens::{Principal, TokenIssuer, TokenResponse};
pub use webhooks::WebhookService;
