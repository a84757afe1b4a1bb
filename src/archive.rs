//! Reading archives safely: their kind by name, their members with paths
//! (and link targets) that stay inside the folder they unpack into, and
//! their contents streamed under limits, so that memory and disk stay
//! bounded whatever an archive holds. Used for release assets, bundle
//! archives and the ELF check.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Bad(String),
    #[error("cannot read the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid zip file: {0}")]
    Zip(Box<zip::result::ZipError>),
    #[error("member `{member}` would be written outside the folder ({why})")]
    Unsafe { member: String, why: String },
    #[error("the archive holds `{member}` twice")]
    Duplicate { member: String },
    #[error("`{member}` is a symlink loop")]
    Loop { member: String },
    #[error("the archive unpacks to more than {limit} ({what}); stopped")]
    Bomb { what: &'static str, limit: String },
}

impl From<zip::result::ZipError> for ArchiveError {
    fn from(e: zip::result::ZipError) -> ArchiveError {
        ArchiveError::Zip(Box::new(e))
    }
}

/// How much an archive may unpack to. From the environment, else defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `BUNDLE_MAX_UNPACKED_BYTES` (2 GiB): bytes an archive may unpack to,
    /// counting every member read or passed over.
    pub max_bytes: u64,
    /// `BUNDLE_MAX_UNPACK_RATIO` (200): unpacked bytes per compressed byte,
    /// checked once more than [`RATIO_FLOOR`] bytes have been unpacked.
    pub max_ratio: u64,
    /// `BUNDLE_MAX_ARCHIVE_MEMBERS` (200 000): members an archive may list.
    pub max_members: usize,
}

/// Below this many unpacked bytes the ratio is not checked (small, very
/// compressible files are normal).
pub const RATIO_FLOOR: u64 = 32 << 20;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 2 << 30,
            max_ratio: 200,
            max_members: 200_000,
        }
    }
}

impl Limits {
    pub fn from_env() -> Limits {
        let d = Limits::default();
        let num = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Limits {
            max_bytes: num("BUNDLE_MAX_UNPACKED_BYTES").unwrap_or(d.max_bytes),
            max_ratio: num("BUNDLE_MAX_UNPACK_RATIO").unwrap_or(d.max_ratio),
            max_members: num("BUNDLE_MAX_ARCHIVE_MEMBERS")
                .map(|n| n as usize)
                .unwrap_or(d.max_members),
        }
    }
}

pub use crate::model::plan::ArchiveKind;

/// The decompressed tar stream of a tar kind; None for the others.
fn tar_reader<'a>(kind: ArchiveKind, compressed: impl Read + 'a) -> Option<Box<dyn Read + 'a>> {
    match kind {
        ArchiveKind::TarGz => Some(Box::new(flate2::read::GzDecoder::new(compressed))),
        ArchiveKind::TarXz => Some(Box::new(xz2::read::XzDecoder::new(compressed))),
        ArchiveKind::Zip | ArchiveKind::Bare => None,
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
fn safe_link(member: &Path, target: &str) -> Result<PathBuf, String> {
    if target.starts_with('/') {
        return Err(format!("symlink to absolute path {target}"));
    }
    let base = member.parent().unwrap_or(Path::new(""));
    let joined = base.join(target);
    safe_member_path(&joined.to_string_lossy())
        .map_err(|_| format!("symlink to {target} points outside"))
}

/// One archive member, as listed (no contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file of the given (declared) size.
    File { size: u64 },
    /// A symbolic or hard link, as a path relative to the member's folder.
    Link(String),
}

/// Every member of an archive, by normalized path.
#[derive(Debug, Default)]
pub struct Listing {
    pub members: BTreeMap<PathBuf, Entry>,
}

impl Listing {
    /// Follow links from `member` to the regular file it names. Loops, and
    /// chains longer than 40 links, are reported as loops.
    pub fn resolve(&self, member: &Path) -> Result<Option<PathBuf>, ArchiveError> {
        let mut key = member.to_path_buf();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            match self.members.get(&key) {
                Some(Entry::File { .. }) => return Ok(Some(key)),
                None => return Ok(None),
                Some(Entry::Link(t)) => {
                    if !seen.insert(key.clone()) || seen.len() > 40 {
                        return Err(ArchiveError::Loop {
                            member: member.display().to_string(),
                        });
                    }
                    key = safe_link(&key, t).map_err(|why| ArchiveError::Unsafe {
                        member: key.display().to_string(),
                        why,
                    })?;
                }
            }
        }
    }
}

