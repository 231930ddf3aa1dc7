//! Stop strings across token boundaries: text that could be the start of a stop
//! string is held back until it is known not to be one.

/// Streams text through, cutting it at the first stop string.
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What a push produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Emitted {
    /// Text that is final and can be sent.
    pub text: String,
    /// A stop string was found (the text ends before it).
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        StopMatcher {
            stops,
            pending: String::new(),
        }
    }

    /// Adds `text`; returns what can be sent now.
    pub fn push(&mut self, text: &str) -> Emitted {
        self.pending.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let text = self.pending[..at].to_string();
            self.pending.clear();
            return Emitted {
                text,
                stopped: true,
            };
        }
        let keep = self.held_back();
        let cut = self.pending.len() - keep;
        let text = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        Emitted {
            text,
            stopped: false,
        }
    }

    /// Everything still held back (at the end of generation).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that starts some stop string.
    fn held_back(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for s in &self.stops {
            for (i, _) in p.char_indices() {
                let suffix = &p[i..];
                if suffix.len() > best && s.starts_with(suffix) {
                    best = suffix.len();
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_stop_split_over_pushes() {
        let mut m = StopMatcher::new(vec!["<sep>".into()]);
        assert_eq!(m.push("Hello <s").text, "Hello ");
        let e = m.push("ep> more");
        assert_eq!(e, Emitted { text: String::new(), stopped: true });
    }

    #[test]
    fn releases_text_that_turns_out_not_to_stop() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("the E").text, "the ");
        assert_eq!(m.push("Nx").text, "ENx");
        assert_eq!(m.push("EN").text, "");
        assert_eq!(m.flush(), "EN");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(vec!["b".into(), "a".into()]);
        assert_eq!(m.push("xxaYb"), Emitted { text: "xx".into(), stopped: true });
    }
}
