//! Tests of the filter language: the documented examples, every operator and literal type
//! (matching and not), every error, the limits, and properties (no panics, round trips).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};

use super::syntax::{Comparison, Expr, Literal, Op, Pos};
use super::*;

/// Fields of an Account-like change event entity.
fn account(path: &str) -> Option<FieldKind> {
    Some(match path {
        "Name" | "Industry" | "City__c" | "BillingAddress.City" | "OwnerId" => FieldKind::Text,
        "NumberOfEmployees" | "AnnualRevenue" | "Big__c" => FieldKind::Number,
        "IsActive__c" => FieldKind::Boolean,
        "Since__c" => FieldKind::Date,
        "LastViewedDate" => FieldKind::DateTime,
        "OpenTime__c" => FieldKind::Time,
        "Notes__c" => FieldKind::Unsupported("Long Text Area"),
        "Tags__c" => FieldKind::Unsupported("Multi-Select Picklist"),
        _ => return None,
    })
}

/// The Order_Event__e platform event of the Salesforce examples.
struct OrderEvent;

impl Fields for OrderEvent {
    fn kind(&self, path: &str) -> Option<FieldKind> {
        match path {
            "Order_Number__c" | "City__c" => Some(FieldKind::Text),
            "Amount__c" => Some(FieldKind::Number),
            "Has_Shipped__c" => Some(FieldKind::Boolean),
            _ => None,
        }
    }

    fn entity_name(&self) -> Option<&str> {
        Some("Order_Event__e")
    }
}

fn bound(text: &str) -> Bound {
    parse(text)
        .unwrap()
        .bind(&account, ChannelKind::Data)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn m(text: &str, event: &Value) -> bool {
    bound(text).matches(event)
}

fn parse_err(text: &str) -> FilterError {
    match parse(text) {
        Ok(f) => panic!("{text} parsed as {f}"),
        Err(e) => e,
    }
}

fn bind_err(text: &str, kind: ChannelKind) -> FilterError {
    match parse(text).unwrap().bind(&account, kind) {
        Ok(_) => panic!("{text} bound"),
        Err(e) => e,
    }
}

/// Asserts the error's position and that its reason contains `part`.
fn assert_err(e: &FilterError, position: usize, part: &str) {
    assert_eq!(e.position, position, "{e}");
    assert!(e.reason.contains(part), "{e:?} lacks {part:?}");
}

// ---- documented examples --------------------------------------------------------------

/// The expressions Salesforce's filter documentation shows (CDC and platform event
/// guides, PlatformEventChannelMember metadata): each parses, prints canonically and binds.
#[test]
fn documented_examples_parse_and_bind() {
    let cases = [
        ("Industry = 'Agriculture'", "Industry = 'Agriculture'"),
        ("Industry LIKE 'A%'", "Industry LIKE 'A%'"),
        (
            "LastViewedDate > 2021-11-03T09:30:11-08:00",
            "LastViewedDate > 2021-11-03T17:30:11Z",
        ),
        ("OpenTime__c >= 14:30:00Z", "OpenTime__c >= 14:30:00Z"),
        (
            "ChangeEventHeader.changeType = 'UPDATE'",
            "ChangeEventHeader.changeType = 'UPDATE'",
        ),
        (
            "Industry = 'Agriculture' AND NumberOfEmployees > 1000",
            "Industry = 'Agriculture' AND NumberOfEmployees > 1000",
        ),
        (
            "NumberOfEmployees > 1000 AND (Industry = 'Agriculture' OR Industry = 'Banking')",
            "NumberOfEmployees > 1000 AND (Industry = 'Agriculture' OR Industry = 'Banking')",
        ),
        ("City__c = 'San Francisco'", "City__c = 'San Francisco'"),
        ("City__c='Hello'", "City__c = 'Hello'"),
    ];
    for (text, canonical) in cases {
        let f = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.text(), text);
        assert_eq!(f.to_string(), canonical);
        assert_eq!(parse(canonical).unwrap(), f);
        f.bind(&account, ChannelKind::Data).unwrap();
    }
}

