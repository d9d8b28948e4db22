//! Line diffs of large text values, as Change Data Capture sends them in `diffFields`.
//!
//! Owns: the decision whether an updated long text value goes out as a diff
//! ([`unified`]), the diff text in Salesforce's shape, and the consumer side
//! ([`apply`]), which rebuilds the new value and checks its SHA-256.
//! Must not: know about objects, fields, bitmaps or Avro (the caller, `change`, picks
//! the fields and sets their `diffFields` bits).
//!
//! What Salesforce documents (CDC guide, "Sending Data Differences for Fields of
//! Updated Records" and "Data Differences in Event Fields"):
//! - the value is split into lines at its line breaks and diffed line by line, in the
//!   unified diff format;
//! - the diff text starts `"--- \n+++ <hash>\n"`, where `<hash>` is the lowercase hex
//!   SHA-256 of the entire new value, then hunks such as `@@ -2,1 +2,1 @@` followed by
//!   the removed lines (`-`) and the added lines (`+`); the documented example has no
//!   context lines and always writes the line counts;
//! - no diff (the whole value is sent) when the new value is under 1,000 characters,
//!   when the old and new lengths differ by more than 50%, when more than 25% of the
//!   lines (of the old and new line counts added up) changed, or when the diff is
//!   longer than the new value (and, in the same page, when a diff "does not reduce
//!   the field size").
//!
//! Our reading of the points the documents leave open, each a choice, not a fact:
//! - lengths count Unicode scalar values (`char`s);
//! - "differ by more than 50%" is `|new - old| > old / 2` (relative to the old length);
//! - a diff exactly as long as the value does not reduce the size, so it goes whole;
//! - "lines changed" counts removed plus added lines of a shortest line diff;
//! - line breaks are `\r\n`, `\r` and `\n` (as Java's `BufferedReader`, which the
//!   documented Java reconstruction uses); a consumer joins the lines again with the old
//!   value's line break, so a diff is only sent when that rebuilds the new value byte
//!   for byte (checked by running [`apply`]); otherwise the whole value goes out;
//! - diff lines are joined with `\n`, with no `\n` after the last one ([`apply`]
//!   accepts one);
//! - a hunk that only adds lines writes the old start as the line before it, `-3,0`, as
//!   GNU diff does.
//!
//! Cost: the diff is Myers' O((N+M)·D) algorithm on interned lines, after the common
//! first and last lines are set aside. D is bounded by the 25% rule and by
//! [`MAX_CHANGED_LINES`]; past either, the search stops and the whole value is sent, so
//! time stays O((N+M)·D) and the kept frontiers O(D²) (about 8 MB at the cap), whatever
//! the values' size.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A new value shorter than this (in characters) is always sent whole.
pub const MIN_DIFF_LEN: usize = 1_000;

/// The most changed lines (removed plus added) a diff may have; a change past it is
/// sent whole. Bounds the diff's cost (see the module docs); Salesforce documents no
/// such cap.
pub const MAX_CHANGED_LINES: usize = 1_024;

/// Why a diff could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The diff does not start with `--- ` and `+++ <64 hex digits>`.
    #[error("the diff has no `--- ` / `+++ <sha256>` header")]
    Header,
    /// A line of the diff is neither a hunk header nor a ` `, `-` or `+` line where one
    /// is expected (1-based line number within the diff text).
    #[error("line {0} of the diff does not read")]
    Syntax(usize),
    /// A hunk does not fit the old value: it starts before the previous hunk ended or
    /// past the end, or a removed or context line differs from the old line.
    #[error("the hunk at line {0} of the diff does not fit the old value")]
    Mismatch(usize),
    /// The rebuilt value's SHA-256 is not the one in the header.
    #[error("the rebuilt value's SHA-256 is {actual}, the diff says {expected}")]
    Hash {
        /// The hash in the `+++` line.
        expected: String,
        /// The hash of the rebuilt value.
        actual: String,
    },
}

