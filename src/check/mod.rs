//! The `check` stage: read every ELF file (including the shared objects
//! inside wheels) and judge whether it can run on the target.

use crate::error::Diagnose;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::target::Target;
use crate::model::plan::ArchiveKind;

/// Libraries a glibc Linux target is assumed to have: glibc's own, plus the
/// manylinux2014 policy's base list (PEP 599).
pub const BASE_LIBRARIES: &[&str] = &[
    // glibc
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "libresolv.so.2",
    "libnsl.so.1",
    "libcrypt.so.1",
    "libanl.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "linux-vdso.so.1",
    // manylinux2014 policy
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libX11.so.6",
    "libXext.so.6",
    "libXrender.so.1",
    "libICE.so.6",
    "libSM.so.6",
    "libGL.so.1",
    "libgobject-2.0.so.0",
    "libgthread-2.0.so.0",
    "libglib-2.0.so.0",
];

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: crate::archive::ArchiveError,
    },
    #[error("{failed} of {total} ELF file(s) cannot run on target {target}")]
    Inspect {
        target: String,
        failed: usize,
        total: usize,
    },
    #[error("{count} file(s) cannot run on target {target}:\n{details}")]
    Incompatible {
        target: String,
        count: usize,
        details: String,
    },
}

impl Diagnose for CheckError {
    fn hint(&self) -> Option<String> {
        match self {
            CheckError::Incompatible { details, .. } if details.contains("GLIBC") => Some(
                "a prebuilt binary built against a newer glibc cannot run there: build it from source in the target's own image with a [[build]] recipe (a source `url` and a `script`, or a `crate`; see the README), or use a static or musl build".into(),
            ),
            CheckError::Incompatible { .. } | CheckError::Inspect { .. } => Some(
                "use a build made for the target's architecture and glibc (a static, musl or manylinux build), or pass another --target".into(),
            ),
            _ => None,
        }
    }
}

/// What one ELF file needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElfInfo {
    /// Path relative to what was inspected (`wheel.whl!pkg/mod.so` inside archives).
    pub path: String,
    /// CPU the code is for: `x86_64`, `aarch64`, or `e_machine N`.
    pub machine: String,
    pub needed: Vec<String>,
    /// Highest `GLIBC_x.y` required, e.g. "2.27".
    pub glibc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibcxx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxxabi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soname: Option<String>,
    /// DT_RUNPATH and DT_RPATH entries, as written (`$ORIGIN/../lib`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runpath: Vec<String>,
    /// Set when the file starts like ELF but cannot be read as ELF
    /// (truncated or damaged): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
}

/// The verdict for one file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    #[serde(flatten)]
    pub elf: ElfInfo,
    pub ok: bool,
    /// Why it cannot run (fatal).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Oddities that do not stop the file from working.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Libraries neither the target nor the bundle provides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn max_version(current: &mut Option<String>, candidate: &str) {
    if current
        .as_deref()
        .is_none_or(|c| version_key(candidate) > version_key(c))
    {
        *current = Some(candidate.to_string());
    }
}

/// Parse an ELF image. Returns None when `data` is not ELF.
pub fn read_elf(path: &str, data: &[u8]) -> Option<ElfInfo> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return None;
    }
    let elf = match goblin::elf::Elf::parse(data) {
        Ok(elf) => elf,
        Err(e) => {
            return Some(ElfInfo {
                path: path.to_string(),
                machine: "unknown".into(),
                needed: Vec::new(),
                glibc: None,
                glibcxx: None,
                cxxabi: None,
                interpreter: None,
                soname: None,
                runpath: Vec::new(),
                corrupt: Some(e.to_string()),
            })
        }
    };
    let mut glibc = None;
    let mut glibcxx = None;
    let mut cxxabi = None;
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                let Some(name) = elf.dynstrtab.get_at(aux.vna_name) else {
                    continue;
                };
                if let Some(v) = name.strip_prefix("GLIBC_") {
                    if v.starts_with(|c: char| c.is_ascii_digit()) {
                        max_version(&mut glibc, v);
                    }
                } else if let Some(v) = name.strip_prefix("GLIBCXX_") {
                    max_version(&mut glibcxx, v);
                } else if let Some(v) = name.strip_prefix("CXXABI_") {
                    if v.starts_with(|c: char| c.is_ascii_digit()) {
                        max_version(&mut cxxabi, v);
                    }
                }
            }
        }
    }
    use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_X86_64};
    let machine = match elf.header.e_machine {
        EM_X86_64 => "x86_64".to_string(),
        EM_AARCH64 => "aarch64".to_string(),
        EM_386 => "i386".to_string(),
        EM_ARM => "arm".to_string(),
        other => format!("e_machine {other}"),
    };
    Some(ElfInfo {
        path: path.to_string(),
        machine,
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        glibc,
        glibcxx,
        cxxabi,
        interpreter: elf.interpreter.map(str::to_string),
        soname: elf.soname.map(str::to_string),
        runpath: elf
            .runpaths
            .iter()
            .chain(elf.rpaths.iter())
            .flat_map(|p| p.split(':'))
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        corrupt: None,
    })
}

