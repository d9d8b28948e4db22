//! Salesforce DX source for objects and platform event channel members, read from one
//! package root folder.
//!
//! Owns: [`read_objects`] (custom fields of standard objects and custom objects under
//! `objects/`), [`read_channel_members`] (`platformEventChannelMembers/`), their XML
//! parsing and [`DxObjectError`] (`file:line: message`).
//! Must not: find package roots (the caller does), read platform events (`objects/*__e`,
//! see `eventbus_schema::dx`), or touch storage.
//!
//! Choices where Salesforce's order or mapping is not documented:
//! - Field order: standard fields first (for a custom object: `Name`, then the system
//!   fields `OwnerId`, `CreatedDate`, `CreatedById`, `LastModifiedDate`,
//!   `LastModifiedById`), then the custom fields sorted by API name. Salesforce's describe
//!   lists custom fields after the standard ones, in an order the source does not give.
//! - `Number` is always a double (Salesforce's describe reports custom numbers as
//!   `double` whatever the scale).
//! - Custom objects get key prefixes `a00`, `a01`, ... `a0Z`, `a10`, ...: an object the
//!   catalog already has keeps its prefix; new ones take the first free prefix in the
//!   order of their names.
//! - A custom object whose `sharingModel` is `ControlledByParent` (a master-detail child)
//!   has no `OwnerId`.
//! - Formula fields (`<formula>`) and roll-up summaries are computed, so they are not
//!   in change events and are skipped; any other type not listed in [`read_objects`] is an
//!   error.

use std::fmt;
use std::path::Path;

use crate::model::{FieldDef, FieldType, ObjectCatalog, ObjectDef};
use crate::standard::{location, system_fields};

/// The XML namespace of Metadata API source files.
const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";

/// The suffix of a channel member's file.
const MEMBER_SUFFIX: &str = ".platformEventChannelMember-meta.xml";
const CHANNEL_SUFFIX: &str = ".platformEventChannel-meta.xml";

/// A problem in one DX source file: the file, the line (1-based; 0 for the file as a
/// whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DxObjectError {
    /// The file (or folder) path.
    pub file: String,
    /// The line, 1-based; 0 for the whole file.
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DxObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for DxObjectError {}

