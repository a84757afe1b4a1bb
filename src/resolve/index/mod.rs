//! A PEP 691 (JSON simple API) index client that sees the index through the
//! target's eyes: which wheels the target can install, and their metadata.

use crate::error::Diagnose;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, Requirement, VerbatimUrl};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::OnceCell;

mod direct;
pub use direct::{direct_files, DirectFile};

use crate::config::target::Target;
use crate::fetch::{Blob, FetchError, Fetcher, RangeReply};
use crate::model::hash::{BadHash, Sha256};
use crate::per_key::PerKey;
use crate::resolve::tags::{TagPolicy, WheelName};

/// The default index, as pip's.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";
const ACCEPT_JSON: &str = "application/vnd.pypi.simple.v1+json";
/// Wheels up to this size (with a hash and size in the index) are read
/// whole for their metadata when the index serves no PEP 658 file.
pub const WHOLE_WHEEL_MAX: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("package `{name}` was not found on {index}")]
    NotFound { name: String, index: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url} is not a PEP 691 JSON project page")]
    BadPage {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the metadata of {file}: {message}")]
    BadMetadata { file: String, message: String },
    #[error("{url}: the {what} of {file} is invalid")]
    BadHash {
        url: String,
        file: String,
        what: &'static str,
        #[source]
        source: BadHash,
    },
    #[error("the metadata of {file} says {field} `{found}`, but the file is {expected}")]
    MetadataMismatch {
        file: String,
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("invalid index URL `{0}`")]
    BadIndexUrl(String),
    #[error(transparent)]
    Build(#[from] crate::resolve::BuildError),
    /// A requirement names a file by URL that cannot be used.
    #[error("`{requirement}`: {message}")]
    Direct {
        requirement: String,
        message: String,
    },
}

impl Diagnose for IndexError {
    fn exit_code(&self) -> i32 {
        match self {
            IndexError::BadIndexUrl(_) | IndexError::Direct { .. } => crate::error::BAD_INPUT,
            _ => crate::error::WORK_FAILED,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            IndexError::NotFound { name, .. } => {
                let recipes = crate::config::recipe::builtin();
                Some(match crate::error::closest(name, recipes.iter().map(|(n, _)| n.as_str())) {
                    Some(r) => format!("did you mean the recipe `{r}`? A name that is not a recipe is read as a PyPI requirement (see `bundle recipes`)"),
                    None => "check the spelling; a name that is not a recipe is read as a PyPI requirement (see `bundle recipes`)".into(),
                })
            }
            IndexError::BadPage { .. } => Some(
                "the index must serve the JSON simple API (application/vnd.pypi.simple.v1+json), as PyPI does".into(),
            ),
            IndexError::Fetch(e) => e.hint(),
            IndexError::Build(e) => e.hint.clone(),
            IndexError::Direct { .. } => Some(
                "a requirement `name @ URL` names one wheel or sdist (.whl, .tar.gz, .zip) whose file name starts with that name: `name @ file:///path/name-1.0-py3-none-any.whl`, a path relative to the requirements file, or `name @ https://host/name-1.0.tar.gz#sha256=HEX`".into(),
            ),
            IndexError::BadHash { .. } | IndexError::MetadataMismatch { .. } => Some(
                "the index is broken or hostile; nothing from it was used for this file. Report it to the index's operator".into(),
            ),
            _ => None,
        }
    }
}

// A page's strings are borrowed from its body where they hold no escapes:
// a big project lists thousands of files, nearly all of them rejected.
#[derive(Deserialize)]
struct PageJson<'a> {
    #[serde(default, borrow)]
    files: Vec<FileJson<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString<'a> {
    Bool(bool),
    String(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrHashes<'a> {
    Bool(bool),
    Hashes(#[serde(borrow)] Hashes<'a>),
}

/// The digests of a file; only sha256 is used.
#[derive(Deserialize, Default)]
struct Hashes<'a> {
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FileJson<'a> {
    #[serde(borrow)]
    filename: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(default, borrow)]
    hashes: Hashes<'a>,
    #[serde(default, borrow, rename = "requires-python")]
    requires_python: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    yanked: Option<BoolOrString<'a>>,
    #[serde(
        default,
        borrow,
        rename = "core-metadata",
        alias = "data-dist-info-metadata"
    )]
    core_metadata: Option<BoolOrHashes<'a>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, borrow, rename = "upload-time")]
    upload_time: Option<Cow<'a, str>>,
}

