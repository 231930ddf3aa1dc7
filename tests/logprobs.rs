//! Log-probs, echo, penalties, `n` and the tokenizer endpoints over a real
//! socket against SmolLM2-135M-Instruct, checked against independent
//! references: transformers' f32 forward pass of the same GGUF with the
//! penalties computed by hand (`tests/fixtures/logprobs/penalties.json`,
//! `echo.json`, made by `make_penalties.py`), and vLLM 0.33.0's own response
//! models (`vllm_shapes.json`, made by `make_vllm_shapes.py`).

mod support;

use serde_json::{json, Value};
use support::{root, Server};

/// How far a log-prob of our Q4_1 engine (activations quantised to 8 bits in
/// the matmuls, as llama.cpp does) may be from transformers' f32 forward pass
/// of the same dequantised weights. Measured on `echo.json`'s 56 positions:
/// ours vs transformers up to 0.34, ours vs llama.cpp 0.3.36 up to 0.36,
/// transformers vs llama.cpp up to 0.31 (docs/EVAL.md).
const TOL: f64 = 0.5;

/// A reference step whose best two logits are closer than this may come out
/// the other way round here; token-by-token comparison stops after it.
const NEAR_TIE: f64 = 2.0 * TOL;

fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/logprobs").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("fixture JSON")
}

