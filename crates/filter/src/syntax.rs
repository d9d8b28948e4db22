//! The filter language's syntax: text to tokens to the expression tree, and the tree back
//! to canonical text.
//!
//! Owns: the lexer (literals, keywords, operators, escapes), the parser with its bounds
//! ([`MAX_LENGTH`], [`MAX_DEPTH`], [`MAX_TERMS`]), the tree ([`Expr`]) and its canonical
//! printing, and the calendar arithmetic of date, datetime and time literals.
//! Must not: know field types, channels or events (that is `bind`), recurse deeper than
//! [`MAX_DEPTH`], or panic on any input.

use std::fmt;

use crate::{FilterError, MAX_DEPTH, MAX_LENGTH, MAX_TERMS};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A 1-based character position in the filter text, kept for error messages.
///
/// Positions are not part of a filter's meaning: every two positions compare equal, so a
/// filter and the reparse of its canonical text (where everything moved) are equal trees.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pos(pub(crate) usize);

impl PartialEq for Pos {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// All of the terms (two or more), joined by `AND`.
    And(Vec<Expr>),
    /// Any of the terms (two or more), joined by `OR`.
    Or(Vec<Expr>),
    /// `NOT term`.
    Not(Box<Expr>),
    /// `Field op value`.
    Cmp(Comparison),
}

/// One field expression: `Field op value` or `Field [NOT] IN (values)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    /// The field path as written (`Amount__c`, `ChangeEventHeader.changeType`).
    pub(crate) field: String,
    /// Where the field name starts.
    pub(crate) field_pos: Pos,
    /// The operator.
    pub(crate) op: Op,
    /// Where the operator starts.
    pub(crate) op_pos: Pos,
    /// The value (one) or the values of an `IN` list (one or more), each with its position.
    pub(crate) values: Vec<(Literal, Pos)>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
    /// `IN (…)`
    In,
    /// `NOT IN (…)`
    NotIn,
}

impl Op {
    /// The operator as written in canonical text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
        }
    }

    /// `<`, `<=`, `>` or `>=`.
    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    /// `'text'`, escapes resolved.
    Text(String),
    /// A number without a fractional part that fits an `i64` (`42`, `-7`, `5.0`).
    Int(i64),
    /// Any other number (`12.5`, `-0.25`, `1e19` written out in digits).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `2021-11-03`: days since 1970-01-01.
    Date(i64),
    /// `2021-11-03T09:30:11-08:00`: milliseconds since the Unix epoch (UTC).
    DateTime(i64),
    /// `14:30:00Z`: milliseconds after midnight UTC.
    Time(i64),
}

impl Literal {
    /// The literal's type for error messages ("a number", "text").
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Literal::Text(_) => "text",
            Literal::Int(_) | Literal::Float(_) => "a number",
            Literal::Bool(_) => "a boolean",
            Literal::Null => "null",
            Literal::Date(_) => "a date",
            Literal::DateTime(_) => "a datetime",
            Literal::Time(_) => "a time",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

/// A token's kind.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name: a field path or a keyword (`AND`, `null`, …), told apart by the parser.
    Word(String),
    /// A quoted string, escapes resolved.
    Str(String),
    /// A number, date, datetime or time.
    Lit(Literal),
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Op(Op),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// The end of the text.
    End,
}

/// A token with its position.
#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character position of its first character.
    pos: usize,
    /// Whether whitespace (or the start of the text) comes right before it.
    space_before: bool,
}

fn err(position: usize, reason: impl Into<String>) -> FilterError {
    FilterError {
        position,
        reason: reason.into(),
    }
}

