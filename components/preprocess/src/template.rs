//! Chat templates: the model's Jinja template (from GGUF `tokenizer.chat_template`
//! or `tokenizer_config.json`) rendered with minijinja, as transformers and
//! llama.cpp render it; a plain `role: content` format when the model has none.
//!
//! A model whose template is in the Reka format (`human: … <sep> assistant:`) gets
//! our own rendering of that format ([`REKA_TEMPLATE`]), which folds the system
//! prompt into the first human turn and drops earlier turns' reasoning, whatever
//! variant of the template the checkpoint ships. The choice is made from the
//! model's metadata (its template), never from its file name.

use minijinja::{context, Environment, Error, ErrorKind};
use reka_protocol::ModelInfo;
use reka_tokenizer::Tokenizer;
use serde::Serialize;

/// One message as templates see it.
#[derive(Debug, Default, Serialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
    /// An assistant turn's tool calls (request text, marked).
    #[serde(skip)]
    pub calls: Vec<Call>,
    /// A tool result's call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A tool call of an earlier assistant turn: its function's name and its
/// arguments' JSON text.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub arguments: String,
}

impl Turn {
    pub fn new(role: &str, content: String) -> Self {
        Self { role: role.to_string(), content, ..Self::default() }
    }

    /// The message as transformers hands it to a template that takes tool
    /// calls: arguments as an object where they parse as one (as vLLM does).
    fn with_calls(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"role": self.role, "content": self.content});
        if !self.calls.is_empty() {
            let calls: Vec<serde_json::Value> = self
                .calls
                .iter()
                .map(|c| {
                    let args = serde_json::from_str::<serde_json::Value>(&c.arguments).unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone()));
                    serde_json::json!({"type": "function", "function": {"name": c.name, "arguments": args}})
                })
                .collect();
            v["tool_calls"] = serde_json::Value::Array(calls);
        }
        if let Some(id) = &self.tool_call_id {
            v["tool_call_id"] = serde_json::json!(id);
        }
        v
    }
}

/// The tools of a request: each function as JSON text written as Python's
/// `json.dumps` writes it (marked request text), and as a value.
#[derive(Debug, Default)]
pub struct Tools {
    pub texts: Vec<String>,
    pub values: Vec<serde_json::Value>,
}

fn raise_exception(msg: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// transformers' `tojson` filter: `json.dumps` (`ensure_ascii` false unless
/// asked), not minijinja's HTML-safe one.
fn tojson(value: minijinja::Value, kwargs: minijinja::value::Kwargs) -> Result<String, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let v = serde_json::to_value(&value).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(crate::pyjson::dumps_with(&v, ensure_ascii.unwrap_or(false), indent))
}

fn token_text(tok: &Tokenizer, id: Option<u32>) -> String {
    id.map(|i| String::from_utf8_lossy(tok.token_bytes(i)).into_owned())
        .unwrap_or_default()
}

/// The Reka chat format, written from the Reka Flash 3 model card.
pub const REKA_TEMPLATE: &str = include_str!("../templates/reka.jinja");

/// The string that ends a turn in the Reka format; generation stops at it.
pub const REKA_SEPARATOR: &str = "<sep>";

/// The tags around the reasoning that Reka models write before their answer.
pub const REKA_REASONING: (&str, &str) = ("<reasoning>", "</reasoning>");

/// How a model's chat prompts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format<'a> {
    /// The Reka format, rendered with [`REKA_TEMPLATE`].
    Reka,
    /// Reka Edge's format ([`crate::edge_chat`]), named by the host from the
    /// model's config.
    RekaEdge,
    /// The model's own Jinja template.
    Jinja(&'a str),
    /// No template: `role: content` lines.
    Plain,
}

impl<'a> Format<'a> {
    /// Picks the format from the model's metadata.
    pub fn of(info: &'a ModelInfo) -> Self {
        if info.chat_format.as_deref() == Some("reka-edge") {
            return Format::RekaEdge;
        }
        match info.chat_template.as_deref() {
            Some(t) if is_reka(t) => Format::Reka,
            Some(t) => Format::Jinja(t),
            None => Format::Plain,
        }
    }

