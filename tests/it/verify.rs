//! `bundle verify` and `bundle build --verify` against a real Docker daemon
//! and the Debian 11 test image with python3 and pip as system packages.
//! Wheels come from a 127.0.0.1 index; apt-get in the build container
//! reaches the Debian mirror through the default bridge.

use crate::common::*;

/// An index with `app` (needs `dep`) and `dep`.
fn index() -> Server {
    let server = Server::start();
    publish(
        &server,
        &[
            WheelSpec::new("app", "1.0")
                .requires(&["dep>=2"])
                .file(
                    "app/cli.py",
                    b"import sys\n\ndef main():\n    print('app-hello', sys.argv[1:])\n".to_vec(),
                )
                .file(
                    "app-1.0.dist-info/entry_points.txt",
                    b"[console_scripts]\napp-hello = app.cli:main\n".to_vec(),
                ),
            WheelSpec::new("dep", "2.0"),
        ],
    );
    server
}

const RECIPE: &str = r#"description = "app wheels plus lua5.3 and jq from apt"
[pypi]
requirements = ["app"]
check = [{ run = "python3 -c 'import app, dep; print(app.__version__, dep.__version__)'", expect = "1.0 2.0" }]
[apt]
packages = ["lua5.3", "jq"]
binaries = ["lua5.3", "jq"]
check = [{ run = "lua5.3 -v", expect = "Lua 5.3" }, { run = "jq --version", expect = "jq-1" }]
"#;

fn build(t: &DockerTest, server: &Server, target: &str, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = t.build(
        "combo",
        RECIPE,
        target,
        &["--index-url", &server.index_url()],
    );
    cmd.args(extra);
    cmd
}