fn err(file: &str, line: u32, message: impl Into<String>) -> DxObjectError {
    DxObjectError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

fn read(path: &Path) -> Result<String, DxObjectError> {
    std::fs::read_to_string(path).map_err(|e| err(&show(path), 0, format!("cannot read: {e}")))
}

/// The entries of a folder, sorted by name; an empty list when it does not exist.
fn entries(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, DxObjectError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let list =
        std::fs::read_dir(dir).map_err(|e| err(&show(dir), 0, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    for entry in list {
        let path = entry
            .map_err(|e| err(&show(dir), 0, format!("cannot read: {e}")))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// One element of a parsed file: its name, its text (empty when it has child elements),
/// its line and its child elements.
struct Element {
    name: String,
    text: String,
    line: u32,
    children: Vec<Element>,
}

impl Element {
    fn parse(text: &str, file: &str, root: &str) -> Result<Element, DxObjectError> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: false,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, opts)
            .map_err(|e| err(file, e.pos().row, format!("not well-formed XML: {e}")))?;
        let top = doc.root_element();
        let line = doc.text_pos_at(top.range().start).row;
        if top.tag_name().name() != root || top.tag_name().namespace() != Some(METADATA_NS) {
            return Err(err(
                file,
                line,
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
        Ok(Self::of(&doc, top))
    }

    fn of(doc: &roxmltree::Document<'_>, node: roxmltree::Node<'_, '_>) -> Element {
        let children: Vec<Element> = node
            .children()
            .filter(roxmltree::Node::is_element)
            .map(|c| Self::of(doc, c))
            .collect();
        Element {
            name: node.tag_name().name().to_owned(),
            text: if children.is_empty() {
                node.text().unwrap_or("").trim().to_owned()
            } else {
                String::new()
            },
            line: doc.text_pos_at(node.range().start).row,
            children,
        }
    }

    /// The one child `name`; an error when it is given twice.
    fn child(&self, name: &str, file: &str) -> Result<Option<&Element>, DxObjectError> {
        let mut found = self.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if let Some(second) = found.next() {
            return Err(err(file, second.line, format!("<{name}> is given twice")));
        }
        Ok(first)
    }

    fn text(&self, name: &str, file: &str) -> Result<Option<&str>, DxObjectError> {
        Ok(self.child(name, file)?.map(|c| c.text.as_str()))
    }

    fn boolean(&self, name: &str, file: &str) -> Result<bool, DxObjectError> {
        match self.child(name, file)? {
            None => Ok(false),
            Some(c) if c.text == "true" => Ok(true),
            Some(c) if c.text == "false" => Ok(false),
            Some(c) => Err(err(
                file,
                c.line,
                format!("<{name}> is {:?}, expected true or false", c.text),
            )),
        }
    }

    fn number(&self, name: &str, max: u32, file: &str) -> Result<Option<u32>, DxObjectError> {
        match self.child(name, file)? {
            None => Ok(None),
            Some(c) => match c.text.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(err(
                    file,
                    c.line,
                    format!(
                        "<{name}> is {:?}, expected a whole number from 1 to {max}",
                        c.text
                    ),
                )),
            },
        }
    }
}

/// Whether `base` is a plain API name: a letter, then letters, digits and single
/// underscores, not ending in an underscore, at most `max` characters.
fn is_plain_name(base: &str, max: usize) -> bool {
    let b = base.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !base.contains("__")
        && !base.ends_with('_')
}

/// Whether `name` is a custom API name `[ns__]Base__c`.
fn is_custom_name(name: &str) -> bool {
    let Some(rest) = name.strip_suffix("__c") else {
        return false;
    };
    match rest.split_once("__") {
        Some((ns, base)) => is_plain_name(ns, 15) && is_plain_name(base, 40),
        None => is_plain_name(rest, 40),
    }
}

/// Parses a custom field file; `None` for a field that is not in change events
/// (formula, roll-up summary).
fn parse_field(name: &str, text: &str, file: &str) -> Result<Option<FieldDef>, DxObjectError> {
    if !is_custom_name(name) {
        return Err(err(
            file,
            0,
            format!("{name:?} is not a custom field name (Name__c)"),
        ));
    }
    let el = Element::parse(text, file, "CustomField")?;
    if let Some(full) = el.child("fullName", file)?
        && full.text != name
    {
        return Err(err(
            file,
            full.line,
            format!(
                "<fullName> is {:?}, but the file name gives {name:?}",
                full.text
            ),
        ));
    }
    if el.child("formula", file)?.is_some() {
        return Ok(None);
    }
    let Some(ty) = el.child("type", file)? else {
        return Err(err(file, 0, "no <type> element"));
    };
    let simple = |t: FieldType| FieldDef::simple(name, t);
    let mut field = match ty.text.as_str() {
        "Text" => simple(FieldType::Text),
        "TextArea" => simple(FieldType::TextArea),
        "LongTextArea" | "Html" => simple(FieldType::LongTextArea),
        "Number" => simple(FieldType::Double),
        "Currency" => simple(FieldType::Currency),
        "Percent" => simple(FieldType::Percent),
        "Checkbox" => FieldDef {
            default_on: el
                .child("defaultValue", file)?
                .is_some_and(|d| d.text.trim().eq_ignore_ascii_case("true")),
            ..simple(FieldType::Boolean)
        },
        "Date" => simple(FieldType::Date),
        "DateTime" => simple(FieldType::DateTime),
        "Time" => simple(FieldType::Time),
        "Email" => simple(FieldType::Email),
        "Phone" => simple(FieldType::Phone),
        "Url" => simple(FieldType::Url),
        "Picklist" => simple(FieldType::Picklist),
        "MultiselectPicklist" => simple(FieldType::MultiPicklist),
        "Lookup" => simple(FieldType::Reference),
        // A master-detail field always needs its parent.
        "MasterDetail" => simple(FieldType::Reference).required(),
        "Location" => location(name),
        "AutoNumber" => simple(FieldType::Text).length(255).read_only(),
        "Summary" => return Ok(None),
        other => {
            return Err(err(
                file,
                ty.line,
                format!(
                    "field type {other:?} is not supported (supported: Text, TextArea, LongTextArea, Html, Number, Currency, Percent, Checkbox, Date, DateTime, Time, Email, Phone, Url, Picklist, MultiselectPicklist, Lookup, MasterDetail, Location, AutoNumber; formula and Summary fields are skipped)"
                ),
            ));
        }
    };
    let max_length = match field.ty {
        FieldType::Text => Some(255),
        FieldType::LongTextArea => Some(131_072),
        _ => None,
    };
    if let Some(max) = max_length
        && field.updateable
    {
        match el.number("length", max, file)? {
            Some(n) => field.length = Some(n),
            None if field.ty == FieldType::Text => {
                return Err(err(
                    file,
                    ty.line,
                    format!("a Text field needs a <length> from 1 to {max}"),
                ));
            }
            None => {}
        }
    }
    if el.boolean("required", file)? && field.updateable {
        field.required = true;
    }
    Ok(Some(field))
}

/// Reads the custom fields in `dir` (`fields/`), sorted by name.
fn read_fields(dir: &Path) -> Result<Vec<FieldDef>, DxObjectError> {
    let mut out = Vec::new();
    for (file_name, path) in entries(dir)? {
        let Some(name) = file_name.strip_suffix(".field-meta.xml") else {
            continue;
        };
        let file = show(&path);
        if let Some(f) = parse_field(name, &read(&path)?, &file)? {
            out.push(f);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `fields` with `custom` replacing the custom fields of the same name and added after
/// the others, all custom fields sorted by name.
fn with_custom_fields(fields: &[FieldDef], custom: Vec<FieldDef>) -> Vec<FieldDef> {
    let mut standard: Vec<FieldDef> = fields.iter().filter(|f| !f.custom).cloned().collect();
    let mut customs: Vec<FieldDef> = fields
        .iter()
        .filter(|f| f.custom && !custom.iter().any(|c| c.name.eq_ignore_ascii_case(&f.name)))
        .cloned()
        .collect();
    customs.extend(custom);
    customs.sort_by(|a, b| a.name.cmp(&b.name));
    standard.extend(customs);
    standard
}

/// The first key prefix `aXY` (X, Y in 0-9 then A-Z) no object of `catalog` has.
fn free_prefix(catalog: &ObjectCatalog) -> Option<String> {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for x in DIGITS {
        for y in DIGITS {
            let p = format!("a{}{}", char::from(*x), char::from(*y));
            if catalog.by_key_prefix(&p).is_none() {
                return Some(p);
            }
        }
    }
    None
}

/// Parses a custom object's object file into its label, its `Name` field and whether
/// it has an owner.
fn parse_object(text: &str, file: &str) -> Result<(String, FieldDef, bool), DxObjectError> {
    let el = Element::parse(text, file, "CustomObject")?;
    let label = el.text("label", file)?.unwrap_or_default().to_owned();
    let Some(name_field) = el.child("nameField", file)? else {
        return Err(err(file, 0, "no <nameField> element"));
    };
    let name = match name_field.text("type", file)? {
        Some("Text") => FieldDef::simple("Name", FieldType::Text)
            .length(80)
            .required(),
        Some("AutoNumber") => FieldDef::simple("Name", FieldType::Text)
            .length(80)
            .read_only(),
        other => {
            let line = name_field
                .child("type", file)?
                .map_or(name_field.line, |t| t.line);
            return Err(err(
                file,
                line,
                format!("<nameField> <type> is {other:?}, expected Text or AutoNumber"),
            ));
        }
    };
    let owned = el.text("sharingModel", file)? != Some("ControlledByParent");
    Ok((label, name, owned))
}

/// Reads the objects of one DX package root into `catalog`:
/// - `objects/<Std>/fields/*.field-meta.xml`: custom fields added to the standard object
///   `<Std>`, which must be in the catalog;
/// - `objects/X__c/X__c.object-meta.xml` (and its `fields/`): a custom object with a
///   `Name` field (`nameField` Text or AutoNumber), the system fields and its custom
///   fields.
///
/// Platform events (`*__e`), custom metadata (`*__mdt`), big objects (`*__b`) and
/// external objects (`*__x`) are skipped. Field types: Text, TextArea, LongTextArea, Html
/// (as long text), Number (double), Currency, Percent, Checkbox, Date, DateTime, Time,
/// Email, Phone, Url, Picklist, MultiselectPicklist, Lookup, MasterDetail (required),
/// Location (compound Latitude/Longitude, REST fields `X__Latitude__s`,
/// `X__Longitude__s`), AutoNumber (text, not settable); formula and roll-up summary
/// fields are skipped. See the module docs for field order and key prefixes.
///
/// Returns the API names of the objects added or changed, in name order.
///
/// # Errors
/// [`DxObjectError`] naming the file (and line) of the first problem: an unreadable
/// file, invalid XML, a wrong root element, a standard object the catalog does not have,
/// a custom object without its object file or `nameField`, a bad field name, an
/// unsupported field type, a bad length.
pub fn read_objects(
    root: &Path,
    catalog: &mut ObjectCatalog,
) -> Result<Vec<String>, DxObjectError> {
    let objects_dir = root.join("objects");
    let mut changed = Vec::new();
    let mut new_objects = Vec::new();
    for (name, path) in entries(&objects_dir)? {
        if !path.is_dir()
            || ["__e", "__mdt", "__b", "__x"]
                .iter()
                .any(|s| name.ends_with(s))
        {
            continue;
        }
        let fields = read_fields(&path.join("fields"))?;
        if name.ends_with("__c") {
            let object_file = path.join(format!("{name}.object-meta.xml"));
            if !is_custom_name(&name) {
                return Err(err(
                    &show(&path),
                    0,
                    format!("{name:?} is not a custom object name (Name__c)"),
                ));
            }
            if !object_file.is_file() {
                return Err(err(
                    &show(&path),
                    0,
                    format!("custom object {name} has no {name}.object-meta.xml"),
                ));
            }
            let (label, name_field, owned) =
                parse_object(&read(&object_file)?, &show(&object_file))?;
            let mut base = vec![name_field];
            base.extend(system_fields(owned));
            new_objects.push(ObjectDef {
                name: name.clone(),
                label,
                key_prefix: String::new(),
                fields: with_custom_fields(&base, fields),
                custom: true,
            });
        } else {
            let Some(existing) = catalog.get(&name) else {
                return Err(err(
                    &show(&path),
                    0,
                    format!(
                        "{name} is not a custom object (__c) nor a standard object eventbus knows"
                    ),
                ));
            };
            if fields.is_empty() {
                continue;
            }
            let mut updated = existing.clone();
            updated.fields = with_custom_fields(&existing.fields, fields);
            if &updated != existing {
                changed.push(updated.name.clone());
                catalog.insert(updated);
            }
        }
    }
    for mut obj in new_objects {
        obj.key_prefix = match catalog.get(&obj.name) {
            Some(old) if !old.key_prefix.is_empty() => old.key_prefix.clone(),
            _ => free_prefix(catalog).ok_or_else(|| {
                err(
                    &show(&objects_dir),
                    0,
                    "too many custom objects (no key prefix left)",
                )
            })?,
        };
        if catalog.get(&obj.name) != Some(&obj) {
            changed.push(obj.name.clone());
            catalog.insert(obj);
        }
    }
    changed.sort_by_key(|n| n.to_ascii_lowercase());
    Ok(changed)
}

/// A `PlatformEventChannelMember`: an entity selected on a channel, with an optional
/// filter and enriched fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelMember {
    /// The file it was read from.
    pub file: String,
    /// The member's developer name: the file name without its suffix.
    pub developer_name: String,
    /// `eventChannel`: `ChangeEvents` or `X__chn`.
    pub event_channel: String,
    /// `selectedEntity`: `AccountChangeEvent`.
    pub selected_entity: String,
    /// `filterExpression`, when given and not blank.
    pub filter_expression: Option<String>,
    /// The `name` of each `enrichedFields`, in file order.
    pub enriched_fields: Vec<String>,
}

fn parse_member(
    developer_name: &str,
    text: &str,
    file: &str,
) -> Result<ChannelMember, DxObjectError> {
    let el = Element::parse(text, file, "PlatformEventChannelMember")?;
    let required = |name: &str| -> Result<String, DxObjectError> {
        match el.text(name, file)? {
            Some(t) if !t.is_empty() => Ok(t.to_owned()),
            _ => Err(err(file, 0, format!("no <{name}> element"))),
        }
    };
    let mut enriched_fields = Vec::new();
    for e in el.children.iter().filter(|c| c.name == "enrichedFields") {
        match e.text("name", file)? {
            Some(n) if !n.is_empty() => enriched_fields.push(n.to_owned()),
            _ => return Err(err(file, e.line, "<enrichedFields> without a <name>")),
        }
    }
    Ok(ChannelMember {
        file: file.to_owned(),
        developer_name: developer_name.to_owned(),
        event_channel: required("eventChannel")?,
        selected_entity: required("selectedEntity")?,
        filter_expression: el
            .text("filterExpression", file)?
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        enriched_fields,
    })
}

/// Reads `platformEventChannelMembers/*.platformEventChannelMember-meta.xml` of one
/// DX package root, in file name order; none when the folder does not exist.
///
/// # Errors
/// [`DxObjectError`] naming the file (and line): unreadable, invalid XML, a wrong root
/// element, a missing `eventChannel` or `selectedEntity`, an element given twice, an
/// `enrichedFields` without a `name`.
pub fn read_channel_members(root: &Path) -> Result<Vec<ChannelMember>, DxObjectError> {
    let mut out = Vec::new();
    for (file_name, path) in entries(&root.join("platformEventChannelMembers"))? {
        let Some(stem) = file_name.strip_suffix(MEMBER_SUFFIX) else {
            continue;
        };
        let file = show(&path);
        out.push(parse_member(stem, &read(&path)?, &file)?);
    }
    Ok(out)
}

/// A custom channel as DX source defines it
/// (`platformEventChannels/X__chn.platformEventChannel-meta.xml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// The file it was read from.
    pub file: String,
    /// The API name, `X__chn`: the file name without its suffix.
    pub full_name: String,
    /// `channelType`: `event` (platform events) or `data` (change events).
    pub channel_type: String,
    /// `label`, or the name when none is given.
    pub label: String,
}

/// Reads `platformEventChannels/*.platformEventChannel-meta.xml` of one DX
/// package root, in file name order; none when the folder does not exist.
///
/// # Errors
/// [`DxObjectError`] naming the file (and line): unreadable, invalid XML, a
/// wrong root element, a missing `channelType`.
pub fn read_channels(root: &Path) -> Result<Vec<Channel>, DxObjectError> {
    let mut out = Vec::new();
    for (file_name, path) in entries(&root.join("platformEventChannels"))? {
        let Some(stem) = file_name.strip_suffix(CHANNEL_SUFFIX) else {
            continue;
        };
        let file = show(&path);
        let text = read(&path)?;
        let el = Element::parse(&text, &file, "PlatformEventChannel")?;
        let channel_type = match el.text("channelType", &file)? {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => return Err(err(&file, 0, "no <channelType> element (event or data)")),
        };
        let label = el
            .text("label", &file)?
            .filter(|t| !t.is_empty())
            .unwrap_or(stem)
            .to_owned();
        out.push(Channel {
            file,
            full_name: stem.to_owned(),
            channel_type,
            label,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "eventbus-objects-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, text).expect("write");
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn field(name: &str, ty: &str, extra: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>{name}</fullName>
    <label>{name}</label>
    <type>{ty}</type>
    {extra}
</CustomField>
"#
        )
    }

    fn object(name_type: &str, extra: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <label>Employee</label>
    <nameField>
        <label>Employee Name</label>
        <type>{name_type}</type>
    </nameField>
    {extra}
</CustomObject>
"#
        )
    }

    #[test]
    fn custom_fields_join_standard_objects_sorted_after_the_standard_fields() {
        let dir = TempDir::new("std");
        dir.write(
            "objects/Account/fields/Tier__c.field-meta.xml",
            &field("Tier__c", "Picklist", ""),
        );
        dir.write(
            "objects/Account/fields/Code__c.field-meta.xml",
            &field(
                "Code__c",
                "Text",
                "<length>10</length><required>true</required>",
            ),
        );
        dir.write(
            "objects/Account/fields/Score__c.field-meta.xml",
            &field("Score__c", "Number", "<formula>1</formula>"),
        );
        dir.write("objects/Account/Account.object-meta.xml", "ignored");
        dir.write(
            "objects/Order_Event__e/Order_Event__e.object-meta.xml",
            "ignored",
        );
        let mut catalog = ObjectCatalog::standard();
        let changed = read_objects(&dir.0, &mut catalog).expect("reads");
        assert_eq!(changed, ["Account"]);
        let a = catalog.get("Account").expect("Account");
        let tail: Vec<_> = a
            .fields
            .iter()
            .rev()
            .take(3)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(tail, ["Tier__c", "Code__c", "OperatingHoursId"]);
        let code = a.flat_field("code__c").expect("Code__c");
        assert!(code.required && code.length == Some(10));
        assert!(a.flat_field("Score__c").is_none());
        // Reading again changes nothing.
        assert!(
            read_objects(&dir.0, &mut catalog)
                .expect("again")
                .is_empty()
        );
    }

    #[test]
    fn custom_objects_get_name_system_fields_and_prefixes() {
        let dir = TempDir::new("custom");
        dir.write(
            "objects/Employee__c/Employee__c.object-meta.xml",
            &object("Text", ""),
        );
        dir.write(
            "objects/Employee__c/fields/Tenure__c.field-meta.xml",
            &field(
                "Tenure__c",
                "Number",
                "<precision>3</precision><scale>0</scale>",
            ),
        );
        dir.write(
            "objects/Employee__c/fields/Home__c.field-meta.xml",
            &field("Home__c", "Location", "<scale>6</scale>"),
        );
        dir.write(
            "objects/Badge__c/Badge__c.object-meta.xml",
            &object(
                "AutoNumber",
                "<sharingModel>ControlledByParent</sharingModel>",
            ),
        );
        dir.write(
            "objects/Badge__c/fields/Employee__c.field-meta.xml",
            &field(
                "Employee__c",
                "MasterDetail",
                "<referenceTo>Employee__c</referenceTo>",
            ),
        );
        let mut catalog = ObjectCatalog::standard();
        let changed = read_objects(&dir.0, &mut catalog).expect("reads");
        assert_eq!(changed, ["Badge__c", "Employee__c"]);
        let e = catalog.get("Employee__c").expect("Employee__c");
        assert_eq!(e.key_prefix, "a01");
        assert_eq!(e.change_event_name(), "Employee__ChangeEvent");
        let names: Vec<_> = e.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "OwnerId",
                "CreatedDate",
                "CreatedById",
                "LastModifiedDate",
                "LastModifiedById",
                "Home__c",
                "Tenure__c"
            ]
        );
        assert!(e.flat_field("Name").expect("Name").required);
        assert_eq!(
            e.flat_field("Tenure__c").map(|f| f.ty),
            Some(FieldType::Double)
        );
        let lat = e.flat_field("home__latitude__s").expect("latitude");
        assert_eq!(
            (lat.name.as_str(), lat.component),
            ("Home__Latitude__s", Some(0))
        );
        let b = catalog.get("Badge__c").expect("Badge__c");
        assert_eq!(b.key_prefix, "a00");
        assert!(b.field("OwnerId").is_none());
        assert!(!b.flat_field("Name").expect("Name").updateable);
        assert!(b.flat_field("Employee__c").expect("parent").required);
        // Prefixes stay on a second read, even with a new object sorting first.
        dir.write("objects/Aaa__c/Aaa__c.object-meta.xml", &object("Text", ""));
        let changed = read_objects(&dir.0, &mut catalog).expect("reads");
        assert_eq!(changed, ["Aaa__c"]);
        assert_eq!(
            catalog.get("Aaa__c").map(|o| o.key_prefix.as_str()),
            Some("a02")
        );
        assert_eq!(
            catalog.get("Employee__c").map(|o| o.key_prefix.as_str()),
            Some("a01")
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases: [(&str, &str, &str); 6] = [
            (
                "objects/Widget/fields/A__c.field-meta.xml",
                &field("A__c", "Text", "<length>5</length>"),
                "Widget is not a custom object (__c) nor a standard object eventbus knows",
            ),
            (
                "objects/Account/fields/A__c.field-meta.xml",
                &field("A__c", "EncryptedText", ""),
                "field-meta.xml:5: field type \"EncryptedText\" is not supported",
            ),
            (
                "objects/Account/fields/A__c.field-meta.xml",
                &field("A__c", "Text", ""),
                "field-meta.xml:5: a Text field needs a <length> from 1 to 255",
            ),
            (
                "objects/Account/fields/A__c.field-meta.xml",
                &field("B__c", "Date", ""),
                "field-meta.xml:3: <fullName> is \"B__c\", but the file name gives \"A__c\"",
            ),
            (
                "objects/Account/fields/A__c.field-meta.xml",
                "<CustomField>",
                "field-meta.xml:1: not well-formed XML",
            ),
            (
                "objects/Thing__c/fields/A__c.field-meta.xml",
                &field("A__c", "Date", ""),
                "custom object Thing__c has no Thing__c.object-meta.xml",
            ),
        ];
        for (i, (path, text, expected)) in cases.iter().enumerate() {
            let dir = TempDir::new(&format!("err{i}"));
            dir.write(path, text);
            let e = read_objects(&dir.0, &mut ObjectCatalog::standard()).expect_err(expected);
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    #[test]
    fn channel_members_are_read_in_file_order() {
        let dir = TempDir::new("members");
        dir.write(
            "platformEventChannelMembers/ChangeEvents_Account.platformEventChannelMember-meta.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannelMember xmlns="http://soap.sforce.com/2006/04/metadata">
    <eventChannel>ChangeEvents</eventChannel>
    <selectedEntity>AccountChangeEvent</selectedEntity>
</PlatformEventChannelMember>"#,
        );
        dir.write(
            "platformEventChannelMembers/Sales_Opp.platformEventChannelMember-meta.xml",
            r#"<PlatformEventChannelMember xmlns="http://soap.sforce.com/2006/04/metadata">
    <enrichedFields><name>Industry</name></enrichedFields>
    <enrichedFields><name>Name</name></enrichedFields>
    <eventChannel>Sales__chn</eventChannel>
    <filterExpression>Amount &gt; 1000</filterExpression>
    <selectedEntity>OpportunityChangeEvent</selectedEntity>
</PlatformEventChannelMember>"#,
        );
        dir.write("platformEventChannelMembers/readme.txt", "not a member");
        let members = read_channel_members(&dir.0).expect("reads");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].developer_name, "ChangeEvents_Account");
        assert_eq!(members[0].event_channel, "ChangeEvents");
        assert_eq!(members[0].filter_expression, None);
        assert_eq!(members[1].selected_entity, "OpportunityChangeEvent");
        assert_eq!(
            members[1].filter_expression.as_deref(),
            Some("Amount > 1000")
        );
        assert_eq!(members[1].enriched_fields, ["Industry", "Name"]);
        assert!(
            members[1]
                .file
                .ends_with("Sales_Opp.platformEventChannelMember-meta.xml")
        );

        dir.write(
            "platformEventChannelMembers/Bad.platformEventChannelMember-meta.xml",
            r#"<PlatformEventChannelMember xmlns="http://soap.sforce.com/2006/04/metadata">
    <eventChannel>ChangeEvents</eventChannel>
</PlatformEventChannelMember>"#,
        );
        let e = read_channel_members(&dir.0).expect_err("no entity");
        assert!(
            e.to_string()
                .ends_with("Bad.platformEventChannelMember-meta.xml: no <selectedEntity> element"),
            "{e}"
        );
        assert!(
            read_channel_members(&dir.0.join("nowhere"))
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn channels_are_read_with_their_type_and_label() {
        let dir = TempDir::new("channels");
        dir.write(
            "platformEventChannels/Orders__chn.platformEventChannel-meta.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannel xmlns="http://soap.sforce.com/2006/04/metadata">
    <channelType>event</channelType>
    <label>Orders</label>
</PlatformEventChannel>
"#,
        );
        dir.write(
            "platformEventChannels/Bad__chn.platformEventChannel-meta.xml",
            r#"<PlatformEventChannel xmlns="http://soap.sforce.com/2006/04/metadata"><label>x</label></PlatformEventChannel>"#,
        );
        let e = read_channels(&dir.0).expect_err("no channelType");
        assert!(e.to_string().contains("channelType"), "{e}");
        std::fs::remove_file(
            dir.0
                .join("platformEventChannels/Bad__chn.platformEventChannel-meta.xml"),
        )
        .expect("rm");
        let got = read_channels(&dir.0).expect("reads");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].full_name, "Orders__chn");
        assert_eq!(got[0].channel_type, "event");
        assert_eq!(got[0].label, "Orders");
    }
}
