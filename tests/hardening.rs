//! End-to-end tests (over a real socket) of how the server holds up against
//! careless and hostile clients: requests whose client goes away, guests that
//! loop or grow without end, idle and trickling connections against a small
//! file-descriptor limit, the cap on requests in flight, API keys, CORS, and
//! shutdown while a stream is open.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{request_with, Server};

/// A prompt whose greedy continuation goes on and on (a count), so that a
/// request with a large `max_tokens` keeps the engine busy for many seconds.
fn endless(stream: bool) -> String {
    json!({"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 3000, "temperature": 0, "stream": stream})
        .to_string()
}

/// Opens a connection and sends a completion request without reading the answer.
fn send_raw(addr: &str, path: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connecting");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("sending");
    s
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/pid/stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// CPU seconds used over the next `window`.
fn cpu_over(pid: u32, window: Duration) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(window);
    cpu_seconds(pid) - before
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").body;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_non_streaming_request_stops_when_its_client_goes() {
    let server = Server::start();
    let pid = server.pid();
    // Idle to begin with.
    assert!(cpu_over(pid, Duration::from_millis(500)) < 0.2, "server busy before any request");
    let client = send_raw(&server.addr, "/v1/completions", &endless(false));
    std::thread::sleep(Duration::from_millis(1500));
    let busy = cpu_over(pid, Duration::from_millis(1000));
    assert!(busy > 0.15, "the request did not keep the engine busy ({busy:.2} CPU-s in 1 s)");
    drop(client);
    // Within a second of the client leaving, the server is back to idle.
    std::thread::sleep(Duration::from_millis(1000));
    let after = cpu_over(pid, Duration::from_millis(1000));
    assert!(after < 0.1, "server still busy after its client left: {after:.2} CPU-s in 1 s");
    assert!(metric(&server, "reka:requests_cancelled_total") >= 1.0);
    // Streaming requests too.
    let mut client = send_raw(&server.addr, "/v1/completions", &endless(true));
    let mut first = [0u8; 64];
    client.read_exact(&mut first).expect("the stream starts");
    drop(client);
    std::thread::sleep(Duration::from_millis(1000));
    let after = cpu_over(pid, Duration::from_millis(1000));
    assert!(after < 0.1, "server still busy after its streaming client left: {after:.2} CPU-s in 1 s");
    assert!(metric(&server, "reka:requests_cancelled_total") >= 2.0);
    // And it serves the next request normally.
    let ok = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0}));
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn guests_that_loop_allocate_or_trap_are_stopped_and_the_server_serves_on() {
    let manifest = support::root().join("tests/fixtures/misbehave.spin.toml");
    let server = Server::start_with(&manifest);
    for (path, says) in [
        ("/bad/loop", "time limit (1000 ms of wasm execution)"),
        ("/bad/alloc", "memory limit (64 MiB)"),
        ("/bad/trap", "the request failed inside the server"),
        // A spin-sdk 7 guest (wasi:http 0.3) that spins, with 3000 ms.
        ("/p3/spin", "time limit (3000 ms of wasm execution)"),
    ] {
        let started = Instant::now();
        let r = server.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.body);
        let v = r.json();
        let message = v["error"]["message"].as_str().expect("error message");
        assert!(message.contains(says), "{path}: {message}");
        // Details stay in the log, tied to the request id the response carries.
        for leak in ["backtrace", "wasm function", "panicked", "0x", ".rs:"] {
            assert!(!r.body.contains(leak), "{path} leaks {leak:?}: {}", r.body);
        }
        let id = r.header("x-request-id").expect("x-request-id").to_string();
        // The server's stderr is read by another thread: give it a moment.
        let waited = Instant::now();
        while server.log_count(&id) == 0 && waited.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(server.log_count(&id) >= 1, "the log does not name request {id}");
        assert!(started.elapsed() < Duration::from_secs(30), "{path} took {:?}", started.elapsed());
        // The server serves on: the same component, and the app.
        assert_eq!(server.get("/bad/fine").status, 200);
        assert_eq!(server.get("/health").status, 200);
    }
    // A p3 guest whose client leaves is dropped too (before its time limit).
    let pid = server.pid();
    let client = send_raw(&server.addr, "/p3/spin", "");
    std::thread::sleep(Duration::from_millis(500));
    drop(client);
    std::thread::sleep(Duration::from_millis(700));
    let after = cpu_over(pid, Duration::from_millis(1000));
    assert!(after < 0.1, "a p3 guest still spins after its client left: {after:.2} CPU-s in 1 s");
    assert_eq!(server.get("/p3/hello").status, 200);
    // A client's own request id is kept.
    let r = request_with(&server.addr, "GET", "/health", &[("x-request-id", "client-id-42")], None);
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
}

/// A server under an open-files limit of 128, with `extra` flags.
fn starved(extra: &[&str]) -> Server {
    let manifest = support::root().join("spin.toml");
    let model = support::default_model();
    let model = model.to_string_lossy();
    let mut args = vec!["--model", &*model, "--model-name", "smollm2-135m", "--idle-timeout-s", "2", "--header-timeout-s", "2"];
    args.extend_from_slice(extra);
    Server::spawn_limited(&manifest, &args, Some(128))
}

