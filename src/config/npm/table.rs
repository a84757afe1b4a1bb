//! The `[npm]` table of a recipe, checked where it is (file:line:col).

use serde::Deserialize;
use toml::Spanned;

use super::super::recipe::{plain_apt_word, RecipeError};
use crate::model::Check;

/// `exclude_newer`, refused at its place when it is not a real date.
fn exclude_newer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    crate::config::dates::exclude_newer(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNpm {
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    #[serde(default)]
    runtime: Option<Spanned<String>>,
    #[serde(default)]
    binaries: Vec<Spanned<String>>,
    #[serde(default, deserialize_with = "exclude_newer")]
    exclude_newer: Option<String>,
    #[serde(default)]
    check: Vec<Check>,
}

/// The `[npm]` part of a recipe (or `npm:` items, a package.json or a
/// package-lock.json), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npm {
    /// `name@range` or `name@tag`, each checked.
    pub packages: Vec<String>,
    /// Node (default), Deno, or the sandbox's own node.
    pub runtime: crate::model::npm::RuntimeKind,
    /// The runtime's version range, as written (`*` for any).
    pub runtime_range: String,
    /// Programs to expose; empty: every `bin` of the packages asked for.
    pub binaries: Vec<String>,
    /// Only versions published before this date.
    pub exclude_newer: Option<String>,
    pub check: Vec<Check>,
    /// The tree a package-lock.json pins: built as it is, not resolved.
    pub tree: Option<Vec<crate::model::npm::LockedNpm>>,
}

impl Npm {
    /// An `[npm]` of these packages, with the default runtime.
    pub fn of_packages(packages: Vec<String>) -> Npm {
        Npm {
            packages,
            runtime: crate::model::npm::RuntimeKind::Node,
            runtime_range: "*".into(),
            binaries: Vec::new(),
            exclude_newer: None,
            check: Vec::new(),
            tree: None,
        }
    }

    pub(in crate::config) fn parse(
        raw: RawNpm,
        at: usize,
        invalid: &dyn Fn(usize, String) -> RecipeError,
    ) -> Result<Npm, RecipeError> {
        if raw.packages.is_empty() {
            return Err(invalid(at, "[npm] lists no `packages` to bundle".into()));
        }
        let mut npm = Npm::of_packages(Vec::new());
        for p in &raw.packages {
            crate::config::npm::parse_spec(p.get_ref()).map_err(|e| {
                invalid(
                    p.span().start,
                    format!("[npm] package `{}`: {e}", p.get_ref()),
                )
            })?;
            npm.packages.push(p.get_ref().clone());
        }
        if let Some(r) = &raw.runtime {
            let (kind, range) = crate::config::npm::parse_runtime(r.get_ref())
                .map_err(|e| invalid(r.span().start, format!("[npm] runtime: {e}")))?;
            npm.runtime = kind;
            npm.runtime_range = range.as_str().to_string();
        }
        for b in &raw.binaries {
            if !plain_apt_word(b.get_ref()) || b.get_ref().contains(['/', ':', '=']) {
                return Err(invalid(
                    b.span().start,
                    format!("[npm] `{}` is not a program name", b.get_ref()),
                ));
            }
            npm.binaries.push(b.get_ref().clone());
        }
        npm.exclude_newer = raw.exclude_newer;
        npm.check = raw.check;
        Ok(npm)
    }

    /// Another `[npm]` merged in (`bundle build a b`).
    pub(in crate::config) fn merge(&mut self, other: Npm) {
        for p in other.packages {
            if !self.packages.contains(&p) {
                self.packages.push(p);
            }
        }
        for b in other.binaries {
            if !self.binaries.contains(&b) {
                self.binaries.push(b);
            }
        }
        if self.runtime_range == "*" && self.runtime == other.runtime {
            self.runtime_range = other.runtime_range;
        }
        self.exclude_newer = self.exclude_newer.take().or(other.exclude_newer);
        self.check.extend(other.check);
        self.tree = self.tree.take().or(other.tree);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::recipe::Recipe;

    #[test]
    fn npm_tables_are_checked_where_they_are() {
        let ok = "[npm]\npackages = [\"prettier@^3\", \"@scope/tool\"]\nruntime = \"deno@2\"\nbinaries = [\"prettier\"]\n";
        let r = Recipe::parse("x", ok, "x.toml").unwrap();
        let npm = r.npm.unwrap();
        assert_eq!(npm.runtime, crate::model::npm::RuntimeKind::Deno);
        assert_eq!(npm.runtime_range, "2");
        let cases = [
            (
                "[npm]\nruntime = \"node\"\n",
                "x.toml:1:1: [npm] lists no `packages`",
            ),
            (
                "[npm]\npackages = [\"ok\", \"x@git+https://h/r\"]\n",
                "x.toml:2:19: [npm] package `x@git+https://h/r`",
            ),
            (
                "[npm]\npackages = [\"ok\"]\nruntime = \"bun\"\n",
                "x.toml:3:11: [npm] runtime: `bun` is not a runtime",
            ),
            (
                "[npm]\npackages = [\"ok\"]\nbinaries = [\"../x\"]\n",
                "x.toml:3:13: [npm] `../x` is not a program name",
            ),
            (
                "[npm]\npackages = [\"ok\"]\nregistry = \"x\"\n",
                "x.toml:3:1",
            ),
        ];
        for (text, want) in cases {
            let e = Recipe::parse("x", text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
