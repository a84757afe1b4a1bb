//! Every program PROMPT.txt names starts in the sandbox: each is run once by
//! its full path with a harmless argument (`--version`, else `--help`),
//! as the sandbox user, from /tmp, with no input and the time limit. A
//! start that the loader, a missing interpreter, a bad `#!` line, the
//! executable format or a signal stops fails; a program that merely exits
//! non-zero on that argument has started, and passes.

use std::time::Duration;

use crate::config::target::Target;
use crate::docker::Run;
use crate::model::manifest::Program;
use crate::report::Reporter;

use super::bundle::Bundle;
use super::items::{self, Block, Item, Status};
use super::{exec_items, Step, VerifyError};

/// The arguments tried, in order.
const ARGS: [&str; 2] = ["--version", "--help"];

/// The script: the programs split among the cores (at most four), each
/// part started in turn by its own shell, their reports in list order.
fn script(programs: &[(String, String)], limit: u64) -> String {
    let mut list = String::new();
    for (name, path) in programs {
        list.push_str(&format!("{name}\t{path}\n"));
    }
    format!(
        "cd /tmp || exit 1\n\
         W=$(mktemp -d /tmp/bundle-programs.XXXXXX) || exit 1\n\
         cat > \"$W/list\" <<'BUNDLE_EOF'\n{list}BUNDLE_EOF\n\
         n=$(nproc 2>/dev/null || echo 1); [ \"$n\" -gt 4 ] && n=4\n\
         split -n r/$n \"$W/list\" \"$W/part.\"\n\
         for p in \"$W\"/part.*; do\n\
         (while IFS='\t' read -r name path; do\n\
         printf '::bundle-item::\\t%s\\n' \"$name\"\n\
         if [ ! -e \"$path\" ]; then echo '::bundle-missing::'; continue; fi\n\
         if [ ! -x \"$path\" ]; then echo '::bundle-noexec::'; continue; fi\n\
         printf '::bundle-magic::%s\\n' \"$(od -An -tx1 -N4 \"$path\" | tr -d ' \\n')\"\n\
         for arg in {args}; do\n\
         printf '::bundle-try::%s\\n' \"$arg\"\n\
         {{ timeout -k 2 {limit} \"$path\" \"$arg\" </dev/null 2>&1; echo \"::bundle-rc::$?\"; }} | tail -c 4000 > \"$p.try\"\n\
         cat \"$p.try\"; rc=$(sed -n 's/^::bundle-rc:://p' \"$p.try\")\n\
         case \"$rc\" in 0|124|126|127|137) break;; esac\n\
         done\n\
         done < \"$p\" > \"$p.out\") &\n\
         done\n\
         wait\n\
         for p in \"$W\"/part.*.out; do cat \"$p\"; done\n\
         rm -rf \"$W\"\n",
        args = ARGS.join(" ")
    )
}

/// One attempt: the argument, its output lines and exit code.
struct Try<'a> {
    arg: &'a str,
    lines: Vec<&'a str>,
    rc: i64,
}

/// The attempts recorded in a program's block.
fn tries(block: &Block) -> Vec<Try<'_>> {
    let mut out: Vec<Try> = Vec::new();
    for line in &block.lines {
        if let Some(arg) = line.strip_prefix("::bundle-try::") {
            out.push(Try {
                arg,
                lines: Vec::new(),
                rc: -1,
            });
        } else if let Some(t) = out.last_mut() {
            if let Some(rc) = line.strip_prefix("::bundle-rc::") {
                t.rc = rc.trim().parse().unwrap_or(-1);
            } else {
                t.lines.push(line);
            }
        }
    }
    out
}

const SIGNALS: [&str; 16] = [
    "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
];

/// The last line of a Python traceback that never got past the imports (a
/// launcher whose module is missing, say): an `ImportError` raised while
/// every frame was still running module-level code (`in <module>`; the
/// import machinery's own frames aside). A program that imports something
/// while running (`fonttools --version` looks for a module named
/// `--version`) has started.
fn import_time_failure<'a>(text: &[&'a str]) -> Option<&'a str> {
    let start = text
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))?;
    let rest = &text[start + 1..];
    let last = rest.iter().rev().find(|l| !l.trim().is_empty())?.trim();
    if !(last.starts_with("ModuleNotFoundError") || last.starts_with("ImportError")) {
        return None;
    }
    let frames: Vec<&str> = rest
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("File \"") && !l.starts_with("File \"<frozen"))
        .collect();
    (!frames.is_empty() && frames.iter().all(|f| f.ends_with(", in <module>"))).then_some(last)
}

