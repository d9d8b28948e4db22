//! REST input for an sObject checked and normalized into a stored record, and the value
//! formats records use.
//!
//! Owns: [`Record`], [`normalize_input`] with Salesforce's error codes and wording
//! ([`FieldError`]), and the conversions between Salesforce's REST formats and numbers:
//! [`parse_datetime`], [`parse_date`], [`parse_time`], [`format_datetime`],
//! [`format_date`], [`format_time`].
//! Must not: store records, assign ids or system fields (the engine does), or know Avro.
//!
//! A record maps flat REST field names in canonical case (`BillingCity`, never
//! `BillingAddress`) to values in Salesforce's REST JSON form: datetimes
//! `2026-12-05T01:02:03.000+0000`, dates `2026-12-05`, times `10:00:00.000Z`, numbers,
//! booleans, strings and `null`.

use serde_json::{Map, Number, Value};

use crate::model::{FieldType, FlatField, ObjectDef};

/// A record: flat REST field names in canonical case → REST JSON values.
pub type Record = Map<String, Value>;

/// Create or update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new record: required fields must be given.
    Create,
    /// A change to an existing record: only the given fields change.
    Update,
}

/// A refused input, as Salesforce's REST API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `INVALID_FIELD`, `INVALID_FIELD_FOR_INSERT_UPDATE`, `JSON_PARSER_ERROR`,
    /// `STRING_TOO_LONG` or `REQUIRED_FIELD_MISSING`.
    pub status_code: &'static str,
    /// The message.
    pub message: String,
    /// The fields concerned.
    pub fields: Vec<String>,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status_code, self.message)
    }
}

impl std::error::Error for FieldError {}

fn error(status_code: &'static str, message: String, fields: Vec<String>) -> FieldError {
    FieldError {
        status_code,
        message,
        fields,
    }
}

/// Fields every record has that are never in a client's input nor a change event body.
const HIDDEN_SYSTEM_FIELDS: [&str; 3] = ["Id", "IsDeleted", "SystemModstamp"];

/// Checks and normalizes a client's record for `op` on `obj`: field names to their
/// canonical case, values to the REST JSON form (see the module docs); `attributes` is
/// skipped. An explicit `null` stays (it clears the field), except that a checkbox null
/// becomes `false`.
///
/// # Errors
/// The first problem found, in this order while reading the fields: `INVALID_FIELD` for a
/// field the object does not have; `JSON_PARSER_ERROR` for a value of the wrong form;
/// `STRING_TOO_LONG` for text over the field's length; then
/// `INVALID_FIELD_FOR_INSERT_UPDATE` naming every field clients may not set (`Id`, system
/// fields, auto numbers, compound parents such as `BillingAddress`); then
/// `REQUIRED_FIELD_MISSING` naming the required fields missing on create, or set to null
/// on either operation.
pub fn normalize_input(obj: &ObjectDef, input: &Record, op: Op) -> Result<Record, FieldError> {
    let mut out = Record::new();
    let mut read_only = Vec::new();
    for (key, value) in input {
        if key == "attributes" {
            continue;
        }
        if let Some(s) = HIDDEN_SYSTEM_FIELDS
            .iter()
            .find(|s| s.eq_ignore_ascii_case(key))
        {
            read_only.push((*s).to_owned());
            continue;
        }
        let Some(field) = obj.flat_field(key) else {
            return Err(error(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", obj.name),
                vec![key.clone()],
            ));
        };
        if !field.updateable {
            read_only.push(field.name.clone());
            continue;
        }
        let v = convert(&field, value)?;
        out.insert(field.name.clone(), v);
    }
    if !read_only.is_empty() {
        return Err(error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                read_only.join(", ")
            ),
            read_only,
        ));
    }
    let missing: Vec<String> = obj
        .flat_fields()
        .into_iter()
        .filter(|f| f.required && f.updateable)
        .filter(|f| match out.get(&f.name) {
            Some(v) => v.is_null(),
            None => op == Op::Create,
        })
        .map(|f| f.name)
        .collect();
    if !missing.is_empty() {
        return Err(error(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            missing,
        ));
    }
    Ok(out)
}

