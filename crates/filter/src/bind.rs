//! Checking a parsed filter against an entity's fields, and matching events with it.
//!
//! Owns: [`Fields`], [`FieldKind`], [`ChannelKind`], [`Bound`]: which operators and
//! literals each field type takes, which `ChangeEventHeader` fields a filter may name, the
//! conversion of literals to the event's JSON form, and the evaluation rules (text compared
//! without case, null handling, `LIKE` wildcards).
//! Must not: parse text (that is `syntax`), read Avro, or panic on any JSON value.

use std::cmp::Ordering;

use serde_json::Value;

use crate::FilterError;
use crate::syntax::{Comparison, Expr, Literal, Op};

/// The kind of channel a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A platform event channel (`channelType` `event`).
    Event,
    /// A change event channel (`channelType` `data`): `ChangeEventHeader` fields are allowed.
    Data,
}

/// The type of a field as far as filters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, Text Area, Email, Phone, Picklist, URL, Id, lookups, Auto Number…: compared as
    /// text, without case.
    Text,
    /// Number, Currency, Percent…: compared as numbers.
    Number,
    /// Checkbox: only `=` and `!=`; null counts as false.
    Boolean,
    /// Date: days since 1970-01-01 in the event.
    Date,
    /// Date/Time: epoch milliseconds in the event.
    DateTime,
    /// Time: milliseconds after midnight in the event.
    Time,
    /// A field that exists but can't be filtered on; carries the type's name for the error
    /// ("Long Text Area", "Multi-Select Picklist").
    Unsupported(&'static str),
}

/// The fields of the entity a filter is checked against.
pub trait Fields {
    /// The kind of the field at `path` (`Amount__c`, `BillingAddress.City`), or `None` when
    /// the entity has no such field. Never asked about `ChangeEventHeader.*` paths: those
    /// are checked here.
    fn kind(&self, path: &str) -> Option<FieldKind>;

    /// The entity's API name (`Order_Event__e`, `AccountChangeEvent`), named in "No such
    /// field" errors. Defaulted because a lookup table may not know it.
    fn entity_name(&self) -> Option<&str> {
        None
    }
}

impl<F: Fn(&str) -> Option<FieldKind>> Fields for F {
    fn kind(&self, path: &str) -> Option<FieldKind> {
        self(path)
    }
}

/// A field's type after binding (the header's `commitTimestamp` is a long that takes either
/// a number or a datetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Number,
    Boolean,
    Date,
    DateTime,
    Time,
    Timestamp,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Text => "a Text",
            Ty::Number => "a Number",
            Ty::Boolean => "a Checkbox",
            Ty::Date => "a Date",
            Ty::DateTime => "a Date/Time",
            Ty::Time => "a Time",
            Ty::Timestamp => "a timestamp (Number or Date/Time)",
        }
    }

    fn wants(self) -> &'static str {
        match self {
            Ty::Text => "text in single quotes",
            Ty::Number => "a number",
            Ty::Boolean => "true or false",
            Ty::Date => "a date such as 2021-11-03",
            Ty::DateTime => "a datetime such as 2021-11-03T09:30:11-08:00",
            Ty::Time => "a time such as 14:30:00Z",
            Ty::Timestamp => "a number of milliseconds or a datetime",
        }
    }
}

/// The header fields a filter may name (canonical spelling, type). The array fields
/// (recordIds, nulledFields, diffFields, changedFields) are refused.
const HEADER_FIELDS: [(&str, Ty); 8] = [
    ("entityName", Ty::Text),
    ("changeType", Ty::Text),
    ("changeOrigin", Ty::Text),
    ("transactionKey", Ty::Text),
    ("sequenceNumber", Ty::Number),
    ("commitTimestamp", Ty::Timestamp),
    ("commitNumber", Ty::Number),
    ("commitUser", Ty::Text),
];
/// The header's array fields, which the documentation excludes from filters.
const HEADER_ARRAYS: [&str; 4] = ["recordIds", "nulledFields", "diffFields", "changedFields"];
/// The header's name in change events.
const HEADER: &str = "ChangeEventHeader";

/// A number as the evaluator compares it.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(Num::Int)
                .or_else(|| n.as_f64().map(Num::Float)),
            _ => None,
        }
    }

    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            // Precision beyond 2^53 is lost here only when one side has a fraction anyway.
            #[allow(clippy::cast_precision_loss)]
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    #[allow(clippy::cast_precision_loss)] // only when compared with a non-integral number
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }
}

/// A literal converted to the event's form.
#[derive(Debug, Clone)]
enum Val {
    Null,
    /// Lowercased text.
    Text(String),
    Num(Num),
    Bool(bool),
}

/// How a field's event value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Numeric,
    Boolean,
}

/// One checked field expression.
#[derive(Debug, Clone)]
struct Test {
    /// Path segments into the event object.
    path: Vec<String>,
    class: Class,
    op: Op,
    values: Vec<Val>,
    /// The lowercased `LIKE` pattern.
    pattern: Vec<char>,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Test(Test),
}

