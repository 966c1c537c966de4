//! Server-sent events, as a streaming LLM endpoint sends them: events end at a blank line, and an
//! event's `data:` lines are its payload (joined by newlines). Fed bytes as they arrive, in any
//! split.

/// An incremental parser.
#[derive(Default, Debug)]
pub struct Parser {
    buffer: Vec<u8>,
}

impl Parser {
    /// Adds `bytes` and returns the data of every event they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end + sep).take(end).collect();
            let text = String::from_utf8_lossy(&raw);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

/// Where the first complete event ends and the length of its separator (`\n\n` or `\r\n\r\n`).
fn event_end(b: &[u8]) -> Option<(usize, usize)> {
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(if a.0 <= c.0 { a } else { c }),
        (a, c) => a.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_however_the_bytes_arrive() {
        let stream = b"data: {\"a\":1}\n\n: a comment\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let whole = Parser::default().feed(stream);
        assert_eq!(whole, vec!["{\"a\":1}", "x\ny", "[DONE]"]);
        for cut in 1..stream.len() {
            let mut p = Parser::default();
            let mut got = p.feed(&stream[..cut]);
            got.extend(p.feed(&stream[cut..]));
            assert_eq!(got, whole, "split at {cut}");
        }
        let mut p = Parser::default();
        let got: Vec<String> = stream.iter().flat_map(|b| p.feed(&[*b])).collect();
        assert_eq!(got, whole);
    }

    #[test]
    fn crlf_separators_and_unfinished_events() {
        let mut p = Parser::default();
        assert_eq!(p.feed(b"data: one\r\n\r\ndata: two"), vec!["one"]);
        assert_eq!(p.feed(b"\n\n"), vec!["two"]);
        assert!(p.feed(b"data: three\n").is_empty());
    }
}
