//! Phase 2, fetch: every file of the plan into the cache, verified, and
//! wheels built from sdists in the target's image; ELF scans start as
//! files arrive.

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

use crate::check;
use crate::config::target::Target;
use crate::fetch::cache::Cache;
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::{Plan, PlannedWheel};
use crate::report::{Reporter, Stage};
use crate::stage::sdist::{SdistBuilder, SdistRef};
use crate::Error;

/// Which file of the plan a download task brought.
pub(super) enum Fetched {
    Wheel(usize),
    Release(usize),
    Npm(usize),
    Runtime,
}

/// The wheel built from a planned sdist (a cache hit when planning built it).
pub(super) async fn built_wheel(
    builder: &SdistBuilder,
    w: &PlannedWheel,
    reporter: &dyn Reporter,
) -> Result<Blob, Error> {
    let sdist = w.sdist.as_ref().expect("a wheel built from an sdist");
    let b = builder
        .wheel(&SdistRef {
            filename: sdist.filename.clone(),
            url: w.url.clone(),
            sha256: Some(sdist.sha256.clone()),
        })
        .await?;
    if w.sha256.as_ref().is_some_and(|s| *s != b.sha256) {
        reporter.warn(&format!(
            "{} was rebuilt from {} and differs from the planned build (builds are not byte-reproducible)",
            b.filename, sdist.filename
        ));
    }
    Ok(Blob {
        path: b.path,
        sha256: b.sha256,
        size: b.size,
    })
}

/// A wheel copied into the staging folder as soon as it arrived: the sha256
/// and size of the bytes written there.
pub(super) type Copied = (crate::model::Sha256, u64);

/// Download a wheel and copy it into `wheels_dir` while other downloads
/// run, then read its ELF files (the check stage finds the result in the
/// cache).
pub(super) async fn fetched_wheel(
    f: &Fetcher,
    w: &PlannedWheel,
    wheels_dir: &Path,
    scans: &WheelScans,
) -> Result<(Blob, Option<Copied>), Error> {
    let blob = f
        .download(&w.url, w.sha256.as_ref(), w.size, &w.filename)
        .await?;
    let (from, dest) = (blob.clone(), wheels_dir.join(&w.filename));
    let copied = tokio::task::spawn_blocking(move || crate::fetch::copy_verified(&from, &dest))
        .await
        .expect("copy task panicked")?;
    scans.scan(&blob).await;
    Ok((blob, Some(copied)))
}

/// What the fetch stage brought: the wheels' and the releases' blobs, in the
/// plan's order, and the wheels already copied into the staging folder.
pub(super) struct FetchedAll {
    pub(super) wheels: Vec<Blob>,
    pub(super) releases: Vec<Blob>,
    pub(super) copied: BTreeMap<usize, Copied>,
    /// npm tarballs, in the tree's order.
    pub(super) npm: Vec<Blob>,
    /// The npm runtime's tarball.
    pub(super) runtime: Option<Blob>,
}