/// A wheel the target can install (or, with `sdists = "build"`, an sdist
/// to build one from: then `sdist` is true).
#[derive(Debug, Clone)]
pub struct WheelFile {
    pub filename: String,
    pub sdist: bool,
    pub url: String,
    pub sha256: Option<Sha256>,
    pub size: Option<u64>,
    /// PEP 658: `Some(hash)` when a `.metadata` file is served (hash optional).
    pub core_metadata: Option<Option<Sha256>>,
    pub yanked: Option<String>,
    pub requires_python: Option<String>,
    priority: usize,
}

/// One version of a project, as the target sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub version: Version,
    /// Best installable wheel (non-yanked preferred).
    pub wheel: WheelFile,
}

impl WheelFile {
    /// This file as an sdist to build.
    pub fn sdist_ref(&self) -> crate::resolve::SdistRef {
        crate::resolve::SdistRef {
            filename: self.filename.clone(),
            url: self.url.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

impl Candidate {
    pub fn yanked(&self) -> Option<&str> {
        self.wheel.yanked.as_deref()
    }
}

/// A file the target cannot use, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub version: Option<Version>,
    pub filename: String,
    pub reason: String,
}

/// A project page filtered for the target.
#[derive(Debug)]
pub struct Project {
    pub name: PackageName,
    pub candidates: BTreeMap<Version, Candidate>,
    pub rejected: Vec<Rejected>,
    pub file_count: usize,
}

/// Parsed core metadata (the parts resolution needs).
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub name: Option<String>,
    pub version: Option<String>,
    pub requires_dist: Vec<Requirement<VerbatimUrl>>,
    pub provides_extra: Vec<ExtraName>,
    pub requires_python: Option<String>,
}

type Shared<T> = OnceCell<Result<Arc<T>, Arc<IndexError>>>;

/// Index client with per-run memoization, safe to share across tasks.
pub struct Index {
    base: Url,
    fetcher: Arc<Fetcher>,
    tags: TagPolicy,
    python: Version,
    exclude_newer: Option<String>,
    sdists: Option<Arc<dyn crate::resolve::WheelBuilder>>,
    /// Whether the index's own sdists are built (`--sdists build`), not
    /// only those a requirement names by URL.
    index_sdists: bool,
    /// Projects a requirement names by URL (`name @ URL`): that one file.
    direct: std::collections::HashMap<PackageName, Arc<Project>>,
    projects: PerKey<PackageName, Shared<Project>>,
    reporter: Arc<dyn crate::report::Reporter>,
    metadata: PerKey<String, Shared<Metadata>>,
    /// Wheels whose download started during resolution.
    fetched_ahead: Mutex<std::collections::HashSet<String>>,
    /// Called with each wheel downloaded ahead, once it is in the cache.
    after_fetch: Option<AfterFetch>,
}

/// What to do with a wheel downloaded during resolution as soon as it is
/// in the cache (a build reads its ELF files then, while resolution goes
/// on).
#[derive(Clone)]
pub struct AfterFetch(pub Arc<dyn Fn(Blob) + Send + Sync>);

impl std::fmt::Debug for AfterFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterFetch")
    }
}

