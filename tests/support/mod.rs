//! Test support: starts a real `reka-host serve` on a free loopback port and
//! talks plain HTTP/1.1 to it over a real socket (no client library, so the wire
//! format itself is checked, chunked streaming included).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host has a parent")
        .to_path_buf()
}

/// What `reka-host fetch` fetched (and checksum-verified): one path per line,
/// the text model first, the multimodal model's config last.
fn fetched() -> Vec<PathBuf> {
    let out = Command::new(env!("CARGO_BIN_EXE_reka-host"))
        .arg("fetch")
        .stderr(Stdio::inherit())
        .output()
        .expect("running reka-host fetch");
    assert!(out.status.success(), "reka-host fetch failed");
    String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect()
}

/// The default model.
pub fn default_model() -> PathBuf {
    fetched().into_iter().next().expect("fetch printed the default model")
}

/// The default multimodal model's config.
pub fn multimodal_model() -> PathBuf {
    fetched().pop().expect("fetch printed the multimodal config")
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `reka-host serve --model <default>` with the repository's spin.toml.
    pub fn start() -> Server {
        Self::start_with(&root().join("spin.toml"))
    }

    /// Starts `reka-host serve --model <default>` with the given manifest.
    pub fn start_with(manifest: &std::path::Path) -> Server {
        Self::launch(manifest, &default_model(), "smollm2-135m", &[])
    }

    /// Starts `reka-host serve` with the repository's spin.toml, serving `model`
    /// as `name`, with `extra` arguments.
    pub fn start_model(model: &std::path::Path, name: &str, extra: &[&str]) -> Server {
        Self::launch(&root().join("spin.toml"), model, name, extra)
    }

    /// Starts `reka-host serve` with `manifest`, serving `model` as `name`.
    pub fn start_manifest_model(manifest: &std::path::Path, model: &std::path::Path, name: &str) -> Server {
        Self::launch(manifest, model, name, &[])
    }

    /// Starts `reka-host serve` with the repository's spin.toml and the models
    /// of a runtime config.
    pub fn start_runtime_config(config: &std::path::Path) -> Server {
        let config = config.to_string_lossy();
        Self::spawn(&root().join("spin.toml"), &["--runtime-config", &config])
    }

    fn launch(manifest: &std::path::Path, model: &std::path::Path, name: &str, extra: &[&str]) -> Server {
        let model = model.to_string_lossy();
        let mut args = vec!["--model", &model, "--model-name", name];
        args.extend_from_slice(extra);
        Self::spawn(manifest, &args)
    }

    /// Starts `reka-host serve` with `manifest` and `args` (the model included).
    pub fn spawn(manifest: &std::path::Path, args: &[&str]) -> Server {
        Self::spawn_limited(manifest, args, None)
    }

    /// As [`Server::spawn`], with the open-files limit set to `nofile` (by
    /// `prlimit`, from util-linux) when given.
    pub fn spawn_limited(manifest: &std::path::Path, args: &[&str], nofile: Option<u64>) -> Server {
        let bin = env!("CARGO_BIN_EXE_reka-host");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
            .arg(manifest)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting reka-host serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                sink.lock().expect("log lock").push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        // From here on the server is owned by a guard, so a failed start kills it.
        let mut server = Server {
            child,
            addr: String::new(),
            log,
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("reading server stdout");
            assert!(n > 0, "server exited before listening");
            if let Some(a) = line.trim().strip_prefix("listening on http://") {
                server.addr = a.to_string();
                std::thread::spawn(move || for _ in stdout.lines() {});
                return server;
            }
        }
    }

    /// Server log lines so far that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log.lock().expect("log lock").iter().filter(|l| l.contains(needle)).count()
    }

    /// All server log lines so far.
    pub fn log_len(&self) -> usize {
        self.log.lock().expect("log lock").len()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Model `model`'s engine counters from `/metrics`: (steps, session
    /// rows in them); their ratio is the mean batch.
    pub fn engine_steps(&self, model: &str) -> (f64, f64) {
        let body = self.get("/metrics").body;
        let label = format!("model_name=\"{model}\"");
        let value = |name: &str| {
            body.lines()
                .find(|l| l.starts_with(name) && l.contains(&label))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        };
        (value("reka:engine_steps_total"), value("reka:engine_step_sessions_total"))
    }

    pub fn get(&self, path: &str) -> Response {
        request(&self.addr, "GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        request(&self.addr, "POST", path, Some(body))
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.post(path, &body.to_string())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Sizes of the transfer-encoding chunks the body came in.
    pub chunks: Vec<usize>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of a server-sent-events body.
    pub fn sse_data(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter_map(|ev| ev.trim().strip_prefix("data: ").map(str::to_string))
            .collect()
    }
}

/// One HTTP/1.1 exchange on a fresh connection.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Response {
    request_with(addr, method, path, &[], body)
}

/// One HTTP/1.1 exchange on a fresh connection, with extra `headers`.
pub fn request_with(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let mut s = TcpStream::connect(addr).expect("connecting to the server");
    s.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("sending request");
    read_response(s)
}

/// Reads one HTTP/1.1 response (the connection then closes).
pub fn read_response(s: TcpStream) -> Response {
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut data = Vec::new();
    let mut chunks = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if n == 0 {
                break;
            }
            let mut buf = vec![0; n + 2];
            r.read_exact(&mut buf).expect("chunk data");
            data.extend_from_slice(&buf[..n]);
            chunks.push(n);
        }
    } else {
        r.read_to_end(&mut data).expect("body");
        chunks.push(data.len());
    }
    Response {
        status,
        headers,
        body: String::from_utf8(data).expect("UTF-8 body"),
        chunks,
    }
}
