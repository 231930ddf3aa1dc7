//! Chat templates: the model's Jinja template (from GGUF `tokenizer.chat_template`
//! or `tokenizer_config.json`) rendered with minijinja, as transformers and
//! llama.cpp render it; a plain `role: content` format when the model has none.

use minijinja::{context, Environment, Error, ErrorKind};
use reka_protocol::ModelInfo;
use reka_tokenizer::Tokenizer;
use serde::Serialize;

/// One message as templates see it.
#[derive(Debug, Serialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

fn raise_exception(msg: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

fn token_text(tok: &Tokenizer, id: Option<u32>) -> String {
    id.map(|i| String::from_utf8_lossy(tok.token_bytes(i)).into_owned())
        .unwrap_or_default()
}

/// Renders `turns` with the model's template and the generation prompt appended.
pub fn render(info: &ModelInfo, tok: &Tokenizer, turns: &[Turn]) -> Result<String, String> {
    match info.chat_template.as_deref() {
        Some(source) => render_jinja(
            source,
            turns,
            &token_text(tok, info.bos_token_id),
            &token_text(tok, info.eos_token_id),
        ),
        None => Ok(plain(turns)),
    }
}

/// Renders a Jinja chat template with the settings transformers uses
/// (`trim_blocks`, `lstrip_blocks`).
pub fn render_jinja(source: &str, turns: &[Turn], bos: &str, eos: &str) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_template("chat", source)
        .map_err(|e| format!("the model's chat template does not parse: {e}"))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| format!("chat template: {e}"))?;
    tmpl.render(context! {
        messages => turns,
        add_generation_prompt => true,
        bos_token => bos,
        eos_token => eos,
    })
    .map_err(|e| format!("the chat template rejected the messages: {e}"))
}

/// The format used when a model ships no template.
fn plain(turns: &[Turn]) -> String {
    let mut s = String::new();
    for t in turns {
        s.push_str(&t.role);
        s.push_str(": ");
        s.push_str(&t.content);
        s.push('\n');
    }
    s.push_str("assistant:");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// SmolLM2's template rendered by Jinja2 (tests/fixtures/chat_template says how).
    #[test]
    fn renders_like_jinja2() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/chat_template/smollm2.json");
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let source = fixture["template"].as_str().expect("template");
        for case in fixture["cases"].as_array().expect("cases") {
            let turns: Vec<Turn> = case["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| Turn {
                    role: m["role"].as_str().unwrap_or_default().into(),
                    content: m["content"].as_str().unwrap_or_default().into(),
                })
                .collect();
            let got = render_jinja(source, &turns, "<|im_start|>", "<|im_end|>").expect("renders");
            assert_eq!(got, case["rendered"].as_str().expect("rendered"));
        }
    }

    #[test]
    fn template_errors_are_reported_not_panicked() {
        let turns = [Turn { role: "user".into(), content: "x".into() }];
        let e = render_jinja("{{ raise_exception('no system role') }}", &turns, "", "").unwrap_err();
        assert!(e.contains("no system role"), "{e}");
        assert!(render_jinja("{% for %}", &turns, "", "").is_err());
    }
}
