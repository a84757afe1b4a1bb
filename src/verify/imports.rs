//! Every top-level module of every wheel imports in the sandbox: one fresh
//! interpreter per wheel (its modules in turn), several wheels at once,
//! each within the target's time limit, from /tmp, as the sandbox user.
//! A failure names the module and the exception's last line; a module the
//! recipe lists in `[verify] skip_imports` is reported as skipped.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::assemble::FileKind;
use crate::config::target::Target;
use crate::docker::Run;
use crate::report::Reporter;

use super::bundle::Bundle;
use super::items::{self, Item, Status};
use super::{exec_items, Step, VerifyError};

/// The driver, run with the sandbox's python3: argv[1] is the time limit,
/// stdin a JSON list of `[label, [module, ...]]`. It prints one
/// `::bundle-json::` line per module. Standard library only, no `assert`.
const DRIVER: &str = r#"
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

CHILD = r'''
import importlib, json, sys, traceback
for m in sys.argv[1:]:
    try:
        importlib.import_module(m)
        r = [m, "pass", ""]
    except BaseException as e:
        lines = [l for l in traceback.format_exc().strip().splitlines() if l.strip()]
        r = [m, "fail", lines[-1] if lines else "failed"]
        if type(e).__name__ == "ModuleNotFoundError" and getattr(e, "name", None):
            r.append(e.name.split(".")[0])
    sys.stdout.write("\n::bundle-module::" + json.dumps(r) + "\n")
    sys.stdout.flush()
'''

limit = float(sys.argv[1])
jobs = json.load(sys.stdin)

def run(job):
    label, modules = job
    try:
        p = subprocess.run([sys.executable, "-c", CHILD] + modules, cwd="/tmp",
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=limit)
        return job, p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        return job, None, e.output or b""

def report(name, status, detail, missing=None):
    print("::bundle-json::" + json.dumps({"name": name, "status": status, "detail": detail,
                                          "missing": missing}), flush=True)

workers = max(1, min(4, os.cpu_count() or 1))
with ThreadPoolExecutor(max_workers=workers) as pool:
    for (label, modules), code, out in pool.map(run, jobs):
        text = out.decode("utf-8", "replace")
        done = {}
        for line in text.splitlines():
            if line.startswith("::bundle-module::"):
                r = json.loads(line[len("::bundle-module::"):])
                done[r[0]] = r[1:]
        other = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("::bundle-module::")]
        for m in modules:
            if m in done:
                status, detail, missing = (done[m] + [None])[:3]
                report("import " + m, status, "%s: %s" % (label, detail) if detail else label, missing)
            elif code is None:
                report("import " + m, "fail", "%s: the import did not finish within %d s" % (label, limit))
            else:
                why = "killed by signal %d" % -code if code < 0 else "exit code %d" % code
                report("import " + m, "fail", "%s: the interpreter ended (%s) before importing it: %s"
                       % (label, why, " | ".join(other[-3:])))
"#;

#[derive(Deserialize)]
struct Reported {
    name: String,
    status: Status,
    detail: String,
    /// The top-level module a `ModuleNotFoundError` named.
    #[serde(default)]
    missing: Option<String>,
}

/// A module other than its wheel's main one that fails only for want of a
/// module nothing in the bundle provides (duckdb's `adbc_driver_duckdb`
/// needs `adbc_driver_manager`, which duckdb does not require) needs an
/// optional dependency: it is skipped, saying which. The main module (the
/// one `import <package>` names) must import.
fn optional(r: &Reported, main: &BTreeSet<String>, provided: &BTreeSet<String>) -> Option<String> {
    let module = r.name.strip_prefix("import ")?;
    let missing = r.missing.as_deref()?;
    if r.status != Status::Fail || main.contains(module) || provided.contains(missing) {
        return None;
    }
    let package = r.detail.split(':').next().unwrap_or("");
    Some(format!(
        "it needs `{missing}`, which nothing in the bundle provides and {package} does not require (an optional dependency): \
         add the package that provides it to the requirements to bundle it, or list `{module}` in [verify] skip_imports"
    ))
}

/// What the step will import, before it runs.
struct Planned {
    /// The modules skipped by the recipe, as items.
    items: Vec<Item>,
    /// Per wheel (its label), the modules to import.
    jobs: Vec<(String, Vec<String>)>,
    /// Each wheel's main module.
    main: BTreeSet<String>,
    /// Every module the bundle's wheels make importable.
    provided: BTreeSet<String>,
}

