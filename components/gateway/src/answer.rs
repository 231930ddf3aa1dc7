//! What the client sees of the generated text: the answer, and a reasoning
//! model's reasoning apart from it or not, per the request's `reasoning_format`.

use crate::calls::{CallDelta, CallParser};
use crate::reasoning::{Piece, ReasoningFormat, Splitter};
use crate::reka::inference::types::ReasoningTags;

/// Text handed out at once, the reasoning apart from the answer.
#[derive(Default)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
    /// Whether the reasoning is returned apart (`reasoning_content`).
    pub parsed: bool,
    /// Tool calls read from the answer.
    pub calls: Vec<CallDelta>,
}

impl Split {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty() && self.calls.is_empty()
    }
}

/// Turns generated text into what the client sees, per `reasoning_format`.
pub struct Answer {
    splitter: Option<Splitter>,
    format: ReasoningFormat,
    /// Reads tool calls out of the content, when the request has tools.
    calls: Option<CallParser>,
}

impl Answer {
    pub fn new(chat: bool, tags: Option<&ReasoningTags>, format: ReasoningFormat) -> Self {
        let splitter = match (chat, tags, format) {
            (true, Some(t), ReasoningFormat::Parsed | ReasoningFormat::Hidden) => Some(if t.opened { Splitter::opened(&t.start, &t.end) } else { Splitter::new(&t.start, &t.end) }),
            _ => None,
        };
        Self { splitter, format, calls: None }
    }

    /// Also reads tool calls out of the answer's content.
    pub fn with_calls(mut self, parser: CallParser) -> Self {
        self.calls = Some(parser);
        self
    }

    /// Whether the answer made tool calls.
    pub fn made_calls(&self) -> bool {
        self.calls.as_ref().is_some_and(CallParser::made_calls)
    }

    /// Moves tool calls out of `out.content`.
    fn read_calls(&mut self, mut out: Split, last: bool) -> Split {
        if let Some(p) = self.calls.as_mut() {
            let parsed = p.push(&std::mem::take(&mut out.content), last);
            out.content = parsed.content;
            out.calls = parsed.calls;
        }
        out
    }

    fn collect(&self, pieces: Vec<Piece>) -> Split {
        let mut out = Split { parsed: self.format == ReasoningFormat::Parsed, ..Split::default() };
        for p in pieces {
            match p {
                Piece::Reasoning(t) if out.parsed => out.reasoning.push_str(&t),
                Piece::Reasoning(_) => {}
                Piece::Content(t) => out.content.push_str(&t),
            }
        }
        out
    }

    /// The next generated text; `last` flushes what was held back.
    pub fn push(&mut self, text: &str, last: bool) -> Split {
        let Some(s) = self.splitter.as_mut() else {
            return self.read_calls(Split { content: text.to_string(), ..Split::default() }, last);
        };
        let mut pieces = s.push(text);
        if last {
            pieces.extend(s.finish());
        }
        let out = self.collect(pieces);
        self.read_calls(out, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> ReasoningTags {
        ReasoningTags { start: "<reasoning>".into(), end: "</reasoning>".into(), opened: false }
    }

    fn run(chat: bool, format: ReasoningFormat) -> (String, String) {
        let mut a = Answer::new(chat, Some(&tags()), format);
        let mut r = String::new();
        let mut c = String::new();
        let parts = ["<reason", "ing>Think.</reasoning>", " Hi", "!"];
        for (i, p) in parts.iter().enumerate() {
            let s = a.push(p, i + 1 == parts.len());
            r.push_str(&s.reasoning);
            c.push_str(&s.content);
        }
        (r, c)
    }

    #[test]
    fn reasoning_formats() {
        assert_eq!(run(true, ReasoningFormat::Parsed), ("Think.".into(), "Hi!".into()));
        assert_eq!(run(true, ReasoningFormat::Hidden), (String::new(), "Hi!".into()));
        let raw = "<reasoning>Think.</reasoning> Hi!".to_string();
        assert_eq!(run(true, ReasoningFormat::Raw), (String::new(), raw.clone()));
        // Completions return the text as the model wrote it.
        assert_eq!(run(false, ReasoningFormat::Parsed), (String::new(), raw));
    }
}
