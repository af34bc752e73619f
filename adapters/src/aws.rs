//! The AWS SDK configuration every AWS adapter shares.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls;

/// Loads the SDK configuration the standard way (environment, profile, container or instance
/// credentials; `AWS_ENDPOINT_URL` points every client at an emulator).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}
