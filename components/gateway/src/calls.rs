//! Tool calls read out of the generated text as it streams. The model writes
//! them Hermes style, `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`
//! (what the constraint of `tool_choice: required` enforces and what Reka
//! Edge is trained on); text outside the tags is the message's content.
//!
//! A call in that canonical key order is streamed as OpenAI streams calls:
//! its name as soon as it is complete, then its arguments as they grow. A
//! call written otherwise is held until its closing tag and then parsed.

use serde_json::Value;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// A piece of a tool call: its start (id and name) and/or argument text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDelta {
    /// Which call of the answer, from 0.
    pub index: u32,
    /// On a call's first delta: its id and function name.
    pub head: Option<(String, String)>,
    pub arguments: String,
}

/// What the parser makes of a piece of text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub content: String,
    pub calls: Vec<CallDelta>,
}

/// Where a call's text is.
#[derive(Debug)]
enum Call {
    /// Before its name is known.
    Head,
    /// Streaming its arguments: the JSON scanner's state.
    Args { depth: u32, in_str: bool, escaped: bool, started: bool },
    /// Arguments done; skipping to the closing tag.
    Tail,
    /// Not in the canonical form: held until the closing tag.
    Held,
}

/// The streaming parser of one answer.
pub struct CallParser {
    /// Text not yet handed out.
    buf: String,
    /// Inside a call (after its opening tag).
    call: Option<Call>,
    /// Calls started so far.
    count: u32,
    /// Makes call ids.
    new_id: Box<dyn FnMut() -> String>,
}

/// Longest suffix of `s` that is a proper prefix of `tag`.
fn partial_tag(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1)).rev().find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..])).unwrap_or(0)
}

impl CallParser {
    pub fn new(new_id: Box<dyn FnMut() -> String>) -> Self {
        Self { buf: String::new(), call: None, count: 0, new_id }
    }

    /// Whether any call was made.
    pub fn made_calls(&self) -> bool {
        self.count > 0
    }

    /// Takes the next text; `last` flushes what was held back.
    pub fn push(&mut self, text: &str, last: bool) -> Parsed {
        self.buf.push_str(text);
        let mut out = Parsed::default();
        loop {
            let progressed = match self.call.take() {
                None => self.text(&mut out, last),
                Some(c) => self.in_call(c, &mut out, last),
            };
            if !progressed {
                break;
            }
        }
        out
    }

    /// Outside calls: content up to an opening tag.
    fn text(&mut self, out: &mut Parsed, last: bool) -> bool {
        if let Some(at) = self.buf.find(OPEN) {
            let before: String = self.buf.drain(..at + OPEN.len()).collect();
            let before = &before[..at];
            // Whitespace between calls is not content.
            if !(self.count > 0 && before.trim().is_empty()) {
                out.content.push_str(before);
            }
            self.call = Some(Call::Head);
            return true;
        }
        let keep = if last { 0 } else { partial_tag(&self.buf, OPEN) };
        let give = self.buf.len() - keep;
        let t: String = self.buf.drain(..give).collect();
        if !(self.count > 0 && t.trim().is_empty()) {
            out.content.push_str(&t);
        }
        false
    }

    fn start(&mut self, name: String, out: &mut Parsed) -> u32 {
        let index = self.count;
        self.count += 1;
        out.calls.push(CallDelta { index, head: Some(((self.new_id)(), name)), arguments: String::new() });
        index
    }

    /// Adds argument text to the current call's delta.
    fn args(&self, out: &mut Parsed, s: &str) {
        if s.is_empty() {
            return;
        }
        let index = self.count - 1;
        match out.calls.last_mut() {
            Some(d) if d.index == index => d.arguments.push_str(s),
            _ => out.calls.push(CallDelta { index, head: None, arguments: s.to_string() }),
        }
    }

