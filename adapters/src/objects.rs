//! Object storage adapters: an S3 bucket, or a folder standing in for one.

use std::path::Path;
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AwsCredential, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::{ClientOptions, CredentialProvider, RetryConfig};
use object_store::{ObjectStore, ObjectStoreExt};

/// The S3 bucket `bucket`, with the AWS SDK's credentials and region: the same chain as every
/// other AWS client (environment, profiles with SSO or `credential_process`, web identity,
/// containers, Lambda, instance metadata). The endpoint is `AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL` or a profile's `endpoint_url`; requests are path-style, which emulators
/// need and AWS accepts.
pub fn s3(sdk: &aws_config::SdkConfig, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    anyhow::ensure!(!bucket.is_empty(), "no bucket name given");
    // Copy-if-absent as a one-part multipart copy completed with `If-None-Match: *`, which S3
    // has honoured since 2024: the ingest's backfill stores an hour only once that way.
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
        .with_retry(bounded_retries())
        .with_client_options(ClientOptions::new().with_timeout(REQUEST_TIMEOUT));
    if let Some(credentials) = sdk.credentials_provider() {
        builder = builder.with_credentials(Arc::new(SdkCredentials {
            provider: credentials,
            cached: tokio::sync::Mutex::default(),
        }));
    }
    if let Some(region) = sdk.region() {
        builder = builder.with_region(region.as_ref());
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .unwrap_or_default();
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(&endpoint);
    }
    if endpoint.starts_with("http://") {
        // A local emulator: object_store refuses plain HTTP unless told.
        builder = builder.with_allow_http(true);
    }
    let store = builder
        .build()
        .with_context(|| format!("configuring S3 for bucket {bucket}"))?;
    Ok(Arc::new(store))
}

/// One S3 request's longest wait for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries of a failed request end within a minute of its first try (object_store's default is
/// three minutes): together with the request timeout, no request outlives a commit's lease
/// (`COMMIT_LEASE_SECONDS`, 120) by retrying. A late one does no harm to the table either (its
/// log version is written only if absent), but it would keep a run going that has lost its hour.
fn bounded_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

/// The SDK's credentials for `object_store`, kept until five minutes before they expire (the
/// chain may call STS, SSO or a `credential_process` to get them).
#[derive(Debug)]
struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let fresh_until = SystemTime::now() + Duration::from_secs(300);
        if let Some((credential, expiry)) = cached.as_ref() {
            if expiry.is_none_or(|at| at > fresh_until) {
                return Ok(credential.clone());
            }
        }
        let provided = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: provided.access_key_id().to_string(),
            secret_key: provided.secret_access_key().to_string(),
            token: provided.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), provided.expiry()));
        Ok(credential)
    }
}

/// The folder `dir` as an object store (created if missing); keys are paths below it.
pub fn folder(dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("opening {} as a store", dir.display()))?;
    Ok(Arc::new(store))
}

/// Opens `key` for reading as a blocking `Read` (for the transform's reader thread): the object
/// is streamed by a task on the current runtime through a small bounded channel, so no more than
/// a few chunks are held. Returns the reader and the object's metadata (size, ETag, version).
pub async fn open_reader(
    store: Arc<dyn ObjectStore>,
    key: &str,
) -> anyhow::Result<(Box<dyn std::io::Read + Send>, object_store::ObjectMeta)> {
    use futures::StreamExt;
    let location = object_store::path::Path::from(key);
    let result = store
        .get(&location)
        .await
        .with_context(|| format!("reading {key}"))?;
    let meta = result.meta.clone();
    // Read ahead a few chunks on the runtime while the reader thread works on the last ones.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut stream = result.into_stream();
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let reader = blocking_reader(receiver, tokio::runtime::Handle::current());
    Ok((Box::new(reader), meta))
}

/// Chunks arriving over a channel as a blocking `Read`, for a reader on a thread of its own
/// (`handle` is the runtime the chunks come from). The channel ending is the end of the stream;
/// an error chunk is a read error.
pub fn blocking_reader(
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    handle: tokio::runtime::Handle,
) -> impl std::io::Read + Send {
    let chunks = tokio_stream::wrappers::ReceiverStream::new(receiver);
    tokio_util::io::SyncIoBridge::new_with_handle(tokio_util::io::StreamReader::new(chunks), handle)
}
