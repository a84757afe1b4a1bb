//! `bin/<name>`: a shell script that runs a package's program with the
//! bundle's runtime, both found by their full paths from where the script
//! itself is, so the bundle works wherever it is unpacked.

use crate::model::npm::{LockedNpm, PlannedRuntime, RuntimeKind};
use crate::model::sh_quote;

/// The launcher for program `name` of `p`, whose script is `script_rel`
/// (from the bundle's root) and starts with `head`.
pub fn launcher(
    name: &str,
    p: &LockedNpm,
    script_rel: &str,
    head: &[u8],
    runtime: &PlannedRuntime,
) -> String {
    let script = format!("\"$here\"/{}", sh_quote(script_rel));
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    // A native program or a script for another interpreter runs itself.
    let runs_itself = head.starts_with(b"\x7fELF")
        || (first_line.starts_with("#!")
            && !first_line.contains("node")
            && !first_line.contains("deno"));
    let (path_dir, run) = if runs_itself {
        (runtime_dir(runtime), format!("exec {script} \"$@\""))
    } else {
        match runtime.kind {
            RuntimeKind::Node => (
                runtime_dir(runtime),
                format!("exec \"$here\"/runtime/node/bin/node {script} \"$@\""),
            ),
            RuntimeKind::Deno => (
                runtime_dir(runtime),
                format!(
                    "DENO_DIR=\"${{DENO_DIR:-${{TMPDIR:-/tmp}}/bundle-deno-$(id -u)}}\" \\\n  \
                     DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 \\\n  \
                     exec \"$here\"/runtime/deno/deno run --allow-all --no-config --no-lock \
                     --node-modules-dir=manual --cached-only {script} \"$@\""
                ),
            ),
            RuntimeKind::System => (None, format!("exec node {script} \"$@\"")),
        }
    };
    let path_line = match path_dir {
        Some(dir) => format!("PATH=\"$here\"/{dir}:\"$PATH\"\nexport PATH\n"),
        None => String::new(),
    };
    let with = match (runs_itself, runtime.kind) {
        (true, _) => "itself".to_string(),
        (false, RuntimeKind::System) => "the machine's own node".to_string(),
        (false, kind) => format!(
            "the bundled {} {}",
            kind.as_str(),
            runtime.version.as_deref().unwrap_or("")
        ),
    };
    format!(
        "#!/bin/sh\n\
         # Written by bundle: runs {name} of {}@{} ({script_rel}) with {with}.\n\
         here=$(dirname -- \"$0\")\n\
         here=$(cd -- \"$here/..\" && pwd -P) || exit 1\n\
         {path_line}{run}\n",
        p.name, p.version
    )
}

/// The runtime's folder under the bundle, put first on PATH so that what
/// a program starts with `node` is the bundled one.
fn runtime_dir(runtime: &PlannedRuntime) -> Option<&'static str> {
    match runtime.kind {
        RuntimeKind::Node => Some("runtime/node/bin"),
        RuntimeKind::Deno => Some("runtime/deno"),
        RuntimeKind::System => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(kind: RuntimeKind) -> PlannedRuntime {
        PlannedRuntime {
            kind,
            range: "*".into(),
            package: None,
            version: Some("1.2.3".into()),
            url: None,
            integrity: None,
            program: None,
            passed_over: Vec::new(),
        }
    }

    fn package() -> LockedNpm {
        LockedNpm {
            path: "node_modules/@s/tool".into(),
            name: "@s/tool".into(),
            version: "2.0.0".into(),
            resolved: "http://127.0.0.1/t.tgz".into(),
            integrity: crate::model::integrity::Integrity::sha512_of(b"t"),
            bin: Default::default(),
            dependencies: Default::default(),
            optional_dependencies: Default::default(),
            peer_dependencies: Default::default(),
            optional: false,
            peer: false,
            has_install_script: false,
            os: Vec::new(),
            cpu: Vec::new(),
            libc: Vec::new(),
            engines: Default::default(),
        }
    }

    #[test]
    fn each_runtime_runs_the_script_by_full_paths() {
        let script = "node_modules/@s/tool/cli.js";
        let js = b"#!/usr/bin/env node\nconsole.log(1)\n";
        let node = launcher("tool", &package(), script, js, &runtime(RuntimeKind::Node));
        assert!(node.ends_with("exec \"$here\"/runtime/node/bin/node \"$here\"/node_modules/@s/tool/cli.js \"$@\"\n"), "{node}");
        assert!(
            node.contains("PATH=\"$here\"/runtime/node/bin:\"$PATH\""),
            "{node}"
        );
        let deno = launcher("tool", &package(), script, js, &runtime(RuntimeKind::Deno));
        assert!(
            deno.contains("runtime/deno/deno run --allow-all")
                && deno.contains("--cached-only \"$here\"/node_modules/@s/tool/cli.js"),
            "{deno}"
        );
        let system = launcher(
            "tool",
            &package(),
            script,
            js,
            &runtime(RuntimeKind::System),
        );
        assert!(
            system.ends_with("exec node \"$here\"/node_modules/@s/tool/cli.js \"$@\"\n"),
            "{system}"
        );
        assert!(!system.contains("PATH="), "{system}");
        // A native program, or a script for another interpreter, runs itself.
        for head in [&b"\x7fELF\x02"[..], b"#!/bin/sh\necho hi\n"] {
            let l = launcher(
                "tool",
                &package(),
                script,
                head,
                &runtime(RuntimeKind::Node),
            );
            assert!(
                l.ends_with("exec \"$here\"/node_modules/@s/tool/cli.js \"$@\"\n"),
                "{l}"
            );
        }
        // A path with a space stays one word.
        let l = launcher(
            "tool",
            &package(),
            "node_modules/a b/x.js",
            js,
            &runtime(RuntimeKind::Node),
        );
        assert!(l.contains("\"$here\"/'node_modules/a b/x.js'"), "{l}");
    }
}
