//! Salesforce DX source format: platform-event definitions to Avro schemas.
//!
//! Owns: reading the three kinds of DX source file that define a platform
//! event (`sfdx-project.json`, `objects/X__e/X__e.object-meta.xml`,
//! `objects/X__e/fields/F__c.field-meta.xml`) from their text, and the Avro
//! schema Salesforce derives from them (record `X__e` in namespace
//! `com.sforce.eventbus`, `CreatedDate` and `CreatedById` first, then the
//! custom fields as nullable unions, `Checkbox` as a plain boolean).
//! Must not: touch the file system (the caller reads the files and names
//! them), or know about topics or storage.

use std::fmt;

/// The XML namespace of Metadata API source files.
pub const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";

/// The API version the record's `doc` carries when the project names none.
pub const DEFAULT_API_VERSION: &str = "62.0";

/// A problem in one DX source file: the file, the line (1-based; 0 when
/// the problem is the file as a whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DxError {
    /// The file as the caller named it.
    pub file: String,
    /// The line, 1-based; 0 for the whole file.
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for DxError {}

fn err(file: &str, line: u32, message: impl Into<String>) -> DxError {
    DxError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// What `sfdx-project.json` says about where the source is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// The `path` of every package directory, in the file's order.
    pub package_dirs: Vec<String>,
    /// The package namespace prefix (`namespace`), empty for none.
    pub namespace: String,
    /// `sourceApiVersion`, or [`DEFAULT_API_VERSION`].
    pub api_version: String,
}

/// Parses `sfdx-project.json`.
///
/// # Errors
/// [`DxError`] naming `file` (and the line for JSON syntax errors): not
/// JSON, no `packageDirectories` list, a directory without a `path`, a
/// path leaving the project, a bad namespace or API version.
pub fn parse_project(text: &str, file: &str) -> Result<Project, DxError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        err(
            file,
            u32::try_from(e.line()).unwrap_or(0),
            format!("not valid JSON: {e}"),
        )
    })?;
    let dirs = v
        .get("packageDirectories")
        .and_then(|d| d.as_array())
        .ok_or_else(|| err(file, 0, "no \"packageDirectories\" list"))?;
    let mut package_dirs = Vec::with_capacity(dirs.len());
    for (i, d) in dirs.iter().enumerate() {
        let path = d
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| err(file, 0, format!("packageDirectories[{i}] has no \"path\"")))?;
        let rel = std::path::Path::new(path);
        if path.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(err(
                file,
                0,
                format!(
                    "packageDirectories[{i}].path {path:?} must be a folder inside the project"
                ),
            ));
        }
        package_dirs.push(path.to_owned());
    }
    let namespace = match v.get("namespace") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(err(file, 0, "\"namespace\" must be a string")),
    };
    if !namespace.is_empty() && !is_plain_name(&namespace, 15) {
        return Err(err(
            file,
            0,
            format!(
                "namespace {namespace:?}: up to 15 letters, digits and single underscores, starting with a letter"
            ),
        ));
    }
    let api_version = match v.get("sourceApiVersion") {
        None | Some(serde_json::Value::Null) => DEFAULT_API_VERSION.to_owned(),
        Some(serde_json::Value::String(s)) if is_api_version(s) => s.clone(),
        Some(other) => {
            return Err(err(
                file,
                0,
                format!("sourceApiVersion {other}: expected a version like \"62.0\""),
            ));
        }
    };
    Ok(Project {
        package_dirs,
        namespace,
        api_version,
    })
}

fn is_api_version(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && a.len() <= 3 && a.bytes().all(|c| c.is_ascii_digit()) && b == "0"
    })
}

/// Whether `s` is a Salesforce developer name: a letter, then letters,
/// digits and single underscores, not ending with an underscore, at most
/// `max` characters.
fn is_plain_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !s.contains("__")
        && !s.ends_with('_')
}

/// The API name `X__e` a platform event's folder gives, checked: a
/// developer name of up to 40 characters before `__e`.
///
/// # Errors
/// [`DxError`] naming `file` when `name` is no platform event name.
pub fn check_event_name(name: &str, file: &str) -> Result<(), DxError> {
    match name.strip_suffix("__e") {
        Some(base) if is_plain_name(base, 40) => Ok(()),
        _ => Err(err(
            file,
            0,
            format!(
                "{name:?} is not a platform event name (a letter, then up to 39 letters, digits and single underscores, then __e)"
            ),
        )),
    }
}

