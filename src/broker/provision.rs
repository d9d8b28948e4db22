//! Provisioning topics from a folder of `.avsc` files.
//!
//! Owns: walking the topics folder, mapping file paths to topic names, and
//! reporting bad files by name. Must not: touch storage directly (it goes
//! through [`Broker::provision`]).

use std::path::{Path, PathBuf};

use super::{Broker, BrokerError};
use crate::schema::ParsedSchema;
use crate::types::TopicName;

/// What provisioning did to one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The topic was new.
    Created,
    /// The schema became the topic's new current version.
    NewVersion,
    /// The topic already had this schema as current.
    Unchanged,
}

/// One schema file found in the topics folder.
#[derive(Debug)]
pub struct TopicFile {
    /// The topic it provisions.
    pub name: TopicName,
    /// The parsed schema.
    pub schema: ParsedSchema,
    /// Where it came from.
    pub path: PathBuf,
}

/// Reads every `*.avsc` below `dir`. The path relative to `dir` without the
/// extension is the topic name: `dir/event/Order_Event__e.avsc` provisions
/// `/event/Order_Event__e`.
///
/// # Errors
/// [`BrokerError::Provision`] naming the file and the problem, for the first
/// unreadable folder, bad name or invalid schema (in path order).
pub fn read_topics_dir(dir: &Path) -> Result<Vec<TopicFile>, BrokerError> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        // The name is checked before the file is read, so a bad name is
        // reported even for an unreadable file.
        topic_name_of(&rel, &path)?;
        let json = std::fs::read_to_string(&path)
            .map_err(|e| BrokerError::Provision(format!("{}: cannot read: {e}", path.display())))?;
        out.push(parse_topic_file(&rel, &json, path)?);
    }
    Ok(out)
}

/// Parses one file of a topics folder without touching the file system:
/// `rel` is its path relative to the folder (`event/Order_Event__e.avsc`),
/// `json` its contents and `path` the name errors give for it.
///
/// # Errors
/// [`BrokerError::Provision`] naming `path` when the relative path is not a
/// valid topic name or the contents are not a valid record schema.
pub fn parse_topic_file(rel: &Path, json: &str, path: PathBuf) -> Result<TopicFile, BrokerError> {
    let name = topic_name_of(rel, &path)?;
    let schema = ParsedSchema::parse(json).map_err(|e| {
        BrokerError::Provision(format!("{}: invalid Avro schema: {e}", path.display()))
    })?;
    Ok(TopicFile { name, schema, path })
}

/// The topic a file provisions: its relative path without the extension,
/// each component after a `/`.
fn topic_name_of(rel: &Path, path: &Path) -> Result<TopicName, BrokerError> {
    let mut name = String::new();
    for part in rel.with_extension("").components() {
        name.push('/');
        name.push_str(&part.as_os_str().to_string_lossy());
    }
    TopicName::parse(&name).map_err(|e| {
        BrokerError::Provision(format!("{}: not a valid topic name: {e}", path.display()))
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BrokerError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        BrokerError::Provision(format!("topics folder {}: cannot read: {e}", dir.display()))
    })?;
    for entry in entries {
        let entry = entry
            .map_err(|e| BrokerError::Provision(format!("topics folder {}: {e}", dir.display())))?;
        let path = entry.path();
        let ty = entry
            .file_type()
            .map_err(|e| BrokerError::Provision(format!("{}: {e}", path.display())))?;
        if ty.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
    Ok(())
}

impl Broker {
    /// Provisions every topic of a topics folder; all files are parsed
    /// before anything is stored, so a bad file changes nothing.
    ///
    /// # Errors
    /// As [`read_topics_dir`] and [`Broker::provision`].
    pub async fn provision_dir(
        &self,
        dir: &Path,
    ) -> Result<Vec<(TopicName, Outcome)>, BrokerError> {
        let files = read_topics_dir(dir)?;
        let mut done = Vec::with_capacity(files.len());
        for f in files {
            let outcome = self.provision(&f.name, f.schema).await?;
            tracing::info!(topic = %f.name, file = %f.path.display(), ?outcome, "provisioned topic");
            done.push((f.name, outcome));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"}]}"#;

    #[test]
    fn paths_become_topic_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("event")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("event/Order_Event__e.avsc"), SCHEMA).expect("write");
        std::fs::write(dir.path().join("data/AccountChangeEvent.avsc"), SCHEMA).expect("write");
        std::fs::write(dir.path().join("event/README.txt"), "ignored").expect("write");
        let files = read_topics_dir(dir.path()).expect("reads");
        let names: Vec<_> = files.iter().map(|f| f.name.as_str().to_owned()).collect();
        assert_eq!(
            names,
            vec!["/data/AccountChangeEvent", "/event/Order_Event__e"]
        );
    }

    #[test]
    fn one_file_parses_without_the_file_system() {
        let rel = Path::new("event/Order_Event__e.avsc");
        let file = parse_topic_file(rel, SCHEMA, PathBuf::from("x/event/Order_Event__e.avsc"))
            .expect("parses");
        assert_eq!(file.name.as_str(), "/event/Order_Event__e");
        let err = parse_topic_file(Path::new("event/Bad Name.avsc"), SCHEMA, rel.into())
            .map(|f| f.name)
            .expect_err("a name with a space")
            .to_string();
        assert!(err.contains("not a valid topic name"), "{err}");
    }

    #[test]
    fn a_bad_schema_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("event")).expect("mkdir");
        std::fs::write(dir.path().join("event/Bad__e.avsc"), "{not json").expect("write");
        let err = read_topics_dir(dir.path())
            .expect_err("bad schema")
            .to_string();
        assert!(err.contains("Bad__e.avsc"), "{err}");
        assert!(err.contains("invalid Avro schema"), "{err}");
    }
}
