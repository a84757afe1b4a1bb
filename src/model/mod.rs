//! The serialized contracts: what users' scripts and CI read and write.
//!
//! - [`plan::Plan`]: every file a bundle will hold, pinned before anything
//!   is downloaded (`bundle plan --json`; a lock file is a saved Plan);
//! - [`manifest::Manifest`]: what a bundle holds and why (`manifest.json`);
//! - [`hash::Sha256`]: the only way a digest enters the program.
//!
//! These types change only by extension: a new optional field, never a
//! renamed or removed one.
#![deny(missing_docs)]

pub mod hash;
pub mod integrity;
pub mod manifest;
pub mod npm;
pub mod plan;
pub mod pylock;

use serde::{Deserialize, Serialize};

pub use hash::Sha256;

/// A check run in the sandbox after installing: `run` must exit 0 and, when
/// `expect` is given, print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// A shell command, run with the sandbox's own PATH; when its first word
    /// names a program of the bundle, that word becomes the program's full
    /// path, `<bundle>/bin/<program>`, as PROMPT.txt tells the user.
    pub run: String,
    /// Text the command's output must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// What `verify` leaves out of the steps it runs for every bundle (the
/// recipe's `[verify]` table): modules that need a display or hardware the
/// sandbox lacks, programs that cannot be started with `--version` or
/// `--help` alone. The report lists each one as skipped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// Modules not imported (a top-level name, or a dotted one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_imports: Vec<String>,
    /// Programs of `bin/` not started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_programs: Vec<String>,
}

impl VerifySettings {
    /// True when nothing is skipped (the field is then left out).
    pub fn is_empty(&self) -> bool {
        self.skip_imports.is_empty() && self.skip_programs.is_empty()
    }

    /// Add another recipe's skips (for `bundle build a b`).
    pub fn merge(&mut self, other: VerifySettings) {
        for (to, from) in [
            (&mut self.skip_imports, other.skip_imports),
            (&mut self.skip_programs, other.skip_programs),
        ] {
            for x in from {
                if !to.contains(&x) {
                    to.push(x);
                }
            }
        }
    }
}

/// The short form of a target written into manifests and plans.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetSummary {
    /// The profile's name (`chatgpt-2023`, or a file's stem).
    pub name: String,
    /// Docker platform: `linux/amd64` or `linux/arm64`.
    pub platform: String,
    /// The target's glibc, `major.minor`.
    pub glibc: String,
    /// The target's CPython version.
    pub python: String,
}

/// Quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// How a binary finds the bundle's `lib/`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Its RUNPATH was set to `$ORIGIN/../lib`.
    Runpath,
    /// `bin/<name>` is a shell script that sets LD_LIBRARY_PATH and runs
    /// `libexec/<name>`.
    Wrapper,
}

/// A package left out of the bundle, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    /// Its name.
    pub package: String,
    /// The version the target has.
    pub version: String,
    /// Why it is left out (`preinstalled on target`).
    pub reason: String,
}

/// A preinstalled package the bundle replaces with another version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replaced {
    /// Its name.
    pub package: String,
    /// The version the target has.
    pub preinstalled: String,
    /// The version the bundle installs over it.
    pub version: String,
}
