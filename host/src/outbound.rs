//! `allowed_outbound_hosts` from spin.toml, enforced on every outgoing
//! `wasi:http` request of a component: anything not listed is denied with
//! `HTTP-request-denied` before a connection is made.
//!
//! Patterns follow Spin: `scheme://host[:port]`, where the scheme, the host, the
//! port or a leading host label may be `*` (`https://*.example.com`,
//! `*://localhost:*`); without a port the scheme's default port is meant.

use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.suffix`: any subdomain of `suffix`.
    Subdomain(String),
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("allowed host {s:?} lacks a scheme (e.g. https://)"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse().map_err(|_| format!("bad port in allowed host {s:?}"))?),
            None => match &scheme {
                Some(sc) => Some(default_port(sc).ok_or_else(|| format!("allowed host {s:?} needs a port"))?),
                None => None,
            },
        };
        let host = match host {
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Subdomain(h[2..].to_ascii_lowercase()),
            h if !h.is_empty() => HostPattern::Exact(h.to_ascii_lowercase()),
            _ => return Err(format!("allowed host {s:?} has no host")),
        };
        Ok(Pattern { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomain(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|pre| pre.ends_with('.') && pre.len() > 1),
            }
    }
}

/// The outbound policy of one component.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Arc<Vec<Pattern>>,
}

impl OutboundPolicy {
    /// Parses a component's `allowed_outbound_hosts`.
    pub fn new(hosts: &[String]) -> Result<Self, String> {
        let allowed = hosts.iter().map(|h| Pattern::parse(h)).collect::<Result<_, _>>()?;
        Ok(OutboundPolicy {
            allowed: Arc::new(allowed),
        })
    }

    /// Whether a request to `scheme://host:port` may go out.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.allowed.iter().any(|p| p.matches(scheme, host, port))
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_string();
        if !self.allows(&scheme, &host, uri.port_u16()) {
            tracing::warn!(%scheme, %host, "outbound request denied by allowed_outbound_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        wasmtime_wasi_http::default_hooks().send_request(request, options, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(h: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(&h.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(!policy(&[]).allows("https", "example.com", None));
    }

    #[test]
    fn exact_hosts_with_default_and_explicit_ports() {
        let p = policy(&["https://example.com", "http://localhost:3000"]);
        assert!(p.allows("https", "EXAMPLE.com", None));
        assert!(p.allows("https", "example.com", Some(443)));
        assert!(!p.allows("https", "example.com", Some(8443)));
        assert!(!p.allows("http", "example.com", None));
        assert!(p.allows("http", "localhost", Some(3000)));
        assert!(!p.allows("http", "localhost", None));
    }

    #[test]
    fn wildcards() {
        let p = policy(&["https://*.example.com", "*://cdn.test:*"]);
        assert!(p.allows("https", "img.example.com", None));
        assert!(!p.allows("https", "example.com", None));
        assert!(!p.allows("https", "badexample.com", None));
        assert!(p.allows("http", "cdn.test", Some(8080)));
        assert!(policy(&["*://*:*"]).allows("http", "anything", Some(1)));
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["example.com", "https://", "https://host:port", "ftp://host"] {
            assert!(OutboundPolicy::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
