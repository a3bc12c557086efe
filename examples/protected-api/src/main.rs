use lambda_http::{Error, service_fn};
use latchkey::Latchkey;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let latchkey = Latchkey::from_env().await?;
    latchkey.warm_up().await;
    let guard = latchkey.guard();
    lambda_http::run(service_fn(|req| async { Ok::<_, Error>(protected_api::handle(&guard, req).await) })).await
}
