//! The request options beyond temperature, top-p and top-k: OpenAI's
//! `presence_penalty`, `frequency_penalty`, `logit_bias`, `n` and log-probs
//! (`logprobs` as an integer on completions, `logprobs` + `top_logprobs` on
//! chat), and vLLM's `repetition_penalty`, `min_tokens`, `ignore_eos` and
//! `echo`. Each bad value is a 400 that names the field.

use crate::error::ApiError;
use serde_json::{Map, Value};

/// Most answers per prompt.
pub const MAX_N: u32 = 128;
/// Most log-probs per position (OpenAI's and vLLM's limit).
pub const MAX_LOGPROBS: u32 = 20;

/// The extra options, as the generate component takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Extras {
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub repetition_penalty: f32,
    pub logit_bias: Vec<(u32, f32)>,
    pub min_tokens: u32,
    pub ignore_eos: bool,
    pub n: u32,
    /// Best tokens per generated token; `None`: no log-probs.
    pub logprobs: Option<u32>,
    /// Completions: return the prompt (and its log-probs) before the answer.
    pub echo: bool,
    /// vLLM's `return_tokens_as_token_ids`: log-prob tokens as `token_id:{id}`.
    pub tokens_as_ids: bool,
}

fn number(o: &Map<String, Value>, key: &str, range: (f64, f64), what: &str) -> Result<Option<f64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x >= range.0 && x <= range.1 => Ok(Some(x)),
            _ => Err(ApiError::invalid(key, format!("`{key}` must be {what}."))),
        },
        Some(_) => Err(ApiError::invalid(key, format!("`{key}` must be {what}."))),
    }
}

fn uint(o: &Map<String, Value>, key: &str, max: u32) -> Result<Option<u32>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(x) if x <= max as u64 => Ok(Some(x as u32)),
            _ => Err(ApiError::invalid(key, format!("`{key}` must be an integer from 0 to {max}."))),
        },
    }
}

fn boolean(o: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(key, format!("`{key}` must be a boolean."))),
    }
}

/// `logit_bias`: `{"token id": bias}` with biases from -100 to 100.
fn logit_bias(o: &Map<String, Value>) -> Result<Vec<(u32, f32)>, ApiError> {
    let bad = || ApiError::invalid("logit_bias", "`logit_bias` must map token ids (strings of integers) to numbers from -100 to 100.");
    match o.get("logit_bias") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) if m.len() <= 1024 => m
            .iter()
            .map(|(k, v)| {
                let id = k.trim().parse::<u32>().map_err(|_| bad())?;
                match v.as_f64() {
                    Some(b) if (-100.0..=100.0).contains(&b) => Ok((id, b as f32)),
                    _ => Err(bad()),
                }
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Reads the extras; `chat` picks the chat form of the log-prob options.
pub fn extras(o: &Map<String, Value>, chat: bool) -> Result<Extras, ApiError> {
    let penalty = "a number from -2 to 2";
    let logprobs = if chat {
        let top = uint(o, "top_logprobs", MAX_LOGPROBS)?;
        match (boolean(o, "logprobs")?, top) {
            (true, t) => Some(t.unwrap_or(0)),
            (false, Some(_)) => return Err(ApiError::invalid("top_logprobs", "`top_logprobs` needs `logprobs: true`.")),
            (false, None) => None,
        }
    } else {
        match o.get("logprobs") {
            Some(Value::Bool(_)) => return Err(ApiError::invalid("logprobs", format!("`logprobs` must be an integer from 0 to {MAX_LOGPROBS} on completions."))),
            _ => uint(o, "logprobs", MAX_LOGPROBS)?,
        }
    };
    let n = match o.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_N as u64).contains(&n) => n as u32,
            _ => return Err(ApiError::invalid("n", format!("`n` must be an integer from 1 to {MAX_N}."))),
        },
    };
    let echo = if chat { false } else { boolean(o, "echo")? };
    Ok(Extras {
        presence_penalty: number(o, "presence_penalty", (-2.0, 2.0), penalty)?.unwrap_or(0.0) as f32,
        frequency_penalty: number(o, "frequency_penalty", (-2.0, 2.0), penalty)?.unwrap_or(0.0) as f32,
        repetition_penalty: match number(o, "repetition_penalty", (f64::MIN_POSITIVE, 2.0), "a number above 0, at most 2")? {
            Some(r) => r as f32,
            None => 1.0,
        },
        logit_bias: logit_bias(o)?,
        min_tokens: uint(o, "min_tokens", u32::MAX)?.unwrap_or(0),
        ignore_eos: boolean(o, "ignore_eos")?,
        n,
        logprobs,
        echo,
        tokens_as_ids: boolean(o, "return_tokens_as_token_ids")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn reads_every_option() {
        let e = extras(
            &obj(json!({"presence_penalty": 0.5, "frequency_penalty": -1, "repetition_penalty": 1.2, "logit_bias": {"17": -100, "3": 2.5},
                        "min_tokens": 4, "ignore_eos": true, "n": 3, "logprobs": 5, "echo": true})),
            false,
        )
        .map_err(|e| e.message)
        .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!((e.presence_penalty, e.frequency_penalty, e.repetition_penalty), (0.5, -1.0, 1.2));
        let mut bias = e.logit_bias.clone();
        bias.sort_by_key(|b| b.0);
        assert_eq!(bias, vec![(3, 2.5), (17, -100.0)]);
        assert_eq!((e.min_tokens, e.ignore_eos, e.n, e.logprobs, e.echo), (4, true, 3, Some(5), true));
        let chat = extras(&obj(json!({"logprobs": true, "top_logprobs": 2})), true).map(|e| e.logprobs).ok();
        assert_eq!(chat, Some(Some(2)));
        assert_eq!(extras(&obj(json!({"logprobs": true})), true).map(|e| e.logprobs).ok(), Some(Some(0)));
        assert_eq!(extras(&obj(json!({})), false).map(|e| (e.n, e.logprobs, e.repetition_penalty)).ok(), Some((1, None, 1.0)));
    }

    #[test]
    fn refuses_out_of_range_values_naming_the_field() {
        for (bad, chat, field) in [
            (json!({"presence_penalty": 3}), false, "presence_penalty"),
            (json!({"frequency_penalty": "x"}), false, "frequency_penalty"),
            (json!({"repetition_penalty": 0}), false, "repetition_penalty"),
            (json!({"logit_bias": {"x": 1}}), false, "logit_bias"),
            (json!({"logit_bias": {"1": 101}}), false, "logit_bias"),
            (json!({"n": 0}), false, "n"),
            (json!({"n": 1000}), true, "n"),
            (json!({"logprobs": 21}), false, "logprobs"),
            (json!({"logprobs": true}), false, "logprobs"),
            (json!({"top_logprobs": 3}), true, "top_logprobs"),
            (json!({"logprobs": true, "top_logprobs": 21}), true, "top_logprobs"),
            (json!({"min_tokens": -1}), false, "min_tokens"),
            (json!({"echo": 1}), false, "echo"),
        ] {
            let e = extras(&obj(bad.clone()), chat).map(|_| ()).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(field)), "{bad}");
        }
    }
}