/// Opens 1,000 connections that send nothing and checks that `/health` still
/// answers within `within`, the log grows by under 100 lines, and the server
/// does not spin meanwhile.
fn thousand_idle_connections(server: &Server, within: Duration) {
    let log_before = server.log_len();
    let idle: Vec<TcpStream> = (0..1000).filter_map(|_| TcpStream::connect(&server.addr).ok()).collect();
    assert!(idle.len() >= 900, "only {} connections opened", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let health = server.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(started.elapsed() < within, "/health took {:?}", started.elapsed());
    let cpu = cpu_over(server.pid(), Duration::from_millis(1000));
    assert!(cpu < 0.5, "the server spins with 1,000 idle connections: {cpu:.2} CPU-s in 1 s");
    let grown = server.log_len() - log_before;
    assert!(grown < 100, "the log grew by {grown} lines");
    drop(idle);
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_floods_the_log() {
    // A connection cap above the descriptor limit: accept itself fails (EMFILE).
    let server = starved(&["--max-connections", "1000"]);
    thousand_idle_connections(&server, Duration::from_secs(30));
    assert!(server.log_count("accept failed") >= 1, "accept never ran out of descriptors");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn idle_and_trickling_connections_cannot_starve_the_server() {
    let server = starved(&[]);
    let log_before = server.log_len();
    // 1,000 connections that send nothing, against 128 descriptors.
    thousand_idle_connections(&server, Duration::from_secs(5));
    let ok = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A client that sends its head a byte at a time is cut off.
    let mut slow = TcpStream::connect(&server.addr).expect("connecting");
    slow.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {} // a 408 or similar before the close is fine
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    assert!(closed, "a trickling connection stayed open for {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(6), "closed only after {:?}", started.elapsed());
    let grown = server.log_len() - log_before;
    assert!(grown < 100, "the log grew by {grown} lines");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn requests_over_the_in_flight_cap_get_503_with_retry_after() {
    let server = Server::start_model(&support::default_model(), "smollm2-135m", &["--max-in-flight", "1"]);
    let mut busy = send_raw(&server.addr, "/v1/completions", &endless(true));
    let mut first = [0u8; 16];
    busy.read_exact(&mut first).expect("the first stream starts");
    let r = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2}));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "overloaded");
    drop(busy);
    // The slot comes back once the first client has gone.
    let started = Instant::now();
    loop {
        let r = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0}));
        if r.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the slot never came back: {}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn api_keys_are_required_except_on_exempt_paths_and_cors_is_opt_in() {
    let server = Server::start_model(
        &support::default_model(),
        "smollm2-135m",
        &["--api-key", "key-one", "--api-key", "key-two", "--cors-allow-origin", "https://app.example"],
    );
    let get = |headers: &[(&str, &str)]| request_with(&server.addr, "GET", "/v1/models", headers, None);
    let none = get(&[]);
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    assert_eq!(get(&[("authorization", "Bearer key-on")]).status, 401);
    assert_eq!(get(&[("authorization", "Bearer key-onee")]).status, 401);
    assert_eq!(get(&[("authorization", "key-one")]).status, 401);
    assert_eq!(get(&[("authorization", "Bearer key-one")]).status, 200);
    assert_eq!(get(&[("authorization", "Bearer key-two")]).status, 200);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/metrics").status, 200);
    // CORS: a preflight from the listed origin, and the header on answers to it.
    let pre = request_with(
        &server.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[("origin", "https://app.example"), ("access-control-request-method", "POST"), ("access-control-request-headers", "authorization, content-type")],
        None,
    );
    assert_eq!(pre.status, 204, "{}", pre.body);
    assert_eq!(pre.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(pre.header("access-control-allow-headers").is_some_and(|h| h.contains("authorization")));
    let from_app = get(&[("authorization", "Bearer key-one"), ("origin", "https://app.example")]);
    assert_eq!(from_app.header("access-control-allow-origin"), Some("https://app.example"));
    let from_elsewhere = get(&[("authorization", "Bearer key-one"), ("origin", "https://evil.example")]);
    assert_eq!(from_elsewhere.header("access-control-allow-origin"), None);
    // Off by default.
    let plain = Server::start();
    let r = request_with(&plain.addr, "GET", "/v1/models", &[("origin", "https://app.example")], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn shutdown_refuses_new_connections_and_ends_open_streams_cleanly() {
    let server = Server::start_model(&support::default_model(), "smollm2-135m", &["--shutdown-grace-s", "2"]);
    let addr = server.addr.clone();
    let reader = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let s = send_raw(&addr, "/v1/completions", &endless(true));
            s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            support::read_response(s)
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let pid = server.pid().to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(&addr).is_err(), "a new connection was accepted after SIGTERM");
    let streamed = reader.join().expect("reader");
    let events = streamed.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{:?}", events.iter().rev().take(3).collect::<Vec<_>>());
    let error: Value = serde_json::from_str(&events[events.len() - 2]).expect("an error event before [DONE]");
    assert_eq!(error["error"]["code"], "shutting_down", "{error}");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}
