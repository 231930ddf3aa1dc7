//! Reka Edge's chat format, as Reka's vLLM plugin writes it (its tokenizer's
//! `DEFAULT_CHAT_TEMPLATE`, which vLLM renders):
//!
//! ```text
//! system: {system}\n\n<sep>human: {user}<sep>assistant: {answer}\n\n<sep>
//! human: <tool_response>\n{tool output}\n</tool_response><sep>assistant:
//! ```
//!
//! A user turn's text parts are joined with one space; an image stands where
//! the plugin writes `<REKA_IMG_TOKEN>` and a video where it writes
//! `<video></video>` (the preprocess component's markers, expanded to the
//! media's tokens later). Assistant turns are written as given; the generation
//! prompt is `assistant:`.
//!
//! The template ignores `enable_thinking`. With it on, the prompt is written
//! as the plugin's other renderer, `build_chat_prompt`, writes it: the
//! generation prompt `assistant: <think>\n`, earlier turns' `<think>…</think>`
//! dropped (kept, re-wrapped, only after the last user query), and consecutive
//! tool results under one `human:` turn.
//!
//! A request's tools go into the system turn, in the template's words with
//! thinking off and in `build_chat_prompt`'s with it on, each function as
//! Python's `json.dumps` writes it. An assistant turn's earlier tool calls
//! are dropped by the template (so with thinking off, as Reka serves it) and
//! written `<tool_call>\n{"name": …, "arguments": …}</tool_call>` after its
//! text by `build_chat_prompt`.

use crate::template::Call;

/// One message as the Reka Edge format sees it: its role and its content with
/// media markers in place.
pub struct EdgeTurn<'a> {
    pub role: &'a str,
    pub content: &'a str,
    /// An assistant turn's tool calls.
    pub calls: &'a [Call],
}

/// The tags around Reka Edge's reasoning.
pub const THINK: (&str, &str) = ("<think>", "</think>");