/// Judge files against the target. `provided` are sonames the bundle carries
/// (its `lib/`, or libraries vendored in the same wheel).
pub fn judge(target: &Target, elf: ElfInfo, provided: &BTreeSet<String>) -> Verdict {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if let Some(why) = &elf.corrupt {
        let msg = format!("{} is a damaged or truncated ELF file ({why})", elf.path);
        // Inside a wheel it may be test data; anywhere else it is a program.
        if elf.path.contains(".whl!") {
            warnings.push(msg);
        } else {
            errors.push(msg);
        }
        return Verdict {
            ok: errors.is_empty(),
            elf,
            errors,
            warnings,
            missing: Vec::new(),
        };
    }
    if elf.machine != target.arch.as_str() {
        let msg = format!(
            "{} is built for {}; target {} is {}",
            elf.path,
            elf.machine,
            target.name,
            target.arch.as_str()
        );
        // Inside a wheel whose tag fits the target, a file for another CPU
        // is never loaded there (some wheels carry helpers for several).
        if elf.path.contains(".whl!") {
            warnings.push(msg);
        } else {
            errors.push(msg);
        }
    }
    // A wheel tagged for any platform promises nothing about the native
    // helpers it may carry (debugpy ships some for newer glibc): such a
    // mismatch fails only when the helper is loaded, so it is a warning.
    // A platform-tagged wheel promises its .so files run: an error.
    let in_pure_wheel = elf
        .path
        .split_once(".whl!")
        .map(|(w, _)| format!("{}.whl", w.rsplit('/').next().unwrap_or(w)))
        .and_then(|w| crate::resolve::tags::WheelName::parse(&w))
        .is_some_and(|w| w.platform.iter().all(|p| p == "any"));
    let mut too_new = Vec::new();
    let have = target.glibc_str();
    if let Some(need) = &elf.glibc {
        if version_key(need) > version_key(&have) {
            too_new.push(format!(
                "{} needs GLIBC_{need}; target {} has {have}",
                elf.path, target.name
            ));
        }
    }
    if let (Some(need), Some(have)) = (&elf.glibcxx, &target.glibcxx) {
        if version_key(need) > version_key(have) {
            too_new.push(format!(
                "{} needs GLIBCXX_{need}; target {} has {have}",
                elf.path, target.name
            ));
        }
    }
    if in_pure_wheel {
        warnings.extend(
            too_new
                .into_iter()
                .map(|m| format!("{m} (a helper in a pure wheel: it fails only if loaded)")),
        );
    } else {
        errors.extend(too_new);
    }
    let missing: Vec<String> = elf
        .needed
        .iter()
        .filter(|n| {
            !BASE_LIBRARIES.contains(&n.as_str())
                && !target.libraries.contains(*n)
                && !provided.contains(*n)
        })
        .cloned()
        .collect();
    Verdict {
        ok: errors.is_empty(),
        elf,
        errors,
        warnings,
        missing,
    }
}

/// ELF files inside a wheel (paths are member names), through the cache.
pub fn scan_wheel_cached(
    path: &Path,
    sha256: &crate::model::Sha256,
    cache: &crate::fetch::cache::Cache,
) -> Result<Vec<ElfInfo>, CheckError> {
    let key = cache.keyed("elf", &format!("v3 {sha256}"), ".json");
    through_cache(cache, &key, || zip_members(path))
}