    /// Stop strings that the format adds to the model's own.
    pub fn stop_strings(self) -> &'static [&'static str] {
        match self {
            Format::Reka | Format::RekaEdge => &[REKA_SEPARATOR],
            _ => &[],
        }
    }

    /// The reasoning tags of answers in this format.
    pub fn reasoning(self) -> Option<(&'static str, &'static str)> {
        match self {
            Format::Reka => Some(REKA_REASONING),
            Format::RekaEdge => Some(crate::edge_chat::THINK),
            _ => None,
        }
    }
}

/// Whether a Jinja template writes the Reka format: turns introduced by
/// `human:`/`assistant:` and separated by `<sep>`.
fn is_reka(template: &str) -> bool {
    template.contains(REKA_SEPARATOR) && template.contains("human") && template.contains("assistant:")
}

/// Renders `turns` in the model's chat format with the generation prompt
/// appended (opening the reasoning when `thinking` and the format has it).
pub fn render(info: &ModelInfo, tok: &Tokenizer, turns: &[Turn], thinking: bool, tools: &Tools) -> Result<String, String> {
    let bos = token_text(tok, info.bos_token_id);
    let eos = token_text(tok, info.eos_token_id);
    let hermes = || crate::tools::hermes_turns(turns, &tools.texts);
    match Format::of(info) {
        Format::RekaEdge => {
            let t: Vec<crate::edge_chat::EdgeTurn<'_>> =
                turns.iter().map(|t| crate::edge_chat::EdgeTurn { role: &t.role, content: &t.content, calls: &t.calls }).collect();
            crate::edge_chat::render(&t, thinking, &tools.texts)
        }
        Format::Reka => render_jinja(REKA_TEMPLATE, &hermes(), &bos, &eos),
        // A template written for tools gets them as transformers passes them.
        Format::Jinja(source) if takes_tools(source) => render_jinja_tools(source, turns, &tools.values, &bos, &eos),
        Format::Jinja(source) => render_jinja(source, &hermes(), &bos, &eos),
        Format::Plain => Ok(plain(&hermes())),
    }
}

/// Renders a template that takes `tools` and tool calls as transformers
/// hands them over.
fn render_jinja_tools(source: &str, turns: &[Turn], tools: &[serde_json::Value], bos: &str, eos: &str) -> Result<String, String> {
    let messages: Vec<serde_json::Value> = turns.iter().map(Turn::with_calls).collect();
    let tools = (!tools.is_empty()).then_some(tools);
    render_source(source, context! { messages => messages, tools => tools, add_generation_prompt => true, bos_token => bos, eos_token => eos })
}

/// Whether a Jinja template renders `tools` itself (Qwen2.5, Llama 3.1 and
/// Hermes templates do; SmolLM2's does not).
fn takes_tools(source: &str) -> bool {
    source.contains("tools") && source.contains("tool_call")
}

/// Renders a Jinja chat template with the settings transformers uses
/// (`trim_blocks`, `lstrip_blocks`).
pub fn render_jinja(source: &str, turns: &[Turn], bos: &str, eos: &str) -> Result<String, String> {
    render_jinja_with(source, turns, bos, eos, true)
}

/// [`render_jinja`] with the generation prompt appended or not.
pub fn render_jinja_with(source: &str, turns: &[Turn], bos: &str, eos: &str, add_generation_prompt: bool) -> Result<String, String> {
    render_source(source, context! { messages => turns, add_generation_prompt => add_generation_prompt, bos_token => bos, eos_token => eos })
}