/// The lowercase hex SHA-256 of `text`'s UTF-8 bytes.
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The diff text Salesforce would send for an update of a long text field from `old`
/// to `new`, or `None` when the whole new value is sent (the rules in the module docs).
#[must_use]
pub fn unified(old: &str, new: &str) -> Option<String> {
    let old_len = old.chars().count();
    let new_len = new.chars().count();
    if new_len < MIN_DIFF_LEN || old == new {
        return None;
    }
    if new_len.abs_diff(old_len) * 2 > old_len {
        return None;
    }
    let a = split_lines(old);
    let b = split_lines(new);
    let total = a.len() + b.len();
    let limit = (total / 4).min(MAX_CHANGED_LINES);
    let ops = line_diff(&a, &b, limit)?;
    let text = render(&a, &b, &ops, &sha256_hex(new));
    if text.chars().count() >= new_len {
        return None;
    }
    // Only send what a consumer rebuilds exactly (line breaks, a final line break).
    match apply(old, &text) {
        Ok(rebuilt) if rebuilt == new => Some(text),
        _ => None,
    }
}

/// Rebuilds the new value from the `old` value and a `diff` text (what a subscriber does
/// with a field listed in `diffFields`): the hunks are applied to `old`'s lines, which
/// are joined again with `old`'s first line break (`\n` when it has none), and the
/// result's SHA-256 is checked against the `+++` header. Context lines (` `) are
/// accepted though [`unified`] writes none.
///
/// # Errors
/// [`ApplyError`]: a header or line that does not read, a hunk that does not fit `old`,
/// or a hash that differs.
pub fn apply(old: &str, diff: &str) -> Result<String, ApplyError> {
    let diff = diff.strip_suffix('\n').unwrap_or(diff);
    let mut lines = diff.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    let expected = match (lines.next(), lines.next()) {
        (Some((_, minus)), Some((_, plus))) if minus.starts_with("---") => {
            let hash = plus.strip_prefix("+++ ").ok_or(ApplyError::Header)?.trim();
            if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ApplyError::Header);
            }
            hash.to_ascii_lowercase()
        }
        _ => return Err(ApplyError::Header),
    };
    let a = split_lines(old);
    let mut out: Vec<&str> = Vec::with_capacity(a.len());
    let mut pos = 0; // next old line not yet copied
    let mut lines = lines.peekable();
    while let Some((n, line)) = lines.next() {
        let (old_start, old_count, new_start, new_count) =
            parse_hunk_header(line).ok_or(ApplyError::Syntax(n))?;
        // A count of 0 names the line before the hunk.
        let start = if old_count == 0 {
            old_start
        } else {
            old_start.checked_sub(1).ok_or(ApplyError::Mismatch(n))?
        };
        let new_at = if new_count == 0 {
            new_start
        } else {
            new_start.checked_sub(1).ok_or(ApplyError::Mismatch(n))?
        };
        if start < pos || start > a.len() {
            return Err(ApplyError::Mismatch(n));
        }
        out.extend_from_slice(&a[pos..start]);
        pos = start;
        if out.len() != new_at {
            return Err(ApplyError::Mismatch(n));
        }
        let (mut taken, mut added) = (0, 0);
        while taken < old_count || added < new_count {
            let (m, body) = lines.next().ok_or(ApplyError::Syntax(n))?;
            let (tag, text) = body.split_at_checked(1).ok_or(ApplyError::Syntax(m))?;
            match tag {
                " " | "-" => {
                    if taken == old_count || a.get(pos) != Some(&text) {
                        return Err(ApplyError::Mismatch(n));
                    }
                    taken += 1;
                    pos += 1;
                    if tag == " " {
                        if added == new_count {
                            return Err(ApplyError::Mismatch(n));
                        }
                        added += 1;
                        out.push(text);
                    }
                }
                "+" if added < new_count => {
                    added += 1;
                    out.push(text);
                }
                _ => return Err(ApplyError::Syntax(m)),
            }
        }
    }
    out.extend_from_slice(&a[pos..]);
    let rebuilt = out.join(line_break(old));
    let actual = sha256_hex(&rebuilt);
    if actual != expected {
        return Err(ApplyError::Hash { expected, actual });
    }
    Ok(rebuilt)
}