/// Why an attempt shows the program did not start, if it does.
fn not_started(t: &Try, limit: u64) -> Option<String> {
    let text = &t.lines;
    let said = |needle: &str| text.iter().find(|l| l.contains(needle)).map(|l| l.trim());
    if let Some(l) = said("error while loading shared libraries").or_else(|| {
        text.iter()
            .find(|l| l.contains(": version `") && l.contains("' not found"))
            .map(|l| l.trim())
    }) {
        return Some(format!("the loader stopped it: {l}"));
    }
    if let Some(last) = import_time_failure(text) {
        return Some(format!("it cannot import what it runs: {last}"));
    }
    match t.rc {
        124 | 137 => Some(format!(
            "it did not finish within {limit} s of `{}` (skip it with [verify] skip_programs if it cannot run that way)",
            t.arg
        )),
        126 => Some(format!("it cannot be executed: {}", items::last_lines(text, 2))),
        127 => Some(format!(
            "it could not be started (a missing interpreter or #! program?): {}",
            items::last_lines(text, 2)
        )),
        129..=191 => {
            let n = (t.rc - 128) as usize;
            Some(format!(
                "it was killed by signal {n}{} on `{}`",
                SIGNALS.get(n).map(|s| format!(" ({s})")).unwrap_or_default(),
                t.arg
            ))
        }
        -1 => Some("it left no exit code".into()),
        _ => None,
    }
}

fn judge(block: &Block, limit: u64) -> Item {
    let name = block.fields.first().cloned().unwrap_or_default();
    if block.tagged("missing").is_some() {
        return Item::new(
            name,
            Status::Fail,
            "missing after the install, though PROMPT.txt names it",
        );
    }
    if block.tagged("noexec").is_some() {
        return Item::new(name, Status::Fail, "not executable after the install");
    }
    let magic = block.tagged("magic").unwrap_or("");
    if magic != "7f454c46" && !magic.starts_with("2321") {
        return Item::new(
            name,
            Status::Fail,
            format!("neither an ELF program nor a #! script (it starts with bytes {magic:?}): the sandbox cannot start it"),
        );
    }
    let tries = tries(block);
    let Some(first) = tries.first() else {
        return Item::new(name, Status::Fail, "it was not run");
    };
    if let Some(why) = not_started(first, limit) {
        return Item::new(name, Status::Fail, why);
    }
    let shown = tries.iter().find(|t| t.rc == 0).unwrap_or(first);
    let line = shown
        .lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().take(120).collect();
    let detail = if shown.rc == 0 {
        format!("`{}`: {line}", shown.arg)
    } else {
        let codes: Vec<String> = tries
            .iter()
            .map(|t| format!("{} on `{}`", t.rc, t.arg))
            .collect();
        format!("started; exits {}", codes.join(", "))
    };
    Item::new(name, Status::Pass, detail)
}

