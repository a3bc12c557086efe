use lambda_http::{Error, service_fn};
use latchkey::Latchkey;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let latchkey = Latchkey::from_env().await?;
    latchkey.warm_up().await;
    let service = latchkey.discovery_service();
    latchkey::http::run(service_fn(|req| async { Ok::<_, Error>(jwks::handle(&service, req).await) })).await
}