/// A scan kept in the cache under `key`, or made now and kept.
fn through_cache(
    cache: &crate::fetch::cache::Cache,
    key: &Path,
    scan: impl FnOnce() -> Result<Vec<ElfInfo>, CheckError>,
) -> Result<Vec<ElfInfo>, CheckError> {
    if let Some(m) = cache.read_json::<Vec<ElfInfo>>(key) {
        return Ok(m);
    }
    let m = scan()?;
    if let Err(e) = cache.write_json(key, &m) {
        tracing::warn!("cannot cache ELF scan at {}: {e}", key.display());
    }
    Ok(m)
}

/// ELF files inside a tar or zip archive (an npm tarball, say), through
/// the cache; paths are member names.
pub fn scan_archive_cached(
    path: &Path,
    kind: ArchiveKind,
    sha256: &crate::model::Sha256,
    cache: &crate::fetch::cache::Cache,
) -> Result<Vec<ElfInfo>, CheckError> {
    let key = cache.keyed("elf", &format!("v3 {kind:?} {sha256}"), ".json");
    through_cache(cache, &key, || archive_members(path, kind, false))
}

/// Wheels of a staged bundle, by relative path: their sha256 and the cache
/// that keeps their scans (wheels are immutable by hash).
pub type CachedWheels<'a> = (
    &'a BTreeMap<String, crate::model::Sha256>,
    &'a crate::fetch::cache::Cache,
);

/// ELF files under a folder, paths relative to it. Wheels listed in
/// `cached` are read through the cache.
pub fn scan_dir(root: &Path, cached: Option<CachedWheels>) -> Result<Vec<ElfInfo>, CheckError> {
    let files = crate::fsutil::relative_files(root).map_err(|source| CheckError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (rel, f) in files {
        match cached.and_then(|(hashes, cache)| Some((hashes.get(&rel)?, cache))) {
            Some((sha, cache)) => out.extend(prefixed(&rel, scan_wheel_cached(&f, sha, cache)?)),
            None => scan_file(&f, &rel, &mut out)?,
        }
    }
    Ok(out)
}

/// Read every ELF file in a file, directory, wheel or zip. Directory entries
/// are reported relative to `root`; archive members as `archive!member`.
pub fn scan(root: &Path) -> Result<Vec<ElfInfo>, CheckError> {
    let meta = std::fs::metadata(root).map_err(|source| CheckError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return scan_dir(root, None);
    }
    let mut out = Vec::new();
    scan_file(root, &root.display().to_string(), &mut out)?;
    Ok(out)
}

/// Archive members' paths as `label!member`.
fn prefixed(label: &str, members: Vec<ElfInfo>) -> impl Iterator<Item = ElfInfo> + '_ {
    members.into_iter().map(move |mut i| {
        i.path = format!("{label}!{}", i.path);
        i
    })
}

/// Whether a file of this name is looked at as a possible ELF file: all
/// but Python sources and stubs (`.py`, `.pyi`), which Python reads as
/// text and no loader maps, as auditwheel also skips them. They are most
/// of a big set's members (9,000 of 14,600), each otherwise decompressed
/// to its first bytes.
pub fn may_be_elf(path: &Path) -> bool {
    !matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("py" | "pyi")
    )
}