#[test]
fn documented_examples_match_the_events_they_describe() {
    let farm = json!({"Industry": "Agriculture", "NumberOfEmployees": 5000,
        "ChangeEventHeader": {"changeType": "UPDATE", "entityName": "Account"}});
    let bank = json!({"Industry": "Banking", "NumberOfEmployees": 20,
        "ChangeEventHeader": {"changeType": "CREATE"}});
    let both = "NumberOfEmployees > 1000 AND (Industry = 'Agriculture' OR Industry = 'Banking')";
    assert!(m(both, &farm));
    assert!(!m(both, &bank));
    assert!(m("Industry LIKE 'A%'", &farm));
    assert!(!m("Industry LIKE 'A%'", &bank));
    assert!(m("ChangeEventHeader.changeType = 'UPDATE'", &farm));
    assert!(!m("ChangeEventHeader.changeType = 'UPDATE'", &bank));
    // 2021-11-03T09:30:11-08:00 is 1635960611000 ms.
    let viewed = |ms: i64| json!({"LastViewedDate": ms});
    let after = "LastViewedDate > 2021-11-03T09:30:11-08:00";
    assert!(m(after, &viewed(1_635_960_611_001)));
    assert!(!m(after, &viewed(1_635_960_611_000)));
    // 14:30:00Z is 52,200,000 ms after midnight.
    assert!(m(
        "OpenTime__c >= 14:30:00Z",
        &json!({"OpenTime__c": 52_200_000})
    ));
    assert!(!m(
        "OpenTime__c >= 14:30:00Z",
        &json!({"OpenTime__c": 52_199_999})
    ));
}

/// The platform event walkthrough: a channel member on Order_Event__e filtering by city.
#[test]
fn platform_event_example_filters_by_city() {
    let f = parse("City__c = 'San Francisco'").unwrap();
    let b = f.bind(&OrderEvent, ChannelKind::Event).unwrap();
    assert!(b.matches(&json!({"City__c": "San Francisco", "Amount__c": 35.0})));
    assert!(b.matches(&json!({"City__c": "SAN FRANCISCO"})));
    assert!(!b.matches(&json!({"City__c": "Paris"})));
    assert!(!b.matches(&json!({"City__c": null})));
    assert!(!b.matches(&json!({})));
}

/// Documented: text values need quotes, `MyTextField__c=Hello` isn't valid.
#[test]
fn unquoted_text_is_refused() {
    assert_err(&parse_err("City__c=Hello"), 9, "single quotes");
}

// ---- operators per type ---------------------------------------------------------------

#[test]
fn text_operators_ignore_case() {
    let e = json!({"Name": "Acme Corp"});
    assert!(m("Name = 'acme corp'", &e));
    assert!(!m("Name = 'Acme'", &e));
    assert!(m("Name != 'Acme'", &e));
    assert!(!m("Name != 'ACME CORP'", &e));
    assert!(m("Name < 'b'", &e));
    assert!(!m("Name < 'A'", &e));
    assert!(m("Name <= 'ACME CORP'", &e));
    assert!(m("Name > 'A'", &e));
    assert!(!m("Name > 'Z'", &e));
    assert!(m("Name >= 'acme corp'", &e));
    assert!(m("Name LIKE 'ac%'", &e));
    assert!(m("Name LIKE '%CORP'", &e));
    assert!(m("Name LIKE 'Acme_Corp'", &e));
    assert!(!m("Name LIKE 'Acme'", &e));
    assert!(m("Name IN ('x', 'ACME corp')", &e));
    assert!(!m("Name IN ('x', 'y')", &e));
    assert!(m("Name NOT IN ('x', 'y')", &e));
    assert!(!m("Name NOT IN ('acme corp')", &e));
}

