//! Provisioning topics from a folder of `.avsc` files.
//!
//! Owns: walking the topics folder, mapping file paths to topic names, and
//! reporting bad files by name. Must not: touch storage directly (it goes
//! through [`Broker::provision`]).

use std::path::{Path, PathBuf};

use super::{Broker, BrokerError, ManagedChange, ManagedRef, NewManaged};
use crate::schema::ParsedSchema;
use crate::types::{ManagedReplay, ManagedState, TENANT_MARK, TenantId, TopicName};

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

/// The stored name of `tenant`'s topic `name`: the name itself for the
/// default tenant, `/~<org id, 15 characters>/…` for any other (the form the
/// protocol layer maps a tenant's names to).
///
/// # Errors
/// [`BrokerError::Provision`] when the result is no valid name (too long).
pub fn stored_name(tenant: &TenantId, name: &TopicName) -> Result<TopicName, BrokerError> {
    if *tenant == TenantId::from_stored(super::DEFAULT_TENANT_GUID) {
        return Ok(name.clone());
    }
    TopicName::parse_stored(&format!("{TENANT_MARK}{}{}", tenant.short(), name.as_str()))
        .map_err(|e| BrokerError::Provision(format!("tenant {tenant}: {e}")))
}

/// How deep the topics folder may nest; guards against symlink loops.
const MAX_DEPTH: usize = 16;

/// Whether a folder entry is hidden: dot files, and the `..data` and
/// `..<timestamp>` entries Kubernetes puts into a mounted ConfigMap, which
/// would otherwise provision every topic again under a timestamp name.
pub(crate) fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BrokerError> {
    collect_at(dir, out, 0)
}

