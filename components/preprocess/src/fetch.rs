//! Media bytes from a URL: `data:` URLs are decoded in place, `https:` (and
//! `http:`) URLs are fetched through `wasi:http`, which the host only lets
//! through to the hosts in the app's `allowed_outbound_hosts`. Every fetch has a
//! size limit and a time limit.

use base64::Engine as _;
use wasip2::http::outgoing_handler::{handle, ErrorCode};
use wasip2::http::types::{Fields, Method, OutgoingRequest, RequestOptions, Scheme};
use wasip2::io::streams::StreamError;

/// Time allowed to connect, for the first byte, and between bytes.
const TIMEOUT_NS: u64 = 10_000_000_000;
/// Time allowed for a whole download.
const TOTAL_NS: u64 = 30_000_000_000;

/// The bytes behind `url`, at most `max_bytes` of them.
pub fn bytes(url: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        return data_url(rest, max_bytes);
    }
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", r)) => (Scheme::Https, r),
        Some(("http", r)) => (Scheme::Http, r),
        _ => return Err(format!("unsupported media URL {}: use a data: or https: URL", short(url))),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("the media URL {} has no host", short(url)));
    }
    fetch(url, scheme, authority, path, max_bytes)
}

fn short(url: &str) -> String {
    if url.len() > 80 {
        format!("{}…", &url[..url.floor_char_boundary(80)])
    } else {
        url.to_string()
    }
}

/// `data:[<mediatype>][;base64],<data>`.
fn data_url(rest: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let (head, data) = rest.split_once(',').ok_or("a data: URL needs a comma before its data")?;
    if data.len() / 4 * 3 > max_bytes.saturating_add(3) {
        return Err(format!("the media is larger than {max_bytes} bytes"));
    }
    if !head.ends_with(";base64") {
        return Err("only base64 data: URLs are accepted for media".into());
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine
        .decode(data.trim())
        .map_err(|e| format!("the data: URL's base64 does not decode: {e}"))?;
    if bytes.len() > max_bytes {
        return Err(format!("the media is larger than {max_bytes} bytes"));
    }
    Ok(bytes)
}

fn fetch(url: &str, scheme: Scheme, authority: &str, path: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let req = OutgoingRequest::new(Fields::new());
    let bad = |_| format!("cannot build a request for {}", short(url));
    req.set_method(&Method::Get).map_err(bad)?;
    req.set_scheme(Some(&scheme)).map_err(bad)?;
    req.set_authority(Some(authority)).map_err(bad)?;
    req.set_path_with_query(Some(path)).map_err(bad)?;
    let opts = RequestOptions::new();
    let _ = opts.set_connect_timeout(Some(TIMEOUT_NS));
    let _ = opts.set_first_byte_timeout(Some(TIMEOUT_NS));
    let _ = opts.set_between_bytes_timeout(Some(TIMEOUT_NS));
    let failed = |e: ErrorCode| match e {
        ErrorCode::HttpRequestDenied => {
            format!("fetching {} is not allowed: the host {authority} is not in the app's allowed_outbound_hosts", short(url))
        }
        e => format!("fetching {} failed: {e:?}", short(url)),
    };
    let future = handle(req, Some(opts)).map_err(failed)?;
    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(failed(e)),
        _ => return Err(format!("fetching {} failed", short(url))),
    };
    if resp.status() != 200 {
        return Err(format!("fetching {} returned HTTP {}", short(url), resp.status()));
    }
    let body = resp.consume().map_err(|_| "the response has no body".to_string())?;
    let stream = body.stream().map_err(|_| "the response has no body".to_string())?;
    let start = wasip2::clocks::monotonic_clock::now();
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading {} failed: {}", short(url), e.to_debug_string()))
            }
        }
        if out.len() > max_bytes {
            return Err(format!("the media at {} is larger than {max_bytes} bytes", short(url)));
        }
        if wasip2::clocks::monotonic_clock::now().saturating_sub(start) > TOTAL_NS {
            return Err(format!("fetching {} took longer than {} s", short(url), TOTAL_NS / 1_000_000_000));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_and_are_bounded() {
        assert_eq!(bytes("data:image/png;base64,AAEC", 10), Ok(vec![0, 1, 2]));
        assert!(bytes("data:image/png;base64,AAEC", 1).is_err_and(|e| e.contains("larger than 1 bytes")));
        assert!(bytes("data:image/png,abc", 10).is_err_and(|e| e.contains("base64")));
        assert!(bytes("data:image/png;base64,!!", 10).is_err_and(|e| e.contains("does not decode")));
        assert!(bytes("ftp://x/y.png", 10).is_err_and(|e| e.contains("unsupported media URL")));
        assert!(bytes("https:///y.png", 10).is_err_and(|e| e.contains("no host")));
    }
}
