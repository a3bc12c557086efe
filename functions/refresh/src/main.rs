use lambda_http::{Error, service_fn};
use latchkey::Latchkey;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let latchkey = Latchkey::from_env().await?;
    latchkey.warm_up().await;
    let service = latchkey.refresh_service();
    let max_body = latchkey.config.max_body_bytes;
    latchkey::http::run(service_fn(|req| async { Ok::<_, Error>(refresh::handle(&service, max_body, req).await) }))
        .await
}
