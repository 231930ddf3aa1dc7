//! Log-probabilities in the shapes clients read: vLLM's (and the legacy
//! OpenAI) completions object (`tokens`, `token_logprobs`, `top_logprobs` as
//! `{token: logprob}` including the chosen token, `text_offset` in characters)
//! and OpenAI's chat object (`content[]` with `token`, `logprob`, `bytes`,
//! `top_logprobs`). A `-inf` log-prob is written as -9999.0, as vLLM does (JSON
//! has no infinity).

use crate::reka::inference::types::TokenLogprob;
use serde_json::{json, Map, Value};

/// A log-prob as JSON: finite, or -9999.0.
fn number(x: f32) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(-9999.0)
    }
}

/// A token's text: its bytes as UTF-8, invalid sequences as U+FFFD; or, with
/// vLLM's `return_tokens_as_token_ids`, `token_id:{id}`.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How tokens are named in log-probs.
#[derive(Clone, Copy, Default)]
pub struct Naming {
    /// vLLM's `return_tokens_as_token_ids`.
    pub as_ids: bool,
}

impl Naming {
    fn name(self, id: u32, bytes: &[u8]) -> String {
        if self.as_ids {
            format!("token_id:{id}")
        } else {
            text(bytes)
        }
    }
}

/// The completions log-probs of `entries`, whose text starts `offset`
/// characters into the choice's text; also returns the offset after them.
pub fn completion(entries: &[TokenLogprob], mut offset: usize, naming: Naming) -> (Value, usize) {
    let (mut tokens, mut lps, mut tops, mut offsets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        let t = naming.name(e.token, &e.bytes);
        offsets.push(offset);
        offset += text(&e.bytes).chars().count();
        match e.logprob {
            None => {
                lps.push(Value::Null);
                tops.push(Value::Null);
            }
            Some(lp) => {
                lps.push(number(lp));
                let mut top = Map::new();
                for c in &e.top {
                    top.entry(naming.name(c.token, &c.bytes)).or_insert_with(|| number(c.logprob));
                }
                top.entry(t.clone()).or_insert_with(|| number(lp));
                tops.push(Value::Object(top));
            }
        }
        tokens.push(json!(t));
    }
    (json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}), offset)
}

/// The chat log-probs of `entries` (generated tokens only).
pub fn chat(entries: &[TokenLogprob], naming: Naming) -> Value {
    let content: Vec<Value> = entries
        .iter()
        .map(|e| {
            let top: Vec<Value> = e
                .top
                .iter()
                .map(|c| json!({"token": naming.name(c.token, &c.bytes), "logprob": number(c.logprob), "bytes": c.bytes}))
                .collect();
            json!({"token": naming.name(e.token, &e.bytes), "logprob": number(e.logprob.unwrap_or(f32::NEG_INFINITY)), "bytes": e.bytes, "top_logprobs": top})
        })
        .collect();
    json!({"content": content})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reka::inference::types::TopLogprob;

    fn e(bytes: &str, lp: Option<f32>, top: &[(&str, f32)]) -> TokenLogprob {
        TokenLogprob {
            token: 0,
            bytes: bytes.as_bytes().to_vec(),
            logprob: lp,
            top: top.iter().map(|(t, l)| TopLogprob { token: 0, bytes: t.as_bytes().to_vec(), logprob: *l }).collect(),
        }
    }

    #[test]
    fn completion_shape_has_null_first_and_the_chosen_token_in_top() {
        let entries = [e("Hé", None, &[]), e(" lo", Some(-1.5), &[(" la", -0.5)]), e("!", Some(f32::NEG_INFINITY), &[("!", -2.0)])];
        let (v, end) = completion(&entries, 4, Naming::default());
        let (ids, _) = completion(&entries[1..2], 0, Naming { as_ids: true });
        assert_eq!(ids["tokens"], json!(["token_id:0"]));
        assert_eq!(v["tokens"], json!(["Hé", " lo", "!"]));
        assert_eq!(v["token_logprobs"], json!([null, -1.5, -9999.0]));
        assert_eq!(v["top_logprobs"], json!([null, {" la": -0.5, " lo": -1.5}, {"!": -2.0}]));
        assert_eq!(v["text_offset"], json!([4, 6, 9]));
        assert_eq!(end, 10);
    }

    #[test]
    fn chat_shape_carries_bytes() {
        let v = chat(&[e("a", Some(-0.25), &[("a", -0.25), ("b", -2.0)])], Naming::default());
        assert_eq!(
            v,
            json!({"content": [{"token": "a", "logprob": -0.25, "bytes": [97],
                "top_logprobs": [{"token": "a", "logprob": -0.25, "bytes": [97]}, {"token": "b", "logprob": -2.0, "bytes": [98]}]}]})
        );
    }
}
