//! Object storage adapters: an S3 bucket, or a folder standing in for one.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

/// The S3 bucket `bucket`, configured from the standard AWS variables (credentials, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`). Requests are path-style, which emulators need and AWS accepts.
pub fn s3(bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    anyhow::ensure!(!bucket.is_empty(), "no bucket name given");
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        // A local emulator: object_store refuses plain HTTP unless told.
        builder = builder.with_allow_http(true);
    }
    let store = builder
        .build()
        .with_context(|| format!("configuring S3 for bucket {bucket}"))?;
    Ok(Arc::new(store))
}

/// The folder `dir` as an object store (created if missing); keys are paths below it.
pub fn folder(dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("opening {} as a store", dir.display()))?;
    Ok(Arc::new(store))
}