/// Every wheel's recorded modules, less those the recipe skips.
fn planned(bundle: &Bundle) -> Planned {
    let skip = &bundle.manifest.verify.skip_imports;
    let mut items = Vec::new();
    let mut jobs: Vec<(String, Vec<String>)> = Vec::new();
    // Each wheel's main module, and every module the bundle's wheels make
    // importable.
    let mut main = BTreeSet::new();
    let mut provided = BTreeSet::new();
    for f in bundle
        .manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wheel)
    {
        let modules = if f.modules.is_empty() {
            crate::stage::wheel::facts(&bundle.dir.join(&f.path)).modules
        } else {
            f.modules.clone()
        };
        let label = format!(
            "{} {}",
            f.package.as_deref().unwrap_or(&f.path),
            f.version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string();
        if let Some(m) = f.import_name(&modules) {
            main.insert(m.to_string());
        }
        provided.extend(modules.iter().cloned());
        let mut run = Vec::new();
        for m in modules {
            if skip.contains(&m) {
                items.push(Item::new(
                    format!("import {m}"),
                    Status::Skipped,
                    format!("{label}: [verify] skip_imports"),
                ));
            } else {
                run.push(m);
            }
        }
        if !run.is_empty() {
            jobs.push((label, run));
        }
    }
    Planned {
        items,
        jobs,
        main,
        provided,
    }
}

/// The step: every wheel's recorded modules.
pub(super) async fn import_step(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Option<Step>, VerifyError> {
    let Planned {
        mut items,
        jobs,
        main,
        provided,
    } = planned(bundle);
    if jobs.is_empty() && items.is_empty() {
        return Ok(None);
    }
    let limit = target.command_timeout_s;
    let input = serde_json::to_string(&jobs).unwrap_or_else(|_| "[]".into());
    let script = format!(
        "W=$(mktemp -d /tmp/bundle-imports.XXXXXX) || exit 1\n\
         cat > \"$W/driver.py\" <<'BUNDLE_EOF'\n{DRIVER}\nBUNDLE_EOF\n\
         cat > \"$W/jobs.json\" <<'BUNDLE_EOF'\n{input}\nBUNDLE_EOF\n\
         cd /tmp && python3 \"$W/driver.py\" {limit} < \"$W/jobs.json\"; rc=$?\n\
         rm -rf \"$W\"; exit $rc\n"
    );
    let backstop = Duration::from_secs(limit * (jobs.len() as u64 + 1));
    let (out, elapsed) = exec_items(c, "imports", &script, backstop, reporter).await?;
    let text = out.combined();
    for line in text.lines() {
        if let Some(json) = line.strip_prefix("::bundle-json::") {
            if let Ok(r) = serde_json::from_str::<Reported>(json) {
                match optional(&r, &main, &provided) {
                    Some(why) => items.push(Item::new(r.name, Status::Skipped, why)),
                    None => items.push(Item::new(r.name, r.status, r.detail)),
                }
            }
        }
    }
    // A module the driver never reported (it died, or ran out of time).
    for (label, modules) in &jobs {
        for m in modules {
            let name = format!("import {m}");
            if !items.iter().any(|i| i.name == name) {
                items.push(Item::new(
                    name,
                    Status::Fail,
                    format!(
                        "{label}: not reported{}: {}",
                        if out.timed_out {
                            " (the step ran out of time)"
                        } else {
                            ""
                        },
                        items::last_lines(&text.lines().collect::<Vec<_>>(), 3)
                    ),
                ));
            }
        }
    }
    Ok(Some(items::step(
        "imports",
        items,
        elapsed,
        Some("python3 -c 'import MODULE', a fresh interpreter per wheel".into()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(name: &str, missing: Option<&str>) -> Reported {
        Reported {
            name: format!("import {name}"),
            status: Status::Fail,
            detail: "duckdb 1.4.5: ModuleNotFoundError: No module named 'adbc_driver_manager'"
                .into(),
            missing: missing.map(str::to_string),
        }
    }

    #[test]
    fn only_a_side_module_missing_an_unbundled_module_is_optional() {
        let main: BTreeSet<String> = ["duckdb".to_string()].into();
        let provided: BTreeSet<String> = [
            "duckdb".to_string(),
            "adbc_driver_duckdb".to_string(),
            "numpy".to_string(),
        ]
        .into();
        let why = optional(
            &reported("adbc_driver_duckdb", Some("adbc_driver_manager")),
            &main,
            &provided,
        )
        .expect("optional");
        assert!(why.starts_with("it needs `adbc_driver_manager`, which nothing in the bundle provides and duckdb 1.4.5 does not require"), "{why}");
        // The main module must import, whatever it lacks.
        assert_eq!(
            optional(
                &reported("duckdb", Some("adbc_driver_manager")),
                &main,
                &provided
            ),
            None
        );
        // A module the bundle has but that does not import is a failure.
        assert_eq!(
            optional(
                &reported("adbc_driver_duckdb", Some("numpy")),
                &main,
                &provided
            ),
            None
        );
        // Any other error is a failure.
        assert_eq!(
            optional(&reported("adbc_driver_duckdb", None), &main, &provided),
            None
        );
    }
}