/// A platform event's object file (`X__e.object-meta.xml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventObject {
    /// `label`.
    pub label: String,
    /// `pluralLabel`.
    pub plural_label: String,
    /// `eventType`: `HighVolume` (also when absent) or `StandardVolume`.
    pub event_type: String,
    /// `publishBehavior`: `PublishAfterCommit` (also when absent) or
    /// `PublishImmediately`.
    pub publish_behavior: String,
    /// `description`, empty when absent.
    pub description: String,
}

/// The field types a platform event may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// `Text`: a string of up to `length` (at most 255) characters.
    Text,
    /// `LongTextArea`: a string of up to `length` (at most 131072).
    LongTextArea,
    /// `Number`: a double with `precision` (at most 18) and `scale`.
    Number,
    /// `Checkbox`: a boolean, never null.
    Checkbox,
    /// `Date`: days since 1970-01-01.
    Date,
    /// `DateTime`: milliseconds since the epoch.
    DateTime,
}

impl FieldType {
    /// Every type, as the Metadata API spells it.
    pub const ALL: [(&'static str, FieldType); 6] = [
        ("Checkbox", FieldType::Checkbox),
        ("Date", FieldType::Date),
        ("DateTime", FieldType::DateTime),
        ("LongTextArea", FieldType::LongTextArea),
        ("Number", FieldType::Number),
        ("Text", FieldType::Text),
    ];

    /// The Metadata API's name of the type.
    #[must_use]
    pub fn metadata_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("Text", |(n, _)| n)
    }

    /// The Avro type of a value (without the null branch).
    fn avro(self) -> &'static str {
        match self {
            FieldType::Text | FieldType::LongTextArea => "string",
            FieldType::Number => "double",
            FieldType::Checkbox => "boolean",
            FieldType::Date => "int",
            FieldType::DateTime => "long",
        }
    }

    /// The field's Avro `doc`, as Salesforce writes it (`Data:Text`).
    fn doc(self) -> &'static str {
        match self {
            FieldType::Text | FieldType::LongTextArea => "Data:Text",
            FieldType::Number => "Data:Double",
            FieldType::Checkbox => "Data:Boolean",
            FieldType::Date => "Data:Date",
            FieldType::DateTime => "Data:DateTime",
        }
    }
}

/// One custom field of a platform event (`F__c.field-meta.xml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventField {
    /// The API name, `F__c` (without a namespace prefix).
    pub name: String,
    /// `label`.
    pub label: String,
    /// `type`.
    pub kind: FieldType,
    /// `required` (publishing without it fails; the schema stays nullable,
    /// as Salesforce's does).
    pub required: bool,
    /// `length` of a text field, `precision` of a number.
    pub length: Option<u32>,
    /// `scale` of a number.
    pub scale: Option<u32>,
    /// `defaultValue` of a checkbox.
    pub checkbox_default: bool,
    /// `description`, empty when absent.
    pub description: String,
}

/// A parsed XML file: its root, checked to be `root` in the metadata
/// namespace, and the simple child elements' texts with their lines.
struct Elements {
    items: Vec<(String, String, u32)>,
}

