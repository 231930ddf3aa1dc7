//! Who may call the server: API keys (`Authorization: Bearer <key>`, as the
//! OpenAI clients send it) compared in constant time, the paths exempt from
//! them, and the CORS policy for browsers (off unless origins are given).

use hyper::header::{HeaderMap, HeaderValue};

/// The API keys and the paths that need none.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
    exempt: Vec<String>,
}

impl ApiKeys {
    /// `keys` empty: no key is required. `exempt` paths are served without one.
    pub fn new(keys: impl IntoIterator<Item = String>, exempt: impl IntoIterator<Item = String>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| k.trim().as_bytes().to_vec()).filter(|k| !k.is_empty()).collect(),
            exempt: exempt.into_iter().collect(),
        }
    }

    /// Whether any key is required.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether a request to `path` with `headers` may go on.
    pub fn allows(&self, path: &str, headers: &HeaderMap) -> bool {
        if self.keys.is_empty() || self.exempt.iter().any(|p| exempt_matches(p, path)) {
            return true;
        }
        let Some(given) = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        // Every key is compared, each in time independent of where it differs.
        self.keys.iter().fold(false, |ok, k| ok | constant_time_eq(k, given.trim().as_bytes()))
    }
}

/// Whether `path` is the exempt `pattern`: the same path, or under a
/// `/prefix/...` pattern (as spin.toml's routes are written).
fn exempt_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/...") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        None => pattern.trim_end_matches('/') == path.trim_end_matches('/'),
    }
}

/// The token of a `Bearer` credential; the scheme is case-insensitive (RFC
/// 9110 §11.1: Spin's remote LLM client sends `bearer`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Equality whose time depends only on the lengths, not on the contents.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The CORS policy: which origins may call from a browser.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// `origins` empty: CORS off (no header is added). `*` allows any origin.
    pub fn new(origins: impl IntoIterator<Item = String>) -> Self {
        Self { origins: origins.into_iter().map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect() }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(hyper::header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins.iter().any(|o| o == text).then(|| origin.clone())
    }

    /// Whether the request is a CORS preflight this policy answers.
    pub fn is_preflight(&self, method: &hyper::Method, headers: &HeaderMap) -> bool {
        !self.origins.is_empty()
            && method == hyper::Method::OPTIONS
            && headers.contains_key(hyper::header::ORIGIN)
            && headers.contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Adds the CORS headers a response to a request with `req` headers gets;
    /// `preflight` adds the methods, headers and max-age as well.
    pub fn decorate(&self, req: &HeaderMap, resp: &mut HeaderMap, preflight: bool) {
        let Some(origin) = self.allowed(req) else { return };
        use hyper::header::*;
        if origin != "*" {
            resp.append(VARY, HeaderValue::from_static("Origin"));
        }
        resp.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        resp.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-request-id"));
        if preflight {
            resp.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            let asked = req.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
            resp.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                asked.unwrap_or(HeaderValue::from_static("authorization, content-type")),
            );
            resp.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn keys_are_checked_except_on_exempt_paths() {
        let keys = ApiKeys::new(["alpha".to_string(), "beta".to_string()], ["/health".to_string()]);
        assert!(keys.allows("/v1/models", &headers(&[("authorization", "Bearer beta")])));
        assert!(keys.allows("/v1/models", &headers(&[("authorization", "Bearer alpha")])));
        assert!(!keys.allows("/v1/models", &headers(&[("authorization", "Bearer alph")])));
        assert!(!keys.allows("/v1/models", &headers(&[("authorization", "Bearer alphaa")])));
        // The scheme in any case (Spin sends `bearer`); nothing else passes.
        assert!(keys.allows("/v1/models", &headers(&[("authorization", "bearer alpha")])));
        assert!(keys.allows("/v1/models", &headers(&[("authorization", "BEARER beta")])));
        for bad in ["Basic alpha", "alpha", "bearer", "Bearer", "beareralpha"] {
            assert!(!keys.allows("/v1/models", &headers(&[("authorization", bad)])), "{bad}");
        }
        assert!(!keys.allows("/v1/models", &headers(&[("authorization", "alpha")])));
        assert!(!keys.allows("/v1/models", &headers(&[])));
        assert!(keys.allows("/health", &headers(&[])));
        assert!(ApiKeys::new([], []).allows("/v1/models", &headers(&[])));
        // The web UI's pages and files (the defaults of --api-key-exempt).
        let ui = ApiKeys::new(["k".to_string()], ["/".to_string(), "/ui/...".to_string(), "/arena".to_string()]);
        for open in ["/", "/ui/chat.js", "/ui", "/arena", "/arena/"] {
            assert!(ui.allows(open, &headers(&[])), "{open}");
        }
        for closed in ["/v1/models", "/uix", "/arena/api/vote", "/arena/leaderboard.json"] {
            assert!(!ui.allows(closed, &headers(&[])), "{closed}");
        }
    }

    #[test]
    fn cors_is_off_by_default_and_answers_only_listed_origins() {
        let req = headers(&[("origin", "https://app.example"), ("access-control-request-method", "POST")]);
        let mut resp = HeaderMap::new();
        Cors::default().decorate(&req, &mut resp, true);
        assert!(resp.is_empty());
        assert!(!Cors::default().is_preflight(&hyper::Method::OPTIONS, &req));
        let cors = Cors::new(["https://app.example".to_string()]);
        assert!(cors.is_preflight(&hyper::Method::OPTIONS, &req));
        cors.decorate(&req, &mut resp, true);
        assert_eq!(resp["access-control-allow-origin"], "https://app.example");
        assert!(resp.contains_key("access-control-allow-methods"));
        let other = headers(&[("origin", "https://evil.example")]);
        let mut resp = HeaderMap::new();
        cors.decorate(&other, &mut resp, false);
        assert!(resp.is_empty());
    }
}
