//! How the client commands show progress to a person: a progress display
//! on standard error, never mixed into the data on standard output.
//!
//! Owns: the progress bar style and when one is shown.
//! Must not: write command output; the command files print their own data.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub(super) fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    // Only for people: piped output gets no bar.
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}
