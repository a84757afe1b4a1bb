//! npm's spec syntax: `name@range` or `name@tag`, ranges turned into the
//! `semver` crate's requirements (one per `||` alternative), package names
//! and the runtime's spec.

use crate::model::npm::spec_name;

/// A version range in npm's syntax: alternatives (`||`), each a set of
/// comparators that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    sets: Vec<semver::VersionReq>,
}

impl Range {
    /// Parse npm's range syntax: `^1.2`, `~1.2.3`, `>=1 <3`, `1.x`,
    /// `1.2.3 - 2`, `a || b`, `*`, `` (any), `1.2.3` (exactly).
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut sets = Vec::new();
        for alt in text.split("||") {
            let comparators = set_comparators(alt.trim())?;
            let joined = if comparators.is_empty() {
                "*".to_string()
            } else {
                comparators.join(", ")
            };
            let req = semver::VersionReq::parse(&joined)
                .map_err(|e| format!("`{}` is not a version range: {e}", alt.trim()))?;
            sets.push(req);
        }
        Ok(Range {
            text: text.trim().to_string(),
            sets,
        })
    }

    /// Any version.
    pub fn any() -> Range {
        Range::parse("*").expect("`*` parses")
    }

    /// Whether `v` is in the range. As npm, a pre-release matches only a
    /// set that names a pre-release of the same `major.minor.patch`.
    pub fn matches(&self, v: &semver::Version) -> bool {
        self.sets.iter().any(|r| r.matches(v))
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One version in npm's loose form: `v` and `=` prefixes dropped, build
/// metadata kept for the parser to ignore.
fn clean_version(s: &str) -> &str {
    s.trim_start_matches('=').trim_start_matches(['v', 'V'])
}

/// A partial version's numeric parts up to the first wildcard, and the
/// rest (pre-release) when it is full: `1.x` → ["1"], `1.2.3-rc.1` →
/// ["1","2","3-rc.1"].
fn partial(s: &str) -> Result<Vec<&str>, String> {
    let s = clean_version(s);
    let mut parts = Vec::new();
    for (i, p) in s.splitn(3, '.').enumerate() {
        if matches!(p, "x" | "X" | "*") || p.is_empty() && i == 0 {
            break;
        }
        let digits_end = p.find(['-', '+']).unwrap_or(p.len());
        if p[..digits_end].is_empty() || !p[..digits_end].bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` is not a version"));
        }
        if i < 2 && digits_end != p.len() {
            return Err(format!("`{s}` is not a version"));
        }
        parts.push(p);
    }
    Ok(parts)
}

/// The `semver` comparators of one `||` alternative.
fn set_comparators(set: &str) -> Result<Vec<String>, String> {
    // A hyphen range: `A - B`.
    if let Some((a, b)) = set.split_once(" - ") {
        let (lo, hi) = (partial(a.trim())?, partial(b.trim())?);
        let mut out = Vec::new();
        if !lo.is_empty() {
            out.push(format!(">={}", lo.join(".")));
        }
        if !hi.is_empty() {
            out.push(format!("<={}", hi.join(".")));
        }
        return Ok(out);
    }
    // Operators may stand apart from their version (`>= 1.2`).
    let mut words: Vec<String> = Vec::new();
    for w in set.split_whitespace() {
        match words.last_mut() {
            Some(last)
                if matches!(
                    last.as_str(),
                    "<" | ">" | "<=" | ">=" | "=" | "~" | "^" | "~>"
                ) =>
            {
                last.push_str(w)
            }
            _ => words.push(w.to_string()),
        }
    }
    let mut out = Vec::new();
    for w in words {
        let (op, rest) = split_op(&w);
        let parts = partial(rest)?;
        if parts.is_empty() {
            match op {
                // `<*` matches nothing; `>*` nothing either.
                "<" | ">" => return Err(format!("`{w}` matches no version")),
                _ => continue,
            }
        }
        let v = parts.join(".");
        let op = match op {
            "" | "=" => "=",
            "~>" => "~",
            other => other,
        };
        out.push(format!("{op}{v}"));
    }
    Ok(out)
}

fn split_op(w: &str) -> (&str, &str) {
    for op in [">=", "<=", "~>", ">", "<", "=", "~", "^"] {
        if let Some(rest) = w.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", w)
}

/// What a spec asks for: a range, or a dist-tag (`latest`, `next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Range(Range),
    Tag(String),
}

impl Want {
    /// A range, else a tag name; anything else (a URL, a path, an alias)
    /// is refused, saying what bundle takes.
    pub fn parse(spec: &str) -> Result<Want, String> {
        let spec = spec.trim();
        if let Ok(r) = Range::parse(spec) {
            return Ok(Want::Range(r));
        }
        let tag_like = spec.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && spec
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if tag_like {
            return Ok(Want::Tag(spec.to_string()));
        }
        let kind = if spec.starts_with("npm:") {
            "an alias (`npm:other@range`)"
        } else if spec.contains("://") || spec.starts_with("git") || spec.starts_with("github:") {
            "a URL or git source"
        } else if spec.starts_with("file:")
            || spec.starts_with("link:")
            || spec.starts_with('.')
            || spec.starts_with('/')
        {
            "a local path"
        } else if spec.starts_with("workspace:") {
            "a workspace"
        } else {
            return Err(format!(
                "`{spec}` is neither a version range nor a dist-tag"
            ));
        };
        Err(format!(
            "`{spec}` is {kind}; bundle takes registry packages with a version range or a dist-tag"
        ))
    }

    /// As written.
    pub fn text(&self) -> &str {
        match self {
            Want::Range(r) => r.as_str(),
            Want::Tag(t) => t,
        }
    }
}

/// Whether `name` is a registry package name bundle accepts: URL-safe, at
/// most 214 characters, not starting with `.` or `_`, `@scope/name` for a
/// scoped one.
pub fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
    };
    if name.is_empty() || name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, rest)) => part(scope) && part(rest),
            None => false,
        },
        None => part(name),
    }
}

