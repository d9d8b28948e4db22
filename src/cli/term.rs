//! How the client commands show progress to a person: a progress display
//! on standard error, never mixed into the data on standard output.
//!
//! Owns: when a progress display is shown, its style, and writing data
//! lines past it.
//! Must not: decide what a command prints; the command files render their
//! own lines.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display for `len` items (a spinner when unknown), drawn on
/// standard error. It is shown only when standard error is a terminal and
/// standard output is not: data lines on a terminal are their own progress,
/// and a display redrawn between them would only fill the scrollback (what
/// curl does with its progress meter). Otherwise it is hidden, and every
/// method on it is a no-op.
pub(super) fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        }
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
    bar
}

/// Writes `text` (whole lines, each ending in `\n`) to `out` and flushes,
/// with the progress display `bar` taken off the terminal meanwhile, so a
/// line is never written into a frame of it.
///
/// # Errors
/// Writing to `out` failed (a closed pipe).
pub(super) fn print(bar: &ProgressBar, out: &mut impl Write, text: &str) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut write = || {
        out.write_all(text.as_bytes())?;
        out.flush()
    };
    if bar.is_hidden() {
        write()
    } else {
        bar.suspend(write)
    }
}

/// Tells a person at a terminal that the command now reads standard input,
/// so it does not look stuck. Silent when standard input is a pipe or file.
pub(super) fn hint_stdin(what: &str) {
    if std::io::stdin().is_terminal() {
        eprintln!("{what}");
    }
}
