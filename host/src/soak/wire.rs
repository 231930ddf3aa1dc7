//! The soak's HTTP/1.1 client: plain requests over tokio TCP and a strict
//! reader of the answers (status line, headers, chunked or sized bodies), so
//! the wire format itself is checked.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A parsed response head.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

pub type Conn = BufReader<TcpStream>;

/// Sends one request on a fresh connection.
pub async fn send(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> std::io::Result<Conn> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    Ok(BufReader::new(s))
}

pub async fn read_head(r: &mut Conn) -> Result<Head, String> {
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(|e| format!("reading the status line: {e}"))?;
    let mut parts = line.split_whitespace();
    let status = match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(s)) if v.starts_with("HTTP/1.") => s,
        _ => return Err(format!("bad status line {line:?}")),
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).await.map_err(|e| format!("reading headers: {e}"))?;
        if n == 0 {
            return Err("the connection closed inside the headers".into());
        }
        let h = line.trim_end();
        if h.is_empty() {
            return Ok(Head { status, headers });
        }
        let (k, v) = h.split_once(':').ok_or_else(|| format!("bad header line {h:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

/// The next chunk of a chunked body; `None` after the last.
pub async fn read_chunk(r: &mut Conn) -> Result<Option<Vec<u8>>, String> {
    let mut size = String::new();
    r.read_line(&mut size).await.map_err(|e| format!("reading a chunk size: {e}"))?;
    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).map_err(|_| format!("bad chunk size {size:?}"))?;
    if n == 0 {
        // Trailers (none expected) end with an empty line.
        let mut end = String::new();
        r.read_line(&mut end).await.map_err(|e| format!("reading the last chunk: {e}"))?;
        return Ok(None);
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf).await.map_err(|e| format!("reading a chunk of {n} bytes: {e}"))?;
    if &buf[n..] != b"\r\n" {
        return Err("a chunk does not end in CRLF".into());
    }
    buf.truncate(n);
    Ok(Some(buf))
}

pub async fn read_body(r: &mut Conn, head: &Head) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    if head.chunked() {
        while let Some(c) = read_chunk(r).await? {
            data.extend_from_slice(&c);
        }
    } else if let Some(len) = head.header("content-length") {
        let n: usize = len.parse().map_err(|_| format!("bad content-length {len:?}"))?;
        data.resize(n, 0);
        r.read_exact(&mut data).await.map_err(|e| format!("reading a body of {n} bytes: {e}"))?;
    } else {
        r.read_to_end(&mut data).await.map_err(|e| format!("reading the body: {e}"))?;
    }
    Ok(data)
}