#[test]
fn number_operators_compare_numerically() {
    let e = json!({"NumberOfEmployees": 1000, "AnnualRevenue": 12.5});
    assert!(m("NumberOfEmployees = 1000", &e));
    assert!(m("NumberOfEmployees = 1000.0", &e));
    assert!(!m("NumberOfEmployees = 999", &e));
    assert!(m("NumberOfEmployees != 999", &e));
    assert!(m("NumberOfEmployees < 1000.5", &e));
    assert!(!m("NumberOfEmployees < 1000", &e));
    assert!(m("NumberOfEmployees <= 1000", &e));
    assert!(m("NumberOfEmployees > -5", &e));
    assert!(!m("NumberOfEmployees > 1000", &e));
    assert!(m("NumberOfEmployees >= 1000", &e));
    assert!(m("AnnualRevenue = 12.5", &e));
    assert!(m("AnnualRevenue > 12.25", &e));
    assert!(!m("AnnualRevenue >= 12.75", &e));
    assert!(m("NumberOfEmployees IN (1, 1000)", &e));
    assert!(!m("NumberOfEmployees IN (1, 2)", &e));
    assert!(m("NumberOfEmployees NOT IN (1, 2)", &e));
    // Integers compare exactly, beyond a double's 53 bits.
    let big = json!({"Big__c": 9_007_199_254_740_993_i64});
    assert!(m("Big__c = 9007199254740993", &big));
    assert!(!m("Big__c = 9007199254740992", &big));
}

#[test]
fn checkbox_takes_equality_and_null_means_false() {
    let on = json!({"IsActive__c": true});
    let off = json!({"IsActive__c": false});
    let unset = json!({"IsActive__c": null});
    assert!(m("IsActive__c = true", &on));
    assert!(!m("IsActive__c = true", &off));
    assert!(m("IsActive__c != true", &off));
    assert!(m("IsActive__c = FALSE", &off));
    assert!(m("IsActive__c = null", &off));
    assert!(m("IsActive__c = false", &unset));
    assert!(m("IsActive__c = null", &unset));
    assert!(!m("IsActive__c != null", &unset));
    assert!(m("IsActive__c != null", &on));
    assert!(!m("IsActive__c = true", &json!({})));
}

#[test]
fn date_datetime_and_time_compare_as_instants() {
    // 2021-11-03 is day 18934.
    let d = json!({"Since__c": 18_934});
    assert!(m("Since__c = 2021-11-03", &d));
    assert!(m("Since__c > 2021-11-02", &d));
    assert!(!m("Since__c < 2021-11-03", &d));
    assert!(m("Since__c IN (2020-01-01, 2021-11-03)", &d));
    let dt = json!({"LastViewedDate": 1_635_960_611_000_i64});
    assert!(m("LastViewedDate = 2021-11-03T17:30:11Z", &dt));
    assert!(m("LastViewedDate = 2021-11-03T17:30:11.000Z", &dt));
    assert!(m("LastViewedDate = 2021-11-03T18:30:11+01:00", &dt));
    assert!(m("LastViewedDate < 2021-11-03T17:30:11.001Z", &dt));
    assert!(!m("LastViewedDate != 2021-11-03T09:30:11-08:00", &dt));
    let t = json!({"OpenTime__c": 52_200_250});
    assert!(m("OpenTime__c = 14:30:00.25Z", &t));
    assert!(m("OpenTime__c > 14:30:00Z", &t));
    assert!(!m("OpenTime__c > 14:30:00.250Z", &t));
}

#[test]
fn null_comparisons_follow_soql() {
    let none = json!({"Name": null, "NumberOfEmployees": null});
    let some = json!({"Name": "x", "NumberOfEmployees": 3});
    assert!(m("Name = null", &none));
    assert!(m("Name = NULL", &json!({})));
    assert!(!m("Name = null", &some));
    assert!(m("Name != null", &some));
    assert!(!m("Name != null", &none));
    // != and NOT IN match a null field; ordering and LIKE never do.
    assert!(m("Name != 'x'", &none));
    assert!(m("Name NOT IN ('x')", &none));
    assert!(!m("NumberOfEmployees < 5", &none));
    assert!(!m("NumberOfEmployees >= 0", &none));
    assert!(!m("Name LIKE '%'", &none));
    assert!(m("Name IN ('a', null)", &none));
    assert!(!m("Name NOT IN ('a', null)", &none));
}

