//! Provisioning platform events defined in Salesforce DX source format.
//!
//! Owns: finding the platform events of a DX project folder (the package
//! directories of `sfdx-project.json`, or any `objects/` folder below a
//! plain folder), reading their object and field files, and turning each
//! into the topic `/event/[ns__]X__e` with the schema Salesforce derives
//! (the mapping itself is [`crate::schema::dx`]).
//! Must not: touch storage directly (provisioning goes through
//! [`Broker::provision_files_for`] like the topics folder).

use std::path::{Path, PathBuf};

use crate::provision::{Outcome, TopicFile, hidden};
use crate::schema::ParsedSchema;
use crate::schema::dx::{self, DxError};
use crate::types::TenantId;
use crate::types::TopicName;
use crate::{Broker, BrokerError};

/// The project file of a DX project.
pub const PROJECT_FILE: &str = "sfdx-project.json";

/// How deep the folders below a package directory may nest.
const MAX_DEPTH: usize = 16;

fn dx_error(e: DxError) -> BrokerError {
    BrokerError::Provision(e.to_string())
}

fn io_error(path: &Path, e: &std::io::Error) -> BrokerError {
    BrokerError::Provision(format!("{}: cannot read: {e}", path.display()))
}

/// Reads the platform events of the DX project (or plain folder with an
/// `objects/` folder) at `dir`, each as the topic file of `/event/X__e`
/// named by its object file. Events come in name order.
///
/// # Errors
/// [`BrokerError::Provision`] naming the file (and line) of the first
/// problem: an unreadable or invalid `sfdx-project.json`, a missing package
/// directory, a folder with neither, an event without its object file, an
/// invalid object or field file, the same event in two package directories.
pub fn read_metadata_dir(dir: &Path) -> Result<Vec<TopicFile>, BrokerError> {
    let project_file = dir.join(PROJECT_FILE);
    let (roots, project) = if project_file.is_file() {
        let text =
            std::fs::read_to_string(&project_file).map_err(|e| io_error(&project_file, &e))?;
        let project =
            dx::parse_project(&text, &project_file.display().to_string()).map_err(dx_error)?;
        let mut roots = Vec::new();
        for p in &project.package_dirs {
            let root = dir.join(p);
            if !root.is_dir() {
                return Err(BrokerError::Provision(format!(
                    "{}: package directory {p:?} is not a folder ({})",
                    project_file.display(),
                    root.display()
                )));
            }
            roots.push(root);
        }
        (roots, project)
    } else {
        let project = dx::Project {
            package_dirs: Vec::new(),
            namespace: String::new(),
            api_version: dx::DEFAULT_API_VERSION.to_owned(),
        };
        (vec![dir.to_path_buf()], project)
    };
    let mut objects = Vec::new();
    for root in &roots {
        find_objects_dirs(root, 0, &mut objects)?;
    }
    if objects.is_empty() && !project_file.is_file() {
        return Err(BrokerError::Provision(format!(
            "metadata folder {}: neither an {PROJECT_FILE} nor an objects/ folder below it",
            dir.display()
        )));
    }
    let mut events: Vec<(String, PathBuf)> = Vec::new();
    for objects_dir in &objects {
        let entries = std::fs::read_dir(objects_dir).map_err(|e| io_error(objects_dir, &e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_error(objects_dir, &e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Custom objects (__c) and standard objects live here too.
            if name.ends_with("__e") && path.is_dir() {
                if let Some((_, first)) = events.iter().find(|(n, _)| *n == name) {
                    return Err(BrokerError::Provision(format!(
                        "{}: platform event {name} is defined twice (also in {})",
                        path.display(),
                        first.display()
                    )));
                }
                events.push((name, path));
            }
        }
    }
    events.sort();
    events
        .iter()
        .map(|(name, path)| read_event(name, path, &project))
        .collect()
}

impl Broker {
    /// Provisions the topics folder `topics` and the platform events of the
    /// Salesforce DX project `metadata` (see [`read_metadata_dir`]), for the
    /// default tenant and each of `tenants`. Both are read and checked before
    /// anything is stored; a topic both define is an error.
    ///
    /// # Errors
    /// As [`read_metadata_dir`] and [`Broker::provision_files_for`].
    pub async fn provision_sources_for(
        &self,
        topics: Option<&Path>,
        metadata: Option<&Path>,
        tenants: &[TenantId],
    ) -> Result<Vec<(TopicName, Outcome)>, BrokerError> {
        let events = metadata
            .map(read_metadata_dir)
            .transpose()?
            .unwrap_or_default();
        self.provision_files_for(topics, events, tenants).await
    }
}

/// Every folder named `objects` below `dir` (not below another `objects`).
fn find_objects_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), BrokerError> {
    if depth > MAX_DEPTH {
        return Err(BrokerError::Provision(format!(
            "metadata folder {}: nested more than {MAX_DEPTH} folders deep (a symlink loop?)",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, &e))?.path();
        if !hidden(&path) && path.is_dir() && !path.ends_with("node_modules") {
            dirs.push(path);
        }
    }
    dirs.sort();
    for path in dirs {
        if path.ends_with("objects") {
            out.push(path);
        } else {
            find_objects_dirs(&path, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Reads one event folder `objects/X__e`.
fn read_event(name: &str, dir: &Path, project: &dx::Project) -> Result<TopicFile, BrokerError> {
    dx::check_event_name(name, &dir.display().to_string()).map_err(dx_error)?;
    let object_path = dir.join(format!("{name}.object-meta.xml"));
    if !object_path.is_file() {
        return Err(BrokerError::Provision(format!(
            "{}: the platform event has no {name}.object-meta.xml",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&object_path).map_err(|e| io_error(&object_path, &e))?;
    dx::parse_object(&text, &object_path.display().to_string()).map_err(dx_error)?;
    let mut fields = Vec::new();
    let fields_dir = dir.join("fields");
    if fields_dir.is_dir() {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&fields_dir).map_err(|e| io_error(&fields_dir, &e))? {
            let path = entry.map_err(|e| io_error(&fields_dir, &e))?.path();
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(field) = file.strip_suffix(".field-meta.xml")
                && !hidden(&path)
            {
                paths.push((field.to_owned(), path));
            }
        }
        paths.sort();
        for (field, path) in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
            fields.push(
                dx::parse_field(&field, &text, &path.display().to_string()).map_err(dx_error)?,
            );
        }
    }
    let api_name = dx::qualified(&project.namespace, name);
    let topic = TopicName::parse(&format!("/event/{api_name}")).map_err(|e| {
        BrokerError::Provision(format!("{}: not a valid topic name: {e}", dir.display()))
    })?;
    let json = dx::event_schema(&project.namespace, name, &fields, &project.api_version);
    let schema = ParsedSchema::parse(&json).map_err(|e| {
        BrokerError::Provision(format!(
            "{}: the derived schema is invalid: {e}",
            object_path.display()
        ))
    })?;
    Ok(TopicFile {
        name: topic,
        schema,
        path: object_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const OBJECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <deploymentStatus>Deployed</deploymentStatus>
    <eventType>HighVolume</eventType>
    <label>Order Event</label>
    <pluralLabel>Order Events</pluralLabel>
    <publishBehavior>PublishAfterCommit</publishBehavior>
</CustomObject>
"#;

    fn text_field(name: &str) -> String {
        format!(
            "<CustomField xmlns=\"http://soap.sforce.com/2006/04/metadata\"><fullName>{name}</fullName><label>x</label><type>Text</type><length>20</length></CustomField>"
        )
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn a_project_gives_its_events_and_skips_custom_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            &d.join(PROJECT_FILE),
            r#"{"packageDirectories":[{"path":"force-app"}],"sourceApiVersion":"61.0"}"#,
        );
        let ev = d.join("force-app/main/default/objects/Order_Event__e");
        write(&ev.join("Order_Event__e.object-meta.xml"), OBJECT);
        write(
            &ev.join("fields/Order_Id__c.field-meta.xml"),
            &text_field("Order_Id__c"),
        );
        write(
            &ev.join("fields/Amount__c.field-meta.xml"),
            &text_field("Amount__c"),
        );
        write(
            &d.join("force-app/main/default/objects/Account__c/Account__c.object-meta.xml"),
            "<CustomObject/>",
        );
        // Outside the package directory: not read.
        write(
            &d.join("other/objects/Bad__e/Bad__e.object-meta.xml"),
            "<bad",
        );
        let files = read_metadata_dir(d).expect("reads");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name.as_str(), "/event/Order_Event__e");
        let json = files[0].schema.json();
        assert!(json.contains(r#""doc":"61.0""#), "{json}");
        let amount = json.find("Amount__c").expect("amount");
        let order = json.find("Order_Id__c").expect("order id");
        assert!(amount < order, "fields in name order: {json}");
    }

    #[test]
    fn a_plain_folder_and_a_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            &dir.path().join("objects/A__e/A__e.object-meta.xml"),
            OBJECT,
        );
        let files = read_metadata_dir(dir.path()).expect("reads");
        assert_eq!(files[0].name.as_str(), "/event/A__e");
        write(
            &dir.path().join(PROJECT_FILE),
            r#"{"packageDirectories":[{"path":"."}],"namespace":"acme"}"#,
        );
        write(
            &dir.path().join("objects/A__e/fields/F__c.field-meta.xml"),
            &text_field("F__c"),
        );
        let files = read_metadata_dir(dir.path()).expect("reads");
        assert_eq!(files[0].name.as_str(), "/event/acme__A__e");
        assert!(files[0].schema.json().contains("acme__F__c"));
    }

    #[test]
    fn the_example_project_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dx-project");
        let files = read_metadata_dir(&dir).expect("the example reads");
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["/event/Shipment_Status__e"]);
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("src/loop")).expect("link");
        let e = read_metadata_dir(dir.path()).expect_err("loop").to_string();
        assert!(e.contains("nested more than 16 folders deep"), "{e}");
    }

    #[test]
    fn problems_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let err = |d: &Path| read_metadata_dir(d).expect_err("fails").to_string();
        let e = err(d);
        assert!(
            e.contains("neither an sfdx-project.json nor an objects/ folder"),
            "{e}"
        );
        write(
            &d.join("objects/A__e/fields/F__c.field-meta.xml"),
            &text_field("F__c"),
        );
        let e = err(d);
        assert!(
            e.contains("A__e: the platform event has no A__e.object-meta.xml"),
            "{e}"
        );
        write(&d.join("objects/A__e/A__e.object-meta.xml"), OBJECT);
        write(
            &d.join("objects/A__e/fields/F__c.field-meta.xml"),
            &text_field("F__c").replace("Text", "Picklist"),
        );
        let e = err(d);
        assert!(
            e.contains("F__c.field-meta.xml:1: field type \"Picklist\""),
            "{e}"
        );
        write(
            &d.join(PROJECT_FILE),
            r#"{"packageDirectories":[{"path":"missing"}]}"#,
        );
        let e = err(d);
        assert!(
            e.contains("sfdx-project.json: package directory \"missing\""),
            "{e}"
        );
        write(
            &d.join(PROJECT_FILE),
            r#"{"packageDirectories":[{"path":"a"},{"path":"b"}]}"#,
        );
        write(&d.join("a/objects/E__e/E__e.object-meta.xml"), OBJECT);
        write(&d.join("b/objects/E__e/E__e.object-meta.xml"), OBJECT);
        let e = err(d);
        assert!(e.contains("platform event E__e is defined twice"), "{e}");
    }
}
