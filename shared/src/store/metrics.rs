//! Counting DynamoDB calls, to prove how many each operation makes. The
//! tests and the benchmark add [`CallCounter`] to the client; the functions
//! never do.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::Intercept;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Records the operation name of every call (one per execution, whatever
/// the retries).
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<Vec<String>>>,
}

impl CallCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Operation names since the last `take`, oldest first.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "LatchkeyCallCounter"
    }

    // Serialisation happens once per execution, before the retry loop; the
    // operation name is the tail of the `X-Amz-Target` header.
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or("unknown");
        let name = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name);
        Ok(())
    }
}