#[test]
fn logical_operators_combine_terms() {
    let e = json!({"Name": "a", "NumberOfEmployees": 5});
    assert!(m("Name = 'a' AND NumberOfEmployees = 5", &e));
    assert!(!m("Name = 'a' AND NumberOfEmployees = 6", &e));
    assert!(m("Name = 'b' OR NumberOfEmployees = 5", &e));
    assert!(!m("Name = 'b' OR NumberOfEmployees = 6", &e));
    assert!(m("NOT Name = 'b'", &e));
    assert!(!m("NOT (Name = 'a')", &e));
    assert!(m("not (Name = 'b' or NumberOfEmployees = 6)", &e));
    // NOT binds to the next term only.
    assert!(m("NOT Name = 'b' AND NumberOfEmployees = 5", &e));
    assert!(m("(Name='a')AND(NumberOfEmployees=5)", &e));
    assert!(m("((Name = 'a'))", &e));
}

#[test]
fn compound_and_header_paths_walk_nested_objects() {
    let e = json!({"BillingAddress": {"City": "Paris"},
        "ChangeEventHeader": {"changeType": "UPDATE", "entityName": "Account",
            "sequenceNumber": 1, "commitTimestamp": 1_700_000_000_000_i64,
            "commitNumber": 11_736_722_305_i64, "commitUser": "005xx0000012345",
            "changeOrigin": "com/salesforce/api/rest/60.0", "transactionKey": "0002-abc"}});
    assert!(m("BillingAddress.City = 'paris'", &e));
    assert!(!m(
        "BillingAddress.City = 'Lyon'",
        &json!({"BillingAddress": null})
    ));
    assert!(m("ChangeEventHeader.entityName = 'Account'", &e));
    assert!(m(
        "changeeventheader.CHANGETYPE IN ('UPDATE', 'CREATE')",
        &e
    ));
    assert!(m("ChangeEventHeader.sequenceNumber = 1", &e));
    assert!(m("ChangeEventHeader.commitTimestamp >= 1700000000000", &e));
    assert!(m(
        "ChangeEventHeader.commitTimestamp = 2023-11-14T22:13:20Z",
        &e
    ));
    assert!(m("ChangeEventHeader.commitNumber > 11736722304", &e));
    assert!(m("ChangeEventHeader.commitUser LIKE '005%'", &e));
    assert!(m("ChangeEventHeader.changeOrigin LIKE '%/rest/%'", &e));
    assert!(m("ChangeEventHeader.transactionKey != null", &e));
}

#[test]
fn field_names_match_event_keys_without_case() {
    assert!(m("Name = 'x'", &json!({"name": "X"})));
}

#[test]
fn values_of_the_wrong_json_kind_match_nothing() {
    let e = json!({"NumberOfEmployees": "many", "Name": 5, "IsActive__c": "yes"});
    assert!(!m("NumberOfEmployees = 5", &e));
    assert!(!m("NumberOfEmployees != 5", &e));
    assert!(!m("Name != 'x'", &e));
    assert!(!m("IsActive__c = false", &e));
    assert!(!m("Name = 'x'", &json!([1, 2])));
}

// ---- literals -------------------------------------------------------------------------

fn only_literal(text: &str) -> Literal {
    match parse(text).unwrap().expr {
        Expr::Cmp(c) => c.values[0].0.clone(),
        e => panic!("{e:?}"),
    }
}

