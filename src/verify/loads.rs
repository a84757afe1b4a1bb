//! Every ELF file a user can reach loads in the sandbox: each program and
//! library of the bundle, and each extension module and shared library of
//! the installed wheels, has its dependencies resolved by the sandbox's own
//! dynamic loader (`LD_TRACE_LOADED_OBJECTS`), from where the file sits
//! after the install, in one exec for the whole bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

use crate::assemble::{FileKind, Manifest};
use crate::config::target::{Arch, Target};
use crate::docker::Run;
use crate::model::manifest::Link;
use crate::report::Reporter;

use super::bundle::Bundle;
use super::items::{self, Block, Item, Status};
use super::{exec_items, Step, VerifyError};

/// The glibc loader a sandbox of this architecture has.
fn loader(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
        Arch::Aarch64 => "/lib/ld-linux-aarch64.so.1",
    }
}

/// ELF `e_machine` of the architecture.
fn e_machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => 62,
        Arch::Aarch64 => 183,
    }
}

/// Lists, in the sandbox, the ELF files the bundle's installed
/// distributions put there: each distribution is found as `import` finds
/// it (the first `*.dist-info` on sys.path), its files from its RECORD.
/// A file for another CPU is reported as such, not loaded. Standard
/// library only, no `assert`.
const LIST_WHEEL_FILES: &str = r#"
import csv, os, re, sys

out_path, machine = sys.argv[1], int(sys.argv[2])
wanted = [w for w in sys.argv[3:]]

def norm(n):
    return re.sub(r"[-_.]+", "-", n).lower()

found = {}
for entry in sys.path:
    if not entry or not os.path.isdir(entry):
        continue
    try:
        names = sorted(os.listdir(entry))
    except OSError:
        continue
    for d in names:
        if d.endswith(".dist-info"):
            name = norm(d[: -len(".dist-info")].rsplit("-", 1)[0])
            if name in wanted and name not in found:
                found[name] = (entry, os.path.join(entry, d))

with open(out_path, "a") as out:
    for name in wanted:
        if name not in found:
            print("::bundle-item::\tabsent\t%s" % name)
            continue
        site, info = found[name]
        try:
            with open(os.path.join(info, "RECORD"), newline="") as f:
                rows = list(csv.reader(f))
        except OSError as e:
            print("::bundle-item::\tnorecord\t%s\n%s" % (name, e))
            continue
        for row in rows:
            if not row or row[0].endswith((".py", ".pyc", ".pyi")):
                continue
            rel = row[0]
            path = os.path.normpath(os.path.join(site, rel))
            if any(c in rel for c in "\t\n\r"):
                continue
            try:
                with open(path, "rb") as f:
                    head = f.read(20)
            except OSError:
                continue
            if len(head) < 20 or head[:4] != b"\x7fELF":
                continue
            order = "little" if head[5] == 1 else "big"
            m = int.from_bytes(head[18:20], order)
            label = "%s: %s" % (name, rel)
            if m != machine:
                print("::bundle-item::\tforeign\t%s\n%d" % (label, m))
                continue
            out.write("wheel:%s\t%s\t%s\t\n" % (name, label, path))
"#;

/// One file to load: what the report calls it, where it is in the
/// sandbox, and the LD_LIBRARY_PATH its launcher sets (wrapper-linked
/// programs and their libraries).
struct Candidate {
    label: String,
    path: String,
    ld_path: String,
}

/// The bundle's own ELF files (not those inside wheels), read on the host
/// by their first bytes, whatever their names.
fn bundle_files(bundle: &Bundle, home: &str) -> Vec<Candidate> {
    let m = &bundle.manifest;
    let wrapped = m.files.iter().any(|f| f.link == Some(Link::Wrapper));
    let mut out = Vec::new();
    for f in m.files.iter().filter(|f| f.kind != FileKind::Wheel) {
        let Ok(rel) = crate::archive::safe_member_path(&f.path) else {
            continue;
        };
        let mut head = [0u8; 4];
        let is_elf = std::fs::File::open(bundle.dir.join(rel))
            .and_then(|mut file| file.read_exact(&mut head))
            .is_ok()
            && &head == b"\x7fELF";
        if !is_elf || f.path.contains(['\t', '\n', '\r']) {
            continue;
        }
        let label = match f.path.strip_prefix("libexec/") {
            Some(name) => format!("{} (run by bin/{name})", f.path),
            None => f.path.clone(),
        };
        let ld_path = if wrapped && (f.path.starts_with("libexec/") || f.path.starts_with("lib/")) {
            format!("{home}/lib")
        } else {
            String::new()
        };
        out.push(Candidate {
            label,
            path: format!("{home}/{}", f.path),
            ld_path,
        });
    }
    out
}