fn completions(s: &Server, body: Value) -> Value {
    let r = s.post_json("/v1/completions", &body);
    assert_eq!(r.status, 200, "{body}: {}", r.body);
    r.json()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every penalty and `logit_bias` / `min_tokens`, greedy with `logprobs: 5`:
/// the same tokens as the reference up to its first near-tie, and each
/// chosen token's (adjusted) log-prob within [`TOL`].
fn check_penalties(s: &Server) {
    let reference = fixture("penalties.json");
    let mut worst: f64 = 0.0;
    for r in reference["records"].as_array().expect("records") {
        let mut body = json!({"prompt": r["prompt_ids"], "max_tokens": r["max_tokens"], "temperature": 0, "logprobs": 5,
                              "return_tokens_as_token_ids": true});
        for (k, v) in r["settings"].as_object().expect("settings") {
            body[k] = v.clone();
        }
        let v = completions(s, body.clone());
        let lp = &v["choices"][0]["logprobs"];
        let tokens = lp["tokens"].as_array().expect("tokens");
        let near_tie = r["steps"].as_array().expect("steps").iter().position(|st| f(&st["margin"]) < NEAR_TIE);
        let check = near_tie.map_or(r["steps"].as_array().map_or(0, Vec::len), |t| t + 1);
        for (i, st) in r["steps"].as_array().expect("steps").iter().take(check).enumerate() {
            let want = format!("token_id:{}", st["id"]);
            if Some(i) == near_tie && tokens.get(i).and_then(Value::as_str) != Some(want.as_str()) {
                break; // the near tie went the other way
            }
            assert_eq!(tokens.get(i).and_then(Value::as_str), Some(want.as_str()), "step {i} of {body}: {v}");
            let got = f(&lp["token_logprobs"][i]);
            let expect = st["logprob"].as_f64().unwrap_or(-9999.0);
            worst = worst.max((got - expect).abs());
            assert!((got - expect).abs() < TOL, "step {i} of {body}: log-prob {got} vs {expect}");
            // The top five, by id and log-prob, where they are not near ties.
            for t in st["top_logprobs"].as_array().expect("top").iter().take(2) {
                let key = format!("token_id:{}", t["id"]);
                if let (Some(g), Some(e)) = (lp["top_logprobs"][i].get(&key).and_then(Value::as_f64), t["logprob"].as_f64()) {
                    assert!((g - e).abs() < TOL, "top {key} at step {i} of {body}: {g} vs {e}");
                }
            }
        }
        if near_tie.is_none() {
            assert_eq!(tokens.len(), r["generated_ids"].as_array().map_or(0, Vec::len), "{body}");
            assert_eq!(v["choices"][0]["finish_reason"], r["finish_reason"], "{body}");
        }
    }
    eprintln!("penalties: worst |Δ log-prob| vs transformers = {worst:.4}");
}

/// The additive adjustments exactly: after the context `ids`, the log-prob
/// gap between two tokens under `presence_penalty`, `frequency_penalty` and
/// `logit_bias` is the unadjusted gap minus the difference of their
/// adjustments (OpenAI's formula), up to f32 rounding. The answer's own
/// tokens are counted from the penalised run itself.
fn check_penalty_formula(s: &Server) {
    let prompt = json!([504, 3575, 282, 4649, 314]); // "The capital of France is"
    let (p, fr, bias_id, bias) = (0.75, 0.5, 260u32, 1.25); // 260 = " the"
    let pen = completions(s, json!({"prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 20, "return_tokens_as_token_ids": true,
                                   "presence_penalty": p, "frequency_penalty": fr, "logit_bias": {bias_id.to_string(): bias}}));
    let lp = &pen["choices"][0]["logprobs"];
    let ids: Vec<u32> = lp["tokens"].as_array().expect("tokens").iter().filter_map(|t| t.as_str()?.strip_prefix("token_id:")?.parse().ok()).collect();
    let mut checked = 0;
    for k in 1..ids.len() {
        // The unadjusted distribution after the same context.
        let ctx: Vec<u32> = prompt.as_array().expect("ids").iter().filter_map(|v| v.as_u64().map(|x| x as u32)).chain(ids[..k].iter().copied()).collect();
        let raw = completions(s, json!({"prompt": ctx, "max_tokens": 1, "temperature": 0, "logprobs": 20, "return_tokens_as_token_ids": true}));
        let raw_top = raw["choices"][0]["logprobs"]["top_logprobs"][0].as_object().expect("top").clone();
        let pen_top = lp["top_logprobs"][k].as_object().expect("top").clone();
        let adj = |id: u32| {
            let c = ids[..k].iter().filter(|&&x| x == id).count() as f64;
            let pres = if c > 0.0 { p } else { 0.0 };
            -(fr * c + pres) + if id == bias_id { bias } else { 0.0 }
        };
        let both: Vec<(u32, f64, f64)> = pen_top
            .iter()
            .filter_map(|(key, v)| Some((key.strip_prefix("token_id:")?.parse().ok()?, v.as_f64()?, raw_top.get(key)?.as_f64()?)))
            .collect();
        for w in both.windows(2) {
            let ((a, pa, ra), (b, pb, rb)) = (w[0], w[1]);
            let want = (ra + adj(a)) - (rb + adj(b));
            assert!(((pa - pb) - want).abs() < 2e-3, "step {k}: gap {a}-{b} is {} under penalties, {want} by the formula", pa - pb);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} gaps compared");
}

/// `echo` with `max_tokens: 0` scores the prompt only: the first position
/// null, every other within [`TOL`] of transformers, and the text prompt's
/// log-probs equal the same prompt's as token ids.
fn check_echo(s: &Server) {
    let reference = fixture("echo.json");
    for r in reference["records"].as_array().expect("records") {
        let ids = &r["ids"];
        let v = completions(s, json!({"prompt": [ids], "max_tokens": 0, "echo": true, "logprobs": 5, "return_tokens_as_token_ids": true}));
        let c = &v["choices"][0];
        assert_eq!(v["usage"]["completion_tokens"], 0);
        let lp = &c["logprobs"];
        let n = ids.as_array().map_or(0, Vec::len);
        assert_eq!(lp["token_logprobs"].as_array().map(Vec::len), Some(n));
        assert!(lp["token_logprobs"][0].is_null() && lp["top_logprobs"][0].is_null());
        for (i, p) in r["positions"].as_array().expect("positions").iter().enumerate().skip(1) {
            let (got, want) = (f(&lp["token_logprobs"][i]), p["logprob"].as_f64().unwrap_or(-9999.0));
            assert!((got - want).abs() < TOL, "position {i}: {got} vs {want}");
        }
        // Each position scored in the prefill (all rows through the LM head)
        // equals the next-token log-prob after that prefix alone (its last row).
        let all: Vec<u64> = ids.as_array().expect("ids").iter().filter_map(Value::as_u64).collect();
        let mut same = 0;
        for i in 1..all.len().min(8) {
            let next = completions(s, json!({"prompt": &all[..i], "max_tokens": 1, "temperature": 0, "logprobs": 20, "return_tokens_as_token_ids": true}));
            if let Some(x) = next["choices"][0]["logprobs"]["top_logprobs"][0].get(format!("token_id:{}", all[i])).and_then(Value::as_f64) {
                let echoed = f(&lp["token_logprobs"][i]);
                assert!((x - echoed).abs() < 2e-3, "position {i}: {echoed} in the prefill, {x} after the prefix");
                same += 1;
            }
        }
        assert!(same >= 2, "only {same} positions compared");
        // The prompt as text, tokenised by the server, scores as its ids do.
        let (text, prompt_ids) = (r["prompt"].as_str().expect("prompt"), &r["prompt_ids"]);
        let by_ids = completions(s, json!({"prompt": [prompt_ids], "max_tokens": 0, "echo": true, "logprobs": 3, "return_tokens_as_token_ids": true}));
        let by_text = completions(s, json!({"prompt": text, "max_tokens": 0, "echo": true, "logprobs": 3, "return_tokens_as_token_ids": true}));
        assert_eq!(by_text["choices"][0]["logprobs"], by_ids["choices"][0]["logprobs"], "{text}");
        assert_eq!(by_text["choices"][0]["text"].as_str(), Some(text));
    }
}

/// `n` = 4 with a seed: four different answers, the same four again.
fn check_n(s: &Server) {
    let body = json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0, "seed": 7, "n": 4});
    let texts = |v: &Value| -> Vec<String> {
        let cs = v["choices"].as_array().expect("choices");
        assert_eq!(cs.iter().map(|c| c["index"].as_u64()).collect::<Vec<_>>(), (0..4).map(Some).collect::<Vec<_>>());
        cs.iter().map(|c| c["text"].as_str().unwrap_or_default().to_string()).collect()
    };
    let a = texts(&completions(s, body.clone()));
    let b = texts(&completions(s, body.clone()));
    assert_eq!(a, b, "the same seed gives the same answers");
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert_eq!(distinct.len(), 4, "{a:?}");
    // Two prompts × n = 2: indices prompt × n + answer, usage over all.
    let v = completions(s, json!({"prompt": ["Hello", "The sky is"], "max_tokens": 3, "temperature": 0, "n": 2}));
    let cs = v["choices"].as_array().expect("choices");
    assert_eq!(cs.len(), 4);
    assert_eq!(cs[0]["text"], cs[1]["text"], "greedy answers of one prompt agree");
    assert_eq!(v["usage"]["completion_tokens"], 12);
}