#[test]
fn literals_of_every_type_parse() {
    assert_eq!(only_literal("a = 'it\\'s'"), Literal::Text("it's".into()));
    assert_eq!(
        only_literal("a = '\\\"q\\\" \\n\\r\\t\\b\\f\\N'"),
        Literal::Text("\"q\" \n\r\t\u{8}\u{c}\n".into())
    );
    assert_eq!(
        only_literal("a = 'naïve 東京'"),
        Literal::Text("naïve 東京".into())
    );
    assert_eq!(only_literal("a = 42"), Literal::Int(42));
    assert_eq!(only_literal("a = -7"), Literal::Int(-7));
    assert_eq!(only_literal("a = 5.0"), Literal::Int(5));
    assert_eq!(only_literal("a = 12.5"), Literal::Float(12.5));
    assert_eq!(only_literal("a = -0.25"), Literal::Float(-0.25));
    assert_eq!(only_literal("a = TRUE"), Literal::Bool(true));
    assert_eq!(only_literal("a = false"), Literal::Bool(false));
    assert_eq!(only_literal("a = Null"), Literal::Null);
    assert_eq!(only_literal("a = 1970-01-01"), Literal::Date(0));
    assert_eq!(only_literal("a = 1969-12-31"), Literal::Date(-1));
    assert_eq!(only_literal("a = 2000-02-29"), Literal::Date(11_016));
    assert_eq!(
        only_literal("a = 1970-01-01T00:00:01.5Z"),
        Literal::DateTime(1_500)
    );
    assert_eq!(
        only_literal("a = 1970-01-01T00:00:00.123456789+00:00"),
        Literal::DateTime(123)
    );
    assert_eq!(only_literal("a = 00:00:00Z"), Literal::Time(0));
    assert_eq!(only_literal("a = 23:59:59.999Z"), Literal::Time(86_399_999));
}

#[test]
fn canonical_text_reads_back_the_same() {
    let cases = [
        "(a = 'it\\'s' and B__c in ( 1 ,2.5, -3 )) or c = null",
        "NOT NOT a=1",
        "(a=1 OR b=2) AND NOT (c = 3 AND d LIKE 'x_%')",
        "a NOT IN ('x') OR b >= 2021-01-01T00:00:00.001-00:30",
        "a = 100000000000000000000",
        "a = 0.000001",
    ];
    for text in cases {
        let f = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let printed = f.to_string();
        assert_eq!(parse(&printed).unwrap(), f, "{text} -> {printed}");
        assert_eq!(parse(&printed).unwrap().to_string(), printed);
    }
    assert_eq!(
        parse("a=1 and b=2 AND c=3").unwrap().to_string(),
        "a = 1 AND b = 2 AND c = 3"
    );
    assert_eq!(parse("NOT (a=1)").unwrap().to_string(), "NOT a = 1");
}

#[test]
fn fields_lists_each_path_once_in_order() {
    let f = parse(
        "Amount__c > 1 AND (BillingAddress.City = 'x' OR Amount__c < 9) \
         AND ChangeEventHeader.changeType = 'UPDATE'",
    )
    .unwrap();
    assert_eq!(
        f.fields(),
        [
            "Amount__c",
            "BillingAddress.City",
            "ChangeEventHeader.changeType"
        ]
    );
}

// ---- parse errors ---------------------------------------------------------------------

