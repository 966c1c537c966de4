//! A command's answer, for people and for scripts.

use serde_json::Value;

/// What a command answers: text for people, the same facts as JSON for scripts.
#[derive(Debug)]
pub struct Report {
    /// Text, ending without a newline.
    pub text: String,
    /// The same facts, structured.
    pub json: Value,
}

impl Report {
    /// A report of `text` and `json`.
    pub fn new(text: impl Into<String>, json: Value) -> Self {
        Self {
            text: text.into(),
            json,
        }
    }

    /// The text or the JSON, as `--json` asks.
    pub fn render(&self, json: bool) -> String {
        if json {
            serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| self.json.to_string())
        } else {
            self.text.clone()
        }
    }
}

/// Lines of `label  value`, labels padded to one width; a value's further lines are indented
/// under its first.
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let indent = format!("\n{:width$}  ", "");
    let text = rows
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {}", value.replace('\n', &indent)))
        .collect::<Vec<_>>()
        .join("\n");
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON value as people read it: strings without quotes, `missing` for null.
pub(crate) fn plain(v: &Value, missing: &str) -> String {
    match v {
        Value::Null => missing.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A block timestamp for people: `2026-12-07 02:41:49 UTC` (the number itself if out of range).
pub(crate) fn time(timestamp: u64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(timestamp)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| timestamp.to_string())
}

/// A duration in seconds for people: `3 d 4 h`, `5 min 10 s`, `42 s`.
pub(crate) fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_as_people_write_them() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_796_607_725), "2026-12-07 01:42:05 UTC");
        assert_eq!(time(u64::MAX), u64::MAX.to_string());
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(310), "5 min 10 s");
        assert_eq!(duration(2 * 86_400 + 3_600 * 4 + 5), "2 d 4 h");
    }

    #[test]
    fn a_long_value_stays_under_its_column() {
        let text = fields(&[("a", "one\n\ntwo".into()), ("long", "x".into())]);
        assert_eq!(text, "a     one\n\n      two\nlong  x");
    }
}