/// Renders a Jinja chat template with `ctx`.
fn render_source(source: &str, ctx: minijinja::Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_filter("tojson", tojson);
    env.add_template("chat", source)
        .map_err(|e| format!("the model's chat template does not parse: {e}"))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| format!("chat template: {e}"))?;
    tmpl.render(ctx)
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
                .map(|m| Turn::new(m["role"].as_str().unwrap_or_default(), m["content"].as_str().unwrap_or_default().into()))
                .collect();
            let got = render_jinja(source, &turns, "<|im_start|>", "<|im_end|>").expect("renders");
            assert_eq!(got, case["rendered"].as_str().expect("rendered"));
        }
    }

    /// A template that renders tools (tojson in its three forms, calls with
    /// object arguments, tool results) against transformers' rendering
    /// (tests/fixtures/chat_template/make_tools_reference.py).
    #[test]
    fn tools_template_renders_like_transformers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/chat_template/tools.json");
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let source = fixture["template"].as_str().expect("template");
        assert!(takes_tools(source));
        for case in fixture["cases"].as_array().expect("cases") {
            let turns: Vec<Turn> = case["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| {
                    let mut t = Turn::new(m["role"].as_str().unwrap_or_default(), m["content"].as_str().unwrap_or_default().into());
                    t.tool_call_id = m["tool_call_id"].as_str().map(str::to_string);
                    for c in m["tool_calls"].as_array().into_iter().flatten() {
                        // The gateway hands arguments over as JSON text.
                        t.calls.push(Call { name: c["function"]["name"].as_str().unwrap_or_default().into(), arguments: c["function"]["arguments"].to_string() });
                    }
                    t
                })
                .collect();
            let tools = case["tools"].as_array().expect("tools");
            let got = render_jinja_tools(source, &turns, tools, "", "").expect("renders");
            assert_eq!(got, case["rendered"].as_str().expect("rendered"), "{}", case["name"]);
        }
    }

    fn turns_of(v: &Value) -> Vec<Turn> {
        v.as_array()
            .expect("messages")
            .iter()
            .map(|m| Turn::new(m["role"].as_str().unwrap_or_default(), m["content"].as_str().unwrap_or_default().into()))
            .collect()
    }

    /// The two-round example of the Reka Flash 3 model card, character for character.
    #[test]
    fn reka_format_matches_the_model_card() {
        let turns = [
            Turn::new("user", "this is round 1 prompt".into()),
            Turn::new("assistant", "this is round 1 response".into()),
            Turn::new("user", "this is round 2 prompt".into()),
        ];
        let got = render_jinja(REKA_TEMPLATE, &turns, "", "").expect("renders");
        assert_eq!(
            got,
            "human: this is round 1 prompt <sep> assistant: this is round 1 response <sep> human: this is round 2 prompt <sep> assistant:"
        );
    }

    /// System folding and reasoning dropping, against Python Jinja2's rendering of
    /// the same template (tests/fixtures/reka_tiny/make_reference.py).
    #[test]
    fn reka_format_renders_like_jinja2() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reka_tiny/reference.json");
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let cases = fixture["chat_template_cases"].as_array().expect("cases");
        assert!(cases.len() >= 3);
        for case in cases {
            let add = case["add_generation_prompt"].as_bool().unwrap_or(true);
            let got = render_jinja_with(REKA_TEMPLATE, &turns_of(&case["messages"]), "", "", add).expect("renders");
            assert_eq!(got, case["rendered"].as_str().expect("rendered"));
        }
    }

    #[test]
    fn reka_format_is_chosen_by_the_template_not_the_name() {
        let mut info = ModelInfo {
            name: "smollm2".into(),
            architecture: "llama".into(),
            vocab_size: 10,
            context_length: 10,
            bos_token_id: None,
            add_bos: false,
            eos_token_id: None,
            stop_token_ids: vec![],
            chat_template: Some("{{ 'human: ' + messages[0]['content'] + ' <sep> assistant:' }}".into()),
            stop_strings: vec![],
            chat_format: None,
            media: None,
        };
        assert_eq!(Format::of(&info), Format::Reka);
        assert_eq!(Format::of(&info).stop_strings(), ["<sep>"]);
        info.name = "reka-flash-3".into();
        info.chat_template = Some("{{ '<|im_start|>' }}".into());
        assert!(matches!(Format::of(&info), Format::Jinja(_)));
        info.chat_template = None;
        assert_eq!(Format::of(&info), Format::Plain);
        assert_eq!(Format::of(&info).reasoning(), None);
    }

    #[test]
    fn template_errors_are_reported_not_panicked() {
        let turns = [Turn::new("user", "x".into())];
        let e = render_jinja("{{ raise_exception('no system role') }}", &turns, "", "").unwrap_err();
        assert!(e.contains("no system role"), "{e}");
        assert!(render_jinja("{% for %}", &turns, "", "").is_err());
    }
}