fn scan_file(path: &Path, label: &str, out: &mut Vec<ElfInfo>) -> Result<(), CheckError> {
    if !may_be_elf(Path::new(label)) {
        return Ok(());
    }
    // Wheels are zips.
    let kind = match ArchiveKind::from_name(label) {
        ArchiveKind::Bare if label.to_ascii_lowercase().ends_with(".whl") => ArchiveKind::Zip,
        kind => kind,
    };
    // A bundle archive (not a wheel) is read with the wheels it holds.
    let is_wheel = label.to_ascii_lowercase().ends_with(".whl");
    match kind {
        ArchiveKind::Zip | ArchiveKind::TarGz | ArchiveKind::TarXz => {
            out.extend(prefixed(label, archive_members(path, kind, !is_wheel)?));
            return Ok(());
        }
        ArchiveKind::Bare => {}
    }
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if f.read_exact(&mut head).is_err() || &head != b"\x7fELF" {
        return Ok(());
    }
    let data = std::fs::read(path).map_err(|source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(info) = read_elf(label, &data) {
        out.push(info);
    }
    Ok(())
}

/// Read an archive member as ELF, decompressing past the magic only when it is ELF.
/// `size` is the member's declared size: the buffer is made that big at
/// once (within a bound), not doubled as it fills, which would hold two
/// copies of a large library at the moment it grows.
fn read_elf_member(
    entry: &mut dyn Read,
    size: u64,
    label: &str,
) -> std::io::Result<Option<ElfInfo>> {
    let mut head = [0u8; 4];
    if entry.read_exact(&mut head).is_err() || &head != b"\x7fELF" {
        return Ok(None);
    }
    let held = size.min(512 << 20);
    let _share = MEMBER_MEMORY.take(held);
    let mut data = Vec::with_capacity(held as usize);
    data.extend_from_slice(&head);
    entry.read_to_end(&mut data)?;
    Ok(read_elf(label, &data))
}

/// The most bytes of archive members that scans running at the same time
/// hold in memory together (a member bigger than this is read alone).
const MEMBER_MEMORY_CAP: u64 = 32 << 20;

/// Memory shared by the scans of all threads: the wheels' scans run in
/// parallel, but two large libraries are not held at once.
static MEMBER_MEMORY: MemoryBudget = MemoryBudget::new(MEMBER_MEMORY_CAP);

/// A count of bytes in use, up to a cap; taking more waits until enough is
/// given back.
struct MemoryBudget {
    cap: u64,
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

/// Bytes taken from a [`MemoryBudget`], given back on drop.
struct MemoryShare<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    const fn new(cap: u64) -> MemoryBudget {
        MemoryBudget {
            cap,
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Take `bytes` (at most the whole cap), waiting while others hold too
    /// much of it.
    fn take(&self, bytes: u64) -> MemoryShare<'_> {
        let bytes = bytes.min(self.cap);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.cap {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        MemoryShare {
            budget: self,
            bytes,
        }
    }
}

impl Drop for MemoryShare<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// ELF files in a zip, wheel, tar.gz or tar.xz, named by member path and
/// sorted; read through the archive limits.
/// With `open_wheels` (a bundle archive, not a wheel), the wheels it holds
/// are read too, one level deep.
fn archive_members(
    path: &Path,
    kind: ArchiveKind,
    open_wheels: bool,
) -> Result<Vec<ElfInfo>, CheckError> {
    let mut found = Vec::new();
    crate::archive::peek_files(
        kind,
        path,
        crate::archive::Limits::from_env(),
        &|member| may_be_elf(member),
        &mut |member, size, reader| {
            let name = member.to_string_lossy().replace('\\', "/");
            if open_wheels && name.ends_with(".whl") {
                // A wheel inside a bundle archive: its own members, as for
                // a bundle folder (one level deep).
                let mut tmp = tempfile::NamedTempFile::new()?;
                std::io::copy(reader, &mut tmp)?;
                let inner = archive_members(tmp.path(), ArchiveKind::Zip, false)
                    .map_err(|e| crate::archive::ArchiveError::Bad(e.to_string()))?;
                found.extend(prefixed(&name, inner));
                return Ok(());
            }
            if let Some(info) = read_elf_member(reader, size, &name)
                .map_err(|e| crate::archive::ArchiveError::Bad(e.to_string()))?
            {
                found.push(info);
            }
            Ok(())
        },
    )
    .map_err(|source| CheckError::Archive {
        path: path.to_path_buf(),
        source,
    })?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// ELF files in a zip (or wheel), named by member path.
fn zip_members(path: &Path) -> Result<Vec<ElfInfo>, CheckError> {
    archive_members(path, ArchiveKind::Zip, false)
}

/// Sonames provided by files in the scan (vendored libraries).
fn provided_sonames(infos: &[ElfInfo]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in infos {
        let file_name = i.path.rsplit(['/', '!']).next().unwrap_or(&i.path);
        let group = i.path.split('!').next().unwrap_or("").to_string();
        map.entry(group.clone())
            .or_default()
            .push(file_name.to_string());
        if let Some(s) = &i.soname {
            map.entry(group).or_default().push(s.clone());
        }
    }
    map
}

/// The bundle's folders (`/`-separated, relative) that a file's
/// `$ORIGIN` RUNPATH entries name.
fn origin_dirs(i: &ElfInfo) -> Vec<String> {
    let here = i.path.rsplit_once('/').map_or("", |(d, _)| d);
    i.runpath
        .iter()
        .flat_map(|r| r.split(':'))
        .filter_map(|entry| {
            let rest = entry
                .strip_prefix("$ORIGIN")
                .or_else(|| entry.strip_prefix("${ORIGIN}"))?;
            let mut parts: Vec<&str> = here.split('/').filter(|p| !p.is_empty()).collect();
            for p in rest.split('/').filter(|p| !p.is_empty() && *p != ".") {
                if p == ".." {
                    parts.pop()?;
                } else {
                    parts.push(p);
                }
            }
            Some(parts.join("/"))
        })
        .collect()
}

/// Judge a whole scan: libraries vendored in the same archive (or anywhere
/// in the bundle's `lib/`, or in a folder of the bundle the file's
/// `$ORIGIN` RUNPATH names, as npm platform packages lay them out) count as
/// provided, as do `system` (sonames the target's sandbox image was seen
/// to have).
pub fn judge_all(target: &Target, infos: Vec<ElfInfo>, system: &BTreeSet<String>) -> Vec<Verdict> {
    let groups = provided_sonames(&infos);
    let bundle_libs: BTreeSet<String> = infos
        .iter()
        .filter(|i| i.path.starts_with("lib/"))
        .flat_map(|i| {
            let f = i.path.rsplit('/').next().unwrap_or(&i.path).to_string();
            std::iter::once(f).chain(i.soname.clone())
        })
        .collect();
    // The bundle's own files by folder: file names and sonames.
    let mut by_dir: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in infos.iter().filter(|i| !i.path.contains('!')) {
        let (dir, file) = i.path.rsplit_once('/').unwrap_or(("", &i.path));
        let names = by_dir.entry(dir).or_default();
        names.push(file.to_string());
        names.extend(i.soname.clone());
    }
    let origin: Vec<Vec<String>> = infos
        .iter()
        .map(|i| {
            if i.path.contains('!') {
                return Vec::new();
            }
            origin_dirs(i)
                .iter()
                .flat_map(|d| by_dir.get(d.as_str()).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    infos
        .into_iter()
        .zip(origin)
        .map(|(i, beside)| {
            let group = i.path.split('!').next().unwrap_or("").to_string();
            let mut provided = bundle_libs.clone();
            provided.extend(system.iter().cloned());
            provided.extend(beside);
            if i.path.contains('!') {
                provided.extend(groups.get(&group).cloned().unwrap_or_default());
            }
            judge(target, i, &provided)
        })
        .collect()
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn origin_runpaths_name_folders_of_the_bundle() {
        let i = ElfInfo {
            path: "node_modules/@img/sharp-linux-x64/lib/sharp.node".into(),
            machine: "x86_64".into(),
            needed: Vec::new(),
            glibc: None,
            glibcxx: None,
            cxxabi: None,
            interpreter: None,
            soname: None,
            runpath: vec![
                "$ORIGIN/../../sharp-libvips-linux-x64/lib:$ORIGIN".into(),
                "/usr/lib".into(),
                "$ORIGIN/../../../../../../x".into(),
            ],
            corrupt: None,
        };
        assert_eq!(
            origin_dirs(&i),
            [
                "node_modules/@img/sharp-libvips-linux-x64/lib",
                "node_modules/@img/sharp-linux-x64/lib"
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_makes_a_large_member_wait_for_room() {
        let budget = std::sync::Arc::new(MemoryBudget::new(100));
        let small = budget.take(30);
        // More than the cap is taken as the whole cap.
        let (tx, rx) = std::sync::mpsc::channel();
        let b = budget.clone();
        let waiter = std::thread::spawn(move || {
            let whole = b.take(1_000);
            tx.send(whole.bytes).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "it must wait while 30 are held");
        let other = budget.take(70);
        assert_eq!(other.bytes, 70);
        drop(other);
        drop(small);
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(100));
        waiter.join().unwrap();
        assert_eq!(*budget.used.lock().unwrap(), 0);
    }

    #[test]
    fn version_order_is_numeric() {
        let mut v = None;
        for x in ["2.2.5", "2.17", "2.3.4", "2.9"] {
            max_version(&mut v, x);
        }
        assert_eq!(v.as_deref(), Some("2.17"));
    }

    fn info(path: &str, machine: &str, glibc: &str, needed: &[&str]) -> ElfInfo {
        ElfInfo {
            path: path.into(),
            machine: machine.into(),
            needed: needed.iter().map(|s| s.to_string()).collect(),
            glibc: Some(glibc.into()),
            glibcxx: None,
            cxxabi: None,
            interpreter: None,
            soname: None,
            runpath: Vec::new(),
            corrupt: None,
        }
    }

    #[test]
    fn damaged_elf_is_reported_not_skipped() {
        // A valid-looking ELF header for x86_64 whose tables point past the end.
        let mut data = vec![0u8; 64];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2; // 64-bit
        data[5] = 1; // little-endian
        data[6] = 1;
        data[16] = 3; // ET_DYN
        data[18] = 62; // x86_64
        data[20] = 1;
        data[32..40].copy_from_slice(&4096u64.to_le_bytes()); // e_phoff past the end
        data[52] = 64;
        data[54] = 56;
        data[56] = 4; // four program headers
        let info = read_elf("bin/tool", &data).expect("starts like ELF");
        assert!(info.corrupt.is_some(), "{info:?}");
        let t = Target::load("ubuntu-20.04").unwrap();
        let v = judge(&t, info.clone(), &BTreeSet::new());
        assert!(!v.ok);
        assert!(v.errors[0].contains("damaged or truncated ELF"), "{v:?}");
        let mut in_wheel = info;
        in_wheel.path = "w-1-py3-none-any.whl!x/tool".into();
        assert!(judge(&t, in_wheel, &BTreeSet::new()).ok);
    }

    #[test]
    fn verdicts() {
        let t = Target::load("ubuntu-20.04").unwrap();
        let ok = judge(
            &t,
            info("bin/a", "x86_64", "2.27", &["libc.so.6"]),
            &BTreeSet::new(),
        );
        assert!(ok.ok && ok.errors.is_empty() && ok.missing.is_empty());
        let new = judge(&t, info("bin/a", "x86_64", "2.34", &[]), &BTreeSet::new());
        assert_eq!(
            new.errors,
            ["bin/a needs GLIBC_2.34; target ubuntu-20.04 has 2.31"]
        );
        let arm = judge(&t, info("bin/a", "aarch64", "2.17", &[]), &BTreeSet::new());
        assert!(!arm.ok);
        // A binary wheel's .so must run; a pure wheel's helper only warns.
        let bin_wheel = "wheels/x-1-cp38-cp38-manylinux_2_17_x86_64.whl!x/h.so";
        assert!(!judge(&t, info(bin_wheel, "x86_64", "2.34", &[]), &BTreeSet::new()).ok);
        let pure = judge(
            &t,
            info("wheels/x-1-py3-none-any.whl!x/h.so", "x86_64", "2.34", &[]),
            &BTreeSet::new(),
        );
        assert!(pure.ok);
        assert_eq!(pure.warnings.len(), 1);
        // Missing libraries warn unless provided.
        let needs = info(
            "bin/a",
            "x86_64",
            "2.17",
            &["libfoo.so.1", "libz.so.1", "libm.so.6"],
        );
        assert_eq!(
            judge(&t, needs.clone(), &BTreeSet::new()).missing,
            ["libfoo.so.1"]
        );
        let provided = BTreeSet::from(["libfoo.so.1".to_string()]);
        assert!(judge(&t, needs, &provided).missing.is_empty());
    }

    #[test]
    fn python_sources_are_not_read_as_elf() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("w-1-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        for name in ["w/a.py", "w/a.pyi", "w/a.so", "w/tool", "w/a.py.so"] {
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut z, b"\x7fELF garbage").unwrap();
        }
        z.finish().unwrap();
        let found: Vec<String> = zip_members(&wheel)
            .unwrap()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(found, ["w/a.py.so", "w/a.so", "w/tool"]);
        assert!(!may_be_elf(Path::new("x/y.py")));
        assert!(may_be_elf(Path::new("x/y.pyc")));
        assert!(may_be_elf(Path::new("x/py")));
    }

    #[test]
    fn non_elf_is_skipped() {
        assert!(read_elf("x", b"#!/bin/sh\n").is_none());
        // What starts like ELF and is not is reported, not passed over.
        assert!(read_elf("x", b"\x7fELF garbage").unwrap().corrupt.is_some());
    }
}