/// `@@ -a,b +c,d @@` (a missing count is 1, as in the unified format).
fn parse_hunk_header(line: &str) -> Option<(usize, usize, usize, usize)> {
    let inner = line.strip_prefix("@@ -")?;
    let (ranges, _) = inner.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, c)) => Some((s.parse().ok()?, c.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (a, b) = range(old)?;
    let (c, d) = range(new)?;
    Some((a, b, c, d))
}

/// `text`'s lines without their breaks (`\r\n`, `\r`, `\n`); a break at the very end
/// starts no further line, and the empty text has no lines.
fn split_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                out.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(&text[start..]);
    }
    out
}

/// The first line break of `text`, `\n` when it has none.
fn line_break(text: &str) -> &'static str {
    match text.find(['\r', '\n']) {
        Some(i) if text[i..].starts_with("\r\n") => "\r\n",
        Some(i) if text[i..].starts_with('\r') => "\r",
        _ => "\n",
    }
}

/// One step of an edit script, by line index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Old line `.0` is kept as new line `.1`.
    Keep(usize, usize),
    /// Old line `.0` is removed.
    Remove(usize),
    /// New line `.0` is added.
    Add(usize),
}

/// A shortest edit script from `a` to `b` with at most `limit` removed plus added
/// lines, or `None` when it needs more.
fn line_diff(a: &[&str], b: &[&str], limit: usize) -> Option<Vec<Op>> {
    // Common first and last lines cost nothing to set aside.
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    // Lines as small integers: one hash per line, then integer compares.
    fn intern<'a>(ids: &mut HashMap<&'a str, u32>, s: &'a str) -> u32 {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(s).or_insert(next)
    }
    let mut ids = HashMap::new();
    let ai: Vec<u32> = am.iter().map(|s| intern(&mut ids, s)).collect();
    let bi: Vec<u32> = bm.iter().map(|s| intern(&mut ids, s)).collect();
    let middle = myers(&ai, &bi, limit)?;
    let mut ops = Vec::with_capacity(prefix + middle.len() + suffix);
    ops.extend((0..prefix).map(|i| Op::Keep(i, i)));
    ops.extend(middle.into_iter().map(|op| match op {
        Op::Keep(i, j) => Op::Keep(i + prefix, j + prefix),
        Op::Remove(i) => Op::Remove(i + prefix),
        Op::Add(j) => Op::Add(j + prefix),
    }));
    let (ta, tb) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|i| Op::Keep(ta + i, tb + i)));
    Some(ops)
}