/// Splits the text into tokens (the last is [`Tok::End`]).
fn lex(chars: &[char]) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut space_before = true;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            space_before = true;
            i += 1;
            continue;
        }
        let (tok, next) = match c {
            '(' => (Tok::LParen, i + 1),
            ')' => (Tok::RParen, i + 1),
            ',' => (Tok::Comma, i + 1),
            '=' => (Tok::Op(Op::Eq), i + 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Tok::Op(Op::Ne), i + 2),
            '!' => return Err(err(pos, "expected '=' after '!' (the operator is !=)")),
            '<' if chars.get(i + 1) == Some(&'=') => (Tok::Op(Op::Le), i + 2),
            '<' => (Tok::Op(Op::Lt), i + 1),
            '>' if chars.get(i + 1) == Some(&'=') => (Tok::Op(Op::Ge), i + 2),
            '>' => (Tok::Op(Op::Gt), i + 1),
            '\'' => {
                let (s, next) = lex_string(chars, i)?;
                (Tok::Str(s), next)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let (lit, next) = lex_literal(chars, i)?;
                if let Some(&d) = chars.get(next)
                    && (d.is_alphanumeric() || matches!(d, '_' | '.' | ':' | '\'' | '-' | '+'))
                {
                    return Err(err(
                        next + 1,
                        format!("unexpected character '{d}' after a value"),
                    ));
                }
                (Tok::Lit(lit), next)
            }
            c if c.is_ascii_alphabetic() => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '.'))
                {
                    j += 1;
                }
                (Tok::Word(chars[i..j].iter().collect()), j)
            }
            '"' => {
                return Err(err(
                    pos,
                    "unexpected character '\"': text values go in single quotes",
                ));
            }
            c => return Err(err(pos, format!("unexpected character '{c}'"))),
        };
        out.push(Token {
            tok,
            pos,
            space_before,
        });
        space_before = false;
        i = next;
    }
    out.push(Token {
        tok: Tok::End,
        pos: chars.len() + 1,
        space_before: true,
    });
    Ok(out)
}

/// Reads the quoted string starting at `chars[start]` (a `'`); returns it and the index
/// after its closing quote.
///
/// Escapes are SOQL's quoted-string escapes (`\'`, `\"`, `\n`, `\r`, `\t`, `\b`, `\f`, either
/// case) except those the filter documentation says cannot be escaped: backslash,
/// underscore and percent.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(err(
                start + 1,
                "unclosed string: the quote opened here is never closed",
            ));
        };
        match c {
            '\'' => return Ok((s, i + 1)),
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(err(
                        start + 1,
                        "unclosed string: the quote opened here is never closed",
                    ));
                };
                let resolved = match e {
                    '\'' => '\'',
                    '"' => '"',
                    'n' | 'N' => '\n',
                    'r' | 'R' => '\r',
                    't' | 'T' => '\t',
                    'b' | 'B' => '\u{8}',
                    'f' | 'F' => '\u{c}',
                    '\\' | '_' | '%' => {
                        return Err(err(
                            i + 1,
                            format!(
                                "'\\{e}' can't be escaped in a filter expression (backslash, underscore and percent can't be escaped)"
                            ),
                        ));
                    }
                    other => {
                        return Err(err(i + 1, format!("unknown escape sequence '\\{other}'")));
                    }
                };
                s.push(resolved);
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// Reads `n` ASCII digits at `chars[i..]` as a number.
fn digits(chars: &[char], i: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for k in 0..n {
        let d = chars.get(i + k)?.to_digit(10)?;
        v = v * 10 + i64::from(d);
    }
    Some(v)
}

fn is_at(chars: &[char], i: usize, c: char) -> bool {
    chars.get(i) == Some(&c)
}