/// Renders `turns` with the generation prompt (when the last turn is not the
/// assistant's).
/// `tools`: the request's functions as JSON text.
pub fn render(turns: &[EdgeTurn<'_>], enable_thinking: bool, tools: &[String]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = turns;
    let mut system = "";
    if let Some((first, tail)) = turns.split_first() {
        if first.role == "system" {
            system = first.content;
            rest = tail;
        }
    }
    if !system.is_empty() || !tools.is_empty() {
        out.push_str("system: ");
        out.push_str(system);
        if !tools.is_empty() {
            if !system.is_empty() {
                out.push_str("\n\n");
            }
            let block = if enable_thinking { crate::tools::hermes_block(tools) } else { crate::tools::edge_template_block(tools) };
            out.push_str(&block);
        }
        out.push_str("\n\n<sep>");
    }
    let is_tool_result = |t: &EdgeTurn<'_>| t.content.starts_with("<tool_response>") && t.content.ends_with("</tool_response>");
    let last_query = rest.iter().rposition(|t| t.role == "user" && !is_tool_result(t));
    for (i, t) in rest.iter().enumerate() {
        let prev_tool = i > 0 && rest[i - 1].role == "tool";
        let next_tool = rest.get(i + 1).is_some_and(|n| n.role == "tool");
        match t.role {
            "user" => {
                out.push_str("human: ");
                out.push_str(t.content);
                out.push_str("<sep>");
            }
            "assistant" if enable_thinking => {
                let (reasoning, answer) = split_reasoning(t.content);
                out.push_str("assistant: ");
                let last = i + 1 == rest.len();
                if last_query.is_none_or(|q| i > q) && (last || !reasoning.is_empty()) {
                    out.push_str("<think>\n");
                    out.push_str(reasoning.trim_matches('\n'));
                    out.push_str("\n</think>\n\n");
                }
                out.push_str(answer);
                if !t.calls.is_empty() && !answer.is_empty() && !answer.ends_with('\n') {
                    out.push('\n');
                }
                for c in t.calls {
                    out.push_str(&format!("<tool_call>\n{{\"name\": \"{}\", \"arguments\": {}}}</tool_call>", c.name, c.arguments));
                }
                out.push_str("\n\n<sep>");
            }
            "assistant" => {
                out.push_str("assistant: ");
                out.push_str(t.content);
                out.push_str("\n\n<sep>");
            }
            "tool" if enable_thinking => {
                if !prev_tool {
                    out.push_str("human: ");
                }
                out.push_str("<tool_response>\n");
                out.push_str(t.content);
                out.push_str("\n</tool_response>");
                if !next_tool {
                    out.push_str("<sep>");
                }
            }
            "tool" => {
                out.push_str("human: <tool_response>\n");
                out.push_str(t.content);
                out.push_str("\n</tool_response><sep>");
            }
            "system" => return Err("a system message must be the first message for this model".into()),
            other => return Err(format!("the role {other:?} is not one of system, user, assistant, tool")),
        }
    }
    if rest.last().is_none_or(|t| t.role != "assistant") {
        out.push_str(if enable_thinking { "assistant: <think>\n" } else { "assistant:" });
    }
    Ok(out)
}

/// An assistant turn's reasoning and answer, as `build_chat_prompt` splits
/// them: everything before `</think>` (after a `<think>`, if any), newlines
/// trimmed, and the rest without leading newlines.
fn split_reasoning(content: &str) -> (&str, &str) {
    match content.split_once(THINK.1) {
        Some((before, after)) => {
            let r = before.rsplit_once(THINK.0).map_or(before, |(_, r)| r);
            (r.trim_matches('\n'), after.trim_start_matches('\n'))
        }
        None => ("", content),
    }
}

/// Joins a user turn's parts as the plugin does: text parts one space apart,
/// media parts (already markers) with no space around them; empty text
/// parts are skipped.
pub fn join_parts<'a>(parts: impl IntoIterator<Item = (bool, &'a str)>) -> String {
    let mut out = String::new();
    let mut prev_text = false;
    for (is_text, s) in parts {
        if is_text {
            if s.is_empty() {
                prev_text = false;
                continue;
            }
            if prev_text {
                out.push(' ');
            }
            prev_text = true;
        } else {
            prev_text = false;
        }
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_pinned_prompt() {
        // vllm-reka's tests pin `human: <REKA_IMG_TOKEN>describe<sep>assistant:`.
        let content = join_parts([(false, "<REKA_IMG_TOKEN>"), (true, "describe")]);
        let got = render(&[EdgeTurn { role: "user", content: &content, calls: &[] }], false, &[]).expect("renders");
        assert_eq!(got, "human: <REKA_IMG_TOKEN>describe<sep>assistant:");
    }

    #[test]
    fn system_tools_thinking_and_errors() {
        let turns = [
            EdgeTurn { role: "system", content: "Be brief.", calls: &[] },
            EdgeTurn { role: "user", content: "Weather?", calls: &[] },
            EdgeTurn { role: "assistant", content: "<tool_call>x</tool_call>", calls: &[] },
            EdgeTurn { role: "tool", content: "sunny", calls: &[] },
        ];
        assert_eq!(
            render(&turns, true, &[]).expect("renders"),
            "system: Be brief.\n\n<sep>human: Weather?<sep>assistant: <tool_call>x</tool_call>\n\n<sep>human: <tool_response>\nsunny\n</tool_response><sep>assistant: <think>\n"
        );
        // An empty text part ends a run of text: no space after it (the template's `prev_was_text`).
        assert_eq!(join_parts([(true, "a"), (true, ""), (true, "b"), (true, "c")]), "ab c");
        let late = [EdgeTurn { role: "user", content: "x", calls: &[] }, EdgeTurn { role: "system", content: "y", calls: &[] }];
        assert!(render(&late, false, &[]).is_err());
    }

    /// Against the plugin's own renderings (tests/fixtures/reka_edge,
    /// reference.json and tool_prompts.json): its template with thinking off,
    /// its `build_chat_prompt` with thinking on, tools and tool calls
    /// included. The case with a system message as a list of parts (the
    /// template writes its Python repr) is left out.
    #[test]
    fn renders_as_the_plugin() {
        use serde_json::Value;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reka_edge/");
        let read = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(format!("{dir}{f}")).expect("fixture")).expect("json") };
        let (r, t) = (read("reference.json"), read("tool_prompts.json"));
        let cases = r["chat_format"].as_array().expect("cases").iter().chain(t["chat_format"].as_array().expect("cases"));
        let (mut n, mut with_tools) = (0, 0);
        for case in cases {
            if case["name"] == "system_as_openai_parts" {
                continue;
            }
            let messages = case["messages"].as_array().expect("messages");
            let contents: Vec<(String, String, Vec<Call>)> = messages
                .iter()
                .map(|m| {
                    let content = match &m["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => join_parts(parts.iter().map(|p| match p["type"].as_str() {
                            Some("text") => (true, p["text"].as_str().unwrap_or_default()),
                            Some("image_url") => (false, "<REKA_IMG_TOKEN>"),
                            _ => (false, "<video></video>"),
                        })),
                        _ => String::new(),
                    };
                    let calls = m["tool_calls"].as_array().map_or(Vec::new(), |cs| {
                        cs.iter()
                            .map(|c| Call {
                                name: c["function"]["name"].as_str().unwrap_or_default().into(),
                                arguments: match &c["function"]["arguments"] {
                                    Value::String(a) => a.clone(),
                                    other => crate::pyjson::dumps(other),
                                },
                            })
                            .collect()
                    });
                    (m["role"].as_str().unwrap_or_default().to_string(), content, calls)
                })
                .collect();
            let turns: Vec<EdgeTurn<'_>> = contents.iter().map(|(r, c, calls)| EdgeTurn { role: r, content: c, calls }).collect();
            let tools: Vec<String> = case["tools"].as_array().map_or(Vec::new(), |t| t.iter().map(crate::pyjson::dumps).collect());
            with_tools += usize::from(!tools.is_empty());
            let thinking = case["enable_thinking"] == true;
            let want = if thinking { &case["python_builder_rendered"] } else { &case["rendered"] };
            assert_eq!(render(&turns, thinking, &tools).expect("renders"), want.as_str().expect("rendered"), "{}", case["name"]);
            n += 1;
        }
        assert!(n >= 14 && with_tools >= 8, "{n} renderings, {with_tools} cases with tools");
    }
}