/// Myers' greedy shortest edit script (forward, keeping the frontier of every step for
/// the walk back), giving up past `limit` edits.
fn myers(a: &[u32], b: &[u32], limit: usize) -> Option<Vec<Op>> {
    let (n, m) = (to_signed(a.len())?, to_signed(b.len())?);
    let max = to_signed((a.len() + b.len()).min(limit))?;
    // The furthest `x` on diagonal `k = x - y`, at index `k + max + 1`.
    let at = |k: isize| usize::try_from(k + max + 1).unwrap_or(0);
    let mut v = vec![0isize; at(max) + 2];
    // trace[d]: the frontier after step d for k in -d..=d (index k + d).
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut dist = None;
    'steps: for d in 0..=max {
        for k in (-d..=d).step_by(2) {
            let mut x = if k == -d || (k != d && v[at(k - 1)] < v[at(k + 1)]) {
                v[at(k + 1)]
            } else {
                v[at(k - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[to_index(x)] == b[to_index(y)] {
                x += 1;
                y += 1;
            }
            v[at(k)] = x;
            if x >= n && y >= m {
                trace.push(v[at(-d)..=at(d)].to_vec());
                dist = Some(d);
                break 'steps;
            }
        }
        trace.push(v[at(-d)..=at(d)].to_vec());
    }
    let dist = dist?;
    // Walk back from (n, m): each step is a snake of kept lines after one edit.
    let mut ops = Vec::with_capacity(a.len() + b.len());
    let (mut x, mut y) = (n, m);
    for d in (1..=dist).rev() {
        let prev = &trace[to_index(d - 1)];
        let get = |k: isize| prev[to_index(k + d - 1)];
        let k = x - y;
        let down = k == -d || (k != d && get(k - 1) < get(k + 1));
        let pk = if down { k + 1 } else { k - 1 };
        let px = get(pk);
        let py = px - pk;
        // Where the edit lands: one line down (added) or right (removed).
        let (ex, ey) = if down { (px, py + 1) } else { (px + 1, py) };
        while x > ex && y > ey {
            x -= 1;
            y -= 1;
            ops.push(Op::Keep(to_index(x), to_index(y)));
        }
        ops.push(if down {
            Op::Add(to_index(py))
        } else {
            Op::Remove(to_index(px))
        });
        (x, y) = (px, py);
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        ops.push(Op::Keep(to_index(x), to_index(y)));
    }
    ops.reverse();
    Some(ops)
}

/// A line count as a signed diagonal coordinate (line counts are far below
/// `isize::MAX`: the values are at most a few hundred thousand characters).
fn to_signed(n: usize) -> Option<isize> {
    isize::try_from(n).ok()
}

/// A non-negative coordinate back as an index (the walk keeps them in range).
fn to_index(n: isize) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// The diff text: header, then one hunk per run of removed and added lines, removals
/// first, with no context lines.
fn render(a: &[&str], b: &[&str], ops: &[Op], hash: &str) -> String {
    let mut out = format!("--- \n+++ {hash}");
    let (mut ai, mut bi) = (0, 0); // old and new lines passed so far
    let mut i = 0;
    while i < ops.len() {
        if let Op::Keep(..) = ops[i] {
            ai += 1;
            bi += 1;
            i += 1;
            continue;
        }
        let (old_at, new_at) = (ai, bi);
        let mut removed = Vec::new();
        let mut added = Vec::new();
        while let Some(op) = ops.get(i) {
            match *op {
                Op::Remove(x) => {
                    removed.push(a[x]);
                    ai += 1;
                }
                Op::Add(y) => {
                    added.push(b[y]);
                    bi += 1;
                }
                Op::Keep(..) => break,
            }
            i += 1;
        }
        let range = |at: usize, count: usize| {
            if count == 0 {
                format!("{at},0")
            } else {
                format!("{},{count}", at + 1)
            }
        };
        out.push_str("\n@@ -");
        out.push_str(&range(old_at, removed.len()));
        out.push_str(" +");
        out.push_str(&range(new_at, added.len()));
        out.push_str(" @@");
        for line in removed {
            out.push_str("\n-");
            out.push_str(line);
        }
        for line in added {
            out.push_str("\n+");
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `n` lines of `width` characters, each unique (`P<i>:` then filler).
    fn paragraphs(n: usize, width: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let mut s = format!("P{i}: ");
                while s.len() < width {
                    s.push_str("cloud ");
                }
                s.truncate(width);
                s
            })
            .collect()
    }

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    #[test]
    fn the_documented_shape_two_one_line_hunks() {
        // Like the CDC guide's Description example: two paragraphs edited, the
        // second and the seventh.
        let old_lines = paragraphs(8, 180);
        let mut new_lines = old_lines.clone();
        new_lines[1] = new_lines[1].replacen("cloud", "apps", 1);
        new_lines[6].push_str(" And one more sentence.");
        let (old, new) = (old_lines.join("\n"), new_lines.join("\n"));
        assert!(chars(&new) > 1_000);
        let diff = unified(&old, &new).expect("a diff");
        let expected = format!(
            "--- \n+++ {}\n@@ -2,1 +2,1 @@\n-{}\n+{}\n@@ -7,1 +7,1 @@\n-{}\n+{}",
            sha256_hex(&new),
            old_lines[1],
            new_lines[1],
            old_lines[6],
            new_lines[6]
        );
        assert_eq!(diff, expected);
        assert_eq!(apply(&old, &diff), Ok(new.clone()));
        // A trailing newline after the last diff line is accepted too.
        assert_eq!(apply(&old, &format!("{diff}\n")), Ok(new));
    }

    #[test]
    fn sha256_is_lowercase_hex_of_the_utf8_bytes() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex("").len(), 64);
    }

    #[test]
    fn added_and_removed_runs_have_zero_count_ranges() {
        let old_lines = paragraphs(12, 100);
        let mut new_lines = old_lines.clone();
        new_lines.insert(3, "an inserted line".to_owned());
        new_lines.remove(9); // old line 9 (index 8)
        let (old, new) = (old_lines.join("\n"), new_lines.join("\n"));
        let diff = unified(&old, &new).expect("a diff");
        let body: Vec<&str> = diff.split('\n').skip(2).collect();
        assert_eq!(
            body,
            [
                "@@ -3,0 +4,1 @@",
                "+an inserted line",
                "@@ -9,1 +9,0 @@",
                &format!("-{}", old_lines[8]),
            ]
        );
        assert_eq!(apply(&old, &diff), Ok(new));
    }

    #[test]
    fn under_1000_characters_is_sent_whole() {
        let old_lines = paragraphs(10, 100);
        let mut new_lines = old_lines.clone();
        new_lines[4] = "x".repeat(100);
        // 10 lines of 100 plus 9 breaks: 1,009; trim the last line to hit 999 / 1,000.
        new_lines[9].truncate(100 - 10);
        let old = old_lines.join("\n");
        assert_eq!(chars(&new_lines.join("\n")), 999);
        assert_eq!(unified(&old, &new_lines.join("\n")), None);
        new_lines[9].push('z');
        let new = new_lines.join("\n");
        assert_eq!(chars(&new), 1_000);
        assert!(unified(&old, &new).is_some());
    }

    #[test]
    fn a_length_change_over_half_the_old_length_is_sent_whole() {
        let old_lines = paragraphs(40, 49);
        let old = old_lines.join("\n");
        let old_len = chars(&old);
        assert_eq!(old_len % 2, 1);
        // |new - old| * 2 > old: with an odd old length, old/2 rounded down still fits.
        let grow = |k: usize| {
            let mut l = old_lines.clone();
            l[20].push_str(&"y".repeat(k));
            l.join("\n")
        };
        let fits = grow(old_len / 2);
        assert!(unified(&old, &fits).is_some());
        assert_eq!(unified(&old, &grow(old_len / 2 + 1)), None);
        // Shrinking, relative to the (longer) old value: 1,001 of 2,000 is over half.
        assert_eq!(unified(&grow(old_len + 1), &old), None);
    }

    #[test]
    fn more_than_a_quarter_of_the_lines_changed_is_sent_whole() {
        let old_lines = paragraphs(20, 80);
        let old = old_lines.join("\n");
        let replace = |count: usize| {
            let mut l = old_lines.clone();
            for i in 0..count {
                l[i * 3] = format!("{i} {}", "z".repeat(70));
            }
            l.join("\n")
        };
        // 40 lines in all: 10 changed lines (5 replaced) is 25%, 12 is more.
        let diff = unified(&old, &replace(5)).expect("25% is not more than 25%");
        assert_eq!(diff.matches("\n@@ ").count(), 5);
        assert_eq!(unified(&old, &replace(6)), None);
    }

    #[test]
    fn a_diff_not_shorter_than_the_value_is_sent_whole() {
        // One long changed line and three short kept ones; the diff's length does not
        // depend on the kept lines, so they are sized to put the value's length on
        // either side of the diff's.
        let make = |first: char, pad: usize| {
            let pads = [pad / 3, pad / 3, pad - 2 * (pad / 3)];
            let mut l = vec![first.to_string().repeat(600)];
            l.extend(
                pads.iter()
                    .enumerate()
                    .map(|(i, &n)| format!("{i}{}", "k".repeat(n))),
            );
            l.join("\n")
        };
        let probe = unified(&make('a', 1_000), &make('b', 1_000)).expect("a diff");
        let dlen = chars(&probe);
        // The value is 600 + 3 breaks + 3 digits + pad characters long.
        let pad_for = |len: usize| len - 606;
        let equal = pad_for(dlen);
        assert_eq!(chars(&make('b', equal)), dlen);
        assert_eq!(unified(&make('a', equal), &make('b', equal)), None);
        let longer = pad_for(dlen + 1);
        assert!(unified(&make('a', longer), &make('b', longer)).is_some());
    }

    #[test]
    fn line_breaks_are_kept_and_mixed_ones_are_sent_whole() {
        let old_lines = paragraphs(10, 120);
        let mut new_lines = old_lines.clone();
        new_lines[5] = "changed".to_owned() + &"!".repeat(100);
        for brk in ["\r\n", "\r", "\n"] {
            let (old, new) = (old_lines.join(brk), new_lines.join(brk));
            let diff = unified(&old, &new).expect("a diff");
            assert!(!diff.contains('\r'));
            assert_eq!(apply(&old, &diff), Ok(new));
        }
        // A consumer joins with the old value's break: a new value with another
        // break, or a trailing one, cannot be rebuilt, so it goes whole.
        let old = old_lines.join("\n");
        assert_eq!(unified(&old, &new_lines.join("\r\n")), None);
        assert_eq!(unified(&old, &(new_lines.join("\n") + "\n")), None);
    }

    #[test]
    fn apply_rejects_bad_diffs() {
        let old_lines = paragraphs(10, 120);
        let mut new_lines = old_lines.clone();
        new_lines[2] = "new".to_owned();
        let (old, new) = (old_lines.join("\n"), new_lines.join("\n"));
        let diff = unified(&old, &new).expect("a diff");
        assert_eq!(apply(&old, "no header"), Err(ApplyError::Header));
        assert_eq!(apply(&old, "--- \n+++ abc"), Err(ApplyError::Header));
        let wrong_hash = diff.replacen(&sha256_hex(&new), &"0".repeat(64), 1);
        assert!(matches!(
            apply(&old, &wrong_hash),
            Err(ApplyError::Hash { .. })
        ));
        // Applied to another old value, the removed line does not match.
        assert_eq!(apply(&new, &diff), Err(ApplyError::Mismatch(3)));
        let hash = sha256_hex(&new);
        assert_eq!(
            apply(
                &old,
                &format!("--- \n+++ {hash}\n@@ -99,1 +99,1 @@\n-a\n+b")
            ),
            Err(ApplyError::Mismatch(3))
        );
        assert_eq!(
            apply(&old, &format!("--- \n+++ {hash}\n@@ nonsense")),
            Err(ApplyError::Syntax(3))
        );
        assert_eq!(
            apply(&old, &format!("--- \n+++ {hash}\n@@ -3,1 +3,1 @@\n-x")),
            Err(ApplyError::Mismatch(3))
        );
        // Context lines are understood.
        let with_context = format!(
            "--- \n+++ {hash}\n@@ -2,2 +2,2 @@\n {}\n-{}\n+new",
            old_lines[1], old_lines[2]
        );
        assert_eq!(apply(&old, &with_context), Ok(new));
    }

    #[test]
    fn big_values_with_many_changes_stay_cheap() {
        // 131,072-character values, every line changed: the search stops at the cap.
        let old: String = (0..13_107).map(|i| format!("{i:09}\n")).collect();
        let new: String = (0..13_107)
            .map(|i| format!("{:09}\n", i + 20_000))
            .collect();
        let start = std::time::Instant::now();
        assert_eq!(unified(&old, &new), None);
        // A few scattered edits in the same size diff fine.
        let mut lines: Vec<String> = (0..13_107).map(|i| format!("{i:09}")).collect();
        let old = lines.join("\n");
        for i in (0..13_107).step_by(1_000) {
            lines[i] = format!("edited {i}");
        }
        let new = lines.join("\n");
        let diff = unified(&old, &new).expect("a diff");
        assert_eq!(apply(&old, &diff), Ok(new));
        assert!(start.elapsed().as_secs() < 30);
    }

    /// Removed plus added lines of a shortest script, by the textbook table.
    fn edit_distance(a: &[&str], b: &[&str]) -> usize {
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                t[i][j] = if a[i] == b[j] {
                    t[i + 1][j + 1] + 1
                } else {
                    t[i + 1][j].max(t[i][j + 1])
                };
            }
        }
        a.len() + b.len() - 2 * t[0][0]
    }

    fn small_text() -> impl Strategy<Value = String> {
        // No empty last line: a text's lines joined with `\n` give the text back.
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "", "dd"]), 0..12).prop_map(
            |mut l| {
                while l.last() == Some(&"") {
                    l.pop();
                }
                l.join("\n")
            },
        )
    }

    /// A long text and an edited copy: lines replaced, inserted and removed.
    fn long_pair() -> impl Strategy<Value = (String, String)> {
        let line = "[a-z ]{0,60}";
        (
            prop::collection::vec(line, 15..60),
            prop::collection::vec((0usize..100, 0u8..3, line), 0..8),
            prop::sample::select(vec!["\n", "\r\n"]),
        )
            .prop_map(|(mut lines, edits, brk)| {
                let old = lines.join(brk);
                for (at, kind, text) in edits {
                    let i = at % (lines.len() + 1);
                    match kind {
                        0 if i < lines.len() => lines[i] = text,
                        1 => lines.insert(i, text),
                        _ if i < lines.len() && lines.len() > 1 => {
                            lines.remove(i);
                        }
                        _ => {}
                    }
                }
                (old, lines.join(brk))
            })
    }

    fn check(old: &str, new: &str) -> Result<(), TestCaseError> {
        if let Some(diff) = unified(old, new) {
            let rebuilt = apply(old, &diff);
            prop_assert_eq!(rebuilt.as_deref(), Ok(new));
            let hash = format!("--- \n+++ {}", sha256_hex(new));
            prop_assert!(diff.starts_with(&hash));
            let (a, b) = (split_lines(old), split_lines(new));
            let changed = diff.lines().filter(|l| l.starts_with(['-', '+'])).count() - 2;
            prop_assert_eq!(changed, edit_distance(&a, &b));
            prop_assert!(changed * 4 <= a.len() + b.len());
            prop_assert!(chars(new) >= MIN_DIFF_LEN && chars(&diff) < chars(new));
            prop_assert!(chars(new).abs_diff(chars(old)) * 2 <= chars(old));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn small_diffs_are_shortest_and_rebuild_the_value(a in small_text(), b in small_text()) {
            let (al, bl) = (split_lines(&a), split_lines(&b));
            let ops = line_diff(&al, &bl, usize::MAX).expect("no limit");
            let edits = ops.iter().filter(|o| !matches!(o, Op::Keep(..))).count();
            prop_assert_eq!(edits, edit_distance(&al, &bl));
            let text = render(&al, &bl, &ops, &sha256_hex(&bl.join("\n")));
            prop_assert_eq!(apply(&al.join("\n"), &text), Ok(bl.join("\n")));
            // A limit below the distance gives up.
            if edits > 0 {
                prop_assert_eq!(line_diff(&al, &bl, edits - 1), None);
            }
        }

        #[test]
        fn long_edits_either_go_whole_or_rebuild_exactly((old, new) in long_pair()) {
            check(&old, &new)?;
            check(&new, &old)?;
        }

        #[test]
        fn random_texts_never_panic(old in "[ab\r\n]{0,40}", new in "(.|\r|\n){0,1500}") {
            check(&old, &new)?;
            check(&new, &old)?;
        }

        #[test]
        fn apply_never_panics(old in "(.|\n){0,80}", diff in "(-|\\+| |@@ -[0-9],[0-9] \\+[0-9],[0-9] @@|[ab]|\n){0,80}") {
            let _ = apply(&old, &diff);
            let _ = apply(&old, &format!("--- \n+++ {}\n{diff}", sha256_hex(&old)));
        }
    }
}