#[test]
fn parse_errors_name_the_position() {
    assert_err(&parse_err(""), 1, "empty");
    assert_err(&parse_err("   "), 1, "empty");
    assert_err(&parse_err("a = 1 #"), 7, "unexpected character '#'");
    assert_err(&parse_err("a = \"x\""), 5, "single quotes");
    assert_err(&parse_err("a = 'abc"), 5, "unclosed string");
    assert_err(&parse_err("a = 'abc\\"), 5, "unclosed string");
    assert_err(&parse_err("(a = 1"), 7, "missing ')'");
    assert_err(
        &parse_err("(a = 1 AND (b = 2)"),
        19,
        "missing ')' to close the '(' at character 1",
    );
    assert_err(&parse_err("a = 1)"), 6, "no '(' is open");
    assert_err(&parse_err("a = 1 b = 2"), 7, "expected AND, OR");
    assert_err(&parse_err("(a = 1 b = 2)"), 8, "expected AND, OR or ')'");
    assert_err(&parse_err("a = 1 AND b = 2 OR c = 3"), 17, "can't be mixed");
    assert_err(&parse_err("a = 1 OR b = 2 AND c = 3"), 16, "can't be mixed");
    assert_err(&parse_err("a = 'x'AND b = 1"), 8, "needs a space");
    assert_err(&parse_err("a = 1 AND'x' = b"), 7, "needs a space");
    assert_err(&parse_err("a ~ 1"), 3, "unexpected character '~'");
    assert_err(&parse_err("a 1"), 3, "expected a comparison operator");
    assert_err(&parse_err("a ! 1"), 3, "!=");
    assert_err(&parse_err("a NOT = 1"), 3, "expected a comparison operator");
    assert_err(&parse_err("a ="), 4, "found the end");
    assert_err(&parse_err("a = ("), 5, "expected a value");
    assert_err(&parse_err("a IN 1"), 6, "expected '('");
    assert_err(&parse_err("a IN ()"), 7, "expected a value");
    assert_err(&parse_err("a IN (1 2)"), 9, "expected ',' or ')'");
    assert_err(&parse_err("a IN (1,"), 9, "found the end");
    assert_err(&parse_err("a IN (1"), 8, "missing ')' to close the list");
    assert_err(&parse_err("= 1"), 1, "expected a field name");
    assert_err(&parse_err("AND = 1"), 1, "keyword AND");
    assert_err(&parse_err("a = 1 AND"), 10, "found the end");
    assert_err(&parse_err("a.1b = 1"), 3, "starts with a letter");
    assert_err(&parse_err("a. = 1"), 3, "starts with a letter");
    assert_err(&parse_err("a = 12abc"), 7, "after a value");
    assert_err(&parse_err("a = 1AND b = 2"), 6, "after a value");
    assert_err(&parse_err("a = 1."), 6, "digits after the decimal point");
    assert_err(&parse_err("a = 5-3"), 6, "after a value");
    assert_err(&parse_err("a = 'x\\_'"), 7, "can't be escaped");
    assert_err(&parse_err("a = 'x\\%'"), 7, "can't be escaped");
    assert_err(&parse_err("a = 'x\\\\'"), 7, "can't be escaped");
    assert_err(&parse_err("a = 'x\\q'"), 7, "unknown escape");
    assert_err(&parse_err("a = 2021-13-01"), 5, "no such day");
    assert_err(&parse_err("a = 2021-02-29"), 5, "no such day");
    assert_err(&parse_err("a = 2021-11-03T25:00:00Z"), 16, "no such time");
    assert_err(&parse_err("a = 2021-11-03T09:30Z"), 16, "hh:mm:ss");
    assert_err(&parse_err("a = 2021-11-03T09:30:11"), 24, "time zone");
    assert_err(&parse_err("a = 2021-11-03T09:30:11+8"), 24, "offset");
    assert_err(
        &parse_err("a = 0000-01-01T00:00:00+01:00"),
        5,
        "out of range",
    );
    assert_err(&parse_err("a = 14:30:00"), 13, "designator Z");
    assert_err(&parse_err("a = 14:30:00+01:00"), 13, "designator Z");
    assert_err(&parse_err("a = 14:30:00.Z"), 14, "1 to 9 digits");
    let huge = format!("a = 1{}", "0".repeat(400));
    assert_err(&parse_err(&huge), 5, "out of range");
}

#[test]
fn positions_count_characters_not_bytes() {
    assert_err(
        &parse_err("a = 'é' AND b = 1 #"),
        19,
        "unexpected character",
    );
}

