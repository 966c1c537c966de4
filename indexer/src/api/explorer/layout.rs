//! The page shell every view shares (navigation, the finalized block it shows, its JSON), and
//! the small renderers for addresses, hashes, times and durations.

use maud::{DOCTYPE, Markup, html};

use crate::api::schema::Block;

/// The sections, in the navigation's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Proposals,
    Apps,
    Kms,
}

impl Section {
    const ALL: [Section; 3] = [Section::Proposals, Section::Apps, Section::Kms];

    fn href(self) -> &'static str {
        match self {
            Section::Proposals => "/",
            Section::Apps => "/apps",
            Section::Kms => "/kms",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Proposals => "Proposals",
            Section::Apps => "Apps",
            Section::Kms => "KMS",
        }
    }
}

/// What a page is read at: the finalized block and its timestamp (the chain's clock).
pub(super) struct AsOf<'a> {
    pub block: &'a Block,
    pub timestamp: u64,
}

/// The document head; `live` loads the script of the live parts.
fn head(title: &str, live: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Covenant explorer" }
            link rel="stylesheet" href="/assets/explorer.css";
            @if live { script src="/assets/explorer.js" defer {} }
        }
    }
}

/// A whole page: `title` as its heading, the block it shows, links to the JSON it was made from.
pub(super) fn page(
    section: Section,
    title: &str,
    as_of: &AsOf<'_>,
    json: &[&str],
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body data-chain-time=(as_of.timestamp) {
                a class="skip" href="#main" { "Skip to the content" }
                header {
                    p class="brand" { "Covenant explorer" }
                    nav aria-label="Sections" {
                        ul {
                            @for s in Section::ALL {
                                li {
                                    a href=(s.href())
                                        aria-current=[(s == section).then_some("page")] { (s.label()) }
                                }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (as_of_note(as_of, json))
                    (body)
                }
                footer {
                    p {
                        "Everything here is read from the indexer's mirror of the chain at a "
                        "finalized block; nothing unfinalized is shown. The same data as JSON: "
                        a href="/openapi.json" { "the API's description" } "."
                    }
                }
            }
        }
    }
}

/// The finalized block a page shows (refreshed with the page's live parts).
fn as_of_note(as_of: &AsOf<'_>, json: &[&str]) -> Markup {
    html! {
        p id="as-of" class="as-of" data-live {
            "Shown as of finalized block "
            strong data-block=(as_of.block.number) { "#" (as_of.block.number) }
            " (" code class="hash" { (as_of.block.hash) } "), "
            (time_at(as_of.timestamp)) "."
            @if !json.is_empty() {
                " JSON: "
                @for (i, path) in json.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(path) { code { (path) } }
                }
                "."
            }
        }
    }
}

/// A unix time as UTC, in a `<time>` element.
pub(super) fn time_at(unix: u64) -> Markup {
    let text = utc(unix);
    // `YYYY-MM-DD HH:MM:SS UTC` → `YYYY-MM-DDTHH:MM:SSZ`.
    let machine = format!("{}Z", text.trim_end_matches(" UTC").replacen(' ', "T", 1));
    html! { time datetime=(machine) { (text) } }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn utc(unix: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("unix time {unix}"),
    }
}

/// A duration for people: `2 d 3 h`, `4 min 10 s`, `12 s`.
pub(super) fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// A time to come, counted down in the page (the chain's clock, estimated from the finalized
/// block's timestamp); the text without JavaScript is as of that block.
pub(super) fn countdown(target: u64, now: u64) -> Markup {
    let text = if target > now {
        format!("in {}", duration(target - now))
    } else {
        "now".to_owned()
    };
    html! {
        span class="countdown" data-countdown=(target) { (text) }
    }
}

/// A hash or other long hex value, whole (it is what people compare).
pub(super) fn hex(value: &str) -> Markup {
    html! { code class="hash" { (value) } }
}

/// An app's address, linked to its page.
pub(super) fn app_link(address: &str) -> Markup {
    html! { a href={ "/apps/" (address) } { code class="hash" { (address) } } }
}

/// A URL shown as a link only when it is http(s); anything else (`javascript:`, `data:`…) is
/// text.
pub(super) fn url(value: &str) -> Markup {
    let lower = value.trim_start().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        html! { a href=(value) rel="noopener noreferrer nofollow" { (value) } }
    } else {
        html! { code { (value) } }
    }
}

/// The page for an error (a 404, a malformed address…).
pub(super) fn error_page(status: u16, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("Error {status}"), false))
            body {
                header {
                    p class="brand" { "Covenant explorer" }
                    nav aria-label="Sections" {
                        ul { @for s in Section::ALL { li { a href=(s.href()) { (s.label()) } } } }
                    }
                }
                main id="main" {
                    h1 { "Error " (status) }
                    p role="alert" { (message) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(61), "1 min 1 s");
        assert_eq!(duration(3600 + 120), "1 h 2 min");
        assert_eq!(duration(2 * 86_400 + 3 * 3600 + 59), "2 d 3 h");
    }

    #[test]
    fn utc_times_match_known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2026-12-07 17:30:39 UTC, computed independently (date -u -d @1796664639).
        assert_eq!(utc(1_796_664_639), "2026-12-07 17:30:39 UTC");
        let t = time_at(1_796_664_639).into_string();
        assert!(t.contains(r#"datetime="2026-12-07T17:30:39Z""#), "{t}");
    }

    #[test]
    fn only_http_urls_become_links() {
        assert!(
            url("https://example.invalid/x")
                .into_string()
                .contains("<a href=")
        );
        for hostile in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
        ] {
            let out = url(hostile).into_string();
            assert!(!out.contains("href"), "{hostile}: {out}");
        }
        let escaped = url("\"><script>x</script>").into_string();
        assert!(!escaped.contains("<script>"), "{escaped}");
    }
}