    fn in_call(&mut self, c: Call, out: &mut Parsed, last: bool) -> bool {
        match c {
            Call::Head => {
                let t = self.buf.trim_start();
                let prefix = "{\"name\": ";
                if t.len() < prefix.len() && prefix.starts_with(t) && !last {
                    self.call = Some(Call::Head);
                    return false;
                }
                let Some(rest) = t.strip_prefix(prefix) else {
                    self.call = Some(Call::Held);
                    return true;
                };
                if rest.trim().is_empty() && !last {
                    self.call = Some(Call::Head);
                    return false;
                }
                // The name: a JSON string, then the arguments key.
                let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                match de.next() {
                    Some(Ok(name)) => {
                        let after = &rest[de.byte_offset()..];
                        let key = ", \"arguments\": ";
                        if after.len() < key.len() && key.starts_with(after) && !last {
                            self.call = Some(Call::Head);
                            return false;
                        }
                        match after.strip_prefix(key) {
                            Some(args) => {
                                let args = args.to_string();
                                self.start(name, out);
                                self.buf = args;
                                self.call = Some(Call::Args { depth: 0, in_str: false, escaped: false, started: false });
                                true
                            }
                            None => {
                                self.call = Some(Call::Held);
                                true
                            }
                        }
                    }
                    Some(Err(e)) if e.is_eof() && !last => {
                        self.call = Some(Call::Head);
                        false
                    }
                    _ => {
                        self.call = Some(Call::Held);
                        true
                    }
                }
            }
            Call::Args { mut depth, mut in_str, mut escaped, mut started } => {
                let mut end = None;
                for (i, ch) in self.buf.char_indices() {
                    if !started {
                        if ch.is_whitespace() {
                            continue;
                        }
                        started = true;
                    }
                    if in_str {
                        match (escaped, ch) {
                            (true, _) => escaped = false,
                            (false, '\\') => escaped = true,
                            (false, '"') => in_str = false,
                            _ => {}
                        }
                    } else {
                        match ch {
                            '"' => in_str = true,
                            '{' | '[' => depth += 1,
                            '}' | ']' => depth = depth.saturating_sub(1),
                            _ => {}
                        }
                    }
                    if started && depth == 0 && !in_str && !ch.is_whitespace() && matches!(ch, '}' | ']' | '"') || (started && depth == 0 && !in_str && ch == ',') {
                        end = Some(i + ch.len_utf8());
                        break;
                    }
                }
                match end {
                    Some(e) => {
                        let a: String = self.buf.drain(..e).collect();
                        self.args(out, a.trim_start());
                        self.call = Some(Call::Tail);
                        true
                    }
                    None => {
                        let a = std::mem::take(&mut self.buf);
                        self.args(out, if started { &a } else { a.trim_start() });
                        self.call = if last { None } else { Some(Call::Args { depth, in_str, escaped, started }) };
                        false
                    }
                }
            }
            Call::Tail => match self.buf.find(CLOSE) {
                Some(at) => {
                    self.buf.drain(..at + CLOSE.len());
                    true
                }
                None => {
                    let keep = partial_tag(&self.buf, CLOSE);
                    self.buf.drain(..self.buf.len() - keep);
                    self.call = if last { None } else { Some(Call::Tail) };
                    false
                }
            },
            Call::Held => match self.buf.find(CLOSE) {
                Some(at) => {
                    let body: String = self.buf.drain(..at + CLOSE.len()).collect();
                    self.held(&body[..at], out);
                    true
                }
                None if last => {
                    let body = std::mem::take(&mut self.buf);
                    self.held(&body, out);
                    false
                }
                None => {
                    self.call = Some(Call::Held);
                    false
                }
            },
        }
    }

    /// A whole call in any key order; what is not a call stays text.
    fn held(&mut self, body: &str, out: &mut Parsed) {
        let v: Option<Value> = serde_json::from_str(body.trim()).ok();
        let call = v.as_ref().and_then(|v| Some((v.get("name")?.as_str()?.to_string(), v.get("arguments").cloned().unwrap_or(Value::Object(Default::default())))));
        match call {
            Some((name, args)) => {
                self.start(name, out);
                let a = match args {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                self.args(out, &a);
            }
            None => {
                out.content.push_str(OPEN);
                out.content.push_str(body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> CallParser {
        let mut n = 0;
        CallParser::new(Box::new(move || {
            n += 1;
            format!("call_{n}")
        }))
    }

    /// Feeds `text` in pieces of `step` bytes (at char boundaries) and joins
    /// the result: content, and per call (id, name, arguments).
    fn run(text: &str, step: usize) -> (String, Vec<(String, String, String)>) {
        let mut p = parser();
        let (mut content, mut calls) = (String::new(), Vec::<(String, String, String)>::new());
        let chars: Vec<char> = text.chars().collect();
        let pieces: Vec<String> = chars.chunks(step).map(|c| c.iter().collect()).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let out = p.push(piece, i + 1 == pieces.len());
            content.push_str(&out.content);
            for d in out.calls {
                if let Some((id, name)) = d.head {
                    calls.push((id, name, String::new()));
                }
                calls[d.index as usize].2.push_str(&d.arguments);
            }
        }
        (content, calls)
    }

    #[test]
    fn canonical_calls_in_any_pieces() {
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"}\\\" x\", \"n\": [1, {\"a\": 2}]}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>";
        for step in [1, 2, 3, 7, 1000] {
            let (content, calls) = run(text, step);
            assert_eq!(content, "", "step {step}");
            assert_eq!(calls.len(), 2, "step {step}");
            assert_eq!(calls[0].1, "get_weather");
            assert_eq!(calls[0].2, "{\"city\": \"Paris \\\"}\\\" x\", \"n\": [1, {\"a\": 2}]}", "step {step}");
            assert_eq!((calls[1].0.as_str(), calls[1].1.as_str(), calls[1].2.as_str()), ("call_2", "add", "{}"));
        }
    }

    #[test]
    fn text_around_and_other_key_orders() {
        let (content, calls) = run("Let me look. <tool_call>{\"arguments\": {\"q\": 1}, \"name\": \"s\"}</tool_call>", 4);
        assert_eq!(content, "Let me look. ");
        assert_eq!(calls, vec![("call_1".into(), "s".into(), "{\"q\":1}".into())]);
        let (content, calls) = run("a <tool_ca b <tool_call>not json</tool_call>", 3);
        assert_eq!(content, "a <tool_ca b <tool_call>not json");
        assert!(calls.is_empty());
    }

    #[test]
    fn a_call_cut_short_keeps_what_was_written() {
        let (_, calls) = run("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": \"ab", 5);
        assert_eq!(calls, vec![("call_1".into(), "f".into(), "{\"x\": \"ab".into())]);
    }
}