impl Index {
    pub fn new(
        index_url: &str,
        fetcher: Arc<Fetcher>,
        target: &Target,
        exclude_newer: Option<String>,
    ) -> Result<Index, IndexError> {
        let mut s = index_url.trim().to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        let base = Url::parse(&s).map_err(|_| IndexError::BadIndexUrl(index_url.to_string()))?;
        Ok(Index {
            base,
            fetcher,
            tags: TagPolicy::for_target(target),
            python: target.python.clone(),
            exclude_newer,
            sdists: None,
            index_sdists: false,
            direct: std::collections::HashMap::new(),
            projects: PerKey::default(),
            reporter: Arc::new(crate::report::NoReporter),
            metadata: PerKey::default(),
            fetched_ahead: Mutex::new(std::collections::HashSet::new()),
            after_fetch: None,
        })
    }

    /// Call `f` with each wheel downloaded ahead, once it is in the cache.
    pub fn with_after_fetch(mut self, f: AfterFetch) -> Self {
        self.after_fetch = Some(f);
        self
    }

    /// Report progress (packages looked at, oddities) to `reporter`.
    pub fn with_reporter(mut self, reporter: Arc<dyn crate::report::Reporter>) -> Index {
        self.reporter = reporter;
        self
    }

    pub fn reporter(&self) -> &dyn crate::report::Reporter {
        self.reporter.as_ref()
    }

    /// Accept sdists for versions without a usable wheel; `builder` turns
    /// them into wheels (for their metadata, and for the bundle).
    pub fn with_sdists(mut self, builder: Arc<dyn crate::resolve::WheelBuilder>) -> Index {
        self.sdists = Some(builder);
        self.index_sdists = true;
        self
    }

    /// Build the sdists requirements name by URL with `builder`, but not
    /// the index's own (`--sdists` left at its default).
    pub fn with_direct_sdists(mut self, builder: Arc<dyn crate::resolve::WheelBuilder>) -> Index {
        self.sdists = Some(builder);
        self
    }

    /// Whether a requirement names `name` by URL (see [`Index::with_direct`]).
    pub fn is_direct(&self, name: &PackageName) -> bool {
        self.direct.contains_key(name)
    }

