//! End-to-end tests (over a real socket) of `GET /metrics`: after requests of
//! known usage (their `usage` blocks) the token counters moved by exactly those
//! amounts, the latency histograms got one observation per token, KV memory is
//! back to 0 when idle, HTTP statuses and cancelled requests are counted, and
//! the text is valid Prometheus exposition format (checked line by line here,
//! with no Prometheus library). Also: a prompt larger than the whole KV budget
//! is a 400 that says so, not a 503 that invites a retry.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Server;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: every sample, by family (the `# TYPE` name).
#[derive(Debug, Default)]
struct Exposition {
    kinds: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the series `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
            .value
    }

    /// As [`Exposition::get`], 0 when the series is absent (counters by status).
    fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map_or(0.0, |s| s.value)
    }
}

fn valid_name(n: &str, colons: bool) -> bool {
    let mut chars = n.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// `{a="x",b="y"}` → labels, and the rest of the line after `}`.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or_else(|| format!("bad label in {s:?}"))?;
        if !valid_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {s:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s:?}")),
                },
                Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice in {s:?}"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Parses and checks the Prometheus text format (0.0.4): `# HELP` / `# TYPE`
/// once per family and before its samples, a family's samples together, valid
/// names and escaped label values, no series twice, counters non-negative,
/// histograms with cumulative `_bucket{le=…}` series ending in `+Inf`, equal to
/// `_count`, and a `_sum`.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the text does not end in a newline".into());
    }
    let mut out = Exposition::default();
    let mut helped = HashSet::new();
    let mut current: Option<String> = None;
    let mut finished = HashSet::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, tail) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name, true) {
                return Err(format!("bad metric name in {line:?}"));
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    finished.insert(c);
                }
                if finished.contains(name) {
                    return Err(format!("family {name} is split"));
                }
                current = Some(name.to_string());
            }
            match keyword {
                Some("HELP") if !helped.insert(name.to_string()) => return Err(format!("HELP of {name} twice")),
                Some("HELP") => {}
                Some("TYPE") => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail) {
                        return Err(format!("bad type in {line:?}"));
                    }
                    if out.samples.iter().any(|s| family_of(&s.name, &out.kinds) == Some(name.to_string())) {
                        return Err(format!("TYPE of {name} after its samples"));
                    }
                    if out.kinds.insert(name.to_string(), tail.to_string()).is_some() {
                        return Err(format!("TYPE of {name} twice"));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| format!("no value in {line:?}"))?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(l) => parse_labels(l)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let mut fields = rest.strip_prefix(' ').ok_or_else(|| format!("no space before the value in {line:?}"))?.split(' ');
        let value = parse_value(fields.next().unwrap_or(""))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| format!("bad timestamp in {line:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("trailing text in {line:?}"));
        }
        let family = family_of(name, &out.kinds).ok_or_else(|| format!("sample {name} before its TYPE"))?;
        if current.as_deref() != Some(family.as_str()) {
            return Err(format!("sample {name} outside its family's block"));
        }
        if !seen.insert((name.to_string(), labels.clone())) {
            return Err(format!("series {name}{labels:?} twice"));
        }
        if out.kinds[&family] == "counter" && !(value >= 0.0 && value.is_finite()) {
            return Err(format!("counter {name} is {value}"));
        }
        out.samples.push(Sample { name: name.to_string(), labels, value });
    }
    check_histograms(&out)?;
    Ok(out)
}

/// The family a sample name belongs to (histograms own `_bucket`, `_sum`, `_count`).
fn family_of(name: &str, kinds: &BTreeMap<String, String>) -> Option<String> {
    if kinds.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (kinds.get(base).map(String::as_str) == Some("histogram")).then(|| base.to_string())
    })
}

/// A series' labels other than `le`.
type Labels = Vec<(String, String)>;

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, kind) in &e.kinds {
        if kind != "histogram" {
            if e.samples.iter().any(|s| s.name != *family && family_of(&s.name, &e.kinds).as_ref() == Some(family)) {
                return Err(format!("{family} ({kind}) has samples of another name"));
            }
            continue;
        }
        // Buckets by their labels without `le`, in order.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e.samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let le = s.labels.get("le").ok_or_else(|| format!("{family}_bucket without le"))?;
            let key = s.labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect();
            series.entry(key).or_default().push((parse_value(le)?, s.value));
        }
        if series.is_empty() {
            // A histogram family with no series yet is allowed, but not stray _sum / _count.
            if e.samples.iter().any(|s| family_of(&s.name, &e.kinds).as_ref() == Some(family)) {
                return Err(format!("{family} has _sum or _count but no buckets"));
            }
        }
        for (labels, buckets) in series {
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            for w in buckets.windows(2) {
                if w[0].0.partial_cmp(&w[1].0) != Some(std::cmp::Ordering::Less) {
                    return Err(format!("{family}{labels:?}: le {} then {}", w[0].0, w[1].0));
                }
                if w[1].1 < w[0].1 {
                    return Err(format!("{family}{labels:?}: buckets are not cumulative"));
                }
            }
            let Some(&(last_le, total)) = buckets.last() else { continue };
            if last_le != f64::INFINITY {
                return Err(format!("{family}{labels:?}: no +Inf bucket"));
            }
            let find = |suffix: &str| {
                e.samples
                    .iter()
                    .find(|s| s.name == format!("{family}{suffix}") && s.labels == labels)
                    .map(|s| s.value)
                    .ok_or_else(|| format!("{family}{labels:?}: no {suffix}"))
            };
            if find("_count")? != total {
                return Err(format!("{family}{labels:?}: _count is not the +Inf bucket"));
            }
            let sum = find("_sum")?;
            if sum.is_nan() || sum < 0.0 {
                return Err(format!("{family}{labels:?}: _sum is {sum}"));
            }
        }
    }
    Ok(())
}

