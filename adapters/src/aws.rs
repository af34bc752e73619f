//! The AWS SDK configuration every AWS adapter shares.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls;

/// The SDK's standard configuration chain (environment, profile, container or instance
/// credentials; `AWS_ENDPOINT_URL` points every client at an emulator), over rustls with ring.
pub fn sdk_config_loader() -> ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}