/// `name@spec` checked: the name, and what the spec asks for (`latest`
/// when none is given).
pub fn parse_spec(spec: &str) -> Result<(String, Want), String> {
    let name = spec_name(spec);
    if !valid_name(name) {
        return Err(format!("`{name}` is not an npm package name"));
    }
    let rest = spec[name.len()..].strip_prefix('@').unwrap_or("");
    let want = if rest.is_empty() {
        Want::Tag("latest".into())
    } else {
        Want::parse(rest)?
    };
    Ok((name.to_string(), want))
}

/// `runtime = "node"`, `"node@^22"`, `"deno@2"` or `"system"`.
pub fn parse_runtime(text: &str) -> Result<(crate::model::npm::RuntimeKind, Range), String> {
    use crate::model::npm::RuntimeKind;
    let (kind, range) = match text.split_once('@') {
        Some((k, r)) => (k, r),
        None => (text, "*"),
    };
    let kind = match kind {
        "node" => RuntimeKind::Node,
        "deno" => RuntimeKind::Deno,
        "system" if range == "*" => RuntimeKind::System,
        "system" => return Err("`system` takes no version: it is the sandbox's own `node`".into()),
        other => {
            return Err(format!(
                "`{other}` is not a runtime: write \"node\", \"deno\" (each with an optional @range) or \"system\""
            ))
        }
    };
    Ok((kind, Range::parse(range)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn npm_ranges_mean_what_npm_means() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("^3", &["3.0.0", "3.9.1"], &["2.9.9", "4.0.0", "3.1.0-rc.1"]),
            ("1.2.3", &["1.2.3"], &["1.2.4"]),
            ("1.2", &["1.2.0", "1.2.9"], &["1.3.0"]),
            ("1.x", &["1.0.0", "1.9.0"], &["2.0.0"]),
            ("~1.2.3", &["1.2.9"], &["1.3.0"]),
            (">=1.2 <3", &["1.2.0", "2.9.9"], &["3.0.0", "1.1.9"]),
            (">= 1.2.0 < 2", &["1.5.0"], &["2.0.0"]),
            ("1.2.3 - 2.3", &["1.2.3", "2.3.9"], &["2.4.0", "1.2.2"]),
            ("<1 || >=3", &["0.5.0", "3.1.0"], &["2.0.0"]),
            ("*", &["0.0.1", "9.9.9"], &["1.0.0-beta"]),
            ("", &["1.0.0"], &[]),
            ("v1.0.0", &["1.0.0"], &["1.0.1"]),
            (
                "^1.0.0-rc.1",
                &["1.0.0-rc.2", "1.0.0", "1.5.0"],
                &["1.1.0-rc.1"],
            ),
            ("^0.2.3", &["0.2.9"], &["0.3.0"]),
        ];
        for (range, yes, no) in cases {
            let r = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            for y in *yes {
                assert!(r.matches(&v(y)), "{range} should match {y}");
            }
            for n in *no {
                assert!(!r.matches(&v(n)), "{range} should not match {n}");
            }
        }
        assert!(Range::parse("not a range").is_err());
    }

    #[test]
    fn specs_name_a_package_and_a_range_or_tag() {
        let (n, w) = parse_spec("prettier@^3").unwrap();
        assert_eq!((n.as_str(), w.text()), ("prettier", "^3"));
        let (n, w) = parse_spec("@esbuild/linux-x64").unwrap();
        assert_eq!(
            (n.as_str(), w),
            ("@esbuild/linux-x64", Want::Tag("latest".into()))
        );
        assert_eq!(
            parse_spec("typescript@next").unwrap().1,
            Want::Tag("next".into())
        );
        for bad in [
            "../etc@1",
            "Bad Name",
            "x@git+https://h/r.git",
            "x@file:../y",
            "x@npm:y@1",
            "",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
        assert!(parse_runtime("node@^22").is_ok());
        assert!(parse_runtime("bun").is_err());
        assert!(parse_runtime("system@1").is_err());
    }
}
