//! The objects and channel members of a Salesforce DX project
//! (`--metadata`): custom fields of standard objects, custom objects, and
//! `PlatformEventChannelMember` files that enable objects on
//! `ChangeEvents`.
//!
//! Owns: finding the folders (the package directories of
//! `sfdx-project.json`, or the folder itself; every `objects` and
//! `platformEventChannelMembers` folder below them). Must not: parse the
//! files (`eventbus_objects::dx` does) or enable anything (see
//! [`crate::Cdc::provision_members`]).

use std::path::{Path, PathBuf};

use eventbus_objects::dx::{self, ChannelMember};
use eventbus_objects::model::ObjectCatalog;

use super::CdcError;

const MAX_DEPTH: usize = 16;

fn invalid(msg: String) -> CdcError {
    CdcError::Invalid(msg)
}

/// What a DX project defines besides platform events.
#[derive(Debug, Default)]
pub struct Project {
    /// Channel members (of `ChangeEvents` and of custom channels).
    pub members: Vec<ChannelMember>,
    /// Custom channels (`platformEventChannels/`).
    pub channels: Vec<dx::Channel>,
}

/// Adds the project's objects and fields at `dir` to `catalog` and returns
/// its channels and channel members.
///
/// # Errors
/// [`CdcError::Invalid`] naming the file of the first problem.
pub fn load_project(dir: &Path, catalog: &mut ObjectCatalog) -> Result<Project, CdcError> {
    let project_file = dir.join("sfdx-project.json");
    let roots = if project_file.is_file() {
        let text = std::fs::read_to_string(&project_file)
            .map_err(|e| invalid(format!("{}: cannot read: {e}", project_file.display())))?;
        let project =
            eventbus_schema::dx::parse_project(&text, &project_file.display().to_string())
                .map_err(|e| invalid(e.to_string()))?;
        project
            .package_dirs
            .iter()
            .map(|p| dir.join(p))
            .filter(|p| p.is_dir())
            .collect()
    } else {
        vec![dir.to_path_buf()]
    };
    let mut members = Vec::new();
    let mut channels = Vec::new();
    for root in roots {
        let mut found = Vec::new();
        find(&root, 0, &mut found)?;
        found.sort();
        found.dedup();
        for parent in found {
            if parent.join("objects").is_dir() {
                dx::read_objects(&parent, catalog).map_err(|e| invalid(e.to_string()))?;
            }
            if parent.join("platformEventChannels").is_dir() {
                channels.extend(dx::read_channels(&parent).map_err(|e| invalid(e.to_string()))?);
            }
            if parent.join("platformEventChannelMembers").is_dir() {
                members
                    .extend(dx::read_channel_members(&parent).map_err(|e| invalid(e.to_string()))?);
            }
        }
    }
    Ok(Project { members, channels })
}

/// Every folder below `dir` holding an `objects`,
/// `platformEventChannels` or `platformEventChannelMembers` folder.
fn find(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), CdcError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "metadata folder {}: nested more than {MAX_DEPTH} folders deep (a symlink loop?)",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| invalid(format!("{}: cannot read: {e}", dir.display())))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| invalid(format!("{}: cannot read: {e}", dir.display())))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name == "node_modules" || !path.is_dir() {
            continue;
        }
        dirs.push((name, path));
    }
    dirs.sort();
    for (name, path) in dirs {
        if name == "objects"
            || name == "platformEventChannelMembers"
            || name == "platformEventChannels"
        {
            out.push(dir.to_path_buf());
        } else {
            find(&path, depth + 1, out)?;
        }
    }
    Ok(())
}
