//! Reading archives safely: their kind by name, and their members with
//! paths (and link targets) that stay inside the folder they unpack into.
//! Used for release assets, bundle archives and the ELF check.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Bad(String),
    #[error("member `{member}` would be written outside the folder ({why})")]
    Unsafe { member: String, why: String },
}

/// How an archive is packed, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    Zip,
    TarGz,
    TarXz,
    Bare,
}

impl ArchiveKind {
    /// The kind of a URL's file (query and fragment ignored).
    pub fn from_url(url: &str) -> ArchiveKind {
        ArchiveKind::from_name(url.split(['?', '#']).next().unwrap_or(url))
    }

    /// The kind of a file, by its name's ending (any case).
    pub fn from_name(name: &str) -> ArchiveKind {
        let path = name.to_ascii_lowercase();
        if path.ends_with(".zip") {
            ArchiveKind::Zip
        } else if path.ends_with(".tar.gz") || path.ends_with(".tgz") {
            ArchiveKind::TarGz
        } else if path.ends_with(".tar.xz") || path.ends_with(".txz") {
            ArchiveKind::TarXz
        } else {
            ArchiveKind::Bare
        }
    }

    /// The decompressed tar stream of a tar kind; None for the others.
    pub fn tar_reader<'a>(self, compressed: impl Read + 'a) -> Option<Box<dyn Read + 'a>> {
        match self {
            ArchiveKind::TarGz => Some(Box::new(flate2::read::GzDecoder::new(compressed))),
            ArchiveKind::TarXz => Some(Box::new(xz2::read::XzDecoder::new(compressed))),
            ArchiveKind::Zip | ArchiveKind::Bare => None,
        }
    }
}

/// A path inside an archive that stays inside the extraction folder.
pub fn safe_member_path(name: &str) -> Result<PathBuf, String> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("absolute path".into());
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("`..` leaves the folder".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok(out)
}

/// A symlink at `member` pointing to `target` stays inside the folder.
pub fn safe_link(member: &Path, target: &str) -> Result<PathBuf, String> {
    if target.starts_with('/') {
        return Err(format!("symlink to absolute path {target}"));
    }
    let base = member.parent().unwrap_or(Path::new(""));
    let joined = base.join(target);
    safe_member_path(&joined.to_string_lossy())
        .map_err(|_| format!("symlink to {target} points outside"))
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    File(Vec<u8>),
    Link(String),
}

/// Every member of a zip or tar archive, by normalized path. Member paths
/// and link targets that would leave the extraction folder are refused.
pub fn read_members(
    kind: ArchiveKind,
    path: &Path,
) -> Result<BTreeMap<PathBuf, Member>, ArchiveError> {
    let bad = |e: &dyn std::fmt::Display| ArchiveError::Bad(e.to_string());
    let unsafe_ = |member: &str, why: String| ArchiveError::Unsafe {
        member: member.to_string(),
        why,
    };
    let mut out = BTreeMap::new();
    let file = std::fs::File::open(path).map_err(|e| bad(&e))?;
    match kind {
        ArchiveKind::Bare => unreachable!("bare files have no members"),
        ArchiveKind::Zip => {
            let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(&e))?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i).map_err(|e| bad(&e))?;
                let raw = entry.name().to_string();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                if entry.is_dir() {
                    continue;
                }
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(|e| bad(&e))?;
                let is_link = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
                if is_link {
                    let t = String::from_utf8_lossy(&data).into_owned();
                    safe_link(&p, &t).map_err(|why| unsafe_(&raw, why))?;
                    out.insert(p, Member::Link(t));
                } else {
                    out.insert(p, Member::File(data));
                }
            }
        }
        ArchiveKind::TarGz | ArchiveKind::TarXz => {
            let reader = kind.tar_reader(file).expect("a tar kind");
            let mut tar = tar::Archive::new(reader);
            for entry in tar.entries().map_err(|e| bad(&e))? {
                let mut entry = entry.map_err(|e| bad(&e))?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                let ty = entry.header().entry_type();
                if ty.is_symlink() || ty.is_hard_link() {
                    let t = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    if ty.is_hard_link() {
                        let src = safe_member_path(&t).map_err(|why| unsafe_(&raw, why))?;
                        let rel = pathdiff(&src, p.parent().unwrap_or(Path::new("")));
                        out.insert(p, Member::Link(rel));
                    } else {
                        safe_link(&p, &t).map_err(|why| unsafe_(&raw, why))?;
                        out.insert(p, Member::Link(t));
                    }
                } else if ty.is_file() {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).map_err(|e| bad(&e))?;
                    out.insert(p, Member::File(data));
                }
            }
        }
    }
    Ok(out)
}

/// Relative path from `base` to `to` (both archive-relative, safe).
fn pathdiff(to: &Path, base: &Path) -> String {
    let up = base.components().count();
    let mut s = "../".repeat(up);
    s.push_str(&to.to_string_lossy());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert!(safe_member_path("a/b/c").is_ok());
        assert!(safe_member_path("a/../b").is_ok());
        assert!(safe_member_path("../x").is_err());
        assert!(safe_member_path("a/../../x").is_err());
        assert!(safe_member_path("/etc/passwd").is_err());
        assert!(safe_link(Path::new("a/b"), "c").is_ok());
        assert!(safe_link(Path::new("a/b"), "../c").is_ok());
        assert!(safe_link(Path::new("a/b"), "../../c").is_err());
        assert!(safe_link(Path::new("b"), "/bin/sh").is_err());
    }

    #[test]
    fn archive_kinds() {
        assert_eq!(ArchiveKind::from_url("https://x/a.zip"), ArchiveKind::Zip);
        assert_eq!(
            ArchiveKind::from_url("https://x/a.tar.gz"),
            ArchiveKind::TarGz
        );
        assert_eq!(
            ArchiveKind::from_url("https://x/a.tgz?x=1"),
            ArchiveKind::TarGz
        );
        assert_eq!(
            ArchiveKind::from_url("https://x/a.tar.xz"),
            ArchiveKind::TarXz
        );
        assert_eq!(
            ArchiveKind::from_url("https://x/jq-linux64"),
            ArchiveKind::Bare
        );
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(ArchiveKind::from_name("B.TGZ"), ArchiveKind::TarGz);
        assert_eq!(ArchiveKind::from_name("a.whl"), ArchiveKind::Bare);
        assert!(ArchiveKind::Zip.tar_reader(std::io::empty()).is_none());
        assert!(ArchiveKind::TarXz.tar_reader(std::io::empty()).is_some());
    }
}
