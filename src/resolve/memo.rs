//! Resolutions remembered: a resolution depends only on what was asked (the
//! request, the target, the options) and on the index pages it read. When
//! every one of those pages would be served again, unchanged, from the
//! cache (fresh, or `--offline`; never with `--refresh`), the earlier
//! result is the result, and no solver needs to run.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::fetch::{Fetcher, PageRead};

#[derive(Serialize, Deserialize)]
struct Memo<T> {
    pages: Vec<PageRead>,
    value: T,
}

fn path(fetcher: &Fetcher, key: &str) -> std::path::PathBuf {
    fetcher.cache().keyed("resolutions", key, ".json")
}

/// The remembered result for `key`, if every page it came from is unchanged.
pub fn lookup<T: DeserializeOwned>(fetcher: &Fetcher, key: &str) -> Option<T> {
    let memo: Memo<T> = fetcher.cache().read_json(&path(fetcher, key))?;
    if memo.pages.is_empty() || !memo.pages.iter().all(|p| fetcher.page_unchanged(p)) {
        return None;
    }
    Some(memo.value)
}

/// Remember `value` for `key`, with the pages it was made from (best
/// effort: a failure costs the next run only its shortcut).
pub fn store<T: Serialize>(fetcher: &Fetcher, key: &str, value: &T, mut pages: Vec<PageRead>) {
    pages.sort_by(|a, b| (&a.url, &a.accept).cmp(&(&b.url, &b.accept)));
    pages.dedup();
    // A page read twice with two bodies (changed during the run): no memo.
    if pages
        .windows(2)
        .any(|w| w[0].url == w[1].url && w[0].accept == w[1].accept)
    {
        return;
    }
    let _ = fetcher
        .cache()
        .write_json(&path(fetcher, key), &Memo { pages, value });
}
