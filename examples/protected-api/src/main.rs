use lambda_http::{Error, service_fn};
use latchkey::service::Guard;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let guard = Guard::from_env().await?;
    guard.warm_up().await;
    latchkey::http::run(service_fn(|req| async { Ok::<_, Error>(protected_api::handle(&guard, req).await) })).await
}
