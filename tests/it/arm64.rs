//! arm64 targets on this amd64 engine, through qemu-user-static registered
//! in binfmt_misc with the F flag. `.ci/run` registers it and builds the
//! Debian 11 arm64 test image (debootstrap --arch=arm64, then `FROM
//! scratch` + `ADD rootfs.tar` with --platform linux/arm64). Slow under
//! emulation: the projects here are small.

use std::path::Path;

use crate::common::*;
use crate::docker::{fastext_sdist, publish_with_tinybuild};

/// The arm64 test image `.ci/run` builds.
const ARM64_IMAGE: &str = "bundle-test/bullseye-arm64:glibc2.31";

/// The ELF machine of a file (e_machine, little-endian).
fn elf_machine(path: &Path) -> u16 {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    u16::from_le_bytes([b[18], b[19]])
}

const EM_AARCH64: u16 = 183;

#[test]
#[ignore = "needs dockerd, qemu-user-static in binfmt_misc and the arm64 test image (bash .ci/run sets them up)"]
fn an_apt_build_for_arm64_runs_in_a_pristine_arm64_container() {
    let t = docker_test();
    t.bundle()
        .args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-arm64-bare"),
        ])
        .assert()
        .success();
    let dir = t.work.path().join("dist/lua5.3");
    assert_eq!(elf_machine(&dir.join("bin/lua5.3")), EM_AARCH64);
    assert_eq!(elf_machine(&dir.join("lib/libreadline.so.8")), EM_AARCH64);
    let manifest: serde_json::Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    assert_eq!(
        manifest["target"]["platform"], "linux/arm64",
        "{}",
        manifest["target"]
    );
    let arch: Vec<&str> = manifest["apt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["architecture"].as_str().unwrap_or_default())
        .collect();
    assert!(
        arch.iter().all(|a| *a == "arm64" || *a == "all"),
        "{arch:?}"
    );
    let (ok, out) = run_pristine_on(
        "linux/arm64",
        ARM64_IMAGE,
        &dir,
        "uname -m && echo 'print(6*7)' | /b/bin/lua5.3 -",
    );
    assert!(ok && out.contains("aarch64") && out.contains("42"), "{out}");
    // The binary alone lacks readline there, as on amd64.
    let (ok, out) = run_pristine_on(
        "linux/arm64",
        ARM64_IMAGE,
        &dir,
        "cp /b/bin/lua5.3 /tmp/l && /tmp/l -v",
    );
    assert!(!ok && out.contains("libreadline.so.8"), "{out}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd, qemu-user-static in binfmt_misc and the arm64 test image (bash .ci/run sets them up)"]
fn an_sdist_is_built_for_arm64_and_wheels_with_apt_verify_in_an_arm64_sandbox() {
    let t = docker_test();
    let server = Server::start();
    let (fast_name, fast) = fastext_sdist(
        r#"#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sys/utsname.h>
static PyObject *machine(PyObject *self, PyObject *args) {
    struct utsname u; uname(&u); return PyUnicode_FromString(u.machine);
}
static PyMethodDef methods[] = {{"machine", machine, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "fastext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastext(void) { return PyModule_Create(&mod); }
"#,
    );
    publish_with_tinybuild(&server, &[("fastext", fast_name, fast)]);
    let recipe = "[pypi]\nrequirements = [\"fastext\", \"helper\"]\nsdists = \"build\"\n\
         check = [{ run = \"python3 -c 'import fastext, helper; print(fastext.machine())'\", expect = \"aarch64\" }]\n\
         [apt]\npackages = [\"lua5.3\"]\nbinaries = [\"lua5.3\"]\n\
         check = [{ run = \"lua5.3 -e 'print(6*7)'\", expect = \"42\" }]\n";
    let out = t
        .build(
            "mixed",
            recipe,
            &fixture_target("debian11-arm64"),
            &["--index-url", &server.index_url(), "--verify"],
        )
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("check: python3 -c 'import fastext") && err.contains("All steps passed."),
        "{err}"
    );
    let dir = t.work.path().join("dist/mixed");
    let wheels = file_names(&dir.join("wheels"));
    assert_eq!(
        wheels,
        [
            "fastext-0.12.2-cp39-cp39-linux_aarch64.whl",
            "helper-1.0-py3-none-any.whl"
        ]
    );
    assert_eq!(elf_machine(&dir.join("bin/lua5.3")), EM_AARCH64);
    // `verify` of the zip, run again for real, as JSON.
    let out = t
        .bundle()
        .args([
            "verify",
            "dist/mixed.zip",
            "--fresh",
            "--json",
            "--target",
            &fixture_target("debian11-arm64"),
        ])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report.to_string().contains("aarch64"), "{report}");
    assert!(t.containers().is_empty(), "containers left behind");
}

/// Turns the arm64 emulator off while alive, back on when dropped.
struct EmulatorOff;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

impl EmulatorOff {
    fn new() -> EmulatorOff {
        std::fs::write(BINFMT, "0").unwrap_or_else(|e| {
            panic!("turning off {BINFMT} (needs root, and .ci/run's registration): {e}")
        });
        EmulatorOff
    }
}

impl Drop for EmulatorOff {
    fn drop(&mut self) {
        std::fs::write(BINFMT, "1").expect("turning the arm64 emulator back on");
    }
}

#[test]
#[ignore = "needs dockerd, root, qemu-user-static in binfmt_misc and the arm64 test image (bash .ci/run sets them up)"]
fn without_an_emulator_an_arm64_target_is_refused_before_any_work() {
    // The Docker tests run one at a time: no other test sees the emulator off.
    let t = docker_test();
    let off = EmulatorOff::new();
    let err = fails(
        t.bundle().args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-arm64-bare"),
        ]),
        1,
    );
    drop(off);
    assert!(
        err.contains("the engine runs x86_64 programs and cannot run linux/arm64 ones")
            && err.contains("exec format error")
            && err.contains("hint: register an emulator for linux/arm64")
            && err.contains("qemu-user-static"),
        "{err}"
    );
    assert!(!t.work.path().join("dist/lua5.3").exists());
    assert!(t.containers().is_empty(), "containers left behind");
}