#[test]
fn limits_are_errors_not_crashes() {
    let deep = "(".repeat(100_000);
    assert_err(&parse_err(&deep), MAX_LENGTH + 1, "maximum is 2000");
    let long = format!("a = '{}'", "x".repeat(MAX_LENGTH));
    assert_err(&parse_err(&long), MAX_LENGTH + 1, "characters long");
    let nested = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    parse(&nested).unwrap();
    let too_nested = format!(
        "{}a = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_err(&parse_err(&too_nested), MAX_DEPTH + 1, "nests more than");
    let nots = format!("{}a = 1", "NOT ".repeat(MAX_DEPTH + 1));
    assert_err(&parse_err(&nots), 4 * MAX_DEPTH + 1, "nests more than");
    let many = vec!["a = 1"; MAX_TERMS].join(" OR ");
    parse(&many).unwrap();
    let too_many = vec!["a = 1"; MAX_TERMS + 1].join(" OR ");
    assert_err(
        &parse_err(&too_many),
        9 * MAX_TERMS + 1,
        "more than 100 field",
    );
}

// ---- bind errors ----------------------------------------------------------------------

#[test]
fn bind_errors_name_the_field_operator_or_value() {
    use ChannelKind::{Data, Event};
    let e = parse("Foo__c = 1")
        .unwrap()
        .bind(&OrderEvent, Event)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "No such field 'Foo__c' on Order_Event__e (at character 1)"
    );
    assert_err(
        &bind_err("Name = 'a' AND Foo__c = 1", Data),
        16,
        "No such field 'Foo__c'",
    );
    assert_err(&bind_err("Notes__c = 'x'", Data), 1, "Long Text Area");
    assert_err(&bind_err("Tags__c = 'x'", Data), 1, "Multi-Select Picklist");
    assert_err(
        &bind_err("NumberOfEmployees LIKE '1%'", Data),
        19,
        "LIKE works on Text fields only",
    );
    assert_err(&bind_err("IsActive__c < true", Data), 13, "only = and !=");
    assert_err(
        &bind_err("IsActive__c IN (true)", Data),
        13,
        "only = and !=",
    );
    assert_err(
        &bind_err("NumberOfEmployees = '5'", Data),
        21,
        "compare it with a number, not text",
    );
    assert_err(&bind_err("Name = 5", Data), 8, "not a number");
    assert_err(&bind_err("Name IN ('a', 5)", Data), 15, "not a number");
    assert_err(&bind_err("IsActive__c = 1", Data), 15, "true or false");
    assert_err(
        &bind_err("Since__c = 2021-11-03T00:00:00Z", Data),
        12,
        "not a datetime",
    );
    assert_err(
        &bind_err("LastViewedDate > 2021-11-03", Data),
        18,
        "not a date",
    );
    assert_err(
        &bind_err("OpenTime__c = 52200000", Data),
        15,
        "a time such as",
    );
    assert_err(
        &bind_err("NumberOfEmployees > null", Data),
        21,
        "null can be compared only",
    );
    assert_err(
        &bind_err("Name LIKE null", Data),
        11,
        "null can be compared only",
    );
    assert_err(
        &bind_err("ChangeEventHeader.changeType = 'UPDATE'", Event),
        1,
        "only in change event (data) channels",
    );
    assert_err(
        &bind_err("ChangeEventHeader.recordIds = 'x'", Data),
        1,
        "array field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.changedFields = 'x'", Data),
        1,
        "array field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.nulledFields = 'x'", Data),
        1,
        "array field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.diffFields = 'x'", Data),
        1,
        "array field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.foo = 'x'", Data),
        1,
        "No such field 'foo'",
    );
    assert_err(
        &bind_err("ChangeEventHeader = 'x'", Data),
        1,
        "name one field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.a.b = 'x'", Data),
        1,
        "name one field",
    );
    assert_err(
        &bind_err("ChangeEventHeader.sequenceNumber = 'x'", Data),
        36,
        "a number",
    );
}

#[test]
fn closures_serve_as_field_lists() {
    let fields = |p: &str| (p == "X__c").then_some(FieldKind::Number);
    let b = parse("X__c > 1")
        .unwrap()
        .bind(&fields, ChannelKind::Event)
        .unwrap();
    assert!(b.matches(&json!({"X__c": 2})));
    let e = parse("Y__c > 1")
        .unwrap()
        .bind(&fields, ChannelKind::Event)
        .err()
        .unwrap();
    assert_eq!(e.reason, "No such field 'Y__c'");
}

#[test]
fn filters_and_bound_filters_cross_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Filter>();
    shareable::<Bound>();
    shareable::<FilterError>();
}