    pub fn sdist_builder(&self) -> Option<&Arc<dyn crate::resolve::WheelBuilder>> {
        self.sdists.as_ref()
    }

    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }

    /// The project page for `name`, filtered for the target (memoized).
    pub async fn project(&self, name: &PackageName) -> Result<Arc<Project>, Arc<IndexError>> {
        if let Some(p) = self.direct.get(name) {
            return Ok(p.clone());
        }
        self.projects
            .get(name)
            .get_or_init(|| async {
                self.load_project(name)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
    }

    async fn load_project(&self, name: &PackageName) -> Result<Project, IndexError> {
        self.reporter.resolving(name.as_ref());
        let url = self
            .base
            .join(&format!("{name}/"))
            .map_err(|_| IndexError::BadIndexUrl(self.base.to_string()))?;
        let body = match self.fetcher.get_page(url.as_str(), ACCEPT_JSON).await {
            Ok(b) => b,
            Err(FetchError::NotFound { .. }) => {
                return Err(IndexError::NotFound {
                    name: name.to_string(),
                    index: self.base.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        self.parse_page(name, &url, &body)
    }

    /// A project page's body, read and filtered for the target.
    pub fn parse_page(
        &self,
        name: &PackageName,
        url: &Url,
        body: &[u8],
    ) -> Result<Project, IndexError> {
        let page: PageJson =
            serde_json::from_slice(body).map_err(|source| IndexError::BadPage {
                url: url.to_string(),
                source,
            })?;
        self.filter_files(name, url, page.files, false)
    }

    fn filter_files(
        &self,
        name: &PackageName,
        page_url: &Url,
        files: Vec<FileJson<'_>>,
        direct: bool,
    ) -> Result<Project, IndexError> {
        let mut candidates: BTreeMap<Version, Candidate> = BTreeMap::new();
        let mut rejected = Vec::new();
        let file_count = files.len();
        for f in files {
            let (version, file) = match self.classify(page_url, f, direct)? {
                Verdict::Usable(version, file) => (version, file),
                Verdict::Rejected(r) => {
                    rejected.push(r);
                    continue;
                }
                Verdict::Ignored => continue,
            };
            // The best file of each version: not yanked, best tag, then name.
            match candidates.get_mut(&version) {
                Some(c) => {
                    let key = |w: &WheelFile| (w.yanked.is_some(), w.priority, w.filename.clone());
                    if key(&file) < key(&c.wheel) {
                        c.wheel = file;
                    }
                }
                None => {
                    candidates.insert(
                        version.clone(),
                        Candidate {
                            version,
                            wheel: file,
                        },
                    );
                }
            }
        }
        Ok(Project {
            name: name.clone(),
            candidates,
            rejected,
            file_count,
        })
    }

    /// What the target makes of one file of a project page. A hash that is
    /// not 64 hex digits is an error: the page is broken or hostile.
    fn classify(
        &self,
        page_url: &Url,
        f: FileJson<'_>,
        direct: bool,
    ) -> Result<Verdict, IndexError> {
        let reject = |version: Option<Version>, reason: String| {
            Ok(Verdict::Rejected(Rejected {
                version,
                filename: f.filename.to_string(),
                reason,
            }))
        };
        // The name becomes a path in the bundle: it must be a plain file name.
        if f.filename.is_empty()
            || f.filename.starts_with('.')
            || f.filename.contains(['/', '\\', '\0'])
        {
            return reject(None, "not a plain file name".into());
        }
        let parsed = WheelName::parse(&f.filename);
        let version = match &parsed {
            Some(wheel) => match Version::from_str(&wheel.version) {
                Ok(v) => v,
                Err(_) => return Ok(Verdict::Ignored),
            },
            None => match sdist_version(&f.filename) {
                Some(v) if self.builds(&f.filename, direct) => v,
                Some(v) => {
                    return reject(
                        Some(v),
                        "source distribution (wheels only: --sdists build, or sdists = \"build\" in a recipe, builds it in the target's image)".into(),
                    )
                }
                None => {
                    let kind = f.filename.rsplit('.').next().unwrap_or("");
                    return reject(None, format!("not a wheel (.{kind})"));
                }
            },
        };
        if let (Some(cutoff), Some(uploaded)) = (&self.exclude_newer, &f.upload_time) {
            if !uploaded_before(uploaded, cutoff) {
                return reject(
                    Some(version),
                    format!("uploaded {uploaded}, after exclude_newer {cutoff}"),
                );
            }
        }
        let priority = match &parsed {
            // An sdist is the last resort for its version.
            None => usize::MAX,
            Some(wheel) => match self.tags.priority(wheel) {
                Some(p) => p,
                None => {
                    // The tag as the file name spells it (its last three parts).
                    let stem = f.filename.strip_suffix(".whl").unwrap_or(&f.filename);
                    let tag = stem
                        .rmatch_indices('-')
                        .nth(2)
                        .map_or(stem, |(i, _)| &stem[i + 1..]);
                    return reject(Some(version), format!("tag {tag} does not fit the target"));
                }
            },
        };
        if let Some(rp) = f.requires_python.as_deref() {
            if python_excluded(rp, &self.python) {
                return reject(
                    Some(version),
                    format!("Requires-Python {rp} excludes Python {}", self.python),
                );
            }
        }
        let Ok(mut url) = page_url.join(&f.url) else {
            return Ok(Verdict::Ignored);
        };
        url.set_fragment(None);
        let (sha256, core_metadata) = file_hashes(page_url, &f)?;
        if sha256.is_none() && !self.fetcher.allow_unhashed() {
            return reject(
                Some(version),
                "the index gives no sha256 (pass --allow-unhashed to accept it)".into(),
            );
        }
        let yanked = match &f.yanked {
            Some(BoolOrString::Bool(true)) => Some(String::new()),
            Some(BoolOrString::String(s)) => Some(s.to_string()),
            _ => None,
        };
        let file = WheelFile {
            filename: f.filename.to_string(),
            sdist: parsed.is_none(),
            url: url.to_string(),
            sha256,
            size: f.size,
            core_metadata,
            yanked,
            requires_python: f.requires_python.as_deref().map(str::to_string),
            priority,
        };
        Ok(Verdict::Usable(version, file))
    }

    /// Whether an sdist of this name can be built here.
    fn builds(&self, filename: &str, direct: bool) -> bool {
        self.sdists.is_some()
            && (direct || self.index_sdists)
            && (filename.ends_with(".tar.gz") || filename.ends_with(".zip"))
    }

    /// Start downloading a wheel the resolver chose into the cache, so that
    /// the fetch stage finds it there (or waits for it): downloads overlap
    /// resolution. Once per file; sdists, files without a sha256 and
    /// `--offline` are left to the fetch stage, as are any errors.
    pub fn fetch_ahead(self: &Arc<Self>, wheel: &WheelFile) {
        let Some(sha) = wheel.sha256.clone() else {
            return;
        };
        if wheel.sdist || self.fetcher.offline() {
            return;
        }
        if !self
            .fetched_ahead
            .lock()
            .expect("poisoned")
            .insert(wheel.filename.clone())
        {
            return;
        }
        let (index, w) = (self.clone(), wheel.clone());
        tokio::spawn(async move {
            match index
                .fetcher
                .download(&w.url, Some(&sha), w.size, &w.filename)
                .await
            {
                Ok(blob) => {
                    if let Some(AfterFetch(f)) = &index.after_fetch {
                        f(blob);
                    }
                }
                Err(e) => tracing::debug!("fetching {} ahead: {e}", w.filename),
            }
        });
    }

    /// Core metadata of a wheel (memoized; cached on disk).
    pub async fn metadata(&self, wheel: &WheelFile) -> Result<Arc<Metadata>, Arc<IndexError>> {
        self.metadata
            .get(&wheel.url)
            .get_or_init(|| async {
                self.load_metadata(wheel)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
    }

    async fn load_metadata(&self, wheel: &WheelFile) -> Result<Metadata, IndexError> {
        // (METADATA, the file it was read from, for errors)
        let (raw, file) = if wheel.sdist {
            let builder = self
                .sdists
                .as_ref()
                .ok_or_else(|| IndexError::BadMetadata {
                    file: wheel.filename.clone(),
                    message: "an sdist, and sdists are not built".into(),
                })?;
            let built = builder.build_wheel(&wheel.sdist_ref()).await?;
            let raw = metadata_from_wheel_file(&built.path).map_err(|message| {
                IndexError::BadMetadata {
                    file: built.filename.clone(),
                    message,
                }
            })?;
            (raw, built.filename)
        } else {
            let cache = self.fetcher.cache();
            let key = match &wheel.sha256 {
                Some(h) => h.to_string(),
                None => wheel.url.clone(),
            };
            let path = cache.keyed("metadata", &format!("v2 {key}"), ".METADATA");
            let raw = match cache.read_checked(&path) {
                Some(raw) => raw,
                None => {
                    let (raw, source) = self.fetch_metadata(wheel).await?;
                    // A wheel kept in the cache is its own metadata record:
                    // one file fewer to write (a big set has a hundred).
                    if source == MetadataSource::Remote {
                        if let Err(e) = cache.write_checked(&path, &raw) {
                            tracing::warn!("cannot cache metadata at {}: {e}", path.display());
                        }
                    }
                    raw
                }
            };
            (raw, wheel.filename.clone())
        };
        let meta = parse_metadata(&String::from_utf8_lossy(&raw)).map_err(|message| {
            IndexError::BadMetadata {
                file: file.clone(),
                message,
            }
        })?;
        check_identity(&meta, &file)?;
        Ok(meta)
    }

    /// PEP 658 file; else a small wheel whole; else a range read of the
    /// wheel's zip directory, else the whole wheel (kept in the cache: it is
    /// usually the one bundled).
    async fn fetch_metadata(
        &self,
        wheel: &WheelFile,
    ) -> Result<(Vec<u8>, MetadataSource), IndexError> {
        let bad = |message: String| IndexError::BadMetadata {
            file: wheel.filename.clone(),
            message,
        };
        // A wheel already in the cache needs no network at all.
        if let Some(h) = &wheel.sha256 {
            if let Some(blob) = self.fetcher.cached_blob(h)? {
                let raw = metadata_from_wheel_file(&blob.path).map_err(bad)?;
                return Ok((raw, MetadataSource::CachedWheel));
            }
        }
        if let Some(hash) = &wheel.core_metadata {
            let url = format!("{}.metadata", wheel.url);
            match self.fetcher.get_metadata(&url).await {
                Ok(bytes) => {
                    if let Some(expected) = hash {
                        let actual = Sha256::of(&bytes);
                        if actual != *expected {
                            return Err(FetchError::HashMismatch {
                                url,
                                expected: expected.to_string(),
                                actual: actual.to_string(),
                            }
                            .into());
                        }
                    }
                    return Ok((bytes, MetadataSource::Remote));
                }
                Err(FetchError::NotFound { .. }) => {
                    tracing::debug!("{url} advertised but missing; reading the wheel instead")
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A small wheel is read whole: one request instead of two or three
        // range reads, and it is nearly always the file that is bundled
        // (the fetch stage then finds it in the cache).
        if let (Some(sha256), Some(size)) = (&wheel.sha256, wheel.size) {
            if size <= WHOLE_WHEEL_MAX {
                let blob = self
                    .fetcher
                    .download(&wheel.url, Some(sha256), Some(size), &wheel.filename)
                    .await?;
                let raw = metadata_from_wheel_file(&blob.path).map_err(bad)?;
                return Ok((raw, MetadataSource::CachedWheel));
            }
        }
        let whole = match self.metadata_by_range(wheel).await? {
            RangeOutcome::Found(bytes) => return Ok((bytes, MetadataSource::Remote)),
            RangeOutcome::Whole(resp) => {
                self.fetcher
                    .store_response(
                        &wheel.url,
                        resp,
                        wheel.sha256.as_ref(),
                        wheel.size,
                        &wheel.filename,
                    )
                    .await?
            }
            RangeOutcome::Unreadable => {
                self.fetcher
                    .download(
                        &wheel.url,
                        wheel.sha256.as_ref(),
                        wheel.size,
                        &wheel.filename,
                    )
                    .await?
            }
        };
        let raw = metadata_from_wheel_file(&whole.path).map_err(bad)?;
        Ok((raw, MetadataSource::CachedWheel))
    }

    /// METADATA from byte ranges of the wheel: its tail, its central
    /// directory, its local entry. Every offset comes from the remote file
    /// and is checked; anything odd falls back to reading the whole wheel.
    async fn metadata_by_range(&self, wheel: &WheelFile) -> Result<RangeOutcome, IndexError> {
        use crate::resolve::zipdir;
        const TAIL: u64 = 64 * 1024;
        let max_meta = self.fetcher.limits().max_metadata;
        let (tail, total) = match self
            .fetcher
            .get_range(&wheel.url, &format!("bytes=-{TAIL}"), TAIL)
            .await?
        {
            RangeReply::Whole(resp) => return Ok(RangeOutcome::Whole(resp)),
            RangeReply::Partial { bytes, total } => (bytes, total),
        };
        let Some(total) = total.or(wheel.size) else {
            return Ok(RangeOutcome::Unreadable);
        };
        let Some(tail_start) = total.checked_sub(tail.len() as u64) else {
            return Ok(RangeOutcome::Unreadable);
        };
        let Some(dir) = zipdir::find_central_directory(&tail, tail_start)
            .filter(|d| d.size > 0 && d.size <= max_meta)
            .filter(|d| d.offset.checked_add(d.size).is_some_and(|end| end <= total))
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        let cd: Vec<u8> = match zipdir::slice_in(&tail, tail_start, dir.offset, dir.size) {
            Some(cd) => cd.to_vec(),
            None => match self
                .fetcher
                .get_range(
                    &wheel.url,
                    &format!("bytes={}-{}", dir.offset, dir.offset + dir.size - 1),
                    dir.size,
                )
                .await?
            {
                RangeReply::Partial { bytes, .. } => bytes,
                RangeReply::Whole(_) => return Ok(RangeOutcome::Unreadable),
            },
        };
        let Some(entry) = zipdir::find_metadata_entry(&cd)
            .filter(|e| e.compressed_size <= max_meta && e.uncompressed_size <= max_meta)
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        // Local header (30 bytes) + name + extra (unknown until read) + data.
        let want = 30 + entry.name_len as u64 + 1024 + entry.compressed_size;
        let Some(end) = entry
            .header_offset
            .checked_add(want)
            .map(|e| e.min(total))
            .filter(|e| *e > entry.header_offset)
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        let local = match self
            .fetcher
            .get_range(
                &wheel.url,
                &format!("bytes={}-{}", entry.header_offset, end - 1),
                end - entry.header_offset,
            )
            .await?
        {
            RangeReply::Partial { bytes, .. } => bytes,
            RangeReply::Whole(_) => return Ok(RangeOutcome::Unreadable),
        };
        match zipdir::read_local_entry(&local, &entry) {
            Some(bytes) => Ok(RangeOutcome::Found(bytes)),
            None => Ok(RangeOutcome::Unreadable),
        }
    }
}

/// The metadata names the project and version of the file it came from.
fn check_identity(meta: &Metadata, file: &str) -> Result<(), IndexError> {
    let Some(wheel) = WheelName::parse(file) else {
        return Ok(());
    };
    let mismatch = |field, found: &str, expected: &str| IndexError::MetadataMismatch {
        file: file.to_string(),
        field,
        found: found.to_string(),
        expected: expected.to_string(),
    };
    let norm = |n: &str| PackageName::from_str(n).map(|p| p.to_string()).ok();
    match &meta.name {
        Some(n) if norm(n).is_some() && norm(n) == norm(&wheel.name) => {}
        Some(n) => return Err(mismatch("Name", n, &wheel.name)),
        None => return Err(mismatch("Name", "(none)", &wheel.name)),
    }
    let same = |a: &str, b: &str| match (Version::from_str(a), Version::from_str(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    match &meta.version {
        Some(v) if same(v, &wheel.version) => Ok(()),
        Some(v) => Err(mismatch("Version", v, &wheel.version)),
        None => Err(mismatch("Version", "(none)", &wheel.version)),
    }
}

/// What the target makes of one file of a project page.
enum Verdict {
    Usable(Version, WheelFile),
    Rejected(Rejected),
    /// Not a file the target could use, and not worth a line in the report.
    Ignored,
}

/// The file's sha256 and its PEP 658 metadata hash, each only as 64 hex
/// digits; anything else is an error naming the page and the file.
type FileHashes = (Option<Sha256>, Option<Option<Sha256>>);

fn file_hashes(page_url: &Url, f: &FileJson<'_>) -> Result<FileHashes, IndexError> {
    let bad_hash = |what, source| IndexError::BadHash {
        url: page_url.to_string(),
        file: f.filename.to_string(),
        what,
        source,
    };
    let core_metadata = match &f.core_metadata {
        Some(BoolOrHashes::Bool(true)) => Some(None),
        Some(BoolOrHashes::Hashes(h)) => Some(
            h.sha256
                .as_deref()
                .map(Sha256::parse)
                .transpose()
                .map_err(|e| bad_hash("core-metadata sha256", e))?,
        ),
        _ => None,
    };
    let sha256 = f
        .hashes
        .sha256
        .as_deref()
        .map(Sha256::parse)
        .transpose()
        .map_err(|e| bad_hash("sha256", e))?;
    Ok((sha256, core_metadata))
}

/// Where a wheel's metadata was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataSource {
    /// A PEP 658 file or byte ranges: worth keeping in the cache.
    Remote,
    /// The whole wheel, which the cache keeps.
    CachedWheel,
}

enum RangeOutcome {
    Found(Vec<u8>),
    Whole(reqwest::Response),
    Unreadable,
}

/// A Requires-Python value excludes `python`. Empty or unparsable values
/// exclude nothing, as with pip.
pub fn python_excluded(requires_python: &str, python: &Version) -> bool {
    !requires_python.trim().is_empty()
        && VersionSpecifiers::from_str(requires_python).is_ok_and(|spec| !spec.contains(python))
}

/// `uploaded` (RFC 3339) is not after `cutoff` (RFC 3339 or a date, inclusive).
fn uploaded_before(uploaded: &str, cutoff: &str) -> bool {
    crate::config::dates::uploaded_by(uploaded, cutoff)
}

/// Version of a source distribution (`name-1.0.tar.gz`), if it is one.
fn sdist_version(filename: &str) -> Option<Version> {
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    let (_, v) = stem.rsplit_once('-')?;
    Version::from_str(v).ok()
}

/// The projects a wheel on disk requires on a machine of `env`, without
/// extras (normalized names, sorted): what must be installed beside it.
pub fn base_requirements_of_wheel_file(
    path: &std::path::Path,
    env: &pep508_rs::MarkerEnvironment,
) -> Result<Vec<String>, String> {
    let data = metadata_from_wheel_file(path)?;
    let meta = parse_metadata(&String::from_utf8_lossy(&data))?;
    let names: std::collections::BTreeSet<String> = meta
        .requires_dist
        .iter()
        .filter(|r| r.evaluate_markers(env, &[]))
        .map(|r| r.name.to_string())
        .collect();
    Ok(names.into_iter().collect())
}

/// METADATA of a wheel on disk.
pub fn metadata_from_wheel_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use crate::archive::{self, ArchiveKind};
    let wanted =
        |p: &std::path::Path| crate::resolve::zipdir::is_metadata_path(&archive::slashed(p));
    archive::read_member(
        ArchiveKind::Zip,
        path,
        archive::Limits::from_env(),
        &wanted,
        16 << 20,
    )
    .map_err(|e| e.to_string())?
    .map(|(_, data)| data)
    .ok_or_else(|| "no *.dist-info/METADATA in the wheel".to_string())
}

/// Parse the email-header part of core metadata.
fn parse_metadata(text: &str) -> Result<Metadata, String> {
    let mut meta = Metadata::default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    for (k, v) in headers {
        match k.as_str() {
            "requires-dist" => {
                let req = Requirement::<VerbatimUrl>::from_str(&v)
                    .map_err(|e| format!("Requires-Dist `{v}`: {e}"))?;
                meta.requires_dist.push(req);
            }
            "provides-extra" => {
                if let Ok(e) = ExtraName::from_str(&v) {
                    meta.provides_extra.push(e);
                }
            }
            "requires-python" => meta.requires_python = Some(v),
            "name" if meta.name.is_none() => meta.name = Some(v),
            "version" if meta.version.is_none() => meta.version = Some(v),
            _ => {}
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers() {
        let m = parse_metadata(
            "Metadata-Version: 2.1\nName: x\nRequires-Dist: click\nRequires-Dist: importlib-resources;\n python_version < \"3.9\"\nProvides-Extra: test\nRequires-Dist: pytest; extra == 'test'\n\nRequires-Dist: not-a-header\n",
        )
        .unwrap();
        assert_eq!(m.requires_dist.len(), 3);
        assert_eq!(m.requires_dist[1].name.as_ref(), "importlib-resources");
        assert_eq!(m.provides_extra.len(), 1);
    }

    #[test]
    fn exclude_newer_compares_dates() {
        assert!(uploaded_before("2023-05-03T10:00:00Z", "2023-05-03"));
        assert!(!uploaded_before("2023-05-04T00:00:01Z", "2023-05-03"));
        assert!(uploaded_before(
            "2023-05-03T10:00:00Z",
            "2023-05-03T11:00:00Z"
        ));
    }
}
