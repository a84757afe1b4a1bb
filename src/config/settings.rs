//! Settings for a machine or a CI job: release mirrors, from
//! `BUNDLE_RELEASE_MIRROR` and a `[mirrors]` table in the config file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::Error;

/// The config file (`BUNDLE_CONFIG`, else `bundle.toml` in the working
/// folder, else `$XDG_CONFIG_HOME/bundle/config.toml` or
/// `~/.config/bundle/config.toml`), if one exists.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BUNDLE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from("bundle.toml");
    if local.is_file() {
        return Some(local);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let file = base.join("bundle/config.toml");
    file.is_file().then_some(file)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// URL prefix → mirror prefix, for release files.
    #[serde(default)]
    mirrors: BTreeMap<String, String>,
}

/// Release mirrors: `BUNDLE_RELEASE_MIRROR` (`FROM=TO` pairs, separated by
/// spaces, commas or newlines) and the config file's `[mirrors]`; the
/// variable wins for a prefix both name.
pub fn release_mirrors() -> Result<Vec<(String, String)>, Error> {
    let mut mirrors: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = config_path() {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            action: "reading the config file",
            path: path.clone(),
            source,
        })?;
        let file: ConfigFile = crate::config::toml_file::parse(&text, &path.display().to_string())
            .map_err(|e| Error::Usage(format!("{e}")))?;
        mirrors.extend(file.mirrors);
    }
    if let Ok(value) = std::env::var("BUNDLE_RELEASE_MIRROR") {
        for pair in value.split([' ', ',', '\n']).filter(|p| !p.is_empty()) {
            let (from, to) = pair.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "BUNDLE_RELEASE_MIRROR: `{pair}` is not FROM=TO (e.g. https://github.com/=https://mirror.example/github/)"
                ))
            })?;
            mirrors.insert(from.to_string(), to.to_string());
        }
    }
    for (from, to) in &mirrors {
        for url in [from, to] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Usage(format!(
                    "release mirror `{from}` = `{to}`: both must be http(s) URL prefixes"
                )));
            }
        }
    }
    Ok(mirrors.into_iter().collect())
}
