//! The command line's own parts: one file per command, the progress
//! reporter, and printing. All the work is in the library.

pub mod build;
pub mod cache;
pub mod capture;
pub mod inspect;
pub mod lock;
pub mod plan;
pub mod recipes;
pub mod reporter;
pub mod targets;
pub mod verify;

use bundle::pipeline::Options;

use crate::ResolveArgs;

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
pub fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("serializable");
    text.push('\n');
    out(&text);
}

pub fn options_from(r: &ResolveArgs) -> Options {
    Options {
        args: r.items.clone(),
        target: r.target.clone(),
        recipes_dir: r.recipes.clone(),
        index_url: r.index_url.clone(),
        github_api: r.github_api.clone(),
        offline: r.offline,
        refresh: r.refresh,
        upgrade_preinstalled: r.upgrade_preinstalled,
        allow_unhashed: r.allow_unhashed,
        name: r.name.clone(),
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