/// The installed wheels, by normalized name: (label, tagged for any
/// platform).
fn wheels(manifest: &Manifest) -> BTreeMap<String, bool> {
    manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wheel)
        .filter_map(|f| {
            let file = f.path.rsplit('/').next()?;
            let w = crate::resolve::tags::WheelName::parse(file)?;
            let name = pep508_rs::PackageName::from_str(&w.name).ok()?.to_string();
            Some((name, w.platform.iter().all(|p| p == "any")))
        })
        .collect()
}

use std::str::FromStr;

/// The script: list the files, then load each with the sandbox's loader,
/// on every core (at most four), each within the time limit. The trace
/// variable is given to the loader alone (through `env`): `timeout` would
/// otherwise print its own libraries and exit.
fn script(target: &Target, candidates: &[Candidate], wheels: &[String], limit: u64) -> String {
    let loader = loader(target.arch);
    let mut list = String::new();
    for c in candidates {
        list.push_str(&format!("bundle\t{}\t{}\t{}\n", c.label, c.path, c.ld_path));
    }
    let mut s = format!(
        "L={loader}\n\
         if [ ! -e \"$L\" ]; then echo \"::bundle-noloader::$L\"; exit 0; fi\n\
         W=$(mktemp -d /tmp/bundle-loads.XXXXXX) || exit 1\n\
         cat > \"$W/list\" <<'BUNDLE_EOF'\n{list}BUNDLE_EOF\n"
    );
    if !wheels.is_empty() {
        s.push_str(&format!(
            "cat > \"$W/list.py\" <<'BUNDLE_EOF'\n{LIST_WHEEL_FILES}\nBUNDLE_EOF\n\
             (cd /tmp && python3 \"$W/list.py\" \"$W/list\" {} {}) || echo '::bundle-nolist::'\n",
            e_machine(target.arch),
            wheels
                .iter()
                .map(|w| crate::docker::sh_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s.push_str(&format!(
        "n=$(nproc 2>/dev/null || echo 1); [ \"$n\" -gt 4 ] && n=4\n\
         split -n l/$n \"$W/list\" \"$W/part.\"\n\
         for p in \"$W\"/part.*; do\n\
         (while IFS='\t' read -r kind label path ldpath; do\n\
         printf '::bundle-item::\\t%s\\t%s\\n' \"$kind\" \"$label\"\n\
         {{ if [ -n \"$ldpath\" ]; then timeout -k 1 {limit} env LD_LIBRARY_PATH=\"$ldpath${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\" LD_TRACE_LOADED_OBJECTS=1 \"$L\" \"$path\" </dev/null 2>&1; \
         else timeout -k 1 {limit} env LD_TRACE_LOADED_OBJECTS=1 \"$L\" \"$path\" </dev/null 2>&1; fi; echo \"::bundle-rc::$?\"; }} | tail -c 6000\n\
         done < \"$p\" > \"$p.out\") &\n\
         done\n\
         wait\n\
         for p in \"$W\"/part.*.out; do cat \"$p\"; done\n\
         rm -rf \"$W\"\n"
    ));
    s
}

/// What the loader said of one file.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    /// A DT_NEEDED library it found nowhere.
    Missing(String),
    /// A symbol version a library lacks: (library, version).
    Version(String, String),
    /// Any other refusal, in the loader's words.
    Other(String),
}

/// Read the loader's trace of one file (exit code `rc`).
fn problems(block: &Block, limit: u64) -> Vec<Problem> {
    let text = block.text();
    let rc: i64 = block
        .tagged("rc")
        .and_then(|r| r.parse().ok())
        .unwrap_or(-1);
    let mut out = Vec::new();
    for line in &text {
        let line = line.trim();
        if let Some(lib) = line.strip_suffix("=> not found") {
            out.push(Problem::Missing(lib.trim().to_string()));
        } else if let Some((head, rest)) = line.split_once(": version `") {
            // `FILE: LIB: version `V' not found (required by X)`
            let version = rest.split('\'').next().unwrap_or(rest).to_string();
            let lib = head.rsplit(": ").next().unwrap_or(head);
            let lib = lib.rsplit('/').next().unwrap_or(lib).to_string();
            out.push(Problem::Version(lib, version));
        } else if let Some((_, why)) = line.split_once("error while loading shared libraries: ") {
            out.push(Problem::Other(why.to_string()));
        }
    }
    if out.is_empty() && rc != 0 {
        out.push(Problem::Other(match rc {
            124 | 137 => format!("the loader did not finish within {limit} s"),
            _ => format!("the loader exited {rc}: {}", items::last_lines(&text, 3)),
        }));
    }
    out
}

/// A hint for a library the sandbox lacks.
fn missing_hint(lib: &str, bundle: &Bundle, target: &Target) -> String {
    let built = &bundle.manifest.target.name;
    let guess = debian_package(lib);
    let from = match bundle
        .manifest
        .apt
        .iter()
        .find(|p| Some(&p.package) == guess.as_ref())
    {
        Some(p) => format!(" (Debian's {} {} provides it)", p.package, p.version),
        None => guess
            .map(|g| format!(" (usually Debian's package {g})"))
            .unwrap_or_default(),
    };
    if *built != target.name {
        format!(
            "the bundle was built for target `{built}`, whose sandbox has {lib}{from}, so it does not carry it; \
             this sandbox (`{}`) lacks it: build for this sandbox's profile (`bundle target capture` prints it)",
            target.name
        )
    } else if target.libraries.iter().any(|l| l == lib) {
        format!(
            "the profile `{}` lists {lib} among the sandbox's libraries{from}, but this sandbox lacks it: the profile is wrong \
             (`bundle target capture` prints the right one)",
            target.name
        )
    } else {
        format!(
            "neither the bundle nor the sandbox has {lib}{from}: build the bundle again (was it changed after `bundle build`?), \
             or check the target profile's image"
        )
    }
}

/// The Debian package a soname usually comes in: `libjq.so.1` → `libjq1`,
/// `libfoo2.so.3` → `libfoo2-3`.
fn debian_package(soname: &str) -> Option<String> {
    let (base, version) = soname.split_once(".so.")?;
    let version = version.split('.').next()?;
    if base.is_empty() || version.is_empty() {
        return None;
    }
    let sep = if base.ends_with(|c: char| c.is_ascii_digit()) {
        "-"
    } else {
        ""
    };
    Some(
        format!("{base}{sep}{version}")
            .to_ascii_lowercase()
            .replace('_', "-"),
    )
}

fn describe(p: &Problem, bundle: &Bundle, target: &Target) -> String {
    match p {
        Problem::Missing(lib) => format!(
            "{lib} not found; hint: {}",
            missing_hint(lib, bundle, target)
        ),
        Problem::Version(lib, v) => {
            let what = if v.starts_with("GLIBCXX_") || v.starts_with("CXXABI_") {
                "the sandbox's libstdc++ is older than the file was built for: build it in the target's image, or bundle a libstdc++ that has it"
            } else if v.starts_with("GLIBC_") {
                "it was built against a newer glibc than the sandbox's: build it in the target's image ([[build]]), or use a static, musl or older-glibc build"
            } else {
                "a library of the sandbox is older than the one it was built against"
            };
            format!("{lib} has no symbol version {v}; hint: {what}")
        }
        Problem::Other(why) => format!("the loader refused it: {why}"),
    }
}

/// Judge each block; a wheel's file whose only trouble is a library its own
/// distribution ships beside it passes (the package loads it first; the
/// imports step proves that), and one in a wheel for any platform is
/// skipped (a helper loaded only on demand).
fn judge(blocks: &[Block], bundle: &Bundle, target: &Target, limit: u64) -> Vec<Item> {
    let pure = wheels(&bundle.manifest);
    let mut shipped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for b in blocks {
        if let (Some(kind), Some(label)) = (b.fields.first(), b.fields.get(1)) {
            if let Some(dist) = kind.strip_prefix("wheel:") {
                let file = label.rsplit('/').next().unwrap_or(label);
                shipped.entry(dist).or_default().insert(file);
            }
        }
    }
    let mut items = Vec::new();
    for b in blocks {
        let kind = b.fields.first().map(String::as_str).unwrap_or("");
        let label = b.fields.get(1).cloned().unwrap_or_default();
        match kind {
            "absent" => items.push(Item::new(
                label.clone(),
                Status::Fail,
                format!("the wheel {label} is not installed: no {label} distribution on sys.path after install"),
            )),
            "norecord" => items.push(Item::new(
                label,
                Status::Fail,
                format!("its RECORD cannot be read: {}", items::last_lines(&b.text(), 1)),
            )),
            "foreign" => items.push(Item::new(
                label,
                Status::Skipped,
                format!(
                    "built for another CPU (e_machine {}); never loaded on {}",
                    items::last_lines(&b.text(), 1),
                    target.arch.as_str()
                ),
            )),
            _ => {
                let dist = kind.strip_prefix("wheel:");
                let mut found = problems(b, limit);
                let mut notes = Vec::new();
                if let Some(own) = dist.and_then(|d| shipped.get(d)) {
                    found.retain(|p| match p {
                        Problem::Missing(lib) if own.contains(lib.as_str()) => {
                            notes.push(format!("{lib} is its package's own, loaded by the package first"));
                            false
                        }
                        _ => true,
                    });
                }
                let detail: Vec<String> = found.iter().map(|p| describe(p, bundle, target)).collect();
                let item = if found.is_empty() {
                    Item::new(label, Status::Pass, notes.join("; "))
                } else if dist.is_some_and(|d| pure.get(d) == Some(&true)) {
                    Item::new(
                        label,
                        Status::Skipped,
                        format!(
                            "a helper in a wheel for any platform, loaded only on demand, does not load here: {}",
                            detail.join("; ")
                        ),
                    )
                } else {
                    Item::new(label, Status::Fail, detail.join("; "))
                };
                items.push(item);
            }
        }
    }
    items
}

/// The step: every ELF file of the bundle and of its installed wheels.
pub(super) async fn load_step(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Option<Step>, VerifyError> {
    let home = bundle.home(target);
    let candidates = bundle_files(bundle, &home);
    let wheels: Vec<String> = wheels(&bundle.manifest).into_keys().collect();
    if candidates.is_empty() && wheels.is_empty() {
        return Ok(None);
    }
    let limit = target.command_timeout_s;
    let script = script(target, &candidates, &wheels, limit);
    // A backstop: each file has its own limit inside.
    let backstop = Duration::from_secs(limit * 4 + 60);
    let (out, elapsed) = exec_items(c, "loads", &script, backstop, reporter).await?;
    let (before, blocks) = items::blocks(&out.combined());
    let mut items = judge(&blocks, bundle, target, limit);
    if let Some(l) = before
        .iter()
        .find_map(|l| l.strip_prefix("::bundle-noloader::"))
    {
        items.push(Item::new(
            l.to_string(),
            Status::Fail,
            format!(
                "the sandbox has no glibc loader at {l}: it is not the {} glibc machine target `{}` describes",
                target.arch.as_str(),
                target.name
            ),
        ));
    }
    if out.timed_out
        || before
            .iter()
            .chain(blocks.iter().flat_map(|b| &b.lines))
            .any(|l| l == "::bundle-nolist::")
    {
        items.push(Item::new(
            "(listing)",
            Status::Fail,
            format!(
                "the files could not all be listed: {}",
                items::last_lines(&before.iter().map(String::as_str).collect::<Vec<_>>(), 3)
            ),
        ));
    }
    Ok(Some(items::step(
        "loads",
        items,
        elapsed,
        Some(format!(
            "LD_TRACE_LOADED_OBJECTS=1 {} FILE, for each ELF file",
            loader(target.arch)
        )),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fields: &[&str], lines: &[&str]) -> Block {
        Block {
            fields: fields.iter().map(|s| s.to_string()).collect(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_loaders_words_become_problems() {
        // As glibc 2.31's loader prints them (seen in the test image).
        let b = block(
            &["bundle", "bin/tool"],
            &[
                "/mnt/data/x/bin/tool: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by /mnt/data/x/bin/tool)",
                "\tlinux-vdso.so.1 (0x00007fe13a4b9000)",
                "\tlibjq.so.1 => not found",
                "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fe13a2d6000)",
                "::bundle-rc::0",
            ],
        );
        assert_eq!(
            problems(&b, 60),
            [
                Problem::Version("libc.so.6".into(), "GLIBC_2.34".into()),
                Problem::Missing("libjq.so.1".into())
            ]
        );
        let b = block(
            &["bundle", "bin/garbage"],
            &[
                "./garbage: error while loading shared libraries: ./garbage: file too short",
                "::bundle-rc::127",
            ],
        );
        assert_eq!(
            problems(&b, 60),
            [Problem::Other("./garbage: file too short".into())]
        );
        let fine = block(
            &["bundle", "bin/static"],
            &["\tstatically linked", "::bundle-rc::0"],
        );
        assert!(problems(&fine, 60).is_empty());
        let slow = block(&["bundle", "bin/x"], &["::bundle-rc::124"]);
        assert_eq!(
            problems(&slow, 60),
            [Problem::Other(
                "the loader did not finish within 60 s".into()
            )]
        );
    }

    #[test]
    fn debian_package_names_follow_the_soname() {
        assert_eq!(debian_package("libjq.so.1").as_deref(), Some("libjq1"));
        assert_eq!(debian_package("libonig.so.5").as_deref(), Some("libonig5"));
        assert_eq!(
            debian_package("libfoo2.so.3.1").as_deref(),
            Some("libfoo2-3")
        );
        assert_eq!(
            debian_package("libstdc++.so.6").as_deref(),
            Some("libstdc++6")
        );
        assert_eq!(debian_package("weird"), None);
    }
}
