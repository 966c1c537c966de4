//! Output for people on long waits and in answers: on a terminal, a spinner with the elapsed time
//! for the step under way (each finished step stays as a `✓` line) and colour; elsewhere (a
//! pipe, a log file, CI) plain `==> step` lines and no escape codes, so scripts and logs read
//! the same words.

use std::{fmt::Display, sync::Mutex, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

/// The step under way, when standard error is a terminal.
static CURRENT: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn finish(bar: ProgressBar) {
    let message = bar.message();
    bar.set_style(
        ProgressStyle::with_template("{prefix:.green} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix("✓");
    bar.finish_with_message(message);
}

/// Announces a step: the previous one is done.
pub(crate) fn step(what: impl Display) {
    let mut current = CURRENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(bar) = current.take() {
        finish(bar);
    }
    if console::Term::stderr().is_term() {
        let bar = ProgressBar::new_spinner().with_message(what.to_string());
        if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        *current = Some(bar);
    } else {
        #[allow(clippy::print_stderr)] // progress for people and logs
        {
            eprintln!("==> {what}");
        }
    }
}

/// Ends the step under way (before printing anything else).
pub(crate) fn done() {
    let mut current = CURRENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(bar) = current.take() {
        finish(bar);
    }
}

/// `text` in green where standard output takes colour.
pub(crate) fn good(text: &str) -> String {
    console::style(text).green().to_string()
}

/// `text` in bold red where standard output takes colour.
pub(crate) fn bad(text: &str) -> String {
    console::style(text).red().bold().to_string()
}
