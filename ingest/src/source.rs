//! Where hour files come from: GHArchive (or any HTTP server with its paths), or a folder.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use events::Hour;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use crate::fetch::Deadline;
use crate::FetchError;

pub enum Source {
    Http {
        client: reqwest::Client,
        base: url::Url,
    },
    Folder(PathBuf),
}

/// An hour file being received.
pub struct Body {
    /// The length the server announced, checked against what arrives.
    pub expected_len: Option<u64>,
    pub chunks: BoxStream<'static, Result<Bytes, FetchError>>,
}

const FILE_CHUNK: usize = 256 * 1024;
/// The longest a probe of a neighbouring hour (its first two bytes) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

impl Source {
    /// `https://…`, `http://…` or `file:///folder`. Redirects are followed as [`crate::guard`]
    /// allows.
    pub fn new(base_url: &str, read_timeout: Duration) -> anyhow::Result<Source> {
        let mut base = url::Url::parse(base_url)
            .map_err(|e| anyhow::anyhow!("the source `{base_url}` is not a URL: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        match base.scheme() {
            "http" | "https" => {
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(read_timeout)
                    .redirect(crate::guard::redirect_policy(base.clone()))
                    .dns_resolver(crate::guard::resolver(&base))
                    .user_agent(concat!("gh-elt/", env!("CARGO_PKG_VERSION")))
                    .build()?;
                Ok(Source::Http { client, base })
            }
            "file" => base
                .to_file_path()
                .map(Source::Folder)
                .map_err(|()| anyhow::anyhow!("`{base_url}` is not a local folder")),
            other => anyhow::bail!(
                "the source `{base_url}`: unsupported scheme `{other}` (use https, http or file)"
            ),
        }
    }

    /// Where `hour` is fetched from, for logs and errors.
    pub fn location(&self, hour: Hour) -> String {
        let name = format!("{hour}.json.gz");
        match self {
            Source::Http { base, .. } => base
                .join(&name)
                .map(String::from)
                .unwrap_or_else(|_| format!("{base}{name}")),
            Source::Folder(dir) => dir.join(name).display().to_string(),
        }
    }

    /// Whether the source serves `hour`'s file as gzip (its first bytes, by a ranged GET):
    /// evidence that the source is up and sane when another hour fails to arrive whole. A HEAD
    /// would not do: an error page served with status 200 passes it.
    pub async fn serves(&self, hour: Hour) -> bool {
        tokio::time::timeout(PROBE_TIMEOUT, self.first_bytes(hour))
            .await
            .ok()
            .flatten()
            .is_some_and(|bytes| bytes.starts_with(&[0x1f, 0x8b]))
    }

    async fn first_bytes(&self, hour: Hour) -> Option<Bytes> {
        match self {
            Source::Http { client, base } => {
                let Ok(url) = base.join(&format!("{hour}.json.gz")) else {
                    return None;
                };
                let response = client
                    .get(url)
                    .header(reqwest::header::RANGE, "bytes=0-1")
                    .send()
                    .await;
                match response {
                    Ok(mut r) if r.status().is_success() => r.chunk().await.ok().flatten(),
                    _ => None,
                }
            }
            Source::Folder(dir) => {
                let mut magic = [0u8; 2];
                let path = dir.join(format!("{hour}.json.gz"));
                match tokio::fs::File::open(path).await {
                    Ok(mut file) => file
                        .read_exact(&mut magic)
                        .await
                        .ok()
                        .map(|_| Bytes::copy_from_slice(&magic)),
                    Err(_) => None,
                }
            }
        }
    }

    /// Starts receiving `hour`'s file; `Ok(None)` when the source has none (HTTP 404). The
    /// answer's headers must arrive before `deadline`.
    pub async fn open(&self, hour: Hour, deadline: Deadline) -> Result<Option<Body>, FetchError> {
        match self {
            Source::Http { client, base } => {
                let url = base
                    .join(&format!("{hour}.json.gz"))
                    .map_err(|e| FetchError::ours(format!("bad URL: {e}")))?;
                let sent = tokio::time::timeout_at(deadline.at, client.get(url).send()).await;
                let response = sent
                    .map_err(|_| deadline.passed(0))?
                    .map_err(FetchError::http)?;
                let status = response.status();
                if status == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !status.is_success() {
                    let message = format!("HTTP {status}");
                    // Refusals of the client (rate limits, a firewall, credentials) say nothing
                    // about the hour: like an outage, they must not park it.
                    let unreachable = status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                        || status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN;
                    return Err(if unreachable {
                        FetchError::unreachable(message)
                    } else {
                        FetchError::refused(message)
                    });
                }
                let expected_len = response.content_length();
                let chunks = response.bytes_stream().map_err(FetchError::http).boxed();
                Ok(Some(Body {
                    expected_len,
                    chunks,
                }))
            }
            Source::Folder(dir) => {
                let path = dir.join(format!("{hour}.json.gz"));
                let file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(FetchError::refused(format!("{}: {e}", path.display()))),
                };
                let expected_len = file.metadata().await.ok().map(|m| m.len());
                let chunks = futures::stream::try_unfold(file, |mut file| async move {
                    let mut buf = vec![0; FILE_CHUNK];
                    let n = file
                        .read(&mut buf)
                        .await
                        .map_err(|e| FetchError::unreachable(format!("reading: {e}")))?;
                    buf.truncate(n);
                    Ok((n > 0).then(|| (Bytes::from(buf), file)))
                })
                .boxed();
                Ok(Some(Body {
                    expected_len,
                    chunks,
                }))
            }
        }
    }
}