/// A filter checked against an entity's fields, its literals converted to the event's
/// JSON form: ready to match events.
#[derive(Debug, Clone)]
pub struct Bound {
    root: Node,
}

impl Bound {
    /// Whether `event` (a record in the form `ParsedSchema::decode_to_json` gives) passes the
    /// filter.
    ///
    /// Rules: a missing field is null; text compares without case (ordering is by code
    /// point of the lowercased text); `= null` matches a null field and `!= null` a present
    /// one; `!=` and `NOT IN` match a null field (as in SOQL); ordering comparisons and
    /// `LIKE` never match a null field; a Checkbox that is null counts as false; a value of
    /// the wrong JSON kind (text in a Number field) matches no comparison.
    pub fn matches(&self, event: &Value) -> bool {
        eval(&self.root, event)
    }
}

fn eval(node: &Node, event: &Value) -> bool {
    match node {
        Node::And(items) => items.iter().all(|n| eval(n, event)),
        Node::Or(items) => items.iter().any(|n| eval(n, event)),
        Node::Not(inner) => !eval(inner, event),
        Node::Test(t) => test(t, event),
    }
}

/// The field's value at `path`: object keys by exact name, else by name without case
/// (field names are case-insensitive in Salesforce). JSON null is `None`.
fn lookup<'a>(event: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = event;
    for seg in path {
        let obj = v.as_object()?;
        v = match obj.get(seg) {
            Some(x) => x,
            None => obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                .map(|(_, x)| x)?,
        };
    }
    (!v.is_null()).then_some(v)
}

/// Outcome of reading the event value: `Err(())` when it has the wrong JSON kind.
fn read(class: Class, v: Option<&Value>) -> Result<Val, ()> {
    let Some(v) = v else {
        return Ok(match class {
            Class::Boolean => Val::Bool(false),
            _ => Val::Null,
        });
    };
    match class {
        Class::Text => v.as_str().map(|s| Val::Text(s.to_lowercase())).ok_or(()),
        Class::Numeric => Num::of(v).map(Val::Num).ok_or(()),
        Class::Boolean => v.as_bool().map(Val::Bool).ok_or(()),
    }
}

fn order(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Text(x), Val::Text(y)) => Some(x.cmp(y)),
        (Val::Num(x), Val::Num(y)) => x.cmp(*y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        _ => order(a, b) == Some(Ordering::Equal),
    }
}

fn test(t: &Test, event: &Value) -> bool {
    let Ok(v) = read(t.class, lookup(event, &t.path)) else {
        return false;
    };
    let first = t.values.first().unwrap_or(&Val::Null);
    match t.op {
        Op::Eq => equal(&v, first),
        Op::Ne => !equal(&v, first),
        Op::In => t.values.iter().any(|x| equal(&v, x)),
        Op::NotIn => !t.values.iter().any(|x| equal(&v, x)),
        Op::Like => match v {
            Val::Text(s) => like(&s.chars().collect::<Vec<_>>(), &t.pattern),
            _ => false,
        },
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let Some(o) = order(&v, first) else {
                return false;
            };
            match t.op {
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }
        }
    }
}

/// SOQL `LIKE`: `%` any run of characters (also none), `_` exactly one. Greedy with one
/// backtrack point, so linear-ish and never recursive.
fn like(s: &[char], p: &[char]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == s[si])) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

fn err(position: usize, reason: impl Into<String>) -> FilterError {
    FilterError {
        position,
        reason: reason.into(),
    }
}

/// Checks `expr` against `fields` for a channel of `kind`.
pub(crate) fn bind(
    expr: &Expr,
    fields: &dyn Fields,
    kind: ChannelKind,
) -> Result<Bound, FilterError> {
    Ok(Bound {
        root: bind_node(expr, fields, kind)?,
    })
}

fn bind_node(expr: &Expr, fields: &dyn Fields, kind: ChannelKind) -> Result<Node, FilterError> {
    let all = |items: &[Expr]| {
        items
            .iter()
            .map(|e| bind_node(e, fields, kind))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match expr {
        Expr::And(items) => Node::And(all(items)?),
        Expr::Or(items) => Node::Or(all(items)?),
        Expr::Not(inner) => Node::Not(Box::new(bind_node(inner, fields, kind)?)),
        Expr::Cmp(c) => Node::Test(bind_cmp(c, fields, kind)?),
    })
}

