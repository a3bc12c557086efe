use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request as Event;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use latchkey::Latchkey;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let latchkey = Latchkey::from_env().await?;
    latchkey.warm_up().await;
    let authorizer = authorizer::Authorizer::new(latchkey.guard(), latchkey.config.route_scopes.clone());
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(authorizer.handle(&event.payload).await)
    }))
    .await
}
