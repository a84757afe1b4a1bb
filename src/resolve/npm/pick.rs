//! Which version of a package a spec takes, as npm picks it: the
//! `latest` dist-tag when it is in range (and not deprecated, and its
//! engines fit), else the highest version in range, preferring versions
//! that are not deprecated, then those whose `engines.node` fits the
//! runtime. With a cutoff date, only versions published by then count,
//! and a dist-tag means the highest such version up to the tagged one.

use crate::config::npm::{Range, Want};

use super::packument::{Packument, VersionMeta};

/// What picking looks at besides the packument.
#[derive(Debug, Clone, Default)]
pub struct PickContext {
    /// `exclude_newer`, as `config::dates` keeps it.
    pub before: Option<String>,
    /// The runtime's Node version, for `engines.node`.
    pub node: Option<semver::Version>,
}

impl PickContext {
    fn published_in_time(&self, p: &Packument, version: &str) -> bool {
        match (&self.before, p.time.get(version)) {
            (Some(cutoff), Some(at)) => crate::config::dates::uploaded_by(at, cutoff),
            _ => true,
        }
    }

    fn engine_ok(&self, m: &VersionMeta) -> bool {
        match (&self.node, m.engines.get("node")) {
            (Some(node), Some(range)) => Range::parse(range).map_or(true, |r| {
                // Engines ranges are checked with pre-releases allowed, as npm does.
                let mut plain = node.clone();
                plain.pre = semver::Prerelease::EMPTY;
                r.matches(&plain)
            }),
            _ => true,
        }
    }
}

/// The version `want` takes, or None when none fits.
pub fn pick<'a>(
    p: &'a Packument,
    want: &Want,
    ctx: &PickContext,
) -> Option<(semver::Version, &'a VersionMeta)> {
    let range = match want {
        Want::Range(r) => r.clone(),
        Want::Tag(tag) => {
            let tagged = p.dist_tags.get(tag)?;
            if ctx.published_in_time(p, tagged) {
                let v = semver::Version::parse(tagged).ok()?;
                return p.versions.get(tagged).map(|m| (v, m));
            }
            Range::parse(&format!("<={tagged}")).ok()?
        }
    };
    if let Some(latest) = p.dist_tags.get("latest") {
        if let (Ok(v), Some(m)) = (semver::Version::parse(latest), p.versions.get(latest)) {
            let in_range = range.as_str() == "*" || range.as_str().is_empty() || range.matches(&v);
            if in_range
                && ctx.published_in_time(p, latest)
                && ctx.engine_ok(m)
                && !m.is_deprecated()
            {
                return Some((v, m));
            }
        }
    }
    p.versions
        .iter()
        .filter(|(k, _)| ctx.published_in_time(p, k))
        .filter_map(|(k, m)| Some((semver::Version::parse(k).ok()?, m)))
        .filter(|(v, _)| range.matches(v))
        .max_by(|(va, ma), (vb, mb)| {
            (!ma.is_deprecated(), ctx.engine_ok(ma), va).cmp(&(
                !mb.is_deprecated(),
                ctx.engine_ok(mb),
                vb,
            ))
        })
}

/// The newest versions a package has, releases before pre-releases (for
/// a message when none fits).
pub fn newest(p: &Packument, n: usize) -> Vec<String> {
    let mut all: Vec<semver::Version> = p
        .versions
        .keys()
        .filter_map(|k| semver::Version::parse(k).ok())
        .collect();
    all.sort_by(|a, b| (b.pre.is_empty(), b).cmp(&(a.pre.is_empty(), a)));
    all.iter().take(n).map(|v| v.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packument(json: serde_json::Value) -> Packument {
        serde_json::from_value(json).unwrap()
    }

    fn picked(p: &Packument, spec: &str, ctx: &PickContext) -> Option<String> {
        pick(p, &Want::parse(spec).unwrap(), ctx).map(|(v, _)| v.to_string())
    }

    #[test]
    fn latest_first_then_the_highest_not_deprecated() {
        let p = packument(serde_json::json!({
            "name": "a",
            "dist-tags": {"latest": "1.5.0", "next": "2.0.0-rc.1"},
            "versions": {
                "1.0.0": {}, "1.5.0": {}, "1.6.0": {},
                "1.7.0": {"deprecated": "broken"},
                "2.0.0-rc.1": {}, "0.9.0": {}
            },
            "time": {"1.0.0": "2020-01-01T00:00:00Z", "1.5.0": "2021-01-01T00:00:00Z",
                     "1.6.0": "2022-01-01T00:00:00Z", "1.7.0": "2023-01-01T00:00:00Z"}
        }));
        let ctx = PickContext::default();
        // latest is in range: taken even though 1.6.0 is higher.
        assert_eq!(picked(&p, "^1", &ctx).as_deref(), Some("1.5.0"));
        // latest out of range: the highest not deprecated.
        assert_eq!(picked(&p, ">1.5.0", &ctx).as_deref(), Some("1.6.0"));
        assert_eq!(picked(&p, "1.7.0", &ctx).as_deref(), Some("1.7.0"));
        assert_eq!(picked(&p, "next", &ctx).as_deref(), Some("2.0.0-rc.1"));
        assert_eq!(picked(&p, "^2", &ctx), None, "pre-releases only when asked");
        assert_eq!(
            picked(&p, "^2.0.0-rc.0", &ctx).as_deref(),
            Some("2.0.0-rc.1")
        );
        let before = PickContext {
            before: Some("2020-06-01".into()),
            node: None,
        };
        assert_eq!(picked(&p, "^1", &before).as_deref(), Some("1.0.0"));
        assert_eq!(picked(&p, "latest", &before).as_deref(), Some("1.0.0"));
    }
}