/// `ignore_eos`: an answer that stops at `<|im_end|>` after a few tokens runs
/// on to `max_tokens` instead.
fn check_ignore_eos(s: &Server) {
    let prompt = "<|im_start|>user\nIs the sky blue? Answer yes or no.<|im_end|>\n<|im_start|>assistant\n";
    let body = |ignore: bool| json!({"prompt": prompt, "parse_special": true, "max_tokens": 10, "temperature": 0, "ignore_eos": ignore});
    let stops = completions(s, body(false));
    assert_eq!(stops["choices"][0]["finish_reason"], "stop", "{stops}");
    assert!(stops["usage"]["completion_tokens"].as_u64() < Some(10), "{stops}");
    let runs = completions(s, body(true));
    assert_eq!((runs["choices"][0]["finish_reason"].as_str(), runs["usage"]["completion_tokens"].as_u64()), (Some("length"), Some(10)), "{runs}");
}

/// Our responses field by field against vLLM's models: every field we write
/// is one of vLLM's, and the log-prob objects have exactly vLLM's fields.
fn check_shapes(s: &Server) {
    let vllm = fixture("vllm_shapes.json");
    let fields = |model: &str| -> Vec<String> {
        vllm["models"][model]["fields"].as_array().unwrap_or_else(|| panic!("{model}")).iter().filter_map(|f| f["name"].as_str().map(str::to_string)).collect()
    };
    let subset = |v: &Value, model: &str| {
        let known = fields(model);
        for k in v.as_object().unwrap_or_else(|| panic!("{model}: {v}")).keys() {
            assert!(known.contains(k), "{model} has no field {k:?} (vLLM's: {known:?})");
        }
    };
    let exactly = |v: &Value, model: &str| {
        let mut ours: Vec<String> = v.as_object().unwrap_or_else(|| panic!("{model}: {v}")).keys().cloned().collect();
        let mut theirs = fields(model);
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{model}");
    };
    let v = completions(s, json!({"prompt": "Hi", "max_tokens": 2, "temperature": 0, "logprobs": 2}));
    subset(&v, "CompletionResponse");
    subset(&v["choices"][0], "CompletionResponseChoice");
    exactly(&v["choices"][0]["logprobs"], "CompletionLogProbs");
    subset(&v["usage"], "UsageInfo");
    let r = s.post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0, "logprobs": true, "top_logprobs": 2}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    subset(&v, "ChatCompletionResponse");
    subset(&v["choices"][0], "ChatCompletionResponseChoice");
    exactly(&v["choices"][0]["logprobs"], "ChatCompletionLogProbs");
    exactly(&v["choices"][0]["logprobs"]["content"][0], "ChatCompletionLogProbsContent");
    exactly(&v["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0], "ChatCompletionLogProb");
    let t = s.post_json("/tokenize", &json!({"prompt": "The capital", "add_special_tokens": false}));
    assert_eq!(t.status, 200, "{}", t.body);
    exactly(&t.json(), "TokenizeResponse");
    // vLLM's own example: "The capital" is [504, 3575] in SmolLM2's vocabulary.
    assert_eq!(t.json()["tokens"], json!([504, 3575]));
    let d = s.post_json("/detokenize", &json!({"tokens": [504, 3575]}));
    exactly(&d.json(), "DetokenizeResponse");
    assert_eq!(d.json()["prompt"], "The capital");
    let i = s.get("/tokenizer_info").json();
    assert_eq!((i["eos_token"].as_str(), i["model_max_length"].as_u64()), (Some("<|im_end|>"), Some(8192)));
    // Bad requests get a 400 that names the field.
    for (body, param) in [
        (json!({"prompt": "x", "logprobs": 21}), "logprobs"),
        (json!({"prompt": "x", "max_tokens": 0}), "max_tokens"),
        (json!({"prompt": "x", "n": 0}), "n"),
        (json!({"prompt": [[]]}), "prompt"),
        (json!({"prompt": "x", "min_tokens": 9, "max_tokens": 2}), "min_tokens"),
    ] {
        let r = s.post_json("/v1/completions", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["error"]["param"], param, "{body}");
    }
    let r = s.post_json("/detokenize", &json!({"tokens": [49152]}));
    assert_eq!(r.status, 400, "{}", r.body);
}

/// One server for all checks (a start costs seconds).
#[test]
fn logprobs_penalties_n_and_tokenizer_endpoints() {
    let s = Server::start();
    check_shapes(&s);
    check_echo(&s);
    check_penalties(&s);
    check_penalty_formula(&s);
    check_n(&s);
    check_ignore_eos(&s);
}
