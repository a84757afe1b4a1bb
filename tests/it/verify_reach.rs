//! What `verify` proves without any declared check: every ELF file loads
//! with the sandbox's own loader, every program starts, every module
//! imports. Each bundle here declares no check at all, and each fault is
//! one the earlier verify (`[ -x ]` on programs, `import` of the requested
//! packages only) let through. Real Docker, the Debian 11 test images; apt
//! reaches the Debian mirror through the default bridge.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// A verify report's items of one step, as (name, status, detail).
fn items(report: &Value, step: &str) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == step)
        .flat_map(|s| s["items"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
                i["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The one item named `name` of `step`.
fn item(report: &Value, step: &str, name: &str) -> (String, String) {
    let all = items(report, step);
    let found: Vec<_> = all.iter().filter(|(n, _, _)| n == name).collect();
    assert_eq!(found.len(), 1, "{name} in {step}: {all:?} of {report}");
    (found[0].1.clone(), found[0].2.clone())
}

fn verify_json(t: &DockerTest, what: &str, target: &str, extra: &[&str]) -> (i32, Value, String) {
    let out = t
        .bundle()
        .args(["verify", what, "--json", "--fresh", "--target", target])
        .args(extra)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_program_whose_library_the_sandbox_lacks_fails_verify_without_any_check() {
    let t = docker_test();
    // Built where the sandbox has libjq1: the bundle rightly leaves it out.
    let with_jq = fixture_target("debian11-withjq");
    let bare = fixture_target("debian11-nopython");
    t.bundle()
        .args(["build", "apt:jq", "--name", "jqb", "--target", &with_jq])
        .assert()
        .success();
    let dir = t.work.path().join("dist/jqb");
    assert!(
        !dir.join("lib/libjq.so.1").exists(),
        "libjq is the sandbox's"
    );
    let manifest = read_to_string(&dir.join("manifest.json"));
    assert!(
        manifest.contains("\"checks\":[]") || manifest.contains("\"checks\": []"),
        "{manifest}"
    );

    // In a sandbox without libjq1: exit 1, naming the file and the library.
    let (code, report, err) = verify_json(&t, "dist/jqb", &bare, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(report["ok"], false);
    crate::schemas::validate("verify-report.schema.json", &report);
    let (status, detail) = item(&report, "loads", "bin/jq");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("libjq.so.1 not found"), "{detail}");
    assert!(
        detail.contains("built for target `debian11-withjq`"),
        "{detail}"
    );
    assert!(
        detail.contains("libjq1"),
        "the package that provides it: {detail}"
    );
    let (status, detail) = item(&report, "programs", "bin/jq");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("libjq.so.1: cannot open shared object file"),
        "{detail}"
    );
    // The text report names them too.
    let text = stderr_of(
        &t.bundle()
            .args(["verify", "dist/jqb", "--fresh", "--target", &bare])
            .assert()
            .code(1),
    );
    assert!(text.contains("verify failed at step `loads`"), "{text}");
    assert!(text.contains("FAIL bin/jq: libjq.so.1 not found"), "{text}");

    // Against the profile it was built for: it passes, and jq started.
    let (code, report, err) = verify_json(&t, "dist/jqb", &with_jq, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(item(&report, "loads", "bin/jq").0, "pass");
    let (status, detail) = item(&report, "programs", "bin/jq");
    assert_eq!(status, "pass");
    assert!(detail.contains("jq-1.6"), "{detail}");

    // Built for a sandbox without libjq (with Python, whose install.py
    // reads the manifest), it carries libjq and libonig; a bundled library
    // left out before the bundle was made (manifest too, so that nothing
    // looks tampered with) is named by the loader, in both the program and
    // the library that needs it.
    let bare = fixture_target("debian11");
    t.bundle()
        .args(["build", "apt:jq", "--name", "jqbare", "--target", &bare])
        .assert()
        .success();
    let built = t.work.path().join("dist/jqbare");
    assert!(built.join("lib/libonig.so.5").is_file());
    let broken = t.work.path().join("broken/jqbare");
    copy_dir(&built, &broken);
    remove_with_manifest(&broken, "lib/libonig.so.5");
    let (code, report, err) = verify_json(&t, broken.to_str().unwrap(), &bare, &[]);
    assert_eq!(code, 1, "{err}");
    for file in ["bin/jq", "lib/libjq.so.1"] {
        let (status, detail) = item(&report, "loads", file);
        assert_eq!(status, "fail", "{file}");
        assert!(
            detail.starts_with("libonig.so.5 not found"),
            "{file}: {detail}"
        );
        assert!(
            detail.contains(
                "neither the bundle nor the sandbox has libonig.so.5 (Debian's libonig5 "
            ),
            "{file}: {detail}"
        );
    }
    assert_eq!(item(&report, "programs", "bin/jq").0, "fail");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn extensions_launchers_hidden_programs_and_dependencies_are_each_proven() {
    let t = docker_test();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // An extension module that needs a library no one has (linked against
    // a stand-in that is not shipped), in a wheel for Linux x86_64. The
    // package does not load it on import: only the loads step can tell.
    cc(
        dir,
        "libmissing.so.1",
        "int missing_fn(void){return 1;}\n",
        &["-shared", "-fPIC", "-Wl,-soname,libmissing.so.1"],
    );
    let native = std::fs::read(cc(
        dir,
        "_native.so",
        "int missing_fn(void);\nint native(void){return missing_fn();}\n",
        &["-shared", "-fPIC", "-L.", "-l:libmissing.so.1"],
    ))
    .unwrap();
    // A program built on this host (glibc 2.34 or newer): it needs a newer
    // GLIBC_ than the sandbox's 2.31, and its name, ending in .py, keeps
    // the build-time ELF check from reading it.
    let oldtool = std::fs::read(cc(
        dir,
        "oldtool",
        "#include <stdio.h>\nint main(void){puts(\"oldtool 1\");return 0;}\n",
        &[],
    ))
    .unwrap();
    let readelf = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(dir.join("oldtool"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&readelf.stdout).contains("GLIBC_2.34"),
        "this test needs a host with glibc 2.34 or newer, whose programs need GLIBC_2.34"
    );
    let server = Server::start();
    publish(
        &server,
        &[
            WheelSpec::new("app", "1.0")
                .requires(&["dep", "needsgone", "gui", "ext", "tool"])
                .file(
                    "app/cli.py",
                    b"def main():\n    print('app-hello')\n".to_vec(),
                )
                .file(
                    "app-1.0.dist-info/entry_points.txt",
                    b"[console_scripts]\napp-hello = app.cli:main\n".to_vec(),
                ),
            WheelSpec::new("dep", "2.0"),
            // A dependency (not asked for by name) that cannot be imported.
            WheelSpec::new("needsgone", "1.0")
                .file("brokenmod.py", b"import json\njson.not_there()\n".to_vec())
                // A side module for an optional dependency not bundled.
                .file("optmod.py", b"import gone_dep\n".to_vec()),
            // A module that needs a display: skipped by the recipe.
            WheelSpec::new("gui", "1.0")
                .file("guimod.py", b"raise RuntimeError('no display')\n".to_vec()),
            WheelSpec::new("ext", "1.0")
                .tag("py3-none-manylinux2014_x86_64")
                .file("ext/_native.so", native),
            // A console script whose module is not in its wheel.
            WheelSpec::new("tool", "1.0").file(
                "tool-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\ntool-cli = tool_gone.cli:main\n".to_vec(),
            ),
        ],
    );
    server.route(
        "/dl/oldtool.py",
        oldtool.clone(),
        "application/octet-stream",
        true,
    );
    let recipe = format!(
        "[pypi]\nrequirements = [\"app\"]\n\
         [[release]]\nname = \"oldtool\"\nversion = \"1\"\nurl = \"{}\"\nsha256 = \"{}\"\nfiles = [\"oldtool.py\"]\n\
         [verify]\nskip_imports = [\"guimod\"]\n",
        server.url("/dl/oldtool.py"),
        sha256(&oldtool)
    );
    let target = fixture_target("debian11");
    t.build(
        "reach",
        &recipe,
        &target,
        &["--index-url", &server.index_url()],
    )
    .assert()
    .success();
    let (code, report, err) = verify_json(
        &t,
        "dist/reach.zip",
        &target,
        &["--index-url", &server.index_url()],
    );
    assert_eq!(code, 1, "{err}");
    crate::schemas::validate("verify-report.schema.json", &report);

    // The extension: found among the installed files, its library named.
    let (status, detail) = item(&report, "loads", "ext: ext/_native.so");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("libmissing.so.1 not found"), "{detail}");
    // The hidden program: the loader names the symbol version, and its
    // start fails for the same reason.
    let (status, detail) = item(&report, "loads", "bin/oldtool.py");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("has no symbol version GLIBC_2.34"),
        "{detail}"
    );
    let (status, detail) = item(&report, "programs", "bin/oldtool.py");
    assert_eq!(status, "fail");
    assert!(detail.contains("GLIBC_2.34"), "{detail}");
    // The launcher whose module is missing.
    let (status, detail) = item(&report, "programs", "bin/tool-cli");
    assert_eq!(status, "fail");
    assert!(detail.contains("No module named 'tool_gone'"), "{detail}");
    // A good launcher starts.
    let (status, detail) = item(&report, "programs", "bin/app-hello");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("app-hello"), "{detail}");
    // Every wheel's modules, not only the one asked for.
    assert_eq!(item(&report, "imports", "import app").0, "pass");
    assert_eq!(item(&report, "imports", "import dep").0, "pass");
    assert_eq!(item(&report, "imports", "import needsgone").0, "pass");
    let (status, detail) = item(&report, "imports", "import brokenmod");
    assert_eq!(status, "fail");
    assert_eq!(
        detail,
        "needsgone 1.0: AttributeError: module 'json' has no attribute 'not_there'"
    );
    let (status, detail) = item(&report, "imports", "import optmod");
    assert_eq!(status, "skipped");
    assert!(
        detail.starts_with("it needs `gone_dep`, which nothing in the bundle provides"),
        "{detail}"
    );
    assert_eq!(item(&report, "imports", "import gui").0, "pass");
    let (status, detail) = item(&report, "imports", "import guimod");
    assert_eq!(status, "skipped");
    assert!(detail.contains("skip_imports"), "{detail}");
    // The steps, in order, and the failing ones.
    let steps: Vec<(&str, bool)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("upload", true),
            ("unpack", true),
            ("install.py", true),
            ("loads", false),
            ("imports", false),
            ("programs", false)
        ]
    );
    // A failed run is not kept: the next one runs again.
    let (code, report, _) = verify_json(
        &t,
        "dist/reach.zip",
        &target,
        &["--index-url", &server.index_url()],
    );
    assert_eq!(code, 1);
    assert_eq!(report["cached"], false);
    assert!(t.containers().is_empty(), "containers left behind");
}