/// Counts what passes through a reader.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Stops a decompressed stream that grows past the limits: total bytes,
/// and bytes per compressed byte read beneath it.
struct Guard<R> {
    inner: R,
    limits: Limits,
    unpacked: u64,
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
}

fn bomb(what: &'static str, limit: String) -> std::io::Error {
    std::io::Error::other(ArchiveError::Bomb { what, limit })
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.unpacked += n as u64;
        if self.unpacked > self.limits.max_bytes {
            return Err(bomb(
                "BUNDLE_MAX_UNPACKED_BYTES",
                format!("{} bytes", self.limits.max_bytes),
            ));
        }
        let packed = self.compressed.get().max(1);
        if self.unpacked > RATIO_FLOOR && self.unpacked / packed > self.limits.max_ratio {
            return Err(bomb(
                "BUNDLE_MAX_UNPACK_RATIO",
                format!("{} times its compressed size", self.limits.max_ratio),
            ));
        }
        Ok(n)
    }
}

/// An I/O error, or the limit that stopped it.
fn from_io(e: std::io::Error) -> ArchiveError {
    if e.get_ref().is_some_and(|i| i.is::<ArchiveError>()) {
        if let Ok(inner) = e.into_inner().expect("checked").downcast::<ArchiveError>() {
            return *inner;
        }
        return ArchiveError::Bad("archive limit".into());
    }
    ArchiveError::Io(e)
}

fn bad(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Bad(e.to_string())
}

fn unsafe_(member: &str, why: String) -> ArchiveError {
    ArchiveError::Unsafe {
        member: member.to_string(),
        why,
    }
}

/// A tar stream of the file, guarded by the limits.
fn open_tar(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
) -> Result<tar::Archive<Box<dyn Read>>, ArchiveError> {
    let file = std::fs::File::open(path)?;
    let compressed = std::rc::Rc::new(std::cell::Cell::new(0));
    let counting = Counting {
        inner: std::io::BufReader::new(file),
        count: compressed.clone(),
    };
    let decoded = tar_reader(kind, counting).expect("a tar kind");
    let guarded: Box<dyn Read> = Box::new(Guard {
        inner: decoded,
        limits,
        unpacked: 0,
        compressed,
    });
    Ok(tar::Archive::new(guarded))
}

/// A zip archive, read through a buffer.
fn open_zip(
    path: &Path,
) -> Result<zip::ZipArchive<std::io::BufReader<std::fs::File>>, ArchiveError> {
    let file = std::fs::File::open(path)?;
    Ok(zip::ZipArchive::new(std::io::BufReader::new(file))?)
}

/// More members than `BUNDLE_MAX_ARCHIVE_MEMBERS` allows.
fn too_many_members(limits: Limits) -> ArchiveError {
    ArchiveError::Bomb {
        what: "BUNDLE_MAX_ARCHIVE_MEMBERS",
        limit: format!("{} members", limits.max_members),
    }
}

/// List the members of a zip or tar archive without unpacking them. Member
/// paths and link targets that would leave the folder, and members listed
/// twice, are refused.
pub fn list(kind: ArchiveKind, path: &Path, limits: Limits) -> Result<Listing, ArchiveError> {
    let mut listing = Listing::default();
    let mut add = |raw: &str, p: PathBuf, e: Entry| -> Result<(), ArchiveError> {
        if listing.members.len() >= limits.max_members {
            return Err(too_many_members(limits));
        }
        if listing.members.insert(p, e).is_some() {
            return Err(ArchiveError::Duplicate {
                member: raw.to_string(),
            });
        }
        Ok(())
    };
    match kind {
        ArchiveKind::Bare => return Err(bad("a bare file has no members")),
        ArchiveKind::Zip => {
            let mut zip = open_zip(path)?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i)?;
                let raw = entry.name()?.into_owned();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                if entry.is_dir() {
                    continue;
                }
                if entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000) {
                    let mut t = String::new();
                    (&mut entry).take(4096).read_to_string(&mut t)?;
                    safe_link(&p, &t).map_err(|why| unsafe_(&raw, why))?;
                    add(&raw, p, Entry::Link(t))?;
                } else {
                    add(&raw, p, Entry::File { size: entry.size() })?;
                }
            }
        }
        ArchiveKind::TarGz | ArchiveKind::TarXz => {
            let mut tar = open_tar(kind, path, limits)?;
            for entry in tar.entries().map_err(from_io)? {
                let entry = entry.map_err(from_io)?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                let ty = entry.header().entry_type();
                if ty.is_symlink() || ty.is_hard_link() {
                    let t = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let t = if ty.is_hard_link() {
                        // Hard links name their target from the archive's root.
                        let src = safe_member_path(&t).map_err(|why| unsafe_(&raw, why))?;
                        pathdiff(&src, p.parent().unwrap_or(Path::new("")))
                    } else {
                        safe_link(&p, &t).map_err(|why| unsafe_(&raw, why))?;
                        t
                    };
                    add(&raw, p, Entry::Link(t))?;
                } else if ty.is_file() {
                    add(&raw, p, Entry::File { size: entry.size() })?;
                }
            }
        }
    }
    Ok(listing)
}

