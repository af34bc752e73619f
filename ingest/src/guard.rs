//! Where a source may send the ingest: redirects are followed only within the configured
//! source's own origin (scheme, host and port: a test mirror on loopback works), or to https
//! elsewhere, and never to loopback, link-local, private or otherwise internal addresses, by an
//! address written in the URL or by a name that resolves to one. A source (or a CDN in front of
//! it) that is compromised or misconfigured cannot turn the ingest against the network it runs
//! in (the Lambda's metadata endpoint, a private service) or downgrade it to plain http.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};
use url::{Host, Url};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// The scheme, host and port of `url`.
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

/// Whether `ip` is an address no public file server has: loopback, private (RFC 1918, unique
/// local), link-local (the cloud metadata endpoints), unspecified, shared (CGNAT), multicast,
/// broadcast or documentation.
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Why a redirect to `url` is refused, for a source at `base`; `None` when it may be followed.
pub fn refuse_redirect(base: &Url, url: &Url) -> Option<String> {
    if origin(url) == origin(base) {
        return None;
    }
    if url.scheme() != "https" {
        return Some(format!(
            "refused a redirect to {url}: outside the source's origin, only https is followed"
        ));
    }
    let internal_host = match url.host() {
        Some(Host::Ipv4(ip)) => internal(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => internal(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    };
    internal_host.then(|| format!("refused a redirect to {url}: an internal address"))
}

/// The redirect policy of a source at `base`.
pub fn redirect_policy(base: Url) -> Policy {
    Policy::custom(move |attempt: Attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match refuse_redirect(&base, attempt.url()) {
            Some(reason) => attempt.error(reason),
            None => attempt.follow(),
        }
    })
}

/// Resolves names as the system does, but a name other than the source's own host may not
/// resolve to an internal address: a redirect to a public-looking name that points inside is
/// refused too.
pub struct GuardedResolver {
    /// The configured source's host, which may be anything (a mirror on loopback in tests).
    pub source_host: Option<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.source_host.as_deref() == Some(host.as_str());
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| trusted || !internal(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The resolver of a source at `base`.
pub fn resolver(base: &Url) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver {
        source_host: base.host_str().map(str::to_ascii_lowercase),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn redirects_stay_in_the_origin_or_go_to_public_https() {
        let base = url("http://127.0.0.1:8080/");
        for allowed in [
            "http://127.0.0.1:8080/elsewhere/2024-03-05-1.json.gz",
            "https://data.gharchive.org/2024-03-05-1.json.gz",
            "https://cdn.example.com/x",
        ] {
            assert_eq!(refuse_redirect(&base, &url(allowed)), None, "{allowed}");
        }
        for refused in [
            "http://127.0.0.1:8081/2024-03-05-1.json.gz",
            "http://data.gharchive.org/2024-03-05-1.json.gz",
            "https://127.0.0.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://172.16.5.4/x",
            "https://100.64.0.1/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost/x",
            "https://a.localhost./x",
            "https://0.0.0.0/x",
        ] {
            assert!(refuse_redirect(&base, &url(refused)).is_some(), "{refused}");
        }
        let https = url("https://data.gharchive.org/");
        assert!(refuse_redirect(&https, &url("http://data.gharchive.org/x")).is_some());
        assert!(refuse_redirect(&https, &url("https://data.gharchive.org:443/x")).is_none());
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_but_the_sources_own() {
        let guarded = GuardedResolver {
            source_host: Some("mirror.test".into()),
        };
        let refused = guarded.resolve("localhost".parse::<Name>().unwrap()).await;
        assert!(refused.is_err());
        let own = GuardedResolver {
            source_host: Some("localhost".into()),
        };
        let addrs: Vec<SocketAddr> = own
            .resolve("localhost".parse::<Name>().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
    }
}
