//! What Spin's `fermyon:spin/llm@2.0.0` means, shared by the components that
//! serve it (the Spin LLM provider a Spin app is plugged into, and the
//! gateway's `POST /infer` for Spin's `remote_http` engine) and the host that
//! enforces a component's `ai_models`.

/// Spin's inference parameters (`inferencing-params`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferParams {
    pub max_tokens: u32,
    pub repeat_penalty: f32,
    /// Tokens (prompt and answer) the repeat penalty looks back over.
    pub repeat_penalty_last_n_token_count: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
}

/// What Spin uses when an app passes no parameters (`llm::infer`).
pub const SPIN_DEFAULTS: InferParams = InferParams {
    max_tokens: 100,
    repeat_penalty: 1.1,
    repeat_penalty_last_n_token_count: 64,
    temperature: 0.8,
    top_k: 40,
    top_p: 0.9,
};

impl InferParams {
    /// Why the parameters cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Some(format!("temperature must be a finite number of at least 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Some(format!("top-p must be above 0 and at most 1, got {}", self.top_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Some(format!("repeat-penalty must be above 0, got {}", self.repeat_penalty));
        }
        None
    }
}

/// The environment variable in which the host gives a component its
/// `ai_models` (comma-separated); absent or empty: no model.
pub const AI_MODELS_ENV: &str = "REKA_AI_MODELS";

/// Whether `model` is among `ai_models` (the value of [`AI_MODELS_ENV`]).
pub fn allowed(model: &str, ai_models: &str) -> bool {
    ai_models.split(',').any(|m| !m.is_empty() && m == model)
}

/// Spin's error text (an `invalid-input`) for a model not in `ai_models`.
pub fn access_denied(model: &str) -> String {
    format!(
        "The component does not have access to use '{model}'. To give the component access, add '{model}' to the 'ai_models' key for the component in your spin.toml manifest"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_is_an_exact_list_match() {
        assert!(allowed("a", "b,a"));
        assert!(!allowed("a", "ab,b"));
        assert!(!allowed("", ""));
        assert!(!allowed("", "a,,b"));
    }

    #[test]
    fn defaults_are_usable_and_bad_values_are_named() {
        assert_eq!(SPIN_DEFAULTS.problem(), None);
        for (p, word) in [
            (InferParams { temperature: -1.0, ..SPIN_DEFAULTS }, "temperature"),
            (InferParams { top_p: 0.0, ..SPIN_DEFAULTS }, "top-p"),
            (InferParams { top_p: f32::NAN, ..SPIN_DEFAULTS }, "top-p"),
            (InferParams { repeat_penalty: f32::INFINITY, ..SPIN_DEFAULTS }, "repeat-penalty"),
            (InferParams { repeat_penalty: 0.0, ..SPIN_DEFAULTS }, "repeat-penalty"),
        ] {
            assert!(p.problem().is_some_and(|m| m.contains(word)), "{p:?}");
        }
    }
}
