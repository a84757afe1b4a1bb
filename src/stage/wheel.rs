//! What a wheel offers its user, read from the archive on the host (never
//! run): the modules it makes importable and the console scripts it
//! declares, which become launchers in the bundle's `bin/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::archive;

/// A wheel's import names and programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WheelFacts {
    /// Top-level modules (`top_level.txt`, else the names in the archive).
    pub modules: Vec<String>,
    /// Console and GUI scripts: program name to `module:attr`.
    pub scripts: BTreeMap<String, String>,
}

/// Read a wheel's facts; an unreadable wheel has none (the ELF check and
/// pip report a broken wheel on their own).
pub fn facts(wheel: &Path) -> WheelFacts {
    let dist_info_file = |p: &Path| {
        let s = archive::slashed(p);
        s.matches('/').count() == 1
            && s.split_once('/').is_some_and(|(dir, f)| {
                dir.ends_with(".dist-info") && (f == "top_level.txt" || f == "entry_points.txt")
            })
    };
    let Ok(peek) =
        archive::zip_names_and(wheel, archive::Limits::from_env(), &dist_info_file, 1 << 20)
    else {
        return WheelFacts::default();
    };
    let read = |file: &str| {
        peek.members
            .iter()
            .find(|(p, _)| p.file_name().is_some_and(|n| n == file))
            .map(|(_, data)| String::from_utf8_lossy(data).into_owned())
    };
    let mut modules = read("top_level.txt")
        .map(|t| modules_from_top_level(&t))
        .unwrap_or_default();
    if modules.is_empty() {
        modules = modules_from_names(&peek.names);
    }
    let scripts = read("entry_points.txt")
        .map(|t| scripts_from_entry_points(&t))
        .unwrap_or_default();
    WheelFacts { modules, scripts }
}

fn modules_from_top_level(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('_') && !l.contains('/'))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn modules_from_names(names: &[String]) -> Vec<String> {
    let mut mods = BTreeSet::new();
    for n in names {
        let first = n.split('/').next().unwrap_or("");
        if first.ends_with(".dist-info") || first.ends_with(".data") || first.starts_with('_') {
            continue;
        }
        if n.contains('/') {
            if n.ends_with("/__init__.py") && n.matches('/').count() == 1 {
                mods.insert(first.to_string());
            }
        } else if let Some(m) = n.strip_suffix(".py") {
            mods.insert(m.to_string());
        } else if n.ends_with(".so") {
            mods.insert(n.split('.').next().unwrap_or("").to_string());
        }
    }
    mods.into_iter().filter(|m| !m.is_empty()).collect()
}

/// `[console_scripts]` and `[gui_scripts]` of an `entry_points.txt`; names
/// that could leave `bin/`, and references that are not `module:attr`, are
/// left out.
fn scripts_from_entry_points(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut wanted = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            wanted = matches!(line, "[console_scripts]" | "[gui_scripts]");
            continue;
        }
        if !wanted {
            continue;
        }
        let Some((name, reference)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        // `module:attr [extra]`: the extras do not change what runs.
        let reference = reference.split('[').next().unwrap_or("").trim();
        let safe_name = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
        let valid_reference = reference.split_once(':').is_some_and(|(m, a)| {
            let dotted = |s: &str| {
                !s.is_empty()
                    && s.split('.').all(|p| {
                        !p.is_empty()
                            && !p.starts_with(|c: char| c.is_ascii_digit())
                            && p.chars().all(|c| c.is_alphanumeric() || c == '_')
                    })
            };
            dotted(m) && dotted(a)
        });
        if safe_name && valid_reference {
            out.entry(name.to_string())
                .or_insert_with(|| reference.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_give_console_and_gui_scripts_only() {
        let text = "[console_scripts]\nsqlite-utils = sqlite_utils.cli:cli\nhttpx = httpx:main [cli]\n\n[gui_scripts]\nviewer=app.gui:Main.run\n\n[pytest11]\nplugin = x.y:z\n";
        let s = scripts_from_entry_points(text);
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            [
                ("httpx".to_string(), "httpx:main".to_string()),
                ("sqlite-utils".into(), "sqlite_utils.cli:cli".into()),
                ("viewer".into(), "app.gui:Main.run".into()),
            ]
        );
    }

    #[test]
    fn unsafe_names_and_references_are_dropped() {
        let text = "[console_scripts]\n../evil = a:b\nok = os:system('x')\nbad/name = a:b\n.hidden = a:b\nfine = a.b:c\n";
        let s = scripts_from_entry_points(text);
        assert_eq!(s.keys().collect::<Vec<_>>(), ["fine"]);
    }

    #[test]
    fn modules_from_archive_names() {
        let names = [
            "six.py",
            "pkg/__init__.py",
            "pkg/sub/__init__.py",
            "_private.py",
            "fast.cpython-38-x86_64-linux-gnu.so",
            "pkg-1.0.dist-info/METADATA",
        ]
        .map(String::from);
        assert_eq!(modules_from_names(&names), ["fast", "pkg", "six"]);
        assert_eq!(modules_from_top_level("b\na\n_c\n\n"), ["a", "b"]);
    }
}