impl Elements {
    fn parse(text: &str, file: &str, root: &str) -> Result<Self, DxError> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: false,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
            let pos = e.pos();
            err(file, pos.row, format!("not well-formed XML: {e}"))
        })?;
        let line = |n: roxmltree::Node<'_, '_>| doc.text_pos_at(n.range().start).row;
        let top = doc.root_element();
        if top.tag_name().name() != root || top.tag_name().namespace() != Some(METADATA_NS) {
            return Err(err(
                file,
                line(top),
                format!(
                    "the root element is <{}>{}, expected <{root}> in namespace {METADATA_NS}",
                    top.tag_name().name(),
                    top.tag_name().namespace().map_or_else(
                        || " without a namespace".to_owned(),
                        |n| format!(" in namespace {n}")
                    ),
                ),
            ));
        }
        let mut items = Vec::new();
        for child in top.children().filter(roxmltree::Node::is_element) {
            // Nested elements (valueSet, nameField...) are not simple values;
            // they are kept with an empty text so that checks can name them.
            let text = if child.children().any(|c| c.is_element()) {
                String::new()
            } else {
                child.text().unwrap_or("").trim().to_owned()
            };
            items.push((child.tag_name().name().to_owned(), text, line(child)));
        }
        Ok(Self { items })
    }

    /// The text and line of the one element `name`; an error when it is
    /// given twice.
    fn get(&self, name: &str, file: &str) -> Result<Option<(&str, u32)>, DxError> {
        let mut found = self.items.iter().filter(|(n, _, _)| n == name);
        let first = found.next();
        if let Some((_, _, line)) = found.next() {
            return Err(err(file, *line, format!("<{name}> is given twice")));
        }
        Ok(first.map(|(_, t, l)| (t.as_str(), *l)))
    }

    fn text(&self, name: &str, file: &str) -> Result<String, DxError> {
        Ok(self
            .get(name, file)?
            .map(|(t, _)| t.to_owned())
            .unwrap_or_default())
    }

    fn one_of(&self, name: &str, allowed: &[&str], file: &str) -> Result<Option<String>, DxError> {
        match self.get(name, file)? {
            None => Ok(None),
            Some((t, _)) if allowed.contains(&t) => Ok(Some(t.to_owned())),
            Some((t, line)) => Err(err(
                file,
                line,
                format!("<{name}> is {t:?}, expected one of {}", allowed.join(", ")),
            )),
        }
    }

    fn boolean(&self, name: &str, file: &str) -> Result<Option<bool>, DxError> {
        Ok(self
            .one_of(name, &["true", "false"], file)?
            .map(|t| t == "true"))
    }

    fn number(&self, name: &str, max: u32, file: &str) -> Result<Option<u32>, DxError> {
        match self.get(name, file)? {
            None => Ok(None),
            Some((t, line)) => match t.parse::<u32>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(err(
                    file,
                    line,
                    format!("<{name}> is {t:?}, expected a whole number from 0 to {max}"),
                )),
            },
        }
    }
}

/// Parses a platform event's object file.
///
/// # Errors
/// [`DxError`] naming `file` and the line: not well-formed XML, a root other
/// than `CustomObject`, an unknown `eventType`, `publishBehavior` or
/// `deploymentStatus`, an element given twice.
pub fn parse_object(text: &str, file: &str) -> Result<EventObject, DxError> {
    let el = Elements::parse(text, file, "CustomObject")?;
    el.one_of("deploymentStatus", &["Deployed", "InDevelopment"], file)?;
    let event_type = el
        .one_of("eventType", &["HighVolume", "StandardVolume"], file)?
        .unwrap_or_else(|| "HighVolume".to_owned());
    let publish_behavior = el
        .one_of(
            "publishBehavior",
            &["PublishAfterCommit", "PublishImmediately"],
            file,
        )?
        .unwrap_or_else(|| "PublishAfterCommit".to_owned());
    Ok(EventObject {
        label: el.text("label", file)?,
        plural_label: el.text("pluralLabel", file)?,
        event_type,
        publish_behavior,
        description: el.text("description", file)?,
    })
}

/// Parses a field file of a platform event; `name` is the API name its
/// file name gives (`F__c` for `F__c.field-meta.xml`).
///
/// # Errors
/// [`DxError`] naming `file` and the line: not well-formed XML, a root other
/// than `CustomField`, a bad name or a `fullName` other than `name`, a type
/// platform events do not have, a length, precision or scale out of range.
pub fn parse_field(name: &str, text: &str, file: &str) -> Result<EventField, DxError> {
    match name.strip_suffix("__c") {
        Some(base) if is_plain_name(base, 40) => {}
        _ => {
            return Err(err(
                file,
                0,
                format!(
                    "{name:?} is not a custom field name (a letter, then up to 39 letters, digits and single underscores, then __c)"
                ),
            ));
        }
    }
    let el = Elements::parse(text, file, "CustomField")?;
    if let Some((full, line)) = el.get("fullName", file)?
        && full != name
    {
        return Err(err(
            file,
            line,
            format!("<fullName> is {full:?}, but the file name gives {name:?}"),
        ));
    }
    let (kind, kind_line) = match el.get("type", file)? {
        None => return Err(err(file, 0, "no <type> element")),
        Some((t, line)) => match FieldType::ALL.iter().find(|(n, _)| *n == t) {
            Some((_, k)) => (*k, line),
            None => {
                return Err(err(
                    file,
                    line,
                    format!(
                        "field type {t:?} is not allowed on a platform event (allowed: {})",
                        FieldType::ALL.map(|(n, _)| n).join(", ")
                    ),
                ));
            }
        },
    };
    let mut length = None;
    let mut scale = None;
    match kind {
        FieldType::Text => {
            length = Some(required_number(&el, "length", 1, 255, kind_line, file)?);
        }
        FieldType::LongTextArea => {
            length = Some(required_number(
                &el, "length", 256, 131_072, kind_line, file,
            )?);
        }
        FieldType::Number => {
            let p = required_number(&el, "precision", 1, 18, kind_line, file)?;
            let s = el.number("scale", 18, file)?.unwrap_or(0);
            if s > p {
                let line = el.get("scale", file)?.map_or(kind_line, |(_, l)| l);
                return Err(err(
                    file,
                    line,
                    format!("<scale> {s} is larger than <precision> {p}"),
                ));
            }
            length = Some(p);
            scale = Some(s);
        }
        FieldType::Checkbox | FieldType::Date | FieldType::DateTime => {}
    }
    let checkbox_default = if kind == FieldType::Checkbox {
        el.boolean("defaultValue", file)?.unwrap_or(false)
    } else {
        false
    };
    Ok(EventField {
        name: name.to_owned(),
        label: el.text("label", file)?,
        kind,
        required: el.boolean("required", file)?.unwrap_or(false),
        length,
        scale,
        checkbox_default,
        description: el.text("description", file)?,
    })
}