/// Reads the number, date, datetime or time starting at `chars[start]`; returns it and the
/// index after it.
fn lex_literal(chars: &[char], start: usize) -> Result<(Literal, usize), FilterError> {
    let pos = start + 1;
    // YYYY-MM-DD, then maybe THH:MM:SS(.fff)(Z|±HH:MM)
    if let (Some(y), true, Some(m), true, Some(d)) = (
        digits(chars, start, 4),
        is_at(chars, start + 4, '-'),
        digits(chars, start + 5, 2),
        is_at(chars, start + 7, '-'),
        digits(chars, start + 8, 2),
    ) {
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return Err(err(pos, "invalid date: no such day"));
        }
        let days = days_from_civil(y, m, d);
        let i = start + 10;
        if !matches!(chars.get(i), Some('T' | 't')) {
            return Ok((Literal::Date(days), i));
        }
        let (ms, i) = time_of_day(chars, i + 1)?;
        let (offset_ms, i) = match chars.get(i) {
            Some('Z' | 'z') => (0, i + 1),
            Some(&sign @ ('+' | '-')) => {
                let (Some(h), true, Some(mi)) = (
                    digits(chars, i + 1, 2),
                    is_at(chars, i + 3, ':'),
                    digits(chars, i + 4, 2),
                ) else {
                    return Err(err(i + 1, "invalid time zone offset: expected ±hh:mm"));
                };
                if h > 23 || mi > 59 {
                    return Err(err(i + 1, "invalid time zone offset"));
                }
                let off = (h * 60 + mi) * 60_000;
                (if sign == '-' { -off } else { off }, i + 6)
            }
            _ => {
                return Err(err(
                    i + 1,
                    "a datetime needs a time zone: Z or an offset such as -08:00",
                ));
            }
        };
        let utc = days * DAY_MS + ms - offset_ms;
        if utc < days_from_civil(0, 1, 1) * DAY_MS || utc >= days_from_civil(10_000, 1, 1) * DAY_MS
        {
            return Err(err(
                pos,
                "datetime out of range (years 0000 to 9999 in UTC)",
            ));
        }
        return Ok((Literal::DateTime(utc), i));
    }
    // HH:MM:SS(.fff)Z
    if digits(chars, start, 2).is_some() && is_at(chars, start + 2, ':') {
        let (ms, i) = time_of_day(chars, start)?;
        if !matches!(chars.get(i), Some('Z' | 'z')) {
            return Err(err(
                i + 1,
                "a time needs the UTC time zone designator Z (such as 14:30:00Z)",
            ));
        }
        return Ok((Literal::Time(ms), i + 1));
    }
    // -?digits(.digits)?
    let mut i = start;
    if is_at(chars, i, '-') {
        i += 1;
    }
    while chars.get(i).is_some_and(char::is_ascii_digit) {
        i += 1;
    }
    let mut fraction = false;
    if is_at(chars, i, '.') {
        if !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            return Err(err(i + 1, "expected digits after the decimal point"));
        }
        fraction = true;
        i += 1;
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
    }
    let text: String = chars[start..i].iter().collect();
    if !fraction && let Ok(v) = text.parse::<i64>() {
        return Ok((Literal::Int(v), i));
    }
    let v: f64 = text.parse().map_err(|_| err(pos, "invalid number"))?;
    if !v.is_finite() {
        return Err(err(pos, "number out of range"));
    }
    Ok((number(v), i))
}

/// A number as a literal: integral values that fit an `i64` are [`Literal::Int`], so the
/// printed form of every literal reads back as the same literal.
fn number(v: f64) -> Literal {
    // 2^63 is exact as an f64; every integral f64 below it in magnitude fits an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.fract() == 0.0 && v > -LIMIT && v < LIMIT {
        // In range and integral (checked above), so the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        return Literal::Int(v as i64);
    }
    Literal::Float(v)
}