/// Takes each member: its path, its declared size and a reader of it.
pub type SizedSink<'a, T> = dyn FnMut(&Path, u64, &mut dyn Read) -> Result<T, ArchiveError> + 'a;

/// Whether to go on reading an archive.
enum Flow {
    /// On to the next member (a zip member's unread rest is read through,
    /// so that the limits see it).
    Continue,
    /// On to the next member, leaving the rest of a zip member unread
    /// (nothing of it is produced, so nothing needs limiting).
    Skip,
    Stop,
}

/// Stream the regular files for which `wanted` is true to `sink`, under
/// the limits; nothing else is kept. The sink gets the normalized path and
/// a reader that ends at the member's end.
pub fn stream_files(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    wanted: &dyn Fn(&Path) -> bool,
    sink: &mut dyn FnMut(&Path, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    walk(kind, path, limits, wanted, &mut |p, _, r| {
        sink(p, r).map(|()| Flow::Continue)
    })
}

/// Like [`stream_files`], but what the sink leaves of a zip member is not
/// decompressed at all (for readers that look at the start of each member,
/// such as the ELF scan). Tar members are read through, as a stream must.
pub fn peek_files(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    wanted: &dyn Fn(&Path) -> bool,
    sink: &mut SizedSink<'_, ()>,
) -> Result<(), ArchiveError> {
    walk(kind, path, limits, wanted, &mut |p, size, r| {
        sink(p, size, r).map(|()| Flow::Skip)
    })
}

/// A member read whole, up to `cap` bytes (a longer one is an error).
fn read_whole(r: &mut dyn Read, cap: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut data = Vec::new();
    r.take(cap + 1).read_to_end(&mut data).map_err(from_io)?;
    if data.len() as u64 > cap {
        return Err(ArchiveError::Bomb {
            what: "a member read whole",
            limit: format!("{cap} bytes"),
        });
    }
    Ok(data)
}

/// The first regular file for which `wanted` is true, read whole up to
/// `cap` bytes (a longer one is an error); None when there is none. Reading
/// stops there.
pub fn read_member(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    wanted: &dyn Fn(&Path) -> bool,
    cap: u64,
) -> Result<Option<(PathBuf, Vec<u8>)>, ArchiveError> {
    let mut found = None;
    walk(kind, path, limits, wanted, &mut |p, _, r| {
        found = Some((p.to_path_buf(), read_whole(r, cap)?));
        Ok(Flow::Stop)
    })?;
    Ok(found)
}

/// A zip's file names (from its central directory, sorted) and the
/// contents of the members for which `wanted` is true, each read whole up
/// to `cap` bytes (a longer one is an error): one opening of the archive.
pub fn zip_names_and(
    path: &Path,
    limits: Limits,
    wanted: &dyn Fn(&Path) -> bool,
    cap: u64,
) -> Result<ZipPeek, ArchiveError> {
    let mut zip = open_zip(path)?;
    if zip.len() > limits.max_members {
        return Err(too_many_members(limits));
    }
    let mut peek = ZipPeek::default();
    let mut picked = Vec::new();
    for i in 0..zip.len() {
        let raw = zip
            .name_for_index(i)
            .transpose()?
            .unwrap_or_default()
            .into_owned();
        if raw.ends_with('/') {
            continue;
        }
        let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
        if wanted(&p) {
            picked.push((i, p.clone()));
        }
        peek.names.push(slashed(&p));
    }
    peek.names.sort();
    for (i, p) in picked {
        let mut entry = zip.by_index(i)?;
        peek.members.push((p, read_whole(&mut entry, cap)?));
    }
    Ok(peek)
}

/// What [`zip_names_and`] read.
#[derive(Debug, Default)]
pub struct ZipPeek {
    /// Every file's `/`-separated path, sorted.
    pub names: Vec<String>,
    /// The wanted members' paths and bytes.
    pub members: Vec<(PathBuf, Vec<u8>)>,
}

/// A member path with `/` separators.
pub fn slashed(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn walk(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    wanted: &dyn Fn(&Path) -> bool,
    sink: &mut SizedSink<'_, Flow>,
) -> Result<(), ArchiveError> {
    match kind {
        ArchiveKind::Bare => Err(bad("a bare file has no members")),
        ArchiveKind::Zip => {
            let mut zip = open_zip(path)?;
            let mut unpacked = 0u64;
            for i in 0..zip.len() {
                // The name comes from the central directory: members not
                // wanted are passed over without seeking to them.
                let raw = zip
                    .name_for_index(i)
                    .transpose()?
                    .unwrap_or_default()
                    .into_owned();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                if !wanted(&p) {
                    continue;
                }
                let entry = zip.by_index(i)?;
                let link = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
                if entry.is_dir() || link {
                    continue;
                }
                let declared = entry.size();
                let compressed = std::rc::Rc::new(std::cell::Cell::new(entry.compressed_size()));
                let room = limits.max_bytes.saturating_sub(unpacked);
                let mut guard = Guard {
                    inner: entry,
                    limits: Limits {
                        max_bytes: room,
                        ..limits
                    },
                    unpacked: 0,
                    compressed,
                };
                let flow = sink(&p, declared, &mut guard)?;
                match flow {
                    Flow::Stop => return Ok(()),
                    // Drain what the sink left, so the limits see it all.
                    Flow::Continue => {
                        std::io::copy(&mut guard, &mut std::io::sink()).map_err(from_io)?;
                    }
                    Flow::Skip => {}
                }
                unpacked += guard.unpacked;
            }
            Ok(())
        }
        ArchiveKind::TarGz | ArchiveKind::TarXz => {
            let mut tar = open_tar(kind, path, limits)?;
            for entry in tar.entries().map_err(from_io)? {
                let mut entry = entry.map_err(from_io)?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
                if wanted(&p) {
                    let declared = entry.size();
                    if let Flow::Stop = sink(&p, declared, &mut entry)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
    }
}

/// Write a member's stream to `dest` (a new file).
pub fn write_member(reader: &mut dyn Read, dest: &Path) -> Result<u64, ArchiveError> {
    let mut out =
        std::fs::File::create(dest).map_err(|e| bad(format!("{}: {e}", dest.display())))?;
    std::io::copy(reader, &mut out).map_err(from_io)
}

/// Unpack every regular file of a zip or tar archive under `dest` (links
/// are not followed or made). Returns the members written.
pub fn unpack_files(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    dest: &Path,
) -> Result<Vec<PathBuf>, ArchiveError> {
    // Listing first refuses escapes and duplicates before anything is written.
    list(kind, path, limits)?;
    let mut written = Vec::new();
    stream_files(kind, path, limits, &|_| true, &mut |p, r| {
        let out = dest.join(p);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_member(r, &out)?;
        written.push(p.to_path_buf());
        Ok(())
    })?;
    Ok(written)
}

/// A regular file written by [`unpack_tar_stripped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Its path under the destination.
    pub path: PathBuf,
    /// Whether the archive marks it executable (any `x` bit).
    pub executable: bool,
    /// The sha256 of the bytes written, hashed as they were written.
    pub sha256: crate::model::Sha256,
    /// How many bytes were written.
    pub size: u64,
}

/// Unpack the regular files of a tar archive under `dest`, as npm unpacks
/// its tarballs: each member's path is made safe first (one that leaves
/// the archive's folder stops the unpacking before that member is
/// written; the caller discards the folder) and then stripped of its
/// first `strip` components (`package/...`). Links and other special
/// members are passed over; a later member of the same path replaces an
/// earlier one. Files are written 0644, or 0755 when the archive marks
/// them executable, and hashed as they are written.
pub fn unpack_tar_stripped(
    kind: ArchiveKind,
    path: &Path,
    limits: Limits,
    dest: &Path,
    strip: usize,
) -> Result<Vec<Unpacked>, ArchiveError> {
    let mut written: BTreeMap<PathBuf, Unpacked> = BTreeMap::new();
    let mut members = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tar = open_tar(kind, path, limits)?;
    for entry in tar.entries().map_err(from_io)? {
        let mut entry = entry.map_err(from_io)?;
        members += 1;
        if members > limits.max_members {
            return Err(too_many_members(limits));
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let p = safe_member_path(&raw).map_err(|why| unsafe_(&raw, why))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let rest: PathBuf = p.components().skip(strip).collect();
        if rest.as_os_str().is_empty() {
            continue;
        }
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        let out = dest.join(&rest);
        let fail = |e: std::io::Error| bad(format!("{}: {e}", out.display()));
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        if written.contains_key(&rest) {
            std::fs::remove_file(&out).map_err(fail)?;
        }
        let mut file = std::fs::File::create(&out).map_err(fail)?;
        let mut hasher = crate::model::hash::Hasher::default();
        loop {
            let n = entry.read(&mut buf).map_err(from_io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            std::io::Write::write_all(&mut file, &buf[..n]).map_err(fail)?;
        }
        drop(file);
        crate::fsutil::set_mode(&out, if executable { 0o755 } else { 0o644 }).map_err(fail)?;
        let (sha256, size) = hasher.finish();
        written.insert(
            rest.clone(),
            Unpacked {
                path: rest,
                executable,
                sha256,
                size,
            },
        );
    }
    Ok(written.into_values().collect())
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
    use std::io::Write;

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
        assert!(tar_reader(ArchiveKind::Zip, std::io::empty()).is_none());
        assert!(tar_reader(ArchiveKind::TarXz, std::io::empty()).is_some());
    }

    fn tar_gz(dir: &Path, members: &[(&str, &[u8])], links: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        for (name, target) in links {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, name, target).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap().flush().unwrap();
        path
    }

    #[test]
    fn loops_and_duplicates_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = tar_gz(
            d.path(),
            &[("x/a", b"1")],
            &[("x/l1", "l2"), ("x/l2", "l1")],
        );
        let listing = list(ArchiveKind::TarGz, &p, Limits::default()).unwrap();
        let e = listing.resolve(Path::new("x/l1")).unwrap_err();
        assert!(matches!(e, ArchiveError::Loop { .. }), "{e}");
        assert_eq!(e.to_string(), "`x/l1` is a symlink loop");
        assert_eq!(
            listing.resolve(Path::new("x/a")).unwrap().unwrap(),
            PathBuf::from("x/a")
        );
        let p = tar_gz(d.path(), &[("x/a", b"1"), ("./x/a", b"2")], &[]);
        let e = list(ArchiveKind::TarGz, &p, Limits::default()).unwrap_err();
        assert!(matches!(e, ArchiveError::Duplicate { .. }), "{e}");
    }

    #[test]
    fn a_bomb_is_stopped_by_the_ratio_and_the_total() {
        let d = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 48 << 20];
        let p = tar_gz(d.path(), &[("bomb", &zeros), ("tool", b"\x7fELF")], &[]);
        let e = list(ArchiveKind::TarGz, &p, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("BUNDLE_MAX_UNPACK_RATIO"), "{e}");
        let small = Limits {
            max_bytes: 1 << 20,
            max_ratio: u64::MAX,
            ..Limits::default()
        };
        let e = list(ArchiveKind::TarGz, &p, small).unwrap_err();
        assert!(e.to_string().contains("BUNDLE_MAX_UNPACKED_BYTES"), "{e}");
        // Within generous limits, only the wanted member reaches the sink.
        let roomy = Limits {
            max_ratio: u64::MAX,
            ..Limits::default()
        };
        let mut got = Vec::new();
        stream_files(
            ArchiveKind::TarGz,
            &p,
            roomy,
            &|p| p == Path::new("tool"),
            &mut |p, r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).unwrap();
                got.push((p.to_path_buf(), v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, vec![(PathBuf::from("tool"), b"\x7fELF".to_vec())]);
    }
}
