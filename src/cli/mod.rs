//! The command line's own parts: one file per command, the progress
//! reporter, and printing. All the work is in the library.

pub mod args;
pub mod build;
pub mod cache;
pub mod capture;
pub mod inspect;
pub mod lock;
pub mod plan;
pub mod process;
pub mod recipes;
pub mod reporter;
pub mod targets;
pub mod verify;

use bundle::pipeline::Options;

use args::ResolveArgs;

/// Print a line to stdout (see [`out`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::cli::out(&line);
    }};
}
pub(crate) use outln;

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

/// Print one JSON document on stdout.
/// The one JSON document a `--json` run prints, set by the command and
/// printed by `main` when the run ends: the result, with an `error` member
/// added when the run failed.
static JSON_RESULT: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

/// Set the run's JSON result (printed once, at the end, by `main`).
pub fn print_json<T: serde::Serialize>(value: &T) {
    let value = serde_json::to_value(value).expect("serializable");
    *JSON_RESULT.lock().expect("poisoned") = Some(value);
}

/// Print the run's one JSON document on stdout: its result, or on failure
/// `{"error": {kind, message, hints, exit_code}}` (beside the result's own
/// members when there is one, e.g. a failed verify's report).
pub fn finish_json(error: Option<&bundle::Error>) {
    let result = JSON_RESULT.lock().expect("poisoned").take();
    let doc = match error {
        None => result.unwrap_or(serde_json::Value::Null),
        // A matrix build's list carries each target's error in its place.
        Some(_) if matches!(result, Some(serde_json::Value::Array(_))) => {
            result.expect("matched above")
        }
        Some(e) => {
            let mut doc = match result {
                Some(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            doc.insert("error".into(), error_json(e));
            serde_json::Value::Object(doc)
        }
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
    text.push('\n');
    out(&text);
}

/// `{kind, message, hints, exit_code}` of an error.
pub fn error_json(e: &bundle::Error) -> serde_json::Value {
    use bundle::Diagnose;
    let mut message = e.to_string();
    for cause in bundle::error::causes(e) {
        message.push_str(&format!("\ncaused by: {cause}"));
    }
    serde_json::json!({
        "kind": e.kind(),
        "message": message,
        "hints": e.hint().into_iter().collect::<Vec<_>>(),
        "exit_code": e.exit_code(),
    })
}

/// The error document of a command line clap refused (exit 2).
pub fn usage_error_json(message: &str) {
    let doc = serde_json::json!({"error": {
        "kind": "usage",
        "message": message.trim(),
        "hints": ["bundle --help lists the commands; bundle <command> --help their options"],
        "exit_code": 2,
    }});
    let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
    text.push('\n');
    out(&text);
}

pub fn options_from(r: &ResolveArgs) -> Options {
    Options {
        args: r.items.clone(),
        target: r.target.first().cloned(),
        recipes_dir: r.recipes.clone(),
        index_url: r.index_url.clone(),
        github_api: r.github_api.clone(),
        crates_index: r.crates_index.clone(),
        npm_registry: r.npm_registry.clone(),
        offline: r.offline,
        refresh: r.refresh,
        upgrade_preinstalled: r.upgrade_preinstalled,
        allow_unhashed: r.allow_unhashed,
        name: r.name.clone(),
        requirement_files: r.requirement.clone(),
        constraint_files: r.constraint.clone(),
        extras: r.extra.clone(),
        install_project: !r.no_install_project,
        exclude_newer: r.exclude_newer.clone(),
        sdists: r.sdists.as_deref().map(|s| {
            if s == "build" {
                bundle::config::recipe::Sdists::Build
            } else {
                bundle::config::recipe::Sdists::Never
            }
        }),
        ..Options::default()
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `plan` and `lock` make one Plan: one target.
pub fn one_target(r: &ResolveArgs) -> Result<(), bundle::Error> {
    if r.target.len() > 1 {
        return Err(bundle::Error::Usage(
            "plan and lock take one --target; build takes several".into(),
        ));
    }
    Ok(())
}

/// Where one item of the command line comes from.
#[derive(serde::Serialize)]
pub struct Source {
    /// The argument as given.
    pub item: String,
    /// `pypi`, `apt`, `project (pypi)`, or `recipe (KINDS)`: the kinds of
    /// source the recipe has (`pypi`, `release`, `apt`, `build`).
    pub source: String,
    /// A hint when a bare name is likely meant as a program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The source of every item, with each hint printed as a warning on stderr
/// (unless quiet) before any work starts.
pub fn sources(r: &ResolveArgs, quiet: bool) -> Vec<Source> {
    let sources: Vec<Source> =
        bundle::config::items::describe_sources(&r.items, r.recipes.as_deref())
            .into_iter()
            .map(|(item, source, hint)| Source { item, source, hint })
            .chain(r.requirement.iter().map(|f| Source {
                item: format!("-r {}", f.display()),
                source: "requirements file (pypi)".into(),
                hint: None,
            }))
            .collect();
    if !quiet {
        for s in sources.iter().filter_map(|s| s.hint.as_ref()) {
            eprintln!("warning: {s}");
        }
    }
    sources
}

/// `sqlite-utils (pypi), jq (apt)`.
pub fn sources_line(sources: &[Source]) -> String {
    sources
        .iter()
        .map(|s| format!("{} ({})", s.item, s.source))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command, without help text.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for s in cmd.get_subcommands() {
            undocumented(s, &format!("{path} {}", s.get_name()), out);
        }
    }

    #[test]
    fn every_flag_says_what_it_does_and_help_lists_the_exit_codes() {
        let mut cmd = crate::cli::args::Cli::command();
        let mut missing = Vec::new();
        undocumented(&cmd, "bundle", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
        let help = cmd.render_long_help().to_string();
        for code in [
            "0    ok",
            "1    the work failed",
            "2    bad usage",
            "143  stopped by SIGTERM",
        ] {
            assert!(help.contains(code), "{code} missing from:\n{help}");
        }
    }
}
