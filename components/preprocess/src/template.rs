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

/// Renders `turns` with the generation prompt appended.
pub fn render(info: &ModelInfo, tok: &Tokenizer, turns: &[Turn]) -> Result<String, String> {
    let Some(source) = info.chat_template.as_deref() else {
        return Ok(plain(turns));
    };
    let mut env = Environment::new();
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
        bos_token => token_text(tok, info.bos_token_id),
        eos_token => token_text(tok, info.eos_token_id),
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