fn collect_at(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), BrokerError> {
    if depth > MAX_DEPTH {
        return Err(BrokerError::Provision(format!(
            "topics folder {}: nested more than {MAX_DEPTH} folders deep (a symlink loop?)",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        BrokerError::Provision(format!("topics folder {}: cannot read: {e}", dir.display()))
    })?;
    for entry in entries {
        let entry = entry
            .map_err(|e| BrokerError::Provision(format!("topics folder {}: {e}", dir.display())))?;
        let path = entry.path();
        if hidden(&path) {
            continue;
        }
        // Follows symlinks: a folder linked into the topics folder counts.
        let meta = std::fs::metadata(&path)
            .map_err(|e| BrokerError::Provision(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            collect_at(&path, out, depth + 1)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
    Ok(())
}

/// The folder below the topics folder that declares managed subscriptions.
pub const MANAGED_DIR: &str = "managed";

/// A managed subscription declared by `managed/<DeveloperName>.toml`.
#[derive(Debug, PartialEq, Eq)]
pub struct ManagedFile {
    /// The developer name (the file name without `.toml`).
    pub developer_name: String,
    /// The topic it reads.
    pub topic: TopicName,
    /// Start without a commit (LATEST when not given).
    pub default_replay: ManagedReplay,
    /// Start when the commit is gone (LATEST when not given).
    pub error_recovery_replay: ManagedReplay,
    /// When given, applied at every start; when not, RUN at creation and
    /// left as it is afterwards.
    pub state: Option<ManagedState>,
    /// Where it came from.
    pub path: PathBuf,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagedToml {
    topic: String,
    default_replay: Option<String>,
    error_recovery_replay: Option<String>,
    state: Option<String>,
}

/// Parses one managed-subscription file: `name` is its file name
/// without `.toml`, `text` its contents and `path` the name errors give.
///
/// # Errors
/// [`BrokerError::Provision`] naming `path`: a bad developer name, unknown
/// keys, a bad topic name, replay or state.
pub fn parse_managed_file(
    name: &str,
    text: &str,
    path: PathBuf,
) -> Result<ManagedFile, BrokerError> {
    let bad = |why: String| BrokerError::Provision(format!("{}: {why}", path.display()));
    crate::types::check_developer_name(name)
        .map_err(|e| bad(format!("the file name gives {e}")))?;
    let t: ManagedToml =
        toml::from_str(text).map_err(|e| bad(format!("not a valid managed subscription: {e}")))?;
    // A reference to a topic, which may have been created before new names
    // had to be ASCII letters, digits and underscores.
    let topic = TopicName::parse_stored(&t.topic).map_err(|e| bad(format!("topic: {e}")))?;
    let replay = |v: Option<String>| -> Result<ManagedReplay, BrokerError> {
        v.map_or(Ok(ManagedReplay::Latest), |s| s.parse().map_err(bad))
    };
    Ok(ManagedFile {
        developer_name: name.to_owned(),
        topic,
        default_replay: replay(t.default_replay)?,
        error_recovery_replay: replay(t.error_recovery_replay)?,
        state: t.state.map(|s| s.parse()).transpose().map_err(bad)?,
        path,
    })
}

/// Reads every `managed/*.toml` of a topics folder (none when the folder
/// has no `managed` folder).
///
/// # Errors
/// As [`parse_managed_file`], and unreadable files.
pub fn read_managed_dir(dir: &Path) -> Result<Vec<ManagedFile>, BrokerError> {
    let dir = dir.join(MANAGED_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| BrokerError::Provision(format!("{}: cannot read: {e}", dir.display())))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| BrokerError::Provision(format!("{}: {e}", dir.display())))?
            .path();
        if !hidden(&path) && path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                BrokerError::Provision(format!("{}: cannot read: {e}", path.display()))
            })?;
            parse_managed_file(&name, &text, path)
        })
        .collect()
}

impl Broker {
    /// Provisions every topic of a topics folder, then the managed
    /// subscriptions of its `managed` folder; all files are parsed before
    /// anything is stored, so a bad file changes nothing.
    ///
    /// # Errors
    /// As [`read_topics_dir`], [`read_managed_dir`] and
    /// [`Broker::provision`]; a declared subscription whose topic differs
    /// from the stored one (the topic is fixed after creation).
    pub async fn provision_dir(
        &self,
        dir: &Path,
    ) -> Result<Vec<(TopicName, Outcome)>, BrokerError> {
        self.provision_dir_for(dir, &[]).await
    }

    /// As [`Broker::provision_dir`], for the default tenant and each of
    /// `tenants`: every tenant gets its own copy of every topic (stored as
    /// `/~<org id>/event/X__e` for a tenant other than the default) and of
    /// every declared managed subscription. The outcomes carry stored names.
    ///
    /// # Errors
    /// As [`Broker::provision_dir`].
    pub async fn provision_dir_for(
        &self,
        dir: &Path,
        tenants: &[TenantId],
    ) -> Result<Vec<(TopicName, Outcome)>, BrokerError> {
        self.provision_files_for(Some(dir), Vec::new(), tenants)
            .await
    }

    /// Provisions the topics folder `topics` (with its managed
    /// subscriptions, when given) and the topic files `extra` read from
    /// elsewhere (a DX project: [`Broker::provision_sources_for`]), for the
    /// default tenant and each of `tenants`. Everything is read and checked
    /// before anything is stored; a topic defined twice is an error.
    ///
    /// # Errors
    /// As [`Broker::provision_dir_for`]; a topic both define; a schema a
    /// topic cannot take as its next version names the file and the field.
    pub async fn provision_files_for(
        &self,
        topics: Option<&Path>,
        extra: Vec<TopicFile>,
        tenants: &[TenantId],
    ) -> Result<Vec<(TopicName, Outcome)>, BrokerError> {
        let default = TenantId::from_stored(super::DEFAULT_TENANT_GUID);
        let mut all = vec![default];
        all.extend(tenants.iter().cloned());
        all.sort();
        all.dedup();
        let mut files = topics.map(read_topics_dir).transpose()?.unwrap_or_default();
        for f in extra {
            if let Some(other) = files.iter().find(|o| o.name == f.name) {
                return Err(BrokerError::Provision(format!(
                    "{}: topic {} is also defined by {}; define it in one place",
                    f.path.display(),
                    f.name,
                    other.path.display()
                )));
            }
            files.push(f);
        }
        // The caps of the Admin API apply to files too, checked before anything is stored.
        for f in &files {
            f.schema
                .check_limits(&self.cfg.schema_limits)
                .map_err(|e| BrokerError::Provision(format!("{}: {e}", f.path.display())))?;
        }
        let managed = topics
            .map(read_managed_dir)
            .transpose()?
            .unwrap_or_default();
        let mut done = Vec::with_capacity(files.len() * all.len());
        for tenant in &all {
            for f in &files {
                let name = stored_name(tenant, &f.name)?;
                // Parsed again per tenant: a parsed schema is consumed.
                let schema = ParsedSchema::parse(f.schema.json()).map_err(|e| {
                    BrokerError::Provision(format!(
                        "{}: invalid Avro schema: {e}",
                        f.path.display()
                    ))
                })?;
                let outcome = self.provision(&name, schema).await.map_err(|e| match e {
                    BrokerError::SchemaIncompatible { .. } => {
                        BrokerError::Provision(format!("{}: {e}", f.path.display()))
                    }
                    e => e,
                })?;
                tracing::info!(topic = %f.name, %tenant, file = %f.path.display(), ?outcome, "provisioned topic");
                done.push((name, outcome));
            }
            for m in &managed {
                self.provision_managed(tenant, m).await?;
            }
        }
        Ok(done)
    }

    /// Creates a declared managed subscription, or brings an existing one's
    /// replays (and state, when the file gives one) in line with the file.
    async fn provision_managed(
        &self,
        tenant: &TenantId,
        m: &ManagedFile,
    ) -> Result<(), BrokerError> {
        let topic = stored_name(tenant, &m.topic)?;
        let tenant = tenant.as_str();
        let in_file = |e: BrokerError| BrokerError::Provision(format!("{}: {e}", m.path.display()));
        let r = ManagedRef::Name(m.developer_name.clone());
        match self.describe_managed(tenant, &r) {
            Ok(v) if v.record.topic != topic.as_str() => {
                Err(in_file(BrokerError::ManagedInvalid(format!(
                    "it names topic {}, but the stored subscription reads {} and a topic cannot change; delete the subscription (eventbus managed delete {}) to declare it anew",
                    m.topic, v.record.topic, m.developer_name
                ))))
            }
            Ok(_) => {
                let change = ManagedChange {
                    state: m.state,
                    default_replay: Some(m.default_replay),
                    error_recovery_replay: Some(m.error_recovery_replay),
                };
                self.update_managed(tenant, &r, change)
                    .await
                    .map_err(in_file)?;
                tracing::info!(subscription = %m.developer_name, file = %m.path.display(), "managed subscription provisioned");
                Ok(())
            }
            Err(BrokerError::ManagedNameNotFound(_)) => {
                let v = self
                    .create_managed(
                        tenant,
                        NewManaged {
                            developer_name: m.developer_name.clone(),
                            topic: topic.as_str().to_owned(),
                            default_replay: m.default_replay,
                            error_recovery_replay: m.error_recovery_replay,
                            state: m.state.unwrap_or(ManagedState::Run),
                        },
                    )
                    .await
                    .map_err(in_file)?;
                tracing::info!(subscription = %m.developer_name, id = %v.record.id, file = %m.path.display(), "managed subscription created");
                Ok(())
            }
            Err(e) => Err(in_file(e)),
        }
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
    fn hidden_entries_are_skipped_and_linked_folders_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("..2026_11_27_data");
        std::fs::create_dir_all(real.join("event")).expect("mkdir");
        std::fs::write(real.join("event/Order_Event__e.avsc"), SCHEMA).expect("write");
        // The shape of a mounted ConfigMap: ..data links to the timestamped
        // folder, visible names link through ..data.
        std::os::unix::fs::symlink(&real, dir.path().join("..data")).expect("link");
        std::os::unix::fs::symlink(dir.path().join("..data/event"), dir.path().join("event"))
            .expect("link");
        std::fs::write(dir.path().join(".hidden.avsc"), SCHEMA).expect("write");
        let files = read_topics_dir(dir.path()).expect("reads");
        let names: Vec<_> = files.iter().map(|f| f.name.as_str().to_owned()).collect();
        assert_eq!(names, vec!["/event/Order_Event__e"]);
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
    fn managed_files_parse_with_defaults_and_name_the_file_on_errors() {
        let p = || PathBuf::from("t/managed/Fulfillment.toml");
        let m =
            parse_managed_file("Fulfillment", "topic = \"/event/A__e\"\n", p()).expect("parses");
        assert_eq!(m.topic.as_str(), "/event/A__e");
        assert_eq!(m.default_replay, ManagedReplay::Latest);
        assert_eq!(m.error_recovery_replay, ManagedReplay::Latest);
        assert_eq!(m.state, None);
        let full = "topic = \"/event/A__e\"\ndefault_replay = \"earliest\"\nerror_recovery_replay = \"EARLIEST\"\nstate = \"STOP\"\n";
        let m = parse_managed_file("Fulfillment", full, p()).expect("parses");
        assert_eq!(m.default_replay, ManagedReplay::Earliest);
        assert_eq!(m.state, Some(ManagedState::Stop));
        for (name, text, want) in [
            ("Bad__Name", "topic = \"/event/A__e\"", "underscores"),
            (
                "Ok",
                "topic = \"/event/A__e\"\nreplay = \"LATEST\"",
                "unknown field",
            ),
            ("Ok", "topic = \"event\"", "topic"),
            (
                "Ok",
                "topic = \"/event/A__e\"\ndefault_replay = \"CUSTOM\"",
                "LATEST or EARLIEST",
            ),
            (
                "Ok",
                "topic = \"/event/A__e\"\nstate = \"PAUSE\"",
                "RUN or STOP",
            ),
        ] {
            let err = parse_managed_file(name, text, p())
                .expect_err(text)
                .to_string();
            assert!(
                err.contains("Fulfillment.toml") && err.contains(want),
                "{err}"
            );
        }
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