// ---- properties -----------------------------------------------------------------------

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Name".to_string()),
        Just("NumberOfEmployees".to_string()),
        Just("IsActive__c".to_string()),
        Just("BillingAddress.City".to_string()),
        "[A-Za-z][A-Za-z0-9_]{0,8}(\\.[A-Za-z][A-Za-z0-9_]{0,5})?".prop_filter(
            "not a keyword",
            |s| {
                !["and", "or", "not", "like", "in", "true", "false", "null"]
                    .contains(&s.to_ascii_lowercase().as_str())
            }
        ),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    let day_min = syntax::days_from_civil(0, 1, 1);
    let day_max = syntax::days_from_civil(9999, 12, 31);
    prop_oneof![
        "[ -~\\n\\t\\r\u{8}\u{c}é東]{0,12}"
            .prop_filter("no backslash", |s| !s.contains('\\'))
            .prop_map(Literal::Text),
        any::<i64>().prop_map(Literal::Int),
        (-1.0e6f64..1.0e6).prop_map(|v| match syntax::parse_expr(&format!("a = {v}")) {
            Ok(Expr::Cmp(c)) => c.values[0].0.clone(),
            _ => Literal::Null,
        }),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
        (day_min..=day_max).prop_map(Literal::Date),
        (day_min * 86_400_000..(day_max + 1) * 86_400_000).prop_map(Literal::DateTime),
        (0i64..86_400_000).prop_map(Literal::Time),
    ]
}

fn comparison() -> impl Strategy<Value = Expr> {
    let op = prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Gt),
        Just(Op::Ge),
        Just(Op::Like),
        Just(Op::In),
        Just(Op::NotIn),
    ];
    (field_name(), op, prop::collection::vec(literal(), 1..4)).prop_map(
        |(field, op, mut values)| {
            if !matches!(op, Op::In | Op::NotIn) {
                values.truncate(1);
            }
            Expr::Cmp(Comparison {
                field,
                field_pos: Pos(0),
                op,
                op_pos: Pos(0),
                values: values.into_iter().map(|v| (v, Pos(0))).collect(),
            })
        },
    )
}

fn expr() -> impl Strategy<Value = Expr> {
    comparison().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// Arbitrary JSON, nested a few levels, with the field names the filters use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z%_ ]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("Name".to_string()),
                    Just("NumberOfEmployees".to_string()),
                    Just("IsActive__c".to_string()),
                    Just("BillingAddress".to_string()),
                    Just("City".to_string()),
                    Just("ChangeEventHeader".to_string()),
                    Just("changeType".to_string()),
                    Just("LastViewedDate".to_string()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_any_string(s in any::<String>()) {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_filters(
        s in "[aAnNoOtT() '=<>!,.%_\\\\0-9:TZ+-]{0,60}"
    ) {
        if let Ok(f) = parse(&s) {
            prop_assert_eq!(parse(&f.to_string()).unwrap(), f);
        }
    }

    #[test]
    fn printing_then_parsing_gives_the_same_tree(e in expr()) {
        let text = e.to_string();
        let f = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(&f.expr, &e, "{}", text);
        prop_assert_eq!(f.to_string(), text);
    }

    #[test]
    fn matches_never_panics_on_any_json(e in expr(), event in json_value()) {
        let f = parse(&e.to_string()).unwrap();
        // Most random filters don't fit the fields; those that do are evaluated.
        if let Ok(b) = f.bind(&account, ChannelKind::Data) {
            let _ = b.matches(&event);
        }
        for text in [
            "Name LIKE '%a_%' OR (NumberOfEmployees > 3 AND NOT IsActive__c = true)",
            "BillingAddress.City IN ('a', null) AND ChangeEventHeader.changeType != 'X'",
            "LastViewedDate >= 2021-11-03T09:30:11Z OR NumberOfEmployees NOT IN (1, 2.5)",
        ] {
            if let Ok(b) = parse(text).unwrap().bind(&account, ChannelKind::Data) {
                let _ = b.matches(&event);
            }
        }
    }

    #[test]
    fn dates_survive_the_calendar_round_trip(days in -800_000i64..3_000_000) {
        let (y, m, d) = syntax::civil_from_days(days);
        prop_assert_eq!(syntax::days_from_civil(y, m, d), days);
    }
}