/// Reads `HH:MM:SS(.f{1,9})` at `chars[i..]`: milliseconds after midnight (digits past the
/// third of the fraction are dropped) and the index after it.
fn time_of_day(chars: &[char], i: usize) -> Result<(i64, usize), FilterError> {
    let (Some(h), true, Some(m), true, Some(s)) = (
        digits(chars, i, 2),
        is_at(chars, i + 2, ':'),
        digits(chars, i + 3, 2),
        is_at(chars, i + 5, ':'),
        digits(chars, i + 6, 2),
    ) else {
        return Err(err(i + 1, "invalid time: expected hh:mm:ss"));
    };
    if h > 23 || m > 59 || s > 59 {
        return Err(err(i + 1, "invalid time: no such time of day"));
    }
    let mut ms = ((h * 60 + m) * 60 + s) * 1000;
    let mut j = i + 8;
    if is_at(chars, j, '.') {
        j += 1;
        let first = j;
        while chars.get(j).is_some_and(char::is_ascii_digit) {
            j += 1;
        }
        let n = j - first;
        if n == 0 || n > 9 {
            return Err(err(first + 1, "a fraction of a second has 1 to 9 digits"));
        }
        let mut frac = 0;
        for k in 0..3 {
            let d = if k < n {
                chars[first + k].to_digit(10).map_or(0, i64::from)
            } else {
                0
            };
            frac = frac * 10 + d;
        }
        ms += frac;
    }
    Ok((ms, j))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a count of days since 1970-01-01: (year, month, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

// ---------------------------------------------------------------------------------------
// Parser

/// Parses filter text into its tree, within the bounds.
pub(crate) fn parse_expr(text: &str) -> Result<Expr, FilterError> {
    let len = text.chars().count();
    if len > MAX_LENGTH {
        return Err(err(
            MAX_LENGTH + 1,
            format!("the filter expression is {len} characters long; the maximum is {MAX_LENGTH}"),
        ));
    }
    let chars: Vec<char> = text.chars().collect();
    let toks = lex(&chars)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        terms: 0,
    };
    if p.peek().tok == Tok::End {
        return Err(err(1, "the filter expression is empty"));
    }
    let e = p.expr()?;
    let t = p.peek();
    match t.tok {
        Tok::End => Ok(e),
        Tok::RParen => Err(err(t.pos, "unexpected ')': no '(' is open")),
        _ => Err(err(
            t.pos,
            "expected AND, OR or the end of the expression after a field expression",
        )),
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// Open parentheses and `NOT`s around the current point.
    depth: usize,
    /// Field expressions read so far.
    terms: usize,
}

/// The keywords that can't be field names.
const KEYWORDS: [&str; 8] = ["AND", "OR", "NOT", "LIKE", "IN", "TRUE", "FALSE", "NULL"];

fn is_kw(t: &Token, kw: &str) -> bool {
    matches!(&t.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> &Token {
        // lex always ends with Tok::End and the parser never moves past it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, k: usize) -> &Token {
        &self.toks[(self.i + k).min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::End {
            self.i += 1;
        }
        t
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                pos,
                format!("the expression nests more than {MAX_DEPTH} levels of parentheses and NOT"),
            ));
        }
        Ok(())
    }

    /// `unary ((AND|OR) unary)*` with one connector throughout.
    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary()?];
        let mut connector: Option<bool> = None; // Some(true) = AND
        loop {
            let t = self.peek().clone();
            let is_and = if is_kw(&t, "AND") {
                true
            } else if is_kw(&t, "OR") {
                false
            } else {
                break;
            };
            let name = if is_and { "AND" } else { "OR" };
            let before_ok = t.space_before
                || self
                    .i
                    .checked_sub(1)
                    .is_some_and(|k| self.toks[k].tok == Tok::RParen);
            let after = self.peek_at(1);
            let after_ok = after.space_before || after.tok == Tok::LParen;
            if !before_ok || !after_ok {
                return Err(err(
                    t.pos,
                    format!(
                        "{name} needs a space on each side unless the field expressions are in parentheses"
                    ),
                ));
            }
            match connector {
                Some(c) if c != is_and => {
                    return Err(err(
                        t.pos,
                        "AND and OR can't be mixed without parentheses: group the terms, as in a AND (b OR c)",
                    ));
                }
                _ => connector = Some(is_and),
            }
            self.bump();
            items.push(self.unary()?);
        }
        Ok(match (connector, items.len()) {
            (Some(true), _) => Expr::And(items),
            (Some(false), _) => Expr::Or(items),
            _ => items.pop().unwrap_or_else(unreachable_expr),
        })
    }

    /// `NOT unary | '(' expr ')' | comparison`.
    fn unary(&mut self) -> Result<Expr, FilterError> {
        let t = self.peek().clone();
        if is_kw(&t, "NOT") {
            self.enter(t.pos)?;
            self.bump();
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if t.tok == Tok::LParen {
            self.enter(t.pos)?;
            self.bump();
            let inner = self.expr()?;
            let close = self.peek().clone();
            match close.tok {
                Tok::RParen => {
                    self.bump();
                }
                Tok::End => {
                    return Err(err(
                        close.pos,
                        format!("missing ')' to close the '(' at character {}", t.pos),
                    ));
                }
                _ => {
                    return Err(err(
                        close.pos,
                        "expected AND, OR or ')' after a field expression",
                    ));
                }
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let t = self.bump();
        let field = match &t.tok {
            Tok::Word(w) => {
                if let Some(kw) = KEYWORDS.iter().find(|k| w.eq_ignore_ascii_case(k)) {
                    return Err(err(
                        t.pos,
                        format!("expected a field name, found the keyword {kw}"),
                    ));
                }
                check_path(w, t.pos)?;
                w.clone()
            }
            Tok::End => return Err(err(t.pos, "expected a field name, found the end")),
            _ => return Err(err(t.pos, "expected a field name")),
        };
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(err(
                t.pos,
                format!("the expression has more than {MAX_TERMS} field expressions"),
            ));
        }
        let o = self.bump();
        let op = match &o.tok {
            Tok::Op(op) => *op,
            _ if is_kw(&o, "LIKE") => Op::Like,
            _ if is_kw(&o, "IN") => Op::In,
            _ if is_kw(&o, "NOT") && is_kw(self.peek(), "IN") => {
                self.bump();
                Op::NotIn
            }
            _ => {
                return Err(err(
                    o.pos,
                    "expected a comparison operator: =, !=, <, <=, >, >=, LIKE, IN or NOT IN",
                ));
            }
        };
        let mut values = Vec::new();
        if matches!(op, Op::In | Op::NotIn) {
            let open = self.bump();
            if open.tok != Tok::LParen {
                return Err(err(
                    open.pos,
                    format!("expected '(' and a list of values after {}", op.as_str()),
                ));
            }
            loop {
                values.push(self.value()?);
                let sep = self.bump();
                match sep.tok {
                    Tok::Comma => {}
                    Tok::RParen => break,
                    Tok::End => {
                        return Err(err(
                            sep.pos,
                            format!("missing ')' to close the list at character {}", open.pos),
                        ));
                    }
                    _ => return Err(err(sep.pos, "expected ',' or ')' in the list of values")),
                }
            }
        } else {
            values.push(self.value()?);
        }
        Ok(Expr::Cmp(Comparison {
            field,
            field_pos: Pos(t.pos),
            op,
            op_pos: Pos(o.pos),
            values,
        }))
    }

    fn value(&mut self) -> Result<(Literal, Pos), FilterError> {
        let t = self.bump();
        let lit = match t.tok {
            Tok::Str(s) => Literal::Text(s),
            Tok::Lit(l) => l,
            Tok::Word(ref w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(ref w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(ref w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word(_) => {
                return Err(err(
                    t.pos,
                    "expected a value: text values go in single quotes ('Hello')",
                ));
            }
            Tok::End => return Err(err(t.pos, "expected a value, found the end")),
            _ => return Err(err(t.pos, "expected a value")),
        };
        Ok((lit, Pos(t.pos)))
    }
}

/// Never called: `expr` always holds at least one item.
fn unreachable_expr() -> Expr {
    Expr::And(Vec::new())
}

/// A field path: names of letters, digits and underscores, starting with a letter, joined
/// by single dots.
fn check_path(path: &str, pos: usize) -> Result<(), FilterError> {
    let mut offset = 0;
    for seg in path.split('.') {
        if !seg.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(err(
                pos + offset,
                format!("invalid field name '{path}': each part starts with a letter"),
            ));
        }
        offset += seg.len() + 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Printing

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => {
                f.write_str("'")?;
                for c in s.chars() {
                    match c {
                        '\'' => f.write_str("\\'")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        '\u{8}' => f.write_str("\\b")?,
                        '\u{c}' => f.write_str("\\f")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("'")
            }
            Literal::Int(v) => write!(f, "{v}"),
            // Rust prints the shortest digits that read back as the same f64, never an
            // exponent, so the text is a valid number literal of the language.
            Literal::Float(v) => write!(f, "{v}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
            Literal::Date(days) => {
                let (y, m, d) = civil_from_days(*days);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Literal::DateTime(ms) => {
                let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
                write!(f, "{y:04}-{m:02}-{d:02}T")?;
                write_time(f, ms.rem_euclid(DAY_MS))
            }
            Literal::Time(ms) => write_time(f, *ms),
        }
    }
}

/// `hh:mm:ss[.fff]Z`.
fn write_time(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    let (s, frac) = (ms / 1000, ms % 1000);
    write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)?;
    if frac != 0 {
        write!(f, ".{frac:03}")?;
    }
    f.write_str("Z")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sub = |f: &mut fmt::Formatter<'_>, e: &Expr| match e {
            Expr::And(_) | Expr::Or(_) => write!(f, "({e})"),
            _ => write!(f, "{e}"),
        };
        match self {
            Expr::And(items) | Expr::Or(items) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (k, e) in items.iter().enumerate() {
                    if k > 0 {
                        f.write_str(sep)?;
                    }
                    sub(f, e)?;
                }
                Ok(())
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                sub(f, e)
            }
            Expr::Cmp(c) => {
                write!(f, "{} {} ", c.field, c.op.as_str())?;
                if matches!(c.op, Op::In | Op::NotIn) {
                    f.write_str("(")?;
                    for (k, (v, _)) in c.values.iter().enumerate() {
                        if k > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{v}")?;
                    }
                    f.write_str(")")
                } else {
                    match c.values.first() {
                        Some((v, _)) => write!(f, "{v}"),
                        None => f.write_str("null"),
                    }
                }
            }
        }
    }
}

/// Every field path referenced, in order of first appearance, without repeats.
pub(crate) fn collect_fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::And(items) | Expr::Or(items) => items.iter().for_each(|i| collect_fields(i, out)),
        Expr::Not(inner) => collect_fields(inner, out),
        Expr::Cmp(c) => {
            if !out.contains(&c.field) {
                out.push(c.field.clone());
            }
        }
    }
}
