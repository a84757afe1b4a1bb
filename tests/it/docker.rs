//! The Docker backend against a real daemon and the locally built Debian 11
//! (glibc 2.31) image: apt recipes with their library closure, wheels built
//! from sdists, and container clean-up. Ignored, with the reason, in a plain
//! `cargo test`; with `--include-ignored` (as .ci/run runs them) they fail,
//! never skip, when Docker is not usable.
//!
//! apt-get in the containers reaches the Debian mirror through the default
//! bridge; everything from the Python index comes from a 127.0.0.1 server.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn apt_lua_carries_readline_and_runs_in_a_pristine_container() {
    let t = docker_test();
    t.bundle()
        .args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ])
        .assert()
        .success();
    let dir = t.work.path().join("dist/lua5.3");
    assert!(dir.join("bin/lua5.3").is_file());
    assert!(dir.join("lib/libreadline.so.8").is_file());
    let names = read_zip_names(&t.work.path().join("dist/lua5.3.zip"));
    assert!(
        names.contains(&"lua5.3/lib/libreadline.so.8".to_string()),
        "{names:?}"
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let bin = files.iter().find(|f| f["path"] == "bin/lua5.3").unwrap();
    assert_eq!(bin["kind"], "binary");
    assert_eq!(bin["package"], "lua5.3");
    assert_eq!(bin["link"], "runpath");
    let lib = files
        .iter()
        .find(|f| f["path"] == "lib/libreadline.so.8")
        .unwrap();
    assert_eq!(lib["kind"], "library");
    assert_eq!(lib["package"], "libreadline8");
    // glibc itself, and what the bare image has (libtinfo), stay out.
    let bundled: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(!bundled.iter().any(|p| p.starts_with("lib/libc.so")
        || p.starts_with("lib/libm.so")
        || p.starts_with("lib/libdl.so")
        || p.starts_with("lib/libtinfo")));
    let apt = manifest["apt"].as_array().unwrap();
    let lua = apt.iter().find(|p| p["package"] == "lua5.3").unwrap();
    assert!(
        lua["version"].as_str().unwrap().starts_with("5.3."),
        "{lua}"
    );
    // Each installed package's .deb is recorded with its sha256 and kept in
    // the cache: an --offline rebuild installs from there, with no network.
    let readline = apt.iter().find(|p| p["package"] == "libreadline8").unwrap();
    let deb_sha = readline["sha256"].as_str().unwrap().to_string();
    assert!(
        readline["deb"].as_str().unwrap().ends_with(".deb"),
        "{readline}"
    );
    let blob = t
        .cache
        .path()
        .join("blobs/sha256")
        .join(&deb_sha[..2])
        .join(&deb_sha);
    assert_eq!(sha256(&std::fs::read(&blob).unwrap()), deb_sha);
    let first = std::fs::read(dir.join("bin/lua5.3")).unwrap();
    let offline = || {
        let mut cmd = t.bundle();
        cmd.env("BUNDLE_LOG", "bundle=info").args([
            "build",
            "lua5.3",
            "--offline",
            "--target",
            &fixture_target("debian11-bare"),
        ]);
        cmd
    };
    // A rebuild with the same inputs reuses the result, checked, from the
    // cache: no install runs.
    let out = offline().assert().success();
    let err = stderr_of(&out);
    assert!(err.contains("apt: reused the result"), "{err}");
    assert_eq!(std::fs::read(dir.join("bin/lua5.3")).unwrap(), first);
    // A result whose file is gone from the cache is built again, here from
    // the cached .deb files, offline.
    let bin_blob = {
        let h = sha256(&first);
        t.cache.path().join("blobs/sha256").join(&h[..2]).join(&h)
    };
    std::fs::remove_file(&bin_blob).unwrap();
    let out = offline().assert().success();
    assert!(!stderr_of(&out).contains("apt: reused the result"));
    assert_eq!(std::fs::read(dir.join("bin/lua5.3")).unwrap(), first);
    // Without a .deb (nor the result's file), --offline says which package
    // it lacks.
    std::fs::remove_file(&blob).unwrap();
    std::fs::remove_file(&bin_blob).unwrap();
    let err = fails(
        t.bundle().args([
            "build",
            "lua5.3",
            "--offline",
            "--target",
            &fixture_target("debian11-bare"),
        ]),
        1,
    );
    assert!(
        err.contains("--offline: the .deb files for libreadline8 not in the cache"),
        "{err}"
    );
    // With an empty cache, not even the package lists are there.
    let empty = tempfile::tempdir().unwrap();
    let err = fails(
        t.bundle().env("BUNDLE_CACHE_DIR", empty.path()).args([
            "build",
            "lua5.3",
            "--offline",
            "--target",
            &fixture_target("debian11-bare"),
        ]),
        1,
    );
    assert!(
        err.contains("--offline: the package lists for lua5.3 not in the cache"),
        "{err}"
    );

    // RUNPATH as readelf sees it.
    let dynamic = std::process::Command::new("readelf")
        .arg("-d")
        .arg(dir.join("bin/lua5.3"))
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("RUNPATH") && dynamic.contains("[$ORIGIN/../lib]"),
        "{dynamic}"
    );

    // It runs in a pristine container of the image, with no network...
    let (ok, out) = run_pristine(
        TEST_IMAGE,
        &dir,
        "/b/bin/lua5.3 -v && echo 'print(6*7)' | /b/bin/lua5.3 -",
    );
    assert!(ok, "{out}");
    assert!(out.contains("Lua 5.3") && out.contains("42"), "{out}");
    // ...where the binary alone fails for want of readline.
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "cp /b/bin/lua5.3 /tmp/lua && /tmp/lua -v");
    assert!(!ok);
    assert!(
        out.contains("libreadline.so.8: cannot open shared object file"),
        "{out}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn apt_wrapper_link_leaves_the_binary_unmodified() {
    let t = docker_test();
    t.build(
        "luaw",
        "[apt]\npackages = [\"lua5.3\"]\nbinaries = [\"lua5.3\"]\nlink = \"wrapper\"\n",
        &fixture_target("debian11-bare"),
        &[],
    )
    .assert()
    .success();
    let dir = t.work.path().join("dist/luaw");
    let wrapper = read_to_string(&dir.join("bin/lua5.3"));
    assert!(
        wrapper.starts_with("#!/bin/sh") && wrapper.contains("LD_LIBRARY_PATH"),
        "{wrapper}"
    );
    let dynamic = std::process::Command::new("readelf")
        .arg("-d")
        .arg(dir.join("libexec/lua5.3"))
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("libreadline.so.8") && !dynamic.contains("RUNPATH"),
        "{dynamic}"
    );
    let manifest = read_to_string(&dir.join("manifest.json"));
    assert!(manifest.contains("\"link\": \"wrapper\""), "{manifest}");
    assert!(
        manifest.contains("\"path\": \"libexec/lua5.3\""),
        "{manifest}"
    );
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "/b/bin/lua5.3 -v");
    assert!(ok && out.contains("Lua 5.3"), "{out}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn apt_errors_name_the_cause_and_leave_nothing() {
    let t = docker_test();
    let err = fails(
        &mut t.build(
            "wrongbin",
            "[apt]\npackages = [\"lua5.3\"]\nbinaries = [\"luajit\"]\n",
            &fixture_target("debian11-bare"),
            &[],
        ),
        2,
    );
    assert!(err.contains("`luajit` is not on PATH"), "{err}");
    assert!(
        err.contains("lua5.3"),
        "the hint lists what was installed: {err}"
    );
    assert!(!t.work.path().join("dist/wrongbin").exists());
    // A package the distribution does not have is bad input too.
    let err = fails(
        &mut t.build(
            "nopkg",
            "[apt]\npackages = [\"no-such-package-zz9\"]\nbinaries = [\"zz9\"]\n",
            &fixture_target("debian11-bare"),
            &[],
        ),
        2,
    );
    assert!(err.contains("has no package no-such-package-zz9"), "{err}");
    assert!(!t.work.path().join("dist/nopkg").exists());
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
fn without_a_daemon_apt_recipes_say_so() {
    // Needs no daemon: DOCKER_HOST points at nothing.
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = fails(
        bundle(work.path(), cache.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args([
                "build",
                "lua5.3",
                "--target",
                &fixture_target("debian11-bare"),
            ]),
        1,
    );
    assert!(
        err.contains("apt recipes need Docker, and the engine at unix:///nonexistent/docker.sock (from DOCKER_HOST) does not answer: nothing listens there")
            && err.contains("hint: install Docker"),
        "{err}"
    );
    assert!(!work.path().join("dist/lua5.3").exists());
    // A DOCKER_HOST that names no engine, and a context that is not there:
    // bad input (exit 2), before any work.
    let lua = |cmd: &mut assert_cmd::Command| {
        cmd.args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT");
    };
    let mut cmd = bundle(work.path(), cache.path());
    lua(&mut cmd);
    let err = fails(cmd.env("DOCKER_HOST", "ftp://10.0.0.5"), 2);
    assert!(
        err.contains("DOCKER_HOST: `ftp://10.0.0.5` is not a Docker endpoint this tool can use (unknown scheme)"),
        "{err}"
    );
    let config = tempfile::tempdir().unwrap();
    let mut cmd = bundle(work.path(), cache.path());
    lua(&mut cmd);
    let err = fails(
        cmd.env("DOCKER_CONFIG", config.path())
            .env("DOCKER_CONTEXT", "build-farm"),
        2,
    );
    assert!(
        err.contains("docker context \"build-farm\" is not in the context store")
            && err.contains("hint: `docker context ls` lists the contexts"),
        "{err}"
    );
    assert!(!work.path().join("dist/lua5.3").exists());
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn ctrl_c_during_a_docker_step_removes_the_container() {
    let t = docker_test();
    let mut child = t
        .command()
        .args([
            "-q",
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ])
        .spawn()
        .unwrap();
    // Wait for the apt container (the sandbox image exists by now or is
    // being made; either way a labelled container appears).
    let status = signal_when(&mut child, "INT", Duration::from_secs(120), || {
        !t.containers().is_empty()
    });
    assert_eq!(status.code(), Some(130));
    assert!(t.containers().is_empty(), "containers left behind");
    assert!(!t.work.path().join("dist/lua5.3").exists());
}

/// A PEP 517 backend small enough to write here: it copies modules, compiles
/// C extensions with `cc`, and writes the wheel.
const TINYBUILD: &str = r#"
import base64, hashlib, json, os, platform, subprocess, sys, sysconfig, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    c = json.load(open("build.json"))
    files = {}
    for m in c.get("modules", []):
        files[m] = open(m, "rb").read()
    tag, pure = "py3-none-any", "true"
    for e in c.get("extensions", []):
        out = e["name"] + sysconfig.get_config_var("EXT_SUFFIX")
        inc = sysconfig.get_paths()["include"]
        subprocess.check_call(["cc", "-shared", "-fPIC", "-O2", "-I", inc, e["source"], "-o", out])
        files[out] = open(out, "rb").read()
        v = "cp%d%d" % sys.version_info[:2]
        tag, pure = "%s-%s-linux_%s" % (v, v, platform.machine()), "false"
    dist = "%s-%s" % (c["name"].replace("-", "_"), c["version"])
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (c["name"], c["version"])
    meta += "".join("Requires-Dist: %s\n" % r for r in c.get("requires", []))
    files[dist + ".dist-info/METADATA"] = meta.encode()
    files[dist + ".dist-info/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tinybuild\nRoot-Is-Purelib: %s\nTag: %s\n" % (pure, tag)
    ).encode()
    record = ""
    for name, data in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (name, h, len(data))
    record += dist + ".dist-info/RECORD,,\n"
    files[dist + ".dist-info/RECORD"] = record.encode()
    wheel = "%s-%s.whl" % (dist, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel
"#;

/// A .tar.gz sdist whose pyproject.toml names the tinybuild backend.
pub fn sdist(
    name: &str,
    version: &str,
    config: serde_json::Value,
    files: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let top = format!("{name}-{version}");
    let mut all: Vec<(String, String)> = vec![
        (
            "pyproject.toml".into(),
            "[build-system]\nrequires = [\"tinybuild\"]\nbuild-backend = \"tinybuild.backend\"\n"
                .into(),
        ),
        ("build.json".into(), config.to_string()),
        (
            "PKG-INFO".into(),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
    ];
    all.extend(files.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    {
        let mut tar = tar::Builder::new(&mut gz);
        for (path, text) in &all {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            tar.append_data(&mut h, format!("{top}/{path}"), text.as_bytes())
                .unwrap();
        }
        tar.finish().unwrap();
    }
    gz.flush().unwrap();
    (format!("{top}.tar.gz"), gz.finish().unwrap())
}

/// The sdist of `fastext` 0.12.2: one C extension module, from `source`.
pub fn fastext_sdist(source: &str) -> (String, Vec<u8>) {
    sdist(
        "fastext",
        "0.12.2",
        serde_json::json!({"name": "fastext", "version": "0.12.2", "extensions": [{"name": "fastext", "source": "fastext.c"}]}),
        &[("fastext.c", source)],
    )
}

/// Publish `sdists` with the wheels they need: the tinybuild backend, and
/// `helper` 1.0 (which pureonly requires).
pub fn publish_with_tinybuild(server: &Server, sdists: &[(&str, String, Vec<u8>)]) {
    publish_sdists(
        server,
        &[
            WheelSpec::new("helper", "1.0"),
            WheelSpec::new("tinybuild", "1.0")
                .file("tinybuild/backend.py", TINYBUILD.as_bytes().to_vec()),
        ],
        sdists,
    );
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn sdists_are_built_into_wheels_in_the_target_image() {
    let t = docker_test();
    let server = Server::start();
    let (pure_name, pure) = sdist(
        "pureonly",
        "1.2.2",
        serde_json::json!({"name": "pureonly", "version": "1.2.2", "modules": ["pureonly.py"], "requires": ["helper>=1"]}),
        &[(
            "pureonly.py",
            "def hello():\n    return 'hello from pureonly'\n",
        )],
    );
    let (fast_name, fast) = fastext_sdist(
        r#"#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *twice(PyObject *self, PyObject *args) {
    long n; if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    return PyLong_FromLong(2 * n);
}
static PyMethodDef methods[] = {{"twice", twice, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "fastext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastext(void) { return PyModule_Create(&mod); }
"#,
    );
    publish_with_tinybuild(
        &server,
        &[
            ("pureonly", pure_name.clone(), pure),
            ("fastext", fast_name.clone(), fast),
        ],
    );
    let recipe = "[pypi]\nrequirements = [\"pureonly==1.2.2\", \"fastext\"]\nsdists = \"build\"\n\
         check = [{ run = \"python3 -c 'import fastext, pureonly; print(fastext.twice(21), pureonly.hello())'\", expect = \"42 hello from pureonly\" }]\n";
    let index = server.index_url();
    let build = |extra: &[&str], extra_env: Option<(&str, &str)>| {
        let mut cmd = t.build(
            "built",
            recipe,
            &fixture_target("debian11"),
            &["--index-url", &index],
        );
        cmd.args(extra);
        if let Some((k, v)) = extra_env {
            cmd.env(k, v);
        }
        cmd.assert().success()
    };
    // Built, then verified on the target: the C extension imports there.
    let err = stderr_of(&build(&["--verify"], None));
    assert!(
        err.contains("check: python3 -c 'import fastext") && err.contains("All steps passed."),
        "{err}"
    );
    let dir = t.work.path().join("dist/built");
    let wheels = file_names(&dir.join("wheels"));
    assert_eq!(
        wheels,
        [
            "fastext-0.12.2-cp39-cp39-linux_x86_64.whl",
            "helper-1.0-py3-none-any.whl",
            "pureonly-1.2.2-py3-none-any.whl",
        ],
        "helper comes from pureonly's built metadata; tinybuild is only for building"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    let fast_entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "fastext")
        .unwrap()
        .clone();
    assert_eq!(fast_entry["built_from"], fast_name.as_str());

    // The build is cached by the sdist's hash: a rebuild needs no Docker.
    build(
        &[],
        Some(("DOCKER_HOST", "unix:///nonexistent/docker.sock")),
    );
    let again = read_to_string(&dir.join("manifest.json"));
    assert!(again.contains(&fast_entry["sha256"].as_str().unwrap().to_string()));
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn the_engine_speaks_the_daemons_api_version() {
    let _t = docker_test();
    let out = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let daemon = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt
        .block_on(bundle::docker::Engine::connect("this test needs"))
        .unwrap();
    // bollard speaks a newer API than this daemon; it must step down.
    assert_eq!(engine.api_version(), daemon);
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn an_image_that_is_neither_local_nor_pullable_is_named() {
    let t = docker_test();
    let profile = read_to_string(Path::new(&fixture_target("debian11-bare")))
        .replace(TEST_IMAGE, "bundle-test/absent:none");
    let target = t.work.path().join("absent.toml");
    std::fs::write(&target, profile).unwrap();
    let err = fails(
        t.bundle()
            .args(["build", "lua5.3", "--target", target.to_str().unwrap()]),
        1,
    );
    assert!(
        err.contains("image bundle-test/absent:none is not present locally and pulling it failed"),
        "{err}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}

/// Once `ready` holds (within `limit`, while `child` still runs), send it
/// `signal` with the shell's own `kill` (no procps needed); its exit status.
pub fn signal_when(
    child: &mut std::process::Child,
    signal: &str,
    limit: Duration,
    ready: impl Fn() -> bool,
) -> std::process::ExitStatus {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{signal}: the moment never came");
        assert!(child.try_wait().unwrap().is_none(), "bundle ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -{signal} {}", child.id())])
        .status()
        .unwrap();
    child.wait().unwrap()
}

fn staging_folders(out: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bundle-"))
        .collect()
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn sigterm_and_sigkill_leave_no_container_and_no_staging_folder() {
    let t = docker_test();
    let dist = t.work.path().join("dist");
    for target in ["debian11-bare", "debian11"] {
        for signal in ["TERM", "KILL"] {
            let label = format!(
                "bundle.test=signal-{}-{target}-{signal}",
                std::process::id()
            );
            let build = || {
                let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bundle"));
                cmd.current_dir(t.work.path())
                    .env("BUNDLE_CACHE_DIR", t.cache.path())
                    .env("BUNDLE_DOCKER_LABELS", &label)
                    .args(["-q", "build", "lua5.3", "--target", &fixture_target(target)]);
                cmd
            };
            let mut child = build().spawn().unwrap();
            // Wait until this run has a running container and a staging
            // folder.
            let status = signal_when(&mut child, signal, Duration::from_secs(180), || {
                !running_labelled(&label).is_empty() && !staging_folders(&dist).is_empty()
            });
            if signal == "TERM" {
                // Handled like Ctrl-C: 128 + 15, everything removed.
                assert_eq!(status.code(), Some(143), "{target}");
                assert!(labelled(&label).is_empty(), "{target}: container left");
                assert!(staging_folders(&dist).is_empty(), "{target}: staging left");
                continue;
            }
            assert_eq!(status.code(), None, "killed by the signal");
            // Nothing ran in bundle after SIGKILL: its folder is still there,
            // but its containers end by themselves once the daemon sees the
            // attach connection close.
            assert_eq!(staging_folders(&dist).len(), 1);
            let gone = Instant::now();
            while !labelled(&label).is_empty() {
                assert!(
                    gone.elapsed() < Duration::from_secs(60),
                    "{target}: the container outlived its owner"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            // The next run removes the killed run's staging folder.
            let status = build().status().unwrap();
            assert!(status.success(), "{target}: the next run failed");
            assert!(staging_folders(&dist).is_empty(), "{target}: staging left");
            assert!(labelled(&label).is_empty(), "{target}: container left");
            assert!(dist.join("lua5.3/bin/lua5.3").is_file());
        }
    }
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn orphans_whose_owner_is_gone_are_reaped_on_the_next_connect() {
    let t = docker_test();
    let label = format!("bundle.test=orphan-{}", std::process::id());
    // A container labelled as owned by a process of this boot that is gone
    // (pid 0 is never a user process), as a daemon that missed the close
    // would leave it.
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let owner = format!("bundle.owner={}/999999999/1", boot.trim());
    let id = docker(&[
        "create",
        "--label",
        "bundle=test",
        "--label",
        &owner,
        "--label",
        &label,
        TEST_IMAGE,
        "sleep",
        "infinity",
    ]);
    assert!(
        id.status.success(),
        "{}",
        String::from_utf8_lossy(&id.stderr)
    );
    // One that another live process owns is left alone.
    let me = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = me
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let live_owner = format!(
        "bundle.owner={}/{}/{start}",
        boot.trim(),
        std::process::id()
    );
    let kept = docker(&[
        "create",
        "--label",
        "bundle=test",
        "--label",
        &live_owner,
        "--label",
        &label,
        TEST_IMAGE,
        "sleep",
        "infinity",
    ]);
    let kept = String::from_utf8_lossy(&kept.stdout).trim().to_string();
    assert_eq!(labelled(&label).len(), 2);
    // Any command that connects to Docker reaps.
    t.bundle()
        .args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ])
        .assert()
        .success();
    let left = labelled(&label);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(kept.starts_with(&left[0]));
    docker(&["rm", "-f", &kept]);
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_lock_pins_the_deb_files_and_locked_offline_installs_exactly_them() {
    let t = docker_test();
    let target = fixture_target("debian11-bare");
    std::fs::write(
        t.work.path().join("lua.toml"),
        "[apt]\npackages = [\"lua5.3\"]\nbinaries = [\"lua5.3\"]\n",
    )
    .unwrap();
    t.bundle()
        .args(["lock", "lua.toml", "--target", &target])
        .assert()
        .success();
    let lock_path = t.work.path().join("lua.lock.json");
    let lock: serde_json::Value = serde_json::from_str(&read_to_string(&lock_path)).unwrap();
    let debs = lock["apt"]["debs"].as_array().unwrap();
    let names: Vec<&str> = debs
        .iter()
        .map(|d| d["package"].as_str().unwrap())
        .collect();
    for wanted in ["lua5.3", "libreadline8", "patchelf"] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }
    // A first locked build fetches the .debs; then --locked --offline
    // installs exactly the locked versions, with no network anywhere.
    t.bundle()
        .args(["build", "lua.toml", "--locked"])
        .assert()
        .success();
    t.bundle()
        .args(["build", "lua.toml", "--locked", "--offline"])
        .assert()
        .success();
    let manifest: serde_json::Value = serde_json::from_str(&read_to_string(
        &t.work.path().join("dist/lua/manifest.json"),
    ))
    .unwrap();
    for d in debs.iter().filter(|d| d["package"] != "patchelf") {
        let installed = manifest["apt"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["package"] == d["package"])
            .unwrap_or_else(|| panic!("{} not installed", d["package"]));
        assert_eq!(installed["version"], d["version"]);
        assert_eq!(installed["sha256"], d["sha256"]);
    }
    // A locked version the mirror no longer has is named (a fresh cache,
    // so that it must be fetched).
    let mut stale = lock.clone();
    for d in stale["apt"]["debs"].as_array_mut().unwrap() {
        if d["package"] == "lua5.3" {
            d["version"] = "5.3.0-0.0bundle".into();
            d["deb"] = "lua5.3_5.3.0-0.0bundle_amd64.deb".into();
        }
    }
    std::fs::write(&lock_path, serde_json::to_string_pretty(&stale).unwrap()).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let err = fails(
        t.bundle()
            .env("BUNDLE_CACHE_DIR", empty.path())
            .args(["build", "lua.toml", "--locked"]),
        1,
    );
    assert!(
        err.contains(
            "the lock's lua5.3 5.3.0-0.0bundle is no longer in the distribution's package lists"
        ),
        "{err}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}

/// That `build --json`'s `doc` bundles `package` built from `sdist`, and
/// helper, which its built metadata requires.
fn built_with_helper(doc: &serde_json::Value, package: &str, sdist: &str) {
    let files = doc["build"]["files"].as_array().unwrap();
    let built = files
        .iter()
        .find(|f| f["package"] == package)
        .unwrap_or_else(|| panic!("{package} is not bundled: {doc}"));
    assert_eq!(built["built_from"], sdist, "{built}");
    assert!(files.iter().any(|f| f["package"] == "helper"), "{doc}");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn an_sdist_named_by_path_is_built_without_asking() {
    let t = docker_test();
    let server = Server::start();
    // helper and the backend come from the index; the sdist only from disk.
    publish_with_tinybuild(&server, &[]);
    let (name, data) = sdist(
        "pureonly",
        "1.2.2",
        serde_json::json!({"name": "pureonly", "version": "1.2.2", "modules": ["pureonly.py"], "requires": ["helper>=1"]}),
        &[("pureonly.py", "def hello():\n    return 'hi'\n")],
    );
    std::fs::write(t.work.path().join(&name), &data).unwrap();
    let out = t
        .bundle()
        .args(["build", &format!("pureonly @ ./{name}"), "--json"])
        .args(["--target", &fixture_target("debian11")])
        .args(["--index-url", &server.index_url()])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    built_with_helper(&doc, "pureonly", name.as_str());
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_project_folder_is_built_and_bundled_with_its_dynamic_dependencies() {
    let t = docker_test();
    let server = Server::start();
    publish_with_tinybuild(&server, &[]);
    // The project's dependencies are dynamic: only its build says it needs
    // helper.
    let project = t.work.path().join("proj");
    for (file, text) in [
        (
            "pyproject.toml",
            "[project]\nname = \"proj\"\nversion = \"0.3\"\ndynamic = [\"dependencies\"]\n\
             [build-system]\nrequires = [\"tinybuild\"]\nbuild-backend = \"tinybuild.backend\"\n",
        ),
        (
            "build.json",
            r#"{"name": "proj", "version": "0.3", "modules": ["proj.py"], "requires": ["helper>=1"]}"#,
        ),
        ("proj.py", "def hello():\n    return 'from proj'\n"),
        // Left out of the pack: what a build would trip over.
        ("dist/stale.zip", "not a zip"),
        (".git/HEAD", "ref: refs/heads/main\n"),
    ] {
        std::fs::create_dir_all(project.join(file).parent().unwrap()).unwrap();
        std::fs::write(project.join(file), text).unwrap();
    }
    let out = t
        .bundle()
        .current_dir(&project)
        .args(["build", ".", "--json", "--verify"])
        .args(["--target", &fixture_target("debian11")])
        .args(["--index-url", &server.index_url()])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    built_with_helper(&doc, "proj", "proj-0.3.tar.gz");
    // verify imported it in the sandbox.
    let imports = doc["verify"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "imports")
        .unwrap();
    assert!(
        imports["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"].as_str().unwrap().contains("proj") && i["status"] == "pass"),
        "{imports}"
    );
    // A lock pins the project's files: a changed file makes --locked refuse.
    let in_project = |args: &[&str]| {
        let mut cmd = t.bundle();
        cmd.current_dir(&project)
            .args(args)
            .args(["--target", &fixture_target("debian11")])
            .args(["--index-url", &server.index_url()]);
        cmd
    };
    in_project(&["lock", "."]).assert().success();
    in_project(&["build", ".", "--locked"]).assert().success();
    std::fs::write(
        project.join("proj.py"),
        "def hello():\n    return 'changed'\n",
    )
    .unwrap();
    let err = fails(&mut in_project(&["build", ".", "--locked"]), 2);
    assert!(
        err.contains("the files of the project") && err.contains("run `bundle lock` again"),
        "{err}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}