fn verify(t: &DockerTest, server: &Server, what: &str, target: &str) -> assert_cmd::Command {
    let mut cmd = t.bundle();
    cmd.args([
        "verify",
        what,
        "--index-url",
        &server.index_url(),
        "--target",
        target,
    ]);
    cmd
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_good_bundle_verifies_and_broken_ones_fail_for_the_right_reason() {
    let t = docker_test();
    let server = index();
    let target = fixture_target("debian11");

    // build --verify passes, and says which steps ran.
    let err = stderr_of(
        &build(&t, &server, &target, &["--verify"])
            .assert()
            .success(),
    );
    for step in [
        "upload",
        "unpack",
        "install.py",
        "check: lua5.3 -v",
        "check: jq --version",
        "import app",
        "All steps passed.",
    ] {
        assert!(err.contains(step), "{step} missing from:\n{err}");
    }
    // jq's libraries are not in the sandbox image: the bundle carries them.
    let dir = t.work.path().join("dist/combo");
    assert!(dir.join("lib/libjq.so.1").is_file());
    assert!(dir.join("lib/libonig.so.5").is_file());

    // As the user: upload the zip, run PROMPT's code as `sandbox`, then
    // every program by the full path PROMPT names, with the image's PATH.
    let prompt = read_to_string(&dir.join("PROMPT.txt"));
    for program in ["app-hello (from app)", "jq", "lua5.3"] {
        assert!(
            prompt.contains(&format!("- /mnt/data/combo/bin/{program}")),
            "{program}: {prompt}"
        );
    }
    let (ok, out) = as_the_user(
        &t.work.path().join("dist"),
        &["combo.zip".to_string()],
        &prompt,
        "echo \"PATH=$PATH\"\n\
         /mnt/data/combo/bin/app-hello one two\n\
         /mnt/data/combo/bin/jq --version\n\
         /mnt/data/combo/bin/lua5.3 -v\n\
         command -v app-hello || echo 'app-hello is not on PATH'",
    );
    assert!(ok, "{out}");
    let after = out.split("--- after PROMPT").nth(1).unwrap();
    assert!(!after.contains("PATH=/mnt/data"), "PATH untouched: {after}");
    assert!(after.contains("app-hello ['one', 'two']"), "{after}");
    assert!(after.contains("jq-1."), "{after}");
    assert!(after.contains("Lua 5.3"), "{after}");
    assert!(after.contains("app-hello is not on PATH"), "{after}");

    // The JSON report of the archive, run afresh.
    let out = verify(&t, &server, "dist/combo.zip", &target)
        .args(["--json", "--fresh"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["cached"], false);
    crate::schemas::validate("verify-report.schema.json", &report);
    // Again, nothing changed: the same uploads, PROMPT.txt, target and
    // sandbox image make the same run, whose passing report stands, with
    // no container.
    let again = verify(&t, &server, "dist/combo.zip", &target)
        .arg("--json")
        .assert()
        .success();
    let again: serde_json::Value = serde_json::from_slice(&again.get_output().stdout).unwrap();
    assert_eq!(again["cached"], true);
    assert_eq!(again["steps"], report["steps"]);
    let text = stderr_of(
        &verify(&t, &server, "dist/combo.zip", &target)
            .assert()
            .success(),
    );
    assert!(text.contains("identical earlier run"), "{text}");
    assert!(t.containers().is_empty());
    assert_eq!(report["user"], "sandbox");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps[..3], ["upload", "unpack", "install.py"]);

    // A tampered bundle: a wheel rewritten to run other code, a library
    // removed. Nothing runs; each file is named.
    let tampered = t.work.path().join("tampered/combo");
    copy_dir(&dir, &tampered);
    let wheel = tampered.join("wheels/dep-2.0-py3-none-any.whl");
    let mut bytes = std::fs::read(&wheel).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&wheel, bytes).unwrap();
    std::fs::remove_file(tampered.join("lib/libjq.so.1")).unwrap();
    let err = fails(
        &mut verify(&t, &server, tampered.to_str().unwrap(), &target),
        1,
    );
    assert!(
        err.contains("2 file(s) of the bundle differ from its manifest.json"),
        "{err}"
    );
    assert!(
        err.contains("wheels/dep-2.0-py3-none-any.whl (changed"),
        "{err}"
    );
    assert!(err.contains("lib/libjq.so.1 (missing)"), "{err}");
    assert!(
        !err.contains("verify failed at step"),
        "nothing may run: {err}"
    );

    // A library left out consistently (manifest too): the loader's message
    // names it.
    // Renamed: it is still uploaded under its manifest name.
    let broken = t.work.path().join("broken-lib/renamed");
    copy_dir(&dir, &broken);
    remove_with_manifest(&broken, "lib/libjq.so.1");
    let err = fails(
        &mut verify(&t, &server, broken.to_str().unwrap(), &target),
        1,
    );
    // The loads step names it first, for the program and for no check.
    assert!(err.contains("verify failed at step `loads`"), "{err}");
    assert!(err.contains("FAIL bin/jq: libjq.so.1 not found"), "{err}");

    // A missing wheel: install.py names the package that requires it,
    // before installing anything.
    let broken = t.work.path().join("broken-wheel/combo");
    copy_dir(&dir, &broken);
    remove_with_manifest(&broken, "wheels/dep-2.0-py3-none-any.whl");
    let err = fails(
        &mut verify(&t, &server, broken.to_str().unwrap(), &target),
        1,
    );
    assert!(err.contains("verify failed at step `install.py`"), "{err}");
    assert!(
        err.contains("app 1.0 requires dep, which the bundle does not carry"),
        "{err}"
    );
    assert!(err.contains("nothing was installed"), "{err}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn preinstalled_packages_come_from_the_target_and_time_limits_hold() {
    let t = docker_test();
    let server = index();
    // The debian11 profile, with `dep` preinstalled and a short time limit.
    let profile = std::fs::read_to_string(fixture_target("debian11")).unwrap();
    let profile = profile
        .replace("preinstalled = []", "preinstalled = [\"dep==2.0\"]")
        .replace("command_timeout_s = 60", "command_timeout_s = 5");
    let target = t.work.path().join("debian11-pre.toml");
    std::fs::write(&target, profile).unwrap();
    let target = target.to_str().unwrap().to_string();

    build(&t, &server, &target, &[]).assert().success();
    let dir = t.work.path().join("dist/combo");
    assert!(!dir.join("wheels/dep-2.0-py3-none-any.whl").exists());
    // dep is not in the bundle: verify must put it in the sandbox image.
    for _ in 0..2 {
        verify(&t, &server, "dist/combo.zip", &target)
            .assert()
            .success();
    }

    // A check slower than the target's command_timeout_s fails.
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&read_to_string(&manifest_path)).unwrap();
    manifest["checks"] = serde_json::json!([{"run": "sleep 30"}]);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let err = fails(&mut verify(&t, &server, dir.to_str().unwrap(), &target), 1);
    assert!(err.contains("check: sleep 30"), "{err}");
    assert!(err.contains("timed out after 5 s"), "{err}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn keep_leaves_the_container_and_says_which() {
    let t = docker_test();
    let server = index();
    std::fs::write(
        t.work.path().join("app.toml"),
        "[pypi]\nrequirements = [\"app\"]\n",
    )
    .unwrap();
    let target = fixture_target("debian11");
    t.bundle()
        .args([
            "build",
            "app.toml",
            "--index-url",
            &server.index_url(),
            "--target",
            &target,
        ])
        .assert()
        .success();
    let out = verify(&t, &server, "dist/app.zip", &target)
        .arg("--keep")
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let kept = t.containers();
    assert_eq!(kept.len(), 1, "{err}");
    assert!(
        err.contains(&format!("kept container {}", kept[0])),
        "{err}"
    );
    // Inside it, the bundle is installed for the sandbox user.
    let out = docker(&[
        "exec",
        &kept[0],
        "python3",
        "-c",
        "import app; print(app.__file__)",
    ]);
    let path = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(path.contains("/home/sandbox/.local/"), "{path}");
    docker(&["rm", "-f", &kept[0]]);
    assert!(t.containers().is_empty());
}

#[test]
fn verify_without_a_daemon_says_so() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = work.path().join("b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(r#"{{"schema":1,"name":"b","created_by":"t","target":{{"name":"ubuntu-20.04","platform":"linux/amd64","glibc":"2.31","python":"3.8.10"}},"files":[{{"path":"x","kind":"file","sha256":"{}","size":2}}],"excluded":[],"checks":[]}}"#, sha256(b"x\n")),
    )
    .unwrap();
    std::fs::write(dir.join("x"), "x\n").unwrap();
    std::fs::write(dir.join("PROMPT.txt"), "```python\nprint(1)\n```\n").unwrap();
    let err = fails(
        bundle(work.path(), cache.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["verify", "b"]),
        1,
    );
    assert!(
        err.contains("bundle verify needs Docker, and the engine at unix:///nonexistent/docker.sock (from DOCKER_HOST) does not answer"),
        "{err}"
    );
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_bundle_for_another_python_is_refused_before_anything_runs() {
    let t = docker_test();
    let server = index();
    // The debian11 profile, but claiming CPython 3.8: the image has 3.9.
    let profile = std::fs::read_to_string(fixture_target("debian11")).unwrap();
    let version = profile
        .lines()
        .find_map(|l| l.strip_prefix("python = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let target = t.work.path().join("py38.toml");
    std::fs::write(&target, profile.replace(&version, "3.8.10")).unwrap();
    std::fs::write(
        t.work.path().join("app.toml"),
        "[pypi]\nrequirements = [\"app\"]\n",
    )
    .unwrap();
    t.bundle()
        .args([
            "build",
            "app.toml",
            "--index-url",
            &server.index_url(),
            "--target",
        ])
        .arg(&target)
        .assert()
        .success();
    let err = fails(
        &mut verify(&t, &server, "dist/app.zip", target.to_str().unwrap()),
        1,
    );
    assert!(
        err.contains("this bundle was made for py38 (CPython 3.8), but the sandbox image's Python is cpython 3.9"),
        "{err}"
    );
    assert!(!err.contains("verify failed at step"), "nothing ran: {err}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn volumes_within_the_upload_limit_join_check_and_install_as_the_user() {
    let t = docker_test();
    let server = Server::start();
    // 25 MB that does not compress, in one wheel: over a 10 MB limit on
    // its own, so the wheel is cut across volumes too.
    publish(
        &server,
        &[WheelSpec::new("big", "1.0").file("big/blob.bin", noise(25_000_000, 7))],
    );
    let target = fixture_target("debian11");
    let out = t
        .build(
            "big",
            "[pypi]\nrequirements = [\"big\"]\n",
            &target,
            &[
                "--index-url",
                &server.index_url(),
                "--max-upload",
                "10MB",
                "--verify",
                "--json",
            ],
        )
        .assert()
        .success();
    let err = stderr_of(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let uploads: Vec<String> = json["build"]["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert!(u["size"].as_u64().unwrap() <= 10_000_000, "{u}");
            u["path"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(uploads, ["big.zip.001", "big.zip.002", "big.zip.003"]);
    assert_eq!(json["verify"]["ok"], true);
    // The build result with its verify report, as the schemas describe it.
    crate::schemas::validate("build-result.schema.json", &json);
    crate::schemas::validate("verify-report.schema.json", &json["verify"]);
    // verify uploaded exactly the volumes.
    assert_eq!(json["verify"]["steps"][0]["name"], "upload");
    assert_eq!(
        json["verify"]["steps"][0]["output"],
        "big.zip.001, big.zip.002, big.zip.003 into /mnt/data"
    );
    assert!(err.contains("split into 3 volumes"), "{err}");
    let dist = t.work.path().join("dist");
    assert!(
        !dist.join("big.zip").exists(),
        "only the volumes are written"
    );
    let prompt = read_to_string(&dist.join("big/PROMPT.txt"));
    assert!(prompt.contains("the 3 volumes of big.zip"), "{prompt}");

    // As the user: the volumes in, PROMPT's code, then the package.
    let (ok, text) = as_the_user(
        &dist,
        &uploads,
        &prompt,
        "cd /tmp && python3 -c 'import big, os; print(big.__version__, os.path.getsize(os.path.join(os.path.dirname(big.__file__), \"blob.bin\")))'",
    );
    assert!(ok, "{text}");
    assert!(text.contains("1.0 25000000"), "{text}");

    // A volume damaged on the way: PROMPT's code names it, nothing installs.
    let damaged = t.work.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for u in &uploads {
        std::fs::copy(dist.join(u), damaged.join(u)).unwrap();
    }
    let two = damaged.join("big.zip.002");
    let mut bytes = std::fs::read(&two).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&two, bytes).unwrap();
    let (ok, text) = as_the_user(&damaged, &uploads, &prompt, "echo installed");
    assert!(!ok, "{text}");
    assert!(
        text.contains("big.zip.002 is not the file bundle wrote: upload it again"),
        "{text}"
    );
    assert!(!text.contains("--- after PROMPT"), "{text}");

    // verify of the first volume finds the others.
    let report = verify(&t, &server, "dist/big.zip.001", &target)
        .arg("--json")
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&report.get_output().stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_profile_captured_in_the_sandbox_builds_and_verifies_with_only_the_image_changed() {
    let t = docker_test();
    let server = index();
    let snippet = t
        .bundle()
        .args(["target", "capture"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    // Run the snippet in the sandbox stand-in, as its user, from /tmp (not
    // the upload folder: that must be found, not taken from the cwd).
    let stage = tempfile::tempdir().unwrap();
    std::fs::write(stage.path().join("capture.py"), &snippet).unwrap();
    let (ok, text) = as_the_user(
        stage.path(),
        &["capture.py".to_string()],
        "```python\nprint('capturing')\n```\n",
        "cd /tmp && python3 /mnt/data/capture.py > /mnt/data/profile.toml && cat /mnt/data/profile.toml",
    );
    assert!(ok, "{text}");
    let profile = text.split("--- after PROMPT\n").nth(1).unwrap().to_string();
    for line in [
        "image = \"debian:11\"",
        "platform = \"linux/amd64\"",
        "glibc = \"2.31\"",
        "python = \"3.9.2\"",
        "system_packages = [\"python3\", \"python3-pip\"]",
        "upload_dir = \"/mnt/data\"",
        "user = \"sandbox\"",
        "glibcxx = \"3.4.28\"",
        "  \"libc.so.6\",",
        "  \"libstdc++.so.6\",",
        "pip present",
    ] {
        assert!(profile.contains(line), "{line} missing from:\n{profile}");
    }
    // Only `image` changes: the public image is not reachable here.
    let image_line = profile
        .lines()
        .find(|l| l.starts_with("image = "))
        .unwrap()
        .to_string();
    let profile = profile.replace(&image_line, &format!("image = \"{TEST_IMAGE}\""));
    let path = t.work.path().join("captured.toml");
    std::fs::write(&path, profile).unwrap();
    let out = t
        .build(
            "app",
            "[pypi]\nrequirements = [\"app\"]\n",
            path.to_str().unwrap(),
            &["--index-url", &server.index_url(), "--verify"],
        )
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(err.contains("All steps passed."), "{err}");
    assert!(err.contains("import app"), "{err}");
    assert!(t.containers().is_empty(), "containers left behind");
}