/// The step: every program of `bin/` once installed.
pub(super) async fn program_step(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Option<Step>, VerifyError> {
    let programs = bundle.manifest.programs();
    if programs.is_empty() {
        return Ok(None);
    }
    let home = bundle.home(target);
    let skip = &bundle.manifest.verify.skip_programs;
    let mut items = Vec::new();
    let mut run = Vec::new();
    for (name, program) in &programs {
        if skip.contains(name) {
            items.push(Item::new(
                name.clone(),
                Status::Skipped,
                "[verify] skip_programs",
            ));
        } else if name.contains(|c: char| c.is_control()) {
            items.push(Item::new(
                name.escape_debug().to_string(),
                Status::Fail,
                "its name holds a control character",
            ));
        } else {
            let kind = match program {
                Program::Binary => "binary",
                Program::Script { .. } => "launcher",
            };
            run.push((format!("bin/{name}"), format!("{home}/bin/{name}"), kind));
        }
    }
    let limit = target.command_timeout_s;
    let list: Vec<(String, String)> = run.iter().map(|(n, p, _)| (n.clone(), p.clone())).collect();
    let backstop = Duration::from_secs(limit * 2 * (list.len() as u64 + 1));
    let (out, elapsed) =
        exec_items(c, "programs", &script(&list, limit), backstop, reporter).await?;
    let (_, blocks) = items::blocks(&out.combined());
    for (name, _, kind) in &run {
        match blocks.iter().find(|b| b.fields.first() == Some(name)) {
            Some(b) => {
                let mut item = judge(b, limit);
                if *kind == "launcher" && item.status == Status::Pass {
                    item.detail = format!("console-script launcher; {}", item.detail);
                }
                items.push(item);
            }
            None => items.push(Item::new(
                name.clone(),
                Status::Fail,
                if out.timed_out {
                    "not reached before the step's time ran out".to_string()
                } else {
                    format!("not reported: {}", crate::docker::tail(&out.combined(), 5))
                },
            )),
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(items::step(
        "programs",
        items,
        elapsed,
        Some("PROGRAM --version (else --help), each by its full path".into()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(lines: &[&str]) -> Block {
        Block {
            fields: vec!["bin/x".into()],
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_start_stopped_by_the_loader_a_signal_or_a_missing_module_fails() {
        let elf = "::bundle-magic::7f454c46";
        let loader = block(&[
            elf,
            "::bundle-try::--version",
            "/mnt/data/x/bin/x: error while loading shared libraries: libjq.so.1: cannot open shared object file: No such file or directory",
            "::bundle-rc::127",
        ]);
        let item = judge(&loader, 60);
        assert_eq!(item.status, Status::Fail);
        assert!(item.detail.contains("libjq.so.1"), "{}", item.detail);
        // A too-new glibc: the loader exits 1, not 127.
        let glibc = block(&[
            elf,
            "::bundle-try::--version",
            "./x: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by ./x)",
            "::bundle-rc::1",
        ]);
        assert!(judge(&glibc, 60).detail.contains("GLIBC_2.34"));
        let segv = block(&[elf, "::bundle-try::--version", "::bundle-rc::139"]);
        assert!(judge(&segv, 60).detail.contains("signal 11 (SIGSEGV)"));
        let module = block(&[
            "::bundle-magic::23212f75",
            "::bundle-try::--version",
            "Traceback (most recent call last):",
            "  File \"/mnt/data/x/bin/x\", line 4, in <module>",
            "ModuleNotFoundError: No module named 'gone'",
            "::bundle-rc::1",
        ]);
        let item = judge(&module, 60);
        assert_eq!(item.status, Status::Fail);
        assert!(
            item.detail.contains("No module named 'gone'"),
            "{}",
            item.detail
        );
        // The module's own import of a missing dependency: still at import.
        let dependency = block(&[
            "::bundle-magic::23212f75",
            "::bundle-try::--version",
            "Traceback (most recent call last):",
            "  File \"/mnt/data/x/bin/x\", line 4, in <module>",
            "    from tool.cli import main",
            "  File \"<frozen importlib._bootstrap>\", line 991, in _find_and_load",
            "  File \"/home/sandbox/.local/lib/python3.9/site-packages/tool/__init__.py\", line 1, in <module>",
            "    import gone_dep",
            "ModuleNotFoundError: No module named 'gone_dep'",
            "::bundle-rc::1",
        ]);
        assert_eq!(judge(&dependency, 60).status, Status::Fail);
        // A program that ran and then failed to import something it was
        // asked for (as fonttools does with `--version`) has started.
        let ran = block(&[
            "::bundle-magic::23212f75",
            "::bundle-try::--version",
            "Traceback (most recent call last):",
            "  File \"/mnt/data/x/bin/fonttools\", line 6, in <module>",
            "    sys.exit(main())",
            "  File \"/home/sandbox/.local/lib/python3.9/site-packages/fontTools/__main__.py\", line 25, in main",
            "    mod = __import__(fullname)",
            "ImportError: No module named fontTools.--version",
            "::bundle-rc::1",
            "::bundle-try::--help",
            "fonttools usage",
            "::bundle-rc::0",
        ]);
        assert_eq!(judge(&ran, 60).status, Status::Pass);
        let garbage = block(&["::bundle-magic::67617262"]);
        assert_eq!(judge(&garbage, 60).status, Status::Fail);
        assert_eq!(
            judge(&block(&["::bundle-missing::"]), 60).status,
            Status::Fail
        );
    }

    #[test]
    fn a_program_that_exits_non_zero_on_both_arguments_has_started() {
        let picky = block(&[
            "::bundle-magic::7f454c46",
            "::bundle-try::--version",
            "unknown option --version",
            "::bundle-rc::2",
            "::bundle-try::--help",
            "usage: x FILE",
            "::bundle-rc::1",
        ]);
        let item = judge(&picky, 60);
        assert_eq!(item.status, Status::Pass);
        assert_eq!(
            item.detail,
            "started; exits 2 on `--version`, 1 on `--help`"
        );
        let fine = block(&[
            "::bundle-magic::7f454c46",
            "::bundle-try::--version",
            "::bundle-rc::2",
            "::bundle-try::--help",
            "usage: x FILE",
            "::bundle-rc::0",
        ]);
        assert_eq!(judge(&fine, 60).detail, "`--help`: usage: x FILE");
    }
}
