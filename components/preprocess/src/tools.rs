//! A request's tools in the prompt. Reka Edge has its own wording (its
//! vLLM plugin's template and `build_chat_prompt`, see [`crate::edge_chat`]);
//! a Jinja template that takes `tools` gets them as transformers passes
//! them; any other format gets the Hermes convention that Reka Edge's
//! `build_chat_prompt` and Qwen2.5 share: the functions in a `# Tools` block
//! of the system message, earlier calls written `<tool_call>…</tool_call>`
//! into the assistant's text, tool results as user turns in
//! `<tool_response>` tags.

use crate::template::{Call, Turn};

/// The Hermes tools block (`build_chat_prompt`'s wording); `tools` are the
/// functions as JSON text.
pub fn hermes_block(tools: &[String]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        s.push('\n');
        s.push_str(t);
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments \
         within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    s
}

/// Reka Edge's template's shorter tools block.
pub fn edge_template_block(tools: &[String]) -> String {
    let mut s = String::from("# Tools\n\nYou may call one or more functions.\n\nFunction signatures are in <tools></tools>:\n<tools>");
    for t in tools {
        s.push('\n');
        s.push_str(t);
    }
    s.push_str("\n</tools>\n\nReturn calls inside <tool_call></tool_call>:\n<tool_call>\n{\"name\": <fn>, \"arguments\": <json>}\n</tool_call>");
    s
}

/// A call as the model writes it (what the `tool_choice` constraint makes).
pub fn call_text(c: &Call) -> String {
    format!("<tool_call>\n{{\"name\": \"{}\", \"arguments\": {}}}\n</tool_call>", c.name, c.arguments)
}

/// Turns for a format with no tool support of its own: the tools block in
/// the system message, calls in the assistant's text, tool results as user
/// turns.
pub fn hermes_turns(turns: &[Turn], tools: &[String]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len() + 1);
    if !tools.is_empty() {
        let block = hermes_block(tools);
        match turns.first() {
            Some(t) if t.role == "system" && !t.content.is_empty() => out.push(Turn::new("system", format!("{}\n\n{block}", t.content))),
            _ => out.push(Turn::new("system", block)),
        }
    }
    for (i, t) in turns.iter().enumerate() {
        if i == 0 && t.role == "system" && !tools.is_empty() {
            continue;
        }
        let turn = match t.role.as_str() {
            "assistant" if !t.calls.is_empty() => {
                let calls: Vec<String> = t.calls.iter().map(call_text).collect();
                let sep = if t.content.is_empty() { "" } else { "\n" };
                Turn::new("assistant", format!("{}{sep}{}", t.content, calls.join("\n")))
            }
            "tool" => Turn::new("user", format!("<tool_response>\n{}\n</tool_response>", t.content)),
            _ => Turn::new(&t.role, t.content.clone()),
        };
        out.push(turn);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hermes_fallback() {
        let mut call = Turn::new("assistant", String::new());
        call.calls.push(Call { name: "f".into(), arguments: "{\"x\": 1}".into() });
        let turns = [Turn::new("system", "Be brief.".into()), Turn::new("user", "Hi".into()), call, Turn::new("tool", "42".into())];
        let out = hermes_turns(&turns, &["{\"type\": \"function\"}".into()]);
        let roles: Vec<&str> = out.iter().map(|t| t.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(out[0].content.starts_with("Be brief.\n\n# Tools\n\n") && out[0].content.contains("\n{\"type\": \"function\"}\n</tools>"));
        assert_eq!(out[2].content, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>");
        assert_eq!(out[3].content, "<tool_response>\n42\n</tool_response>");
        // Without tools the system message stays where it is.
        assert_eq!(hermes_turns(&turns[..2], &[])[0].content, "Be brief.");
    }
}
