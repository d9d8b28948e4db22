//! Channel member filter expressions (Salesforce `PlatformEventChannelMember.filterExpression`):
//! a SOQL `WHERE` subset that decides which events of an entity a custom channel delivers.
//!
//! Owns: [`parse`] (text to [`Filter`]), [`Filter::bind`] (checking a filter against an
//! entity's fields and a channel kind, giving a [`Bound`]), [`Bound::matches`] (one event
//! in, yes or no out), the canonical text of a filter, and the language's limits.
//! Must not: depend on any other eventbus crate, do I/O, or panic or overflow the stack on
//! any input (every recursion is bounded by [`MAX_DEPTH`]).
//!
//! The language, in short (Salesforce's "Filter Expression Format" and "Field
//! Considerations" pages of the Change Data Capture and Platform Events guides):
//! - `Field op value`, with `=`, `!=`, `<`, `<=`, `>`, `>=`, `LIKE` (text only; `%` any run,
//!   `_` one character), `IN (v, …)`, `NOT IN (v, …)`; terms joined by `AND` or `OR`
//!   (mixing the two needs parentheses, as in SOQL); `NOT term`; parentheses. Keywords are
//!   case-insensitive.
//! - Values: `'text'` (SOQL escapes except `\\`, `\_`, `\%`), numbers (`42`, `-1.5`),
//!   `true`/`false`, `null`, dates `2021-11-03`, datetimes `2021-11-03T09:30:11-08:00` or
//!   `…Z` (fraction allowed), times `14:30:00Z` (the `Z` is required).
//! - Field paths with a dot reach into compound fields (`BillingAddress.City`) and, on
//!   change event channels, the header (`ChangeEventHeader.changeType`).

mod bind;
mod syntax;

use std::fmt;

pub use bind::{Bound, ChannelKind, FieldKind, Fields};

/// Longest filter expression accepted, in characters. Salesforce documents no maximum; this
/// bound keeps parsing and matching cheap and is far above any documented example.
pub const MAX_LENGTH: usize = 2_000;
/// Deepest nesting of parentheses and `NOT` accepted: bounds the parser's and the
/// evaluator's recursion (a filter of 100,000 `(` is an error, not a stack overflow).
pub const MAX_DEPTH: usize = 20;
/// Most field expressions in one filter.
pub const MAX_TERMS: usize = 100;

/// A filter expression that does not parse or does not fit the entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at character {position})")]
pub struct FilterError {
    /// 1-based position, in characters, of what is wrong in the filter text.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

/// A parsed filter expression: its tree and the text it came from.
///
/// Two filters are equal when their trees are (the text and positions don't count):
/// `parse(&f.to_string())` equals `f`.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: syntax::Expr,
    text: String,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

/// Parses a filter expression.
///
/// # Errors
/// A [`FilterError`] naming the first character that is wrong: an unexpected character, an
/// unclosed string, a missing `)`, a value that isn't one, `AND` and `OR` mixed without
/// parentheses, or a limit ([`MAX_LENGTH`], [`MAX_DEPTH`], [`MAX_TERMS`]) exceeded.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    Ok(Filter {
        expr: syntax::parse_expr(text)?,
        text: text.to_string(),
    })
}

impl Filter {
    /// The text as given to [`parse`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every field path the filter names (`Amount__c`, `BillingAddress.City`,
    /// `ChangeEventHeader.changeType`), in order of first appearance, without repeats.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        syntax::collect_fields(&self.expr, &mut out);
        out
    }

    /// Checks the filter against the entity's `fields` for a channel of `kind` and converts
    /// its literals to the event's form.
    ///
    /// # Errors
    /// A [`FilterError`] at the offending field, operator or value: no such field, a field
    /// type filters don't support, an operator the type doesn't take (`LIKE` on a number,
    /// `<` on a Checkbox), a value of the wrong type, `null` with an ordering operator or
    /// `LIKE`, a `ChangeEventHeader` field on an event channel, or a header field that is an
    /// array or doesn't exist.
    pub fn bind(&self, fields: &dyn Fields, kind: ChannelKind) -> Result<Bound, FilterError> {
        bind::bind(&self.expr, fields, kind)
    }
}

impl fmt::Display for Filter {
    /// The canonical text: single spaces, upper-case keywords, parentheses only where the
    /// tree needs them, datetimes in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

#[cfg(test)]
mod tests;