/// Download every file of the plan in parallel; all verified. Each wheel
/// downloaded is copied into `wheels_dir` at once, overlapping the network.
pub(super) async fn fetch_all(
    plan: &Plan,
    target: &Target,
    fetcher: &Arc<Fetcher>,
    reporter: &Arc<dyn Reporter>,
    wheels_dir: &Path,
    scans: &Arc<WheelScans>,
) -> Result<FetchedAll, Error> {
    reporter.stage(Stage::Fetch);
    let sizes: Option<u64> = plan.wheels.iter().map(|w| w.size).sum();
    let npm_files = plan
        .npm
        .as_ref()
        .map_or(0, |n| n.tree.len() + usize::from(n.runtime.url.is_some()));
    reporter.fetch_planned(
        plan.wheels.len() + plan.releases.len() + npm_files,
        sizes.filter(|_| npm_files == 0),
    );
    for w in plan.wheels.iter().filter(|w| w.sha256.is_none()) {
        reporter.warn(&format!(
            "the index gives no sha256 for {}; the bundle records the hash of what was downloaded",
            w.filename
        ));
    }
    let mut set = tokio::task::JoinSet::new();
    let builder = plan.wheels.iter().any(|w| w.sdist.is_some()).then(|| {
        Arc::new(SdistBuilder::new(
            target,
            fetcher.clone(),
            &plan.index_url,
            reporter.clone(),
        ))
    });
    for (i, w) in plan.wheels.iter().enumerate() {
        let (f, w, builder, r) = (
            fetcher.clone(),
            w.clone(),
            builder.clone(),
            reporter.clone(),
        );
        let dir = wheels_dir.to_path_buf();
        let scans = scans.clone();
        set.spawn(async move {
            let blob = match (&w.sdist, builder) {
                (Some(_), Some(builder)) => built_wheel(&builder, &w, r.as_ref())
                    .await
                    .map(|b| (b, None)),
                _ => fetched_wheel(&f, &w, &dir, &scans).await,
            };
            (Fetched::Wheel(i), blob)
        });
    }
    for (i, r) in plan.releases.iter().enumerate() {
        let f = fetcher.clone();
        let (url, sha) = (f.mirrored(&r.url), r.sha256.clone());
        let label = url.rsplit('/').next().unwrap_or(&url).to_string();
        set.spawn(async move {
            let blob = f.download(&url, Some(&sha), None, &label).await;
            (
                Fetched::Release(i),
                blob.map(|b| (b, None)).map_err(Error::from),
            )
        });
    }
    spawn_npm(plan, fetcher, &mut set);
    let mut wheels: BTreeMap<usize, Blob> = BTreeMap::new();
    let mut releases: BTreeMap<usize, Blob> = BTreeMap::new();
    let mut npm: BTreeMap<usize, Blob> = BTreeMap::new();
    let mut runtime = None;
    let mut copied = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (which, result) = joined.expect("download task panicked");
        let (blob, done) = result?;
        match which {
            Fetched::Wheel(i) => {
                if let Some(c) = done {
                    copied.insert(i, c);
                }
                wheels.insert(i, blob)
            }
            Fetched::Release(i) => releases.insert(i, blob),
            Fetched::Npm(i) => npm.insert(i, blob),
            Fetched::Runtime => runtime.replace(blob),
        };
    }
    Ok(FetchedAll {
        wheels: wheels.into_values().collect(),
        releases: releases.into_values().collect(),
        copied,
        npm: npm.into_values().collect(),
        runtime,
    })
}

/// A download task's result: which file, and its blob.
type FetchTask = (Fetched, Result<(Blob, Option<Copied>), Error>);

/// Download tasks for the npm tarballs and the runtime, each checked
/// against its integrity.
fn spawn_npm(plan: &Plan, fetcher: &Arc<Fetcher>, set: &mut tokio::task::JoinSet<FetchTask>) {
    let Some(npm) = &plan.npm else {
        return;
    };
    let one = |which: Fetched,
               url: String,
               integrity: crate::model::integrity::Integrity,
               label: String| {
        let f = fetcher.clone();
        async move {
            let blob = f
                .download_integrity(&url, &integrity, &label)
                .await
                .map(|b| (b, None))
                .map_err(Error::from);
            (which, blob)
        }
    };
    for (i, p) in npm.tree.iter().enumerate() {
        let label = format!("{}-{}.tgz", p.name, p.version);
        set.spawn(one(
            Fetched::Npm(i),
            p.resolved.clone(),
            p.integrity.clone(),
            label,
        ));
    }
    let r = &npm.runtime;
    if let (Some(url), Some(integrity)) = (&r.url, &r.integrity) {
        let label = format!(
            "{}-{}.tgz",
            r.package.as_deref().unwrap_or("runtime"),
            r.version.as_deref().unwrap_or("")
        );
        set.spawn(one(Fetched::Runtime, url.clone(), integrity.clone(), label));
    }
}

/// ELF scans of downloaded wheels: each wheel's at most once, no more at a
/// time than there are cores (the check module bounds the memory they hold
/// together). Results go to the cache, where the check stage reads them;
/// a failed scan is left for the check stage to make again and report.
pub(super) struct WheelScans {
    pub(super) cache: Cache,
    pub(super) slots: tokio::sync::Semaphore,
    pub(super) started: crate::per_key::PerKey<crate::model::Sha256, tokio::sync::OnceCell<()>>,
}

impl WheelScans {
    pub(super) fn new(cache: &Cache) -> WheelScans {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        WheelScans {
            cache: cache.clone(),
            slots: tokio::sync::Semaphore::new(cores),
            started: Default::default(),
        }
    }

    /// Scan `blob` (a wheel), or wait for the scan already under way.
    pub(super) async fn scan(&self, blob: &Blob) {
        self.started
            .get(&blob.sha256)
            .get_or_init(|| async {
                let _slot = self.slots.acquire().await.expect("never closed");
                let (path, sha, cache) =
                    (blob.path.clone(), blob.sha256.clone(), self.cache.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    check::scan_wheel_cached(&path, &sha, &cache)
                })
                .await;
            })
            .await;
    }
}