fn required_number(
    el: &Elements,
    name: &str,
    min: u32,
    max: u32,
    type_line: u32,
    file: &str,
) -> Result<u32, DxError> {
    match el.number(name, max, file)? {
        Some(n) if n >= min => Ok(n),
        Some(n) => {
            let line = el.get(name, file)?.map_or(type_line, |(_, l)| l);
            Err(err(
                file,
                line,
                format!("<{name}> is {n}, expected {min} to {max}"),
            ))
        }
        None => Err(err(
            file,
            type_line,
            format!("this field type needs a <{name}> from {min} to {max}"),
        )),
    }
}

/// The name with a namespace prefix: `ns__Name__e`, or `Name__e` for none.
#[must_use]
pub fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}__{name}")
    }
}

/// The Avro schema (JSON text) Salesforce derives for the platform event
/// `name` (`X__e`, without prefix) with `fields`, in a package with
/// `namespace` (empty for none) at `api_version`: the record
/// `com.sforce.eventbus.[ns__]X__e` whose `doc` is the API version,
/// `CreatedDate` (long, epoch milliseconds) and `CreatedById` (string),
/// then each field in the order given, a nullable union defaulting to null
/// (a checkbox: a boolean defaulting to its default value).
#[must_use]
pub fn event_schema(
    namespace: &str,
    name: &str,
    fields: &[EventField],
    api_version: &str,
) -> String {
    let mut out = vec![
        serde_json::json!({"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"}),
        serde_json::json!({"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"}),
    ];
    for f in fields {
        let name = qualified(namespace, &f.name);
        out.push(if f.kind == FieldType::Checkbox {
            serde_json::json!({"name": name, "type": "boolean", "doc": f.kind.doc(), "default": f.checkbox_default})
        } else {
            serde_json::json!({"name": name, "type": ["null", f.kind.avro()], "doc": f.kind.doc(), "default": null})
        });
    }
    let schema = serde_json::json!({
        "name": qualified(namespace, name),
        "namespace": "com.sforce.eventbus",
        "doc": api_version,
        "type": "record",
        "fields": out,
    });
    schema.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParsedSchema;
    use proptest::prelude::*;

    const OBJECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <deploymentStatus>Deployed</deploymentStatus>
    <eventType>HighVolume</eventType>
    <label>Order Event</label>
    <pluralLabel>Order Events</pluralLabel>
    <publishBehavior>PublishImmediately</publishBehavior>
</CustomObject>
"#;

    fn field(kind: &str, extra: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>F__c</fullName>
    <label>F</label>
    <type>{kind}</type>
    {extra}
</CustomField>
"#
        )
    }

    #[test]
    fn an_object_file_parses_with_defaults() {
        let o = parse_object(OBJECT, "o.xml").expect("parses");
        assert_eq!(o.label, "Order Event");
        assert_eq!(o.publish_behavior, "PublishImmediately");
        let bare = r#"<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata"><label>X</label></CustomObject>"#;
        let o = parse_object(bare, "o.xml").expect("parses");
        assert_eq!(o.event_type, "HighVolume");
        assert_eq!(o.publish_behavior, "PublishAfterCommit");
    }

    #[test]
    fn every_allowed_type_maps_to_its_avro_type() {
        let cases = [
            (
                "Text",
                "<length>80</length>",
                r#"["null","string"]"#,
                "Data:Text",
            ),
            (
                "LongTextArea",
                "<length>32768</length><visibleLines>3</visibleLines>",
                r#"["null","string"]"#,
                "Data:Text",
            ),
            (
                "Number",
                "<precision>18</precision><scale>2</scale>",
                r#"["null","double"]"#,
                "Data:Double",
            ),
            ("Date", "", r#"["null","int"]"#, "Data:Date"),
            ("DateTime", "", r#"["null","long"]"#, "Data:DateTime"),
            (
                "Checkbox",
                "<defaultValue>true</defaultValue>",
                r#""boolean""#,
                "Data:Boolean",
            ),
        ];
        for (kind, extra, avro, doc) in cases {
            let f = parse_field("F__c", &field(kind, extra), "f.xml").expect(kind);
            let json = event_schema("", "E__e", &[f], "62.0");
            let expected = format!(r#"{{"name":"F__c","type":{avro},"doc":"{doc}","default":"#);
            assert!(json.contains(&expected), "{kind}: {json}");
            ParsedSchema::parse(&json).expect("a valid schema");
        }
    }

    #[test]
    fn the_schema_has_salesforces_shape() {
        let f = parse_field(
            "Amount__c",
            &field("Number", "<precision>10</precision>").replace("F__c", "Amount__c"),
            "f.xml",
        )
        .expect("parses");
        let json = event_schema("", "Order_Event__e", &[f], "62.0");
        assert_eq!(
            json,
            r#"{"name":"Order_Event__e","namespace":"com.sforce.eventbus","doc":"62.0","type":"record","fields":[{"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},{"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},{"name":"Amount__c","type":["null","double"],"doc":"Data:Double","default":null}]}"#
        );
        let with_ns = event_schema("acme", "Order_Event__e", &[], "62.0");
        assert!(
            with_ns.starts_with(r#"{"name":"acme__Order_Event__e""#),
            "{with_ns}"
        );
        ParsedSchema::parse(&with_ns).expect("valid");
    }

    #[test]
    fn namespaced_fields_get_the_prefix() {
        let f = parse_field("F__c", &field("Text", "<length>5</length>"), "f.xml").expect("parses");
        let json = event_schema("acme", "E__e", &[f], "62.0");
        assert!(json.contains(r#""name":"acme__F__c""#), "{json}");
    }

    #[test]
    fn bad_fields_name_the_file_and_line() {
        for (text, line, want) in [
            (
                field("Picklist", ""),
                5,
                "field type \"Picklist\" is not allowed on a platform event",
            ),
            (field("Text", ""), 5, "needs a <length>"),
            (
                field("Text", "<length>256</length>"),
                6,
                "expected a whole number from 0 to 255",
            ),
            (
                field("Number", "<precision>4</precision><scale>5</scale>"),
                6,
                "larger than <precision>",
            ),
            (
                field("Checkbox", "<defaultValue>yes</defaultValue>"),
                6,
                "expected one of true, false",
            ),
            (
                field("Text", "<length>5</length><label>again</label>"),
                6,
                "<label> is given twice",
            ),
            (field("Text", "<length>5"), 7, "not well-formed XML"),
            (
                field("Date", "").replace("<fullName>F__c", "<fullName>G__c"),
                3,
                "the file name gives \"F__c\"",
            ),
            (
                "<CustomField><type>Text</type></CustomField>".to_owned(),
                1,
                "expected <CustomField> in namespace",
            ),
        ] {
            let e = parse_field("F__c", &text, "objects/E__e/fields/F__c.field-meta.xml")
                .expect_err(want);
            assert_eq!(e.file, "objects/E__e/fields/F__c.field-meta.xml");
            assert!(e.message.contains(want), "{e}");
            assert_eq!(e.line, line, "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("objects/E__e/fields/F__c.field-meta.xml:{line}: ")),
                "{e}"
            );
        }
        let e = parse_field("F__x", &field("Date", ""), "f.xml").expect_err("bad name");
        assert!(e.message.contains("not a custom field name"), "{e}");
    }

    #[test]
    fn bad_objects_name_the_line() {
        let e = parse_object(&OBJECT.replace("HighVolume", "Huge"), "o.xml").expect_err("bad");
        assert_eq!((e.line, e.message.contains("eventType")), (4, true), "{e}");
        let e = parse_object("<Foo/>", "o.xml").expect_err("root");
        assert!(e.message.contains("root element is <Foo>"), "{e}");
        let e = parse_object("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", "o.xml").expect_err("dtd");
        assert!(e.message.contains("not well-formed XML"), "{e}");
    }

    #[test]
    fn event_names_are_checked() {
        check_event_name("Order_Event__e", "d").expect("ok");
        for bad in [
            "Order__c",
            "__e",
            "1A__e",
            "A__B__e",
            "A___e",
            "Bad Name__e",
        ] {
            check_event_name(bad, "d").expect_err(bad);
        }
    }

    #[test]
    fn project_files_parse_and_errors_name_the_file() {
        let p = parse_project(
            r#"{"packageDirectories":[{"path":"force-app","default":true},{"path":"more/src"}],"namespace":"acme","sourceApiVersion":"61.0"}"#,
            "sfdx-project.json",
        )
        .expect("parses");
        assert_eq!(p.package_dirs, vec!["force-app", "more/src"]);
        assert_eq!(
            (p.namespace.as_str(), p.api_version.as_str()),
            ("acme", "61.0")
        );
        let p = parse_project(
            r#"{"packageDirectories":[{"path":"a"}],"namespace":""}"#,
            "s",
        )
        .expect("ok");
        assert_eq!(
            (p.namespace.as_str(), p.api_version.as_str()),
            ("", DEFAULT_API_VERSION)
        );
        for (text, want) in [
            (
                "{\n\"packageDirectories\": [,]}",
                "sfdx-project.json:2: not valid JSON",
            ),
            ("{}", "no \"packageDirectories\""),
            (
                r#"{"packageDirectories":[{}]}"#,
                "packageDirectories[0] has no \"path\"",
            ),
            (
                r#"{"packageDirectories":[{"path":"../x"}]}"#,
                "inside the project",
            ),
            (
                r#"{"packageDirectories":[{"path":"/x"}]}"#,
                "inside the project",
            ),
            (
                r#"{"packageDirectories":[],"namespace":"a b"}"#,
                "namespace",
            ),
            (
                r#"{"packageDirectories":[],"sourceApiVersion":62}"#,
                "sourceApiVersion",
            ),
        ] {
            let e = parse_project(text, "sfdx-project.json").expect_err(want);
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(text in ".{0,300}", name in "[A-Za-z_]{0,12}") {
            let _ = parse_object(&text, "o.xml");
            let _ = parse_field(&name, &text, "f.xml");
            let _ = parse_project(&text, "p.json");
            let _ = check_event_name(&name, "d");
        }

        #[test]
        fn no_xml_like_input_panics(parts in proptest::collection::vec(prop_oneof![
            Just("<CustomField xmlns=\"http://soap.sforce.com/2006/04/metadata\">".to_owned()),
            Just("</CustomField>".to_owned()),
            Just("<type>".to_owned()), Just("</type>".to_owned()),
            Just("<length>".to_owned()), Just("</length>".to_owned()),
            Just("Text".to_owned()), Just("Number".to_owned()), Just("Checkbox".to_owned()),
            "[0-9]{1,12}", "[<>&/a-z\"=]{1,4}",
        ], 0..20)) {
            let text = parts.concat();
            let _ = parse_field("F__c", &text, "f.xml");
            let _ = parse_object(&text.replace("CustomField", "CustomObject"), "o.xml");
        }

        #[test]
        fn every_valid_field_list_gives_a_valid_schema(
            specs in proptest::collection::btree_map("[A-Z][a-z0-9]{0,10}", 0usize..6, 0..8),
            ns in prop_oneof![Just(String::new()), "[a-z]{1,8}"],
        ) {
            let kinds = ["<type>Text</type><length>10</length>", "<type>LongTextArea</type><length>1000</length>",
                "<type>Number</type><precision>8</precision><scale>2</scale>", "<type>Checkbox</type><defaultValue>false</defaultValue>",
                "<type>Date</type>", "<type>DateTime</type>"];
            let fields: Vec<EventField> = specs.iter().map(|(n, k)| {
                let name = format!("{n}__c");
                let xml = format!("<CustomField xmlns=\"{METADATA_NS}\"><fullName>{name}</fullName>{}</CustomField>", kinds[*k]);
                parse_field(&name, &xml, "f.xml").expect("valid field")
            }).collect();
            let json = event_schema(&ns, "Ev__e", &fields, "62.0");
            let parsed = ParsedSchema::parse(&json);
            prop_assert!(parsed.is_ok(), "{json}: {parsed:?}");
        }
    }
}
