//! The README documents every key the parsers accept, and points at no file
//! outside the repository. The keys are asked of the parsers themselves: an
//! unknown key's error lists the ones each table accepts.

use crate::common::*;

/// The keys a table accepts, from the error an unknown key gets.
fn accepted_keys(kind: &str, text: &str) -> Vec<String> {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("probe.toml");
    std::fs::write(&file, text).unwrap();
    let args: Vec<&str> = match kind {
        "recipe" => vec!["plan", file.to_str().unwrap(), "--offline"],
        _ => vec!["plan", "x", "--offline", "--target", file.to_str().unwrap()],
    };
    let err = fails(bundle(d.path(), d.path()).args(&args), 2);
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no key list in: {err}"));
    list.lines()
        .next()
        .unwrap()
        .replace(" or ", ", ")
        .split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

#[test]
fn every_key_the_parsers_accept_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let formats = readme
        .split("## Formats")
        .nth(1)
        .expect("the README has a Formats section");
    let probes = [
        ("recipe", "zz_unknown = 1\n"),
        ("recipe", "[pypi]\nzz_unknown = 1\n"),
        (
            "recipe",
            "[[release]]\nname = \"a\"\nversion = \"1\"\nurl = \"https://x/a\"\nzz_unknown = 1\n",
        ),
        ("recipe", "[apt]\nzz_unknown = 1\n"),
        (
            "recipe",
            "[pypi]\ncheck = [{ run = \"x\", zz_unknown = 1 }]\n",
        ),
        ("target", "zz_unknown = 1\n"),
    ];
    let mut checked = 0;
    for (kind, text) in probes {
        for key in accepted_keys(kind, text) {
            assert!(
                formats.contains(&format!("{key} ="))
                    || formats.contains(&format!("{key} ="))
                    || formats.contains(&format!("[{key}]"))
                    || formats.contains(&format!("[[{key}]]"))
                    || formats.contains(&format!("{{ {key} ="))
                    || formats.contains(&format!("`{key}`")),
                "{kind} key `{key}` is not documented under Formats in the README"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 25,
        "only {checked} keys found: the probes are broken"
    );
}

#[test]
fn the_repository_points_at_no_file_outside_it() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut texts = vec![std::fs::read_to_string(format!("{root}/README.md")).unwrap()];
    for dir in ["src", "recipes", "docs"] {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{dir}")) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                texts.push(t);
            }
        }
    }
    for t in &texts {
        assert!(
            !t.contains("DESIGN.md"),
            "a reference to DESIGN.md, which users do not have"
        );
        assert!(
            !t.contains("../shared"),
            "a reference outside the repository"
        );
    }
}
