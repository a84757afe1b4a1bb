//! Every top-level module of every wheel imports in the sandbox: one fresh
//! interpreter per wheel (its modules in turn), several wheels at once,
//! each within the target's time limit, from /tmp, as the sandbox user.
//! A failure names the module and the exception's last line; a module the
//! recipe lists in `[verify] skip_imports` is reported as skipped.

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
    except BaseException:
        lines = [l for l in traceback.format_exc().strip().splitlines() if l.strip()]
        r = [m, "fail", lines[-1] if lines else "failed"]
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

def report(name, status, detail):
    print("::bundle-json::" + json.dumps({"name": name, "status": status, "detail": detail}), flush=True)

workers = max(1, min(4, os.cpu_count() or 1))
with ThreadPoolExecutor(max_workers=workers) as pool:
    for (label, modules), code, out in pool.map(run, jobs):
        text = out.decode("utf-8", "replace")
        done = {}
        for line in text.splitlines():
            if line.startswith("::bundle-module::"):
                m, status, detail = json.loads(line[len("::bundle-module::"):])
                done[m] = (status, detail)
        other = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("::bundle-module::")]
        for m in modules:
            if m in done:
                status, detail = done[m]
                report("import " + m, status, "%s: %s" % (label, detail) if detail else label)
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
}

/// The step: every wheel's recorded modules.
pub(super) async fn import_step(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Option<Step>, VerifyError> {
    let skip = &bundle.manifest.verify.skip_imports;
    let mut items = Vec::new();
    let mut jobs: Vec<(String, Vec<String>)> = Vec::new();
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
                items.push(Item::new(r.name, r.status, r.detail));
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