/// The JSON token name Salesforce's parser messages use.
fn token(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// A value for a message, cut to 80 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn convert(field: &FlatField, value: &Value) -> Result<Value, FieldError> {
    let bad = |what: &str| {
        error(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {what} from {} value {} for field {}",
                token(value),
                short(value),
                field.name
            ),
            vec![field.name.clone()],
        )
    };
    if value.is_null() {
        // A checkbox is never null: Salesforce stores false.
        return Ok(if field.ty == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        });
    }
    let text = value.as_str().map(str::trim);
    Ok(match field.ty {
        ty if ty.is_text() => {
            let s = match value {
                Value::String(s) => s.clone(),
                // Salesforce writes a number or checkbox given for a text field as its text.
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return Err(bad("string")),
            };
            if let Some(max) = field.length
                && s.chars().count() > max as usize
            {
                return Err(error(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {s} (max length={max})",
                        field.name
                    ),
                    vec![field.name.clone()],
                ));
            }
            Value::String(s)
        }
        FieldType::Int => {
            let n = match (value, text) {
                (Value::Number(n), _) => n.as_i64(),
                (_, Some(t)) => t.parse::<i64>().ok(),
                _ => None,
            }
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| bad("int"))?;
            Value::from(n)
        }
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            let n = match (value, text) {
                (Value::Number(n), _) => n.as_f64(),
                (_, Some(t)) => t.parse::<f64>().ok(),
                _ => None,
            }
            .and_then(Number::from_f64)
            .ok_or_else(|| bad("double"))?;
            Value::Number(n)
        }
        FieldType::Boolean => match (value, text) {
            (Value::Bool(b), _) => Value::Bool(*b),
            (_, Some(t)) if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            (_, Some(t)) if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        FieldType::DateTime => {
            let ms = text
                .and_then(parse_datetime)
                .ok_or_else(|| bad("datetime"))?;
            Value::String(format_datetime(ms))
        }
        FieldType::Date => {
            let d = text.and_then(parse_date).ok_or_else(|| bad("date"))?;
            Value::String(format_date(d))
        }
        FieldType::Time => {
            let ms = text.and_then(parse_time).ok_or_else(|| bad("time"))?;
            Value::String(format_time(ms))
        }
        // Compound parents are never settable (see `normalize_input`); ids are text.
        _ => return Err(bad("string")),
    })
}

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (years 1-9999).
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let month = usize::try_from(m - 1).ok()?;
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > month_days[month] {
        return None;
    }
    // Count from March so the leap day ends the year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The (year, month, day) of a day count since 1970-01-01 (the inverse of
