//! A PEP 691 (JSON simple API) index client that sees the index through the
//! target's eyes: which wheels the target can install, and their metadata.

use crate::error::Diagnose;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName, Requirement, VerbatimUrl};
use reqwest::Url;
use tokio::sync::OnceCell;

mod direct;
mod metadata;
mod page;
pub use direct::{direct_files, DirectFile};
pub use metadata::{base_requirements_of_wheel_file, metadata_from_wheel_file};
pub use page::python_excluded;

use crate::config::target::Target;
use crate::fetch::{Blob, FetchError, Fetcher};
use crate::model::hash::{BadHash, Sha256};
use crate::per_key::PerKey;
use crate::resolve::tags::TagPolicy;

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
                let recipes = crate::config::items::builtin();
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
}