/// The checker itself: good text passes, and each broken rule is caught.
#[test]
fn the_exposition_checker_catches_each_broken_rule() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{m=\"x\\\"y\"} 3\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let e = parse_exposition(good).expect("good text parses");
    assert_eq!(e.get("a_total", &[("m", "x\"y")]), 3.0);
    let bad = [
        ("no newline at the end", good.trim_end()),
        ("sample before TYPE", "b 1\n# TYPE b gauge\n"),
        ("TYPE twice", "# TYPE b gauge\n# TYPE b gauge\nb 1\n"),
        ("bad name", "# TYPE 1b gauge\n1b 1\n"),
        ("negative counter", "# TYPE c_total counter\nc_total -1\n"),
        ("series twice", "# TYPE b gauge\nb 1\nb 2\n"),
        ("no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
        ("not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
        ("count is not +Inf", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
        ("no sum", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n"),
        ("bad escape", "# TYPE b gauge\nb{l=\"\\x\"} 1\n"),
        ("bad value", "# TYPE b gauge\nb one\n"),
        ("split family", "# TYPE b gauge\nb{l=\"1\"} 1\n# TYPE c gauge\nc 1\n# HELP b B.\n"),
    ];
    for (why, text) in bad {
        assert!(parse_exposition(text).is_err(), "{why}: {text:?} passed");
    }
}

/// `GET /metrics`, checked as exposition format.
fn scrape(server: &Server) -> Exposition {
    let r = server.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")), "{:?}", r.headers);
    parse_exposition(&r.body).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{}", r.body))
}

const MODEL: &[(&str, &str)] = &[("model_name", "smollm2-135m")];

/// Scrapes until nothing runs, waits or holds KV memory; returns the scrape and
/// how many scrapes it took.
fn idle(server: &Server) -> (Exposition, u64) {
    let started = Instant::now();
    let mut n = 0;
    loop {
        let e = scrape(server);
        n += 1;
        let busy = e.get("reka:kv_cache_bytes_in_use", MODEL) + e.get("reka:num_requests_running", MODEL) + e.get("reka:num_requests_waiting", MODEL);
        if busy == 0.0 {
            return (e, n);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still busy 10 s after the last request: {busy}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counters_and_histograms_move_by_exactly_what_the_requests_used() {
    let server = Server::start();
    let (before, _) = idle(&server);
    let kv_budget = before.get("reka:kv_cache_budget_bytes", MODEL);
    assert!(kv_budget >= (4u64 << 30) as f64 * 0.99, "the default budget is 4 GiB: {kv_budget}");
    assert!(before.get("process_resident_memory_bytes", &[]) > 50e6, "the model alone is tens of MB");

    let chat = |content: &str, n: u32| json!({"messages": [{"role": "user", "content": content}], "max_tokens": n, "temperature": 0});
    let mut usages: Vec<Value> = Vec::new();
    for (path, body) in [
        ("/v1/chat/completions", chat("What is the capital of France?", 9)),
        ("/v1/chat/completions", chat("Name a colour.", 1)),
        ("/v1/completions", json!({"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0})),
    ] {
        let r = server.post_json(path, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        usages.push(r.json()["usage"].clone());
    }
    let mut streamed = chat("Write a haiku about the sea.", 12);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = server.post_json("/v1/chat/completions", &streamed);
    assert_eq!(r.status, 200, "{}", r.body);
    let usage = r
        .sse_data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v.get("usage").filter(|u| u.is_object()).cloned())
        .expect("the stream's usage event");
    usages.push(usage);
    let bad = server.post("/v1/chat/completions", "{not json");
    assert_eq!(bad.status, 400, "{}", bad.body);

    let (after, more) = idle(&server);
    let total = |key: &str| usages.iter().map(|u| u[key].as_u64().expect("usage count") as f64).sum::<f64>();
    let delta = |name: &str, labels: &[(&str, &str)]| after.get_or_zero(name, labels) - before.get_or_zero(name, labels);
    let n = usages.len() as f64;
    assert_eq!(delta("reka:prompt_tokens_total", MODEL), total("prompt_tokens"), "usages: {usages:?}");
    assert_eq!(delta("reka:generation_tokens_total", MODEL), total("completion_tokens"), "usages: {usages:?}");
    // One first token per request; one inter-token gap per later token.
    assert_eq!(delta("reka:time_to_first_token_seconds_count", MODEL), n);
    assert_eq!(delta("reka:inter_token_latency_seconds_count", MODEL), total("completion_tokens") - n);
    assert!(delta("reka:time_to_first_token_seconds_sum", MODEL) > 0.0);
    assert!(delta("reka:inter_token_latency_seconds_sum", MODEL) > 0.0);
    // 200: the generations, the `before` scrape and those after it but the
    // last (a response is counted once it is made); 400: the bad one.
    assert_eq!(delta("reka:http_requests_total", &[("status", "200")]), n + more as f64);
    assert_eq!(delta("reka:http_requests_total", &[("status", "400")]), 1.0);
    // Idle: no KV memory, nothing queued, nothing refused.
    assert_eq!(after.get("reka:kv_cache_bytes_in_use", MODEL), 0.0);
    assert_eq!(after.get("reka:kv_cache_usage_perc", MODEL), 0.0);
    for reason in ["busy", "admission_timeout", "shed", "prompt_too_large"] {
        assert_eq!(after.get("reka:requests_rejected_total", &[("model_name", "smollm2-135m"), ("reason", reason)]), 0.0);
    }
    assert_eq!(delta("reka:requests_cancelled_total", &[]), 0.0);
    assert!(after.get("process_resident_memory_bytes", &[]) > 0.0);
}

#[test]
fn kv_bytes_are_in_use_while_a_stream_runs_and_a_client_that_leaves_is_counted() {
    let server = Server::start();
    let (before, _) = idle(&server);
    // A long greedy stream; read its first event, then watch the KV gauge.
    let body = json!({"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 400, "temperature": 0, "stream": true}).to_string();
    let mut s = TcpStream::connect(&server.addr).expect("connecting");
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("sending");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(r.read_line(&mut line).expect("reading the stream") > 0, "the stream ended early");
    }
    let during = scrape(&server);
    let kv = during.get("reka:kv_cache_bytes_in_use", MODEL);
    assert!(kv > 0.0, "a running stream holds KV memory");
    assert_eq!(during.get("reka:num_requests_running", MODEL), 1.0);
    let perc = during.get("reka:kv_cache_usage_perc", MODEL);
    assert!((perc - kv / during.get("reka:kv_cache_budget_bytes", MODEL)).abs() < 1e-9 && perc > 0.0 && perc < 1.0);
    drop(r); // the client goes away mid-stream
    let (after, _) = idle(&server);
    assert_eq!(after.get("reka:requests_cancelled_total", &[]) - before.get("reka:requests_cancelled_total", &[]), 1.0);
    let generated = after.get("reka:generation_tokens_total", MODEL) - before.get("reka:generation_tokens_total", MODEL);
    assert!((1.0..400.0).contains(&generated), "the stream stopped early: {generated} tokens");
}

#[test]
fn a_prompt_larger_than_the_whole_kv_budget_is_a_400_that_says_so() {
    // 1 MiB of KV holds 22 positions of SmolLM2-135M (46,080 bytes each).
    let server = Server::start_model(&support::default_model(), "smollm2-135m", &["--kv-budget-mb", "1"]);
    let long = "Tell me everything you know about the history of the Roman Empire, its emperors and its wars. ".repeat(4);
    for stream in [false, true] {
        let r = server.post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": long}], "max_tokens": 4, "stream": stream}));
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.header("retry-after").is_none(), "no retry can succeed: {:?}", r.headers);
        let e = r.json();
        assert_eq!(e["error"]["code"], "context_length_exceeded", "{e}");
        let msg = e["error"]["message"].as_str().expect("message");
        assert!(msg.contains("KV budget") && msg.contains("no retry can succeed"), "{msg}");
    }
    // A prompt that fits still runs under the tiny budget.
    let ok = server.post_json("/v1/completions", &json!({"prompt": "Hi", "max_tokens": 3, "temperature": 0}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let (m, _) = idle(&server);
    let too_large = [("model_name", "smollm2-135m"), ("reason", "prompt_too_large")];
    assert_eq!(m.get("reka:requests_rejected_total", &too_large), 2.0);
    assert_eq!(m.get("reka:http_requests_total", &[("status", "400")]), 2.0);
    assert_eq!(m.get_or_zero("reka:http_requests_total", &[("status", "503")]), 0.0);
}