/// `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Reads `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<i64> {
    let part = s.get(..n)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` as days since the epoch.
#[must_use]
pub fn parse_date(s: &str) -> Option<i64> {
    if s.len() != 10 || s.get(4..5)? != "-" || s.get(7..8)? != "-" {
        return None;
    }
    days_from_civil(
        digits(s, 4)?,
        digits(s.get(5..)?, 2)?,
        digits(s.get(8..)?, 2)?,
    )
}

/// Reads `hh:mm[:ss[.fff…]]` and returns (milliseconds after midnight, the rest).
fn parse_clock(s: &str) -> Option<(i64, &str)> {
    let (h, mi) = (digits(s, 2)?, digits(s.get(3..)?, 2)?);
    if s.get(2..3)? != ":" || h > 23 || mi > 59 {
        return None;
    }
    let mut rest = s.get(5..)?;
    let mut sec = 0;
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix(':') {
        sec = digits(r, 2)?;
        rest = r.get(2..)?;
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            // Milliseconds: the first three digits, the rest dropped.
            ms = digits(&format!("{:0<3}", &r[..n]), 3)?;
            rest = &r[n..];
        }
    }
    if sec > 59 {
        return None;
    }
    Some(((h * 3600 + mi * 60 + sec) * 1000 + ms, rest))
}

/// A zone suffix in minutes east of UTC: none, `Z`, `±hhmm` or `±hh:mm`.
fn parse_offset(rest: &str) -> Option<i64> {
    match rest {
        "" | "Z" | "z" => Some(0),
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            let (oh, om) = match r.len() {
                4 => (digits(r, 2)?, digits(r.get(2..)?, 2)?),
                5 if r.get(2..3) == Some(":") => (digits(r, 2)?, digits(r.get(3..)?, 2)?),
                _ => return None,
            };
            (oh <= 23 && om <= 59).then_some(sign * (oh * 60 + om))
        }
    }
}

/// An ISO-8601 datetime as Salesforce reads it: `YYYY-MM-DDThh:mm[:ss[.fff]]` then `Z`,
/// `±hhmm` or `±hh:mm` (none means UTC), as epoch milliseconds.
#[must_use]
pub fn parse_datetime(s: &str) -> Option<i64> {
    let days = parse_date(s.get(..10)?)?;
    let rest = s.get(10..)?.strip_prefix(['T', ' '])?;
    let (ms, rest) = parse_clock(rest)?;
    let offset_min = parse_offset(rest)?;
    Some(days * MS_PER_DAY + ms - offset_min * 60_000)
}

/// A time of day `hh:mm[:ss[.fff]]` with an optional `Z` or offset (Salesforce stores
/// times without a zone; an offset is applied), as milliseconds after midnight.
#[must_use]
pub fn parse_time(s: &str) -> Option<i64> {
    let (ms, rest) = parse_clock(s)?;
    let offset_min = parse_offset(rest)?;
    Some((ms - offset_min * 60_000).rem_euclid(MS_PER_DAY))
}

/// Epoch milliseconds as Salesforce's REST datetime: `2026-12-05T01:02:03.000+0000`.
#[must_use]
pub fn format_datetime(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let t = ms.rem_euclid(MS_PER_DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

/// Days since the epoch as `YYYY-MM-DD`.
#[must_use]
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Milliseconds after midnight as Salesforce's REST time: `10:00:00.000Z`.
#[must_use]
pub fn format_time(ms: i64) -> String {
    let t = ms.rem_euclid(MS_PER_DAY);
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::model::ObjectCatalog;
    use crate::standard::location;

    fn record(v: Value) -> Record {
        v.as_object().cloned().expect("an object")
    }

    fn account() -> ObjectDef {
        let mut a = ObjectCatalog::standard()
            .get("Account")
            .cloned()
            .expect("Account");
        a.fields.push(location("Site__c"));
        a
    }

    #[test]
    fn normalizes_names_and_values() {
        let got = normalize_input(
            &account(),
            &record(json!({
                "attributes": {"type": "Account"},
                "name": "Acme",
                "billingcity": "Paris",
                "AnnualRevenue": "1000.5",
                "NumberOfEmployees": 12,
                "AccountNumber": 42,
                "site__latitude__s": 48.85,
                "Description": null,
            })),
            Op::Create,
        )
        .expect("valid");
        assert_eq!(
            Value::Object(got),
            json!({
                "Name": "Acme",
                "BillingCity": "Paris",
                "AnnualRevenue": 1000.5,
                "NumberOfEmployees": 12,
                "AccountNumber": "42",
                "Site__Latitude__s": 48.85,
                "Description": null,
            })
        );
    }

    #[test]
    fn dates_times_and_checkboxes_take_the_rest_form() {
        let catalog = ObjectCatalog::standard();
        let contact = catalog.get("Contact").expect("Contact");
        let got = normalize_input(
            contact,
            &record(json!({"LastName": "Doe", "Birthdate": "1990-02-28", "DoNotCall": null})),
            Op::Create,
        )
        .expect("valid");
        assert_eq!(got["Birthdate"], "1990-02-28");
        assert_eq!(got["DoNotCall"], false);
        let task = catalog.get("Task").expect("Task");
        let got = normalize_input(
            task,
            &record(json!({"ReminderDateTime": "2026-12-05T03:02:03+02:00"})),
            Op::Update,
        )
        .expect("valid");
        assert_eq!(got["ReminderDateTime"], "2026-12-05T01:02:03.000+0000");
    }

    #[test]
    fn refuses_with_salesforces_codes_and_messages() {
        let a = account();
        let err = |v: Value, op: Op| normalize_input(&a, &record(v), op).expect_err("refused");
        let e = err(json!({"Name": "x", "Nope__c": 1}), Op::Create);
        assert_eq!(e.status_code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "No such column 'Nope__c' on sobject of type Account"
        );
        assert_eq!(e.fields, ["Nope__c"]);
        let e = err(
            json!({"Name": "x", "createddate": "2026-01-01T00:00:00Z", "Id": "001", "BillingAddress": {}}),
            Op::Create,
        );
        assert_eq!(e.status_code, "INVALID_FIELD_FOR_INSERT_UPDATE");
        assert_eq!(e.fields, ["CreatedDate", "Id", "BillingAddress"]);
        assert!(e.message.starts_with(
            "Unable to create/update fields: CreatedDate, Id, BillingAddress. Please check"
        ));
        let e = err(json!({"NumberOfEmployees": "many"}), Op::Update);
        assert_eq!(e.status_code, "JSON_PARSER_ERROR");
        assert_eq!(
            e.message,
            "Cannot deserialize instance of int from VALUE_STRING value \"many\" for field NumberOfEmployees"
        );
        for bad in [
            json!({"NumberOfEmployees": 1.5}),
            json!({"NumberOfEmployees": 3_000_000_000_i64}),
            json!({"AnnualRevenue": [1]}),
            json!({"Name": {"a": 1}}),
        ] {
            assert_eq!(
                err(bad.clone(), Op::Update).status_code,
                "JSON_PARSER_ERROR",
                "{bad}"
            );
        }
        let long = "x".repeat(256);
        let e = err(json!({"Name": long}), Op::Create);
        assert_eq!(e.status_code, "STRING_TOO_LONG");
        assert_eq!(
            e.message,
            format!("Name: data value too large: {long} (max length=255)")
        );
        let e = err(json!({"Phone": "1"}), Op::Create);
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [Name]");
        assert_eq!(e.fields, ["Name"]);
        // On update only an explicit null of a required field is missing.
        assert!(normalize_input(&a, &record(json!({"Phone": "1"})), Op::Update).is_ok());
        assert_eq!(
            err(json!({"Name": null}), Op::Update).status_code,
            "REQUIRED_FIELD_MISSING"
        );
    }

    #[test]
    fn required_components_and_several_required_fields() {
        let catalog = ObjectCatalog::standard();
        let lead = catalog.get("Lead").expect("Lead");
        let e = normalize_input(lead, &record(json!({"FirstName": "Ann"})), Op::Create)
            .expect_err("missing");
        assert_eq!(
            e.message,
            "Required fields are missing: [LastName, Company, Status]"
        );
    }

    #[test]
    fn formats_invert_parsing() {
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            parse_datetime("2026-12-05T01:02:03.000+0000").map(format_datetime),
            Some("2026-12-05T01:02:03.000+0000".to_owned())
        );
        assert_eq!(format_datetime(-1), "1969-12-31T23:59:59.999+0000");
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(format_date(11_016), "2000-02-29");
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_time("10:00:00.000Z"), Some(36_000_000));
        assert_eq!(parse_time("10:00"), Some(36_000_000));
        assert_eq!(parse_time("01:00:00+02:00"), Some(23 * 3_600_000));
        assert_eq!(format_time(36_000_123), "10:00:00.123Z");
        for bad in ["25:00", "10:60", "10:00:00.", "10", "10:00:00+2"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn datetimes_round_trip(ms in -62_135_596_800_000_i64..253_402_300_799_999_i64) {
            let text = format_datetime(ms);
            prop_assert_eq!(parse_datetime(&text), Some(ms), "{}", text);
        }

        #[test]
        fn dates_round_trip(days in -719_162_i64..2_932_896_i64) {
            prop_assert_eq!(parse_date(&format_date(days)), Some(days));
        }

        #[test]
        fn normalizing_never_panics_and_its_output_normalizes_to_itself(
            entries in proptest::collection::vec(
                (
                    prop::sample::select(vec![
                        "Name", "name", "BillingCity", "AnnualRevenue", "NumberOfEmployees",
                        "Description", "CreatedDate", "BillingAddress", "Nope__c", "Site__Latitude__s",
                    ]),
                    prop_oneof![
                        Just(Value::Null),
                        any::<bool>().prop_map(Value::from),
                        any::<i64>().prop_map(Value::from),
                        any::<f64>().prop_map(Value::from),
                        ".{0,300}".prop_map(Value::from),
                        Just(json!([1])),
                    ],
                ),
                0..6,
            ),
            create in any::<bool>(),
        ) {
            let a = account();
            let input: Record = entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let op = if create { Op::Create } else { Op::Update };
            if let Ok(out) = normalize_input(&a, &input, op) {
                prop_assert_eq!(normalize_input(&a, &out, op).expect("normalized input is valid"), out);
            }
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = parse_datetime(&s);
            let _ = parse_date(&s);
            let _ = parse_time(&s);
        }
    }
}