/// The path segments and type of the field a comparison names.
fn resolve(
    c: &Comparison,
    fields: &dyn Fields,
    kind: ChannelKind,
) -> Result<(Vec<String>, Ty), FilterError> {
    let pos = c.field_pos.0;
    let segs: Vec<&str> = c.field.split('.').collect();
    if segs[0].eq_ignore_ascii_case(HEADER) {
        if kind == ChannelKind::Event {
            return Err(err(
                pos,
                format!("{HEADER} fields can be filtered on only in change event (data) channels"),
            ));
        }
        let [_, name] = segs[..] else {
            return Err(err(
                pos,
                format!("name one field of {HEADER}, as in {HEADER}.changeType"),
            ));
        };
        if let Some(a) = HEADER_ARRAYS.iter().find(|a| a.eq_ignore_ascii_case(name)) {
            return Err(err(
                pos,
                format!("{HEADER}.{a} is an array field: array header fields can't be filtered on"),
            ));
        }
        let Some((canon, ty)) = HEADER_FIELDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            return Err(err(pos, format!("No such field '{name}' on {HEADER}")));
        };
        return Ok((vec![HEADER.to_string(), (*canon).to_string()], *ty));
    }
    let ty = match fields.kind(&c.field) {
        None => {
            let on = fields
                .entity_name()
                .map(|e| format!(" on {e}"))
                .unwrap_or_default();
            return Err(err(pos, format!("No such field '{}'{on}", c.field)));
        }
        Some(FieldKind::Unsupported(name)) => {
            return Err(err(
                pos,
                format!(
                    "field '{}' is of type {name}, which filter expressions don't support",
                    c.field
                ),
            ));
        }
        Some(FieldKind::Text) => Ty::Text,
        Some(FieldKind::Number) => Ty::Number,
        Some(FieldKind::Boolean) => Ty::Boolean,
        Some(FieldKind::Date) => Ty::Date,
        Some(FieldKind::DateTime) => Ty::DateTime,
        Some(FieldKind::Time) => Ty::Time,
    };
    Ok((segs.iter().map(|s| (*s).to_string()).collect(), ty))
}

fn bind_cmp(c: &Comparison, fields: &dyn Fields, kind: ChannelKind) -> Result<Test, FilterError> {
    let (path, ty) = resolve(c, fields, kind)?;
    let op = c.op;
    let op_pos = c.op_pos.0;
    let field = &c.field;
    if ty == Ty::Boolean && !matches!(op, Op::Eq | Op::Ne) {
        return Err(err(
            op_pos,
            format!(
                "'{field}' is a Checkbox field: only = and != are allowed, not {}",
                op.as_str()
            ),
        ));
    }
    if op == Op::Like && ty != Ty::Text {
        return Err(err(
            op_pos,
            format!(
                "LIKE works on Text fields only; '{field}' is {} field",
                ty.name()
            ),
        ));
    }
    let mut values = Vec::with_capacity(c.values.len());
    for (lit, pos) in &c.values {
        let pos = pos.0;
        if *lit == Literal::Null {
            if op.is_ordering() || op == Op::Like {
                return Err(err(
                    pos,
                    format!(
                        "null can be compared only with =, !=, IN and NOT IN, not {}",
                        op.as_str()
                    ),
                ));
            }
            // A Checkbox compared to null is compared to false (documented).
            values.push(if ty == Ty::Boolean {
                Val::Bool(false)
            } else {
                Val::Null
            });
            continue;
        }
        let v = match (ty, lit) {
            (Ty::Text, Literal::Text(s)) => Val::Text(s.to_lowercase()),
            (Ty::Number | Ty::Timestamp, Literal::Int(v)) => Val::Num(Num::Int(*v)),
            (Ty::Number | Ty::Timestamp, Literal::Float(v)) => Val::Num(Num::Float(*v)),
            (Ty::Boolean, Literal::Bool(b)) => Val::Bool(*b),
            (Ty::Date, Literal::Date(d)) => Val::Num(Num::Int(*d)),
            (Ty::DateTime | Ty::Timestamp, Literal::DateTime(ms))
            | (Ty::Time, Literal::Time(ms)) => Val::Num(Num::Int(*ms)),
            _ => {
                return Err(err(
                    pos,
                    format!(
                        "'{field}' is {} field: compare it with {}, not {}",
                        ty.name(),
                        ty.wants(),
                        lit.describe()
                    ),
                ));
            }
        };
        values.push(v);
    }
    let class = match ty {
        Ty::Text => Class::Text,
        Ty::Boolean => Class::Boolean,
        _ => Class::Numeric,
    };
    let pattern = match (op, values.first()) {
        (Op::Like, Some(Val::Text(s))) => s.chars().collect(),
        _ => Vec::new(),
    };
    Ok(Test {
        path,
        class,
        op,
        values,
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::like;

    fn l(s: &str, p: &str) -> bool {
        like(
            &s.chars().collect::<Vec<_>>(),
            &p.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn like_wildcards_match_runs_and_single_characters() {
        assert!(l("agriculture", "a%"));
        assert!(l("a", "a%"));
        assert!(!l("banking", "a%"));
        assert!(l("banking", "%king"));
        assert!(l("banking", "%nk%"));
        assert!(l("banking", "b_nking"));
        assert!(!l("bnking", "b_nking"));
        assert!(l("", "%"));
        assert!(!l("", "_"));
        assert!(l("abcabc", "%a%c"));
        assert!(!l("abcab", "%a%c"));
        assert!(l("x", "%%%"));
        assert!(l("aaaaaaaaaaaaaaaaaaaaaaaaaaab", "%a%a%a%a%b"));
        assert!(!l("aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "%a%a%a%a%b"));
    }
}
