//! Packuments: a package's versions as the registry describes them, read
//! in the abbreviated form (`application/vnd.npm.install-v1+json`) through
//! the fetch layer's page cache, each at most once per run, and asked for
//! ahead of need so that a tree's pages arrive in parallel.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use crate::config::npm::{Bin, OneOrMany};
use crate::fetch::Fetcher;
use crate::per_key::PerKey;

use super::NpmError;

/// The abbreviated metadata's media type.
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8";
/// The full document (for `time` when the abbreviated one lacks it).
pub const FULL: &str = "application/json";

/// A map of strings, or empty when the registry holds something else
/// there (some old packages have arrays).
fn lenient_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    })
}

fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
    d: D,
) -> Result<T, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// `peerDependenciesMeta` entries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PeerMeta {
    #[serde(default)]
    pub optional: bool,
}

/// Where a version's tarball is and what it hashes to.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Dist {
    #[serde(default)]
    pub tarball: String,
    #[serde(default)]
    pub integrity: Option<String>,
    #[serde(default)]
    pub shasum: Option<String>,
}

/// One version of a package, as the abbreviated packument has it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionMeta {
    #[serde(default)]
    pub version: String,
    #[serde(default, deserialize_with = "lenient_map")]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient_map")]
    pub optional_dependencies: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient_map")]
    pub peer_dependencies: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient")]
    pub peer_dependencies_meta: BTreeMap<String, PeerMeta>,
    #[serde(default, deserialize_with = "lenient")]
    pub bin: Option<BinValue>,
    #[serde(default, deserialize_with = "lenient")]
    pub os: Option<OneOrManyValue>,
    #[serde(default, deserialize_with = "lenient")]
    pub cpu: Option<OneOrManyValue>,
    #[serde(default, deserialize_with = "lenient")]
    pub libc: Option<OneOrManyValue>,
    #[serde(default, deserialize_with = "lenient_map")]
    pub engines: BTreeMap<String, String>,
    /// A message (or `true`) when the version is deprecated.
    #[serde(default)]
    pub deprecated: Option<serde_json::Value>,
    #[serde(default)]
    pub dist: Dist,
    #[serde(default)]
    pub has_install_script: bool,
}

/// `bin` kept as its raw form (a path or a map).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct BinValue(pub serde_json::Value);

/// `os`/`cpu`/`libc` kept raw (a string or a list).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct OneOrManyValue(pub serde_json::Value);

fn list(v: &Option<OneOrManyValue>) -> Vec<String> {
    v.as_ref()
        .and_then(|v| serde_json::from_value::<OneOrMany>(v.0.clone()).ok())
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
}

impl VersionMeta {
    pub fn os(&self) -> Vec<String> {
        list(&self.os)
    }
    pub fn cpu(&self) -> Vec<String> {
        list(&self.cpu)
    }
    pub fn libc(&self) -> Vec<String> {
        list(&self.libc)
    }
    /// Program names to scripts.
    pub fn bin(&self, package: &str) -> BTreeMap<String, String> {
        self.bin
            .as_ref()
            .and_then(|v| serde_json::from_value::<Bin>(v.0.clone()).ok())
            .map(|b| b.into_map(package))
            .unwrap_or_default()
    }
    /// Whether the registry marks it deprecated.
    pub fn is_deprecated(&self) -> bool {
        match &self.deprecated {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }
}

/// A package's versions and dist-tags.
#[derive(Debug, Default, Deserialize)]
pub struct Packument {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "dist-tags", default, deserialize_with = "lenient_map")]
    pub dist_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<String, VersionMeta>,
    /// Publication times by version (the full document has them; some
    /// registries put them in the abbreviated one too).
    #[serde(default, deserialize_with = "lenient_map")]
    pub time: BTreeMap<String, String>,
}

/// Packuments of one registry, each read once.
pub struct Registry {
    base: String,
    fetcher: Arc<Fetcher>,
    /// Publication times are needed (`exclude_newer`).
    need_time: bool,
    pages: PerKey<String, tokio::sync::OnceCell<Arc<Packument>>>,
}

impl Registry {
    pub fn new(base: &str, fetcher: Arc<Fetcher>, need_time: bool) -> Registry {
        Registry {
            base: format!("{}/", base.trim_end_matches('/')),
            fetcher,
            need_time,
            pages: PerKey::default(),
        }
    }

    /// The registry's base URL, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The packument's URL: a scoped name's `/` is escaped, as npm does.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}{}", self.base, name.replace('/', "%2f"))
    }

    /// A package's packument (read once per run).
    pub async fn get(&self, name: &str) -> Result<Arc<Packument>, NpmError> {
        let cell = self.pages.get(&name.to_string());
        cell.get_or_try_init(|| self.fetch(name)).await.cloned()
    }

    /// Ask for these packuments now, without waiting (errors are met again
    /// when they are needed).
    pub fn prefetch(self: &Arc<Self>, names: impl IntoIterator<Item = String>) {
        for name in names {
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.get(&name).await;
            });
        }
    }

    async fn fetch(&self, name: &str) -> Result<Arc<Packument>, NpmError> {
        let url = self.url_of(name);
        let mut p = self.read(&url, ABBREVIATED, name).await?;
        if self.need_time && p.time.is_empty() {
            p = self.read(&url, FULL, name).await?;
        }
        if p.versions.is_empty() {
            return Err(NpmError::NoVersions {
                package: name.to_string(),
                url,
            });
        }
        Ok(Arc::new(p))
    }

    async fn read(&self, url: &str, accept: &str, name: &str) -> Result<Packument, NpmError> {
        let body =
            self.fetcher
                .get_page(url, accept)
                .await
                .map_err(|source| NpmError::Registry {
                    package: name.to_string(),
                    source,
                })?;
        let parse = move || serde_json::from_slice::<Packument>(&body);
        let parsed = tokio::task::spawn_blocking(parse)
            .await
            .expect("parse task panicked");
        parsed.map_err(|e| NpmError::BadPackument {
            package: name.to_string(),
            url: url.to_string(),
            message: e.to_string(),
        })
    }
}
