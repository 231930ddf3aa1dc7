//! Splits a streamed answer into its reasoning and its content, as vLLM's
//! reasoning parsers do: an answer that starts with the start tag (leading
//! whitespace aside) has its reasoning up to the end tag returned apart as
//! `reasoning_content`. Tags split across chunks are held back until they are
//! whole, so no partial tag reaches the client.

/// What a request wants done with the model's reasoning (`reasoning_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningFormat {
    /// Reasoning in `reasoning_content`, the answer in `content` (the default).
    #[default]
    Parsed,
    /// Everything in `content`, tags included, as the model wrote it.
    Raw,
    /// Reasoning dropped; only the answer in `content`.
    Hidden,
}

impl ReasoningFormat {
    /// Parses the request option.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "parsed" => Some(Self::Parsed),
            "raw" => Some(Self::Raw),
            "hidden" => Some(Self::Hidden),
            _ => None,
        }
    }
}

/// A piece of the answer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Reasoning(String),
    Content(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace seen yet: the start tag may still come.
    Opening,
    /// Inside the reasoning.
    Reasoning,
    /// After the end tag: whitespace before the answer is dropped.
    Closing,
    /// The answer.
    Content,
}

/// The streaming splitter for one answer.
#[derive(Debug)]
pub struct Splitter {
    start: String,
    end: String,
    state: State,
    held: String,
}

impl Splitter {
    pub fn new(start: &str, end: &str) -> Self {
        Self {
            start: start.to_string(),
            end: end.to_string(),
            state: State::Opening,
            held: String::new(),
        }
    }

    /// A splitter for an answer whose prompt already opened the reasoning.
    pub fn opened(start: &str, end: &str) -> Self {
        Self { state: State::Reasoning, ..Self::new(start, end) }
    }

    /// Takes the next chunk of text; returns what can be handed out now.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Opening => {
                    let body = self.held.trim_start();
                    if body.starts_with(self.start.as_str()) {
                        let rest = body[self.start.len()..].to_string();
                        self.held = rest;
                        self.state = State::Reasoning;
                    } else if self.start.starts_with(body) {
                        return out; // maybe the start of the tag: wait
                    } else {
                        self.state = State::Content;
                    }
                }
                State::Reasoning => match self.held.find(self.end.as_str()) {
                    Some(i) => {
                        let rest = self.held.split_off(i);
                        emit(&mut out, Piece::Reasoning(std::mem::take(&mut self.held)));
                        self.held = rest[self.end.len()..].to_string();
                        self.state = State::Closing;
                    }
                    None => {
                        let keep = partial_suffix(&self.held, &self.end);
                        let rest = self.held.split_off(self.held.len() - keep);
                        emit(&mut out, Piece::Reasoning(std::mem::replace(&mut self.held, rest)));
                        return out;
                    }
                },
                State::Closing => {
                    let body = self.held.trim_start();
                    if body.is_empty() {
                        self.held.clear();
                        return out;
                    }
                    self.held = body.to_string();
                    self.state = State::Content;
                }
                State::Content => {
                    emit(&mut out, Piece::Content(std::mem::take(&mut self.held)));
                    return out;
                }
            }
        }
    }

    /// The end of the answer: hands out whatever was held back.
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.state {
            State::Reasoning => emit(&mut out, Piece::Reasoning(held)),
            State::Opening | State::Content => emit(&mut out, Piece::Content(held)),
            State::Closing => {}
        }
        out
    }
}

fn emit(out: &mut Vec<Piece>, p: Piece) {
    let empty = match &p {
        Piece::Reasoning(s) | Piece::Content(s) => s.is_empty(),
    };
    if !empty {
        out.push(p);
    }
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> (String, String) {
        let mut s = Splitter::new("<reasoning>", "</reasoning>");
        let mut pieces: Vec<Piece> = chunks.iter().flat_map(|c| s.push(c)).collect();
        pieces.extend(s.finish());
        let mut r = String::new();
        let mut c = String::new();
        for p in pieces {
            match p {
                Piece::Reasoning(t) => {
                    assert!(c.is_empty(), "reasoning after content");
                    r.push_str(&t)
                }
                Piece::Content(t) => c.push_str(&t),
            }
        }
        (r, c)
    }

    #[test]
    fn splits_reasoning_from_the_answer() {
        let want = ("I should greet.".to_string(), "Hello!".to_string());
        assert_eq!(run(&["<reasoning>I should greet.</reasoning>\n\nHello!"]), want);
        // Every way of cutting the text into two chunks gives the same split.
        let text = " <reasoning>I should greet.</reasoning>\n\nHello!";
        for i in 0..=text.len() {
            assert_eq!(run(&[&text[..i], &text[i..]]), want, "cut at {i}");
        }
        // One character at a time, including multi-byte ones.
        let text = "<reasoning>été 🌞</reasoning> 答え";
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(&refs), ("été 🌞".to_string(), "答え".to_string()));
    }

    #[test]
    fn answers_without_the_tag_are_all_content() {
        assert_eq!(run(&["Hello ", "there"]), (String::new(), "Hello there".to_string()));
        assert_eq!(run(&["<reas", "on>x"]), (String::new(), "<reason>x".to_string()));
        assert_eq!(run(&["<rea"]), (String::new(), "<rea".to_string()));
    }

    #[test]
    fn unterminated_reasoning_stays_reasoning() {
        assert_eq!(run(&["<reasoning>still thinking</reas"]), ("still thinking</reas".to_string(), String::new()));
    }

    #[test]
    fn an_opened_reasoning_starts_inside_it() {
        let mut s = Splitter::opened("<think>", "</think>");
        let mut pieces = s.push("\nlet me see</thi");
        pieces.extend(s.push("nk>\n\nIt is red."));
        pieces.extend(s.finish());
        let r: String = pieces.iter().filter_map(|p| if let Piece::Reasoning(t) = p { Some(t.as_str()) } else { None }).collect();
        let c: String = pieces.iter().filter_map(|p| if let Piece::Content(t) = p { Some(t.as_str()) } else { None }).collect();
        assert_eq!((r.as_str(), c.as_str()), ("\nlet me see", "It is red."));
    }

    #[test]
    fn partial_tag_suffixes_are_held_back() {
        let mut s = Splitter::new("<reasoning>", "</reasoning>");
        assert_eq!(s.push("<reasoning>abc</rea"), vec![Piece::Reasoning("abc".into())]);
        assert_eq!(s.push("soning>ok"), vec![Piece::Content("ok".into())]);
    }

    #[test]
    fn formats_parse() {
        assert_eq!(ReasoningFormat::parse("raw"), Some(ReasoningFormat::Raw));
        assert_eq!(ReasoningFormat::parse("nope"), None);
    }
}
