//! The Spin LLM provider: exports `fermyon:spin/llm@2.0.0` on top of the
//! preprocess and generate components. The host plugs it into a Spin app that
//! imports the interface, so the app's `llm::infer` and
//! `llm::generate_embeddings` run through the same components and engine
//! threads as the HTTP API, batched with every other request.
//!
//! As Spin does, a call is refused (`invalid-input`, Spin's text) unless the
//! model is among the component's `ai_models`, which the host passes in
//! [`AI_MODELS_ENV`]; absent parameters are Spin's defaults.

wit_bindgen::generate!({
    world: "spin-llm",
    path: "../../wit",
});

use exports::fermyon::spin::llm::{
    EmbeddingsResult, EmbeddingsUsage, Error as LlmError, Guest, InferencingParams, InferencingResult, InferencingUsage,
};
use exports::reka::inference::spin_infer::Guest as InferGuest;
use reka::inference::generate::{embed, Generation};
use reka::inference::preprocess::encode_text;
use reka::inference::types::{Error, ErrorKind, Sampling, SpinAnswer, SpinParams};
use reka_protocol::spin::{access_denied, allowed, InferParams, AI_MODELS_ENV, SPIN_DEFAULTS};

struct Provider;

/// Spin's error for a model this component may not use.
fn check_access(model: &str) -> Result<(), LlmError> {
    let ai_models = std::env::var(AI_MODELS_ENV).unwrap_or_default();
    if allowed(model, &ai_models) {
        Ok(())
    } else {
        Err(LlmError::InvalidInput(access_denied(model)))
    }
}

/// Our errors in Spin's terms: an unknown model is `model-not-supported`, a
/// refused request `invalid-input`, the rest `runtime-error`.
fn to_llm(e: Error) -> LlmError {
    match e.kind {
        ErrorKind::ModelNotFound => LlmError::ModelNotSupported,
        ErrorKind::InvalidRequest | ErrorKind::ContextFull => LlmError::InvalidInput(e.message),
        ErrorKind::Internal | ErrorKind::Overloaded | ErrorKind::Busy => LlmError::RuntimeError(e.message),
    }
}

fn invalid(message: String) -> Error {
    Error { kind: ErrorKind::InvalidRequest, message }
}

impl Guest for Provider {
    fn infer(model: String, prompt: String, p: Option<InferencingParams>) -> Result<InferencingResult, LlmError> {
        check_access(&model)?;
        let p = p.map(|p| SpinParams {
            max_tokens: p.max_tokens,
            repeat_penalty: p.repeat_penalty,
            repeat_penalty_last_n_token_count: p.repeat_penalty_last_n_token_count,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        });
        let a = <Provider as InferGuest>::infer(model, prompt, p).map_err(to_llm)?;
        Ok(InferencingResult {
            text: a.text,
            usage: InferencingUsage { prompt_token_count: a.prompt_token_count, generated_token_count: a.generated_token_count },
        })
    }

    fn generate_embeddings(model: String, text: Vec<String>) -> Result<EmbeddingsResult, LlmError> {
        check_access(&model)?;
        let e = embed(&model, &text).map_err(to_llm)?;
        Ok(EmbeddingsResult { embeddings: e.vectors, usage: EmbeddingsUsage { prompt_token_count: e.prompt_tokens } })
    }
}

impl InferGuest for Provider {
    fn infer(model: String, prompt: String, p: Option<SpinParams>) -> Result<SpinAnswer, Error> {
        let p = p.map_or(SPIN_DEFAULTS, |p| InferParams {
            max_tokens: p.max_tokens,
            repeat_penalty: p.repeat_penalty,
            repeat_penalty_last_n_token_count: p.repeat_penalty_last_n_token_count,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        });
        if let Some(problem) = p.problem() {
            return Err(invalid(problem));
        }
        // The same tokens as `/v1/completions` makes of a text prompt.
        let encoded = encode_text(&model, &prompt, false)?;
        let used = encoded.token_ids.len() as u32;
        if used == 0 {
            return Err(invalid("the prompt is empty".into()));
        }
        if used >= encoded.context_length {
            return Err(Error {
                kind: ErrorKind::ContextFull,
                message: format!("the prompt takes {used} tokens; the model's context holds {}", encoded.context_length),
            });
        }
        // Spin's max-tokens is an upper bound ("may return less tokens").
        let max_tokens = p.max_tokens.min(encoded.context_length - used);
        if max_tokens == 0 {
            return Ok(SpinAnswer { text: String::new(), prompt_token_count: used, generated_token_count: 0 });
        }
        let sampling = Sampling {
            max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            seed: wasip2::random::random::get_random_u64(),
            stop: Vec::new(),
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: p.repeat_penalty,
            logit_bias: Vec::new(),
            min_tokens: 0,
            ignore_eos: false,
            logprobs: None,
            n: 1,
            repetition_window: p.repeat_penalty_last_n_token_count,
            constraint: None,
            skip_special_tokens: true,
        };
        let ids = vec![encoded.token_ids];
        let gen = Generation::start(&model, &ids, &[], &encoded.stop_token_ids, &encoded.stop_strings, &sampling, None)?;
        let (mut text, mut generated) = (String::new(), 0);
        while let Some(chunk) = gen.next()? {
            text.push_str(&chunk.text);
            generated = chunk.completion_tokens;
        }
        Ok(SpinAnswer { text, prompt_token_count: used, generated_token_count: generated })
    }
}

export!(Provider);
