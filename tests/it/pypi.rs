//! PyPI wheel sets, end to end, against a local PEP 691 index.

use crate::common::*;
use predicates::prelude::*;
use serde_json::Value;

/// A small world: app needs lib (with an extra), a marker-gated backport,
/// a Windows-only dep that must not appear, and a Python-version split.
fn world() -> Vec<WheelSpec> {
    vec![
        WheelSpec::new("app", "1.0").requires(&["lib>=1"]),
        WheelSpec::new("app", "2.0").requires(&[
            "lib[fast]>=2,<3",
            "backport; python_version < \"3.9\"",
            "winonly; sys_platform == \"win32\"",
            "newpy; python_version >= \"3.9\"",
        ]),
        WheelSpec::new("lib", "1.5"),
        WheelSpec::new("lib", "2.1")
            .extras(&["fast"])
            .requires(&["speedup; extra == \"fast\""]),
        WheelSpec::new("lib", "2.2").requires_python(">=3.9"),
        WheelSpec::new("lib", "2.3").tag("cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        WheelSpec::new("lib", "2.4").yanked("broken release"),
        WheelSpec::new("speedup", "0.9")
            .tag("cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        WheelSpec::new("speedup", "1.0").tag("cp38-cp38-manylinux_2_34_x86_64"),
        WheelSpec::new("backport", "5.0").no_pep658(),
        WheelSpec::new("winonly", "1.0"),
        WheelSpec::new("newpy", "1.0"),
    ]
}

fn setup() -> (Server, tempfile::TempDir, tempfile::TempDir) {
    serve(&world())
}

/// `plan --json` against the test server's index.
fn index_plan(
    server: &Server,
    cwd: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
) -> Value {
    let index = server.index_url();
    plan_json(cwd, cache, &[args, &["--index-url", &index]].concat())
}

fn pins(plan: &Value) -> Vec<String> {
    plan["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}=={}",
                w["package"].as_str().unwrap(),
                w["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn resolves_for_the_target_not_the_host() {
    let (server, cwd, cache) = setup();
    let plan = index_plan(&server, cwd.path(), cache.path(), &["app"]);
    // Markers for Python 3.8 on Linux; Requires-Python, tags and yanked
    // filter lib down to 2.1; the extra pulls speedup, whose manylinux_2_34
    // wheel is too new for glibc 2.31.
    assert_eq!(
        pins(&plan),
        vec!["app==2.0", "backport==5.0", "lib==2.1", "speedup==0.9"]
    );
    let speedup = &plan["wheels"][3];
    assert_eq!(
        speedup["filename"],
        "speedup-0.9-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    );
    // Metadata came from PEP 658 files, except backport's: the index serves
    // none for it, and a wheel that small is read whole, in one request.
    assert!(server
        .requests_to("/files/app-2.0-py3-none-any.whl")
        .is_empty());
    let backport = server.requests_to("/files/backport-5.0-py3-none-any.whl");
    assert_eq!(backport.len(), 1, "{backport:?}");
    assert!(backport[0].range.is_none(), "{backport:?}");
    assert!(server
        .log()
        .iter()
        .any(|r| r.accept.as_deref() == Some("application/vnd.pypi.simple.v1+json")));
}

#[test]
fn other_python_and_architecture() {
    let (server, cwd, cache) = setup();
    let target = cwd.path().join("py311-arm.toml");
    std::fs::write(
        &target,
        "description = \"test\"\nimage = \"x\"\nplatform = \"linux/arm64\"\nglibc = \"2.31\"\npython = \"3.11.4\"\n",
    )
    .unwrap();
    let plan = index_plan(
        &server,
        cwd.path(),
        cache.path(),
        &["app", "--target", target.to_str().unwrap()],
    );
    // 3.11: no backport, newpy; lib 2.2 (>=3.9) is allowed; speedup has no aarch64 wheel.
    let err = fails(
        bundle(cwd.path(), cache.path())
            .args([
                "plan",
                "lib[fast]==2.1",
                "--target",
                target.to_str().unwrap(),
            ])
            .args(["--index-url", &server.index_url()]),
        1,
    );
    assert!(err.contains("speedup"), "{err}");
    assert!(err.contains("does not fit the target"), "{err}");
    assert_eq!(plan["target"]["platform"], "linux/arm64");
    assert!(
        pins(&plan).contains(&"newpy==1.0".to_string()),
        "{:?}",
        pins(&plan)
    );
    assert!(!pins(&plan).iter().any(|p| p.starts_with("backport")));
    assert!(
        pins(&plan).contains(&"lib==2.2".to_string()),
        "{:?}",
        pins(&plan)
    );
}

#[test]
fn build_writes_bundle_dir_and_zip() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["build", "app", "--index-url", &server.index_url()])
        .assert()
        .success()
        .stderr(predicate::str::contains("dist/app.zip"));
    let dir = cwd.path().join("dist/app");
    for f in ["manifest.json", "install.py", "PROMPT.txt"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let manifest: Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    assert_eq!(manifest["schema"], 1);
    assert_eq!(manifest["target"]["name"], "ubuntu-20.04");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        let path = dir.join(f["path"].as_str().unwrap());
        let data = std::fs::read(&path).unwrap();
        assert_eq!(f["kind"], "wheel");
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(&data));
        assert_eq!(f["size"].as_u64().unwrap(), data.len() as u64);
        assert!(f["source"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
    }
    let names = read_zip_names(&cwd.path().join("dist/app.zip"));
    assert!(names.contains(&"app/manifest.json".to_string()));
    assert!(names.contains(&"app/wheels/lib-2.1-py3-none-any.whl".to_string()));
    assert!(names.iter().all(|n| n.starts_with("app/")));
    // PROMPT.txt and uploads.json describe the archive, so they are not in it.
    assert!(!names.contains(&"app/PROMPT.txt".to_string()));
    assert!(!names.contains(&"app/uploads.json".to_string()));
    let prompt = read_to_string(&dir.join("PROMPT.txt"));
    assert!(
        prompt.contains("I uploaded app.zip to /mnt/data."),
        "{prompt}"
    );
    assert!(
        prompt.contains("zipfile.ZipFile(joined).extractall(up)"),
        "{prompt}"
    );
    assert!(prompt.contains("install.py"));
    // The archive's sha256 is checked in the sandbox before it is unpacked.
    let zip = std::fs::read(cwd.path().join("dist/app.zip")).unwrap();
    assert!(
        prompt.contains(&format!("!= \"{}\"", sha256(&zip))),
        "{prompt}"
    );
    let uploads: Value = serde_json::from_str(&read_to_string(&dir.join("uploads.json"))).unwrap();
    assert_eq!(uploads["uploads"][0]["path"], "app.zip");
    assert_eq!(uploads["uploads"][0]["size"], zip.len() as u64);
    assert_eq!(uploads["uploads"][0]["sha256"], sha256(&zip));
    // no temporary folders left behind
    let leftovers: Vec<_> = std::fs::read_dir(cwd.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[test]
fn build_json_has_one_shape_with_or_without_verify() {
    let (server, cwd, cache) = setup();
    let out = bundle(cwd.path(), cache.path())
        .args([
            "build",
            "lib==1.5",
            "--json",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["verify"], Value::Null);
    assert!(doc.get("error").is_none());
    let v = &doc["build"];
    assert_eq!(v["schema"], 1);
    assert_eq!(v["name"], "lib");
    assert_eq!(v["files"][0]["package"], "lib");
    // `archive` and `uploads[].path` alike: relative to `out`, absolute.
    assert_eq!(v["archive"], "lib.zip");
    let out_dir = std::path::Path::new(v["out"].as_str().unwrap());
    assert!(
        out_dir.is_absolute() && out_dir.join("lib.zip").is_file(),
        "{v}"
    );
    assert!(v["bundle_dir"].as_str().unwrap().ends_with("dist/lib"));
    assert_eq!(v["uploads"][0]["path"], "lib.zip");
    assert_eq!(v["warnings"], serde_json::json!([]));
    for stage in ["resolving", "fetching", "staging", "checking", "assembling"] {
        assert!(v["timings"][stage].as_f64().is_some(), "{stage}: {v}");
    }
}

#[test]
fn preinstalled_packages_are_excluded_and_conflicts_explained() {
    let (server, cwd, cache) = setup();
    let target = cwd.path().join("sandbox.toml");
    std::fs::write(
        &target,
        "description = \"t\"\nimage = \"x\"\nplatform = \"linux/amd64\"\nglibc = \"2.31\"\npython = \"3.8.10\"\npreinstalled = \"freeze.txt\"\n",
    )
    .unwrap();
    std::fs::write(
        cwd.path().join("freeze.txt"),
        "lib==2.1\nspeedup==0.9\nother==1.0\n",
    )
    .unwrap();
    let plan = index_plan(
        &server,
        cwd.path(),
        cache.path(),
        &["app", "--target", target.to_str().unwrap()],
    );
    assert_eq!(pins(&plan), vec!["app==2.0", "backport==5.0"]);
    let excluded: Vec<String> = plan["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["package"].as_str().unwrap(),
                e["version"].as_str().unwrap(),
                e["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        excluded,
        vec![
            "lib 2.1 preinstalled on target",
            "speedup 0.9 preinstalled on target"
        ]
    );

    // Asking for a version the target does not have fails with an explanation.
    std::fs::write(cwd.path().join("freeze.txt"), "lib==1.5\n").unwrap();
    bundle(cwd.path(), cache.path())
        .args([
            "plan",
            "app==2.0",
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lib"))
        .stderr(predicate::str::contains("preinstalled"))
        .stderr(predicate::str::contains("--upgrade-preinstalled"));
    // ...and --upgrade-preinstalled carries the newer version instead.
    let plan = index_plan(
        &server,
        cwd.path(),
        cache.path(),
        &[
            "app==2.0",
            "--target",
            target.to_str().unwrap(),
            "--upgrade-preinstalled",
        ],
    );
    assert!(pins(&plan).contains(&"lib==2.1".to_string()));
    assert_eq!(
        plan["replaced"],
        serde_json::json!([{"package": "lib", "preinstalled": "1.5", "version": "2.1"}])
    );
    // The build says so, and its manifest records it.
    let out = bundle(cwd.path(), cache.path())
        .args([
            "build",
            "app==2.0",
            "--target",
            target.to_str().unwrap(),
            "--upgrade-preinstalled",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("replaces  lib 1.5 (preinstalled on target) with 2.1"),
        "{err}"
    );
    let manifest: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("dist/app/manifest.json"))).unwrap();
    assert_eq!(manifest["replaced"], plan["replaced"]);
}

#[test]
fn yanked_is_skipped_unless_pinned_exactly() {
    let (server, cwd, cache) = setup();
    let plan = index_plan(&server, cwd.path(), cache.path(), &["lib==2.4"]);
    assert_eq!(pins(&plan), vec!["lib==2.4"]);
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "lib>2.3",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(
        err.contains("lib-2.4-py3-none-any.whl: yanked: broken release"),
        "{err}"
    );
}

#[test]
fn no_compatible_wheel_explains_each_file() {
    let server = Server::start();
    publish_with(
        &server,
        &[
            WheelSpec::new("native", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64"),
            WheelSpec::new("native", "1.1").requires_python(">=3.10"),
            WheelSpec::new("native", "1.2").yanked("oops"),
        ],
        true,
        &[("native", "native-1.3.tar.gz")],
    );
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            "native",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    // The hint names what exists on the command line, and in a recipe.
    assert!(
        err.contains(
            "native-1.3.tar.gz: source distribution (wheels only: --sdists build, or sdists = \"build\" in a recipe, builds it in the target's image)"
        ),
        "{err}"
    );
    // --sdists build takes the sdist (fetched to be built in the target's
    // image: this index lists it but serves no file, so that fails
    // there); --sdists refuse is the default made explicit.
    let other = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "native",
            "--sdists",
            "build",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(
        other.contains("native-1.3.tar.gz was not found (HTTP 404)"),
        "{other}"
    );
    fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "native",
            "--sdists",
            "refuse",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    // Two requirements that contradict each other are quoted, not merged.
    let other = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "native<1",
            "native>2",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(
        other.contains("the requirements `native<1` and `native>2` conflict: no version of native satisfies them all"),
        "{other}"
    );
    assert!(!other.contains("∅"), "{other}");
    assert!(
        err.contains("native-1.1-py3-none-any.whl: Requires-Python >=3.10 excludes Python 3.8.10"),
        "{err}"
    );
    assert!(err.contains("native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl: tag cp311-cp311-manylinux_2_17_x86_64 does not fit the target"), "{err}");
    assert!(
        err.contains("native-1.2-py3-none-any.whl: yanked: oops"),
        "{err}"
    );
    assert!(!cwd.path().join("dist").join("native").exists());
}

#[test]
fn unknown_package_is_named() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args([
            "build",
            "app",
            "no-such-pkg",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "package `no-such-pkg` was not found",
        ))
        .stderr(predicate::str::contains("hint:"));
}

#[test]
fn a_large_wheel_without_pep658_is_read_by_ranges() {
    // Over 1 MiB of bytes that do not compress: the wheel is too big to be
    // read whole for its metadata.
    let mut noise = Vec::with_capacity(1_300_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 1_300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let big = WheelSpec::new("big", "1.0")
        .no_pep658()
        .file("big/noise.bin", noise);
    let server = Server::start();
    publish_with(&server, &[big], true, &[]);
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &["big", "--index-url", &server.index_url()],
    );
    assert_eq!(pins(&plan), vec!["big==1.0"]);
    let size = plan["wheels"][0]["size"].as_u64().unwrap();
    assert!(size > 1 << 20, "the test wheel must be over 1 MiB: {size}");
    let reads = server.requests_to("/files/big-1.0-py3-none-any.whl");
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|r| r.range.is_some()), "{reads:?}");
}

#[test]
fn the_read_ahead_reads_the_versions_requirements_and_constraints_allow() {
    // The newest lib and other need `heavy`; the versions allowed do not.
    let (server, cwd, cache) = serve(&[
        WheelSpec::new("app", "1.0").requires(&["lib<2", "other"]),
        WheelSpec::new("lib", "1.0"),
        WheelSpec::new("lib", "2.0").requires(&["heavy"]),
        WheelSpec::new("other", "1.0"),
        WheelSpec::new("other", "2.0").requires(&["heavy"]),
        WheelSpec::new("heavy", "1.0"),
    ]);
    std::fs::write(cwd.path().join("c.txt"), "other<2\n").unwrap();
    // The solver waits for this page; a read-ahead of the newest versions
    // would reach `heavy` meanwhile.
    server.delay("/simple/other/", 1500);
    let plan = index_plan(&server, cwd.path(), cache.path(), &["app", "-c", "c.txt"]);
    assert_eq!(pins(&plan), ["app==1.0", "lib==1.0", "other==1.0"]);
    let log = server.log();
    let wasted: Vec<_> = log
        .iter()
        .filter(|r| r.path.contains("heavy") || r.path.contains("-2.0-"))
        .collect();
    assert!(wasted.is_empty(), "{wasted:?}");
    assert!(!server.requests_to("/simple/other/").is_empty());
}

#[test]
fn metadata_without_range_support_downloads_and_keeps_the_wheel() {
    let server = Server::start();
    publish_with(
        &server,
        &[WheelSpec::new("plain", "1.0").no_pep658()],
        false,
        &[],
    );
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "plain", "--index-url", &server.index_url()])
        .assert()
        .success();
    // One GET for metadata (whole file, range ignored), none for the bundle:
    // the wheel came from the cache.
    let gets = server.requests_to("/files/plain-1.0-py3-none-any.whl");
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(cwd
        .path()
        .join("dist/plain/wheels/plain-1.0-py3-none-any.whl")
        .is_file());
}

#[test]
fn hash_mismatch_fails_and_keeps_nothing() {
    let server = Server::start();
    let w = WheelSpec::new("evil", "1.0");
    publish(&server, std::slice::from_ref(&w));
    // Replace the file after publishing its hash.
    server.route(
        &format!("/files/{}", w.filename()),
        b"tampered".to_vec(),
        "application/octet-stream",
        false,
    );
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "evil", "--index-url", &server.index_url()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sha256 mismatch"))
        .stderr(predicate::str::contains("nothing was kept"));
    assert!(!cwd.path().join("dist/evil").exists());
    assert!(!cwd.path().join("dist/evil.zip").exists());
    let blobs = cache.path().join("blobs");
    let count = walk(&blobs);
    assert_eq!(count, 0, "unverified data left in the cache");
    let tmp = walk(&cache.path().join("tmp"));
    assert_eq!(tmp, 0);
}

fn walk(p: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.map(|e| {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path())
        } else {
            1
        }
    })
    .sum()
}

#[test]
fn failed_build_keeps_the_previous_bundle() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args([
            "build",
            "lib==1.5",
            "--name",
            "x",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    let before = std::fs::read(cwd.path().join("dist/x.zip")).unwrap();
    let manifest = std::fs::read(cwd.path().join("dist/x/manifest.json")).unwrap();
    // The second build resolves, fetches and stages, then fails the check:
    // its release is a program for another CPU.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[16] = 2; // ET_EXEC
    elf[18] = 183; // aarch64
    elf[20] = 1;
    elf[52] = 64;
    server.route(
        "/dl/armtool",
        elf.clone(),
        "application/octet-stream",
        false,
    );
    std::fs::write(
        cwd.path().join("x.toml"),
        format!(
            "[pypi]\nrequirements = [\"lib==1.5\"]\n[[release]]\nname = \"armtool\"\nversion = \"1\"\nurl = \"{}\"\nsha256 = \"{}\"\nfiles = [\"armtool\"]\n",
            server.url("/dl/armtool"),
            sha256(&elf)
        ),
    )
    .unwrap();
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            "x.toml",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(err.contains("bin/armtool is built for aarch64"), "{err}");
    assert_eq!(
        std::fs::read(cwd.path().join("dist/x.zip")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read(cwd.path().join("dist/x/manifest.json")).unwrap(),
        manifest
    );
    assert!(!cwd.path().join("dist/x/bin").exists());
    let staged: Vec<_> = std::fs::read_dir(cwd.path().join("dist"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(staged.is_empty(), "the staging folder is removed");
}

#[test]
fn zip_is_byte_identical_across_caches() {
    let (server, cwd, cache) = setup();
    let cache2 = tempfile::tempdir().unwrap();
    let cwd2 = tempfile::tempdir().unwrap();
    for (c, d) in [(cache.path(), cwd.path()), (cache2.path(), cwd2.path())] {
        bundle(d, c)
            .args(["build", "app", "--index-url", &server.index_url()])
            .assert()
            .success();
    }
    let a = std::fs::read(cwd.path().join("dist/app.zip")).unwrap();
    let b = std::fs::read(cwd2.path().join("dist/app.zip")).unwrap();
    assert_eq!(sha256(&a), sha256(&b));
    // Wheels are stored, not recompressed; timestamps are fixed.
    let mut z = zip::ZipArchive::new(std::fs::File::open(cwd.path().join("dist/app.zip")).unwrap())
        .unwrap();
    for i in 0..z.len() {
        let f = z.by_index(i).unwrap();
        if f.name().unwrap().ends_with(".whl") {
            assert_eq!(f.compression(), zip::CompressionMethod::Stored);
        }
        assert_eq!(f.last_modified().unwrap().year(), 1980);
    }
}

#[test]
fn warm_rebuild_needs_no_index_traffic_for_files() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["build", "app", "--index-url", &server.index_url()])
        .assert()
        .success();
    server.clear_log();
    // --offline: everything must come from the cache.
    bundle(cwd.path(), cache.path())
        .args([
            "build",
            "app",
            "--offline",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn dead_server_is_a_clear_error() {
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    bundle(cwd.path(), cache.path())
        .args([
            "build",
            "app",
            "--index-url",
            &format!("http://127.0.0.1:{port}/simple/"),
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot reach http://127.0.0.1:{port}/simple/app/"
        )))
        .stderr(predicate::str::contains("hint:"));
    assert!(!cwd.path().join("dist/app").exists());
}

#[test]
fn server_errors_are_reported() {
    let server = Server::start();
    server.status("/simple/flaky/", 503);
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    bundle(cwd.path(), cache.path())
        .args(["plan", "flaky", "--index-url", &server.index_url()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("HTTP 503"));
    // retried before giving up
    assert_eq!(server.requests_to("/simple/flaky/").len(), 3);
}

#[test]
fn index_url_from_environment() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["plan", "lib==1.5"])
        .env("PIP_INDEX_URL", server.index_url())
        .assert()
        .success()
        .stdout(predicate::str::contains("lib==1.5"));
}

#[test]
fn recipe_from_folder_with_checks_and_exclude_newer() {
    let (server, cwd, cache) = setup();
    std::fs::create_dir_all(cwd.path().join("recipes")).unwrap();
    std::fs::write(
        cwd.path().join("recipes/mine.toml"),
        "description = \"mine\"\n[pypi]\nrequirements = [\"lib<2\"]\ncheck = [{ run = \"python3 -c 'import lib'\" }]\n",
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "mine", "--index-url", &server.index_url()])
        .assert()
        .success();
    let manifest: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("dist/mine/manifest.json"))).unwrap();
    assert_eq!(manifest["name"], "mine");
    assert_eq!(manifest["checks"][0]["run"], "python3 -c 'import lib'");
    // exclude_newer hides everything uploaded after the date
    std::fs::write(
        cwd.path().join("recipes/old.toml"),
        "[pypi]\nrequirements = [\"lib\"]\nexclude_newer = \"2022-12-31\"\n",
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["plan", "old", "--index-url", &server.index_url()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("after exclude_newer 2022-12-31"));
}

#[test]
fn malformed_recipe_points_at_file_line_and_key() {
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cwd.path().join("recipes")).unwrap();
    std::fs::write(
        cwd.path().join("recipes/bad.toml"),
        "description = \"x\"\n\n[pypi]\nrequirements = [\"a\"]\nrequirments = [\"b\"]\n",
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "bad"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("recipes/bad.toml:5:1:"))
        .stderr(predicate::str::contains("requirments"));
    std::fs::write(cwd.path().join("recipes/bad.toml"), "[pypi\n").unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "bad"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("recipes/bad.toml:1:"));
}

#[test]
fn bad_usage_exits_2() {
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "sqlite-utils", "--target", "windows-95"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown target `windows-95`"))
        .stderr(predicate::str::contains("chatgpt-2023"));
    bundle(cwd.path(), cache.path())
        .args(["build", "bad requirement !!"])
        .assert()
        .code(2);
    bundle(cwd.path(), cache.path())
        .args(["build"])
        .assert()
        .code(2);
    bundle(cwd.path(), cache.path())
        .args(["plan", "pkg @ https://example.invalid/pkg.whl", "--offline"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("comes with no sha256"));
}

#[test]
fn lock_then_build_locked() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["lock", "app", "--index-url", &server.index_url()])
        .assert()
        .success();
    let lock: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("app.lock.json"))).unwrap();
    assert_eq!(
        pins(&lock),
        vec!["app==2.0", "backport==5.0", "lib==2.1", "speedup==0.9"]
    );
    server.clear_log();
    // --locked does not resolve: no index pages are read.
    bundle(cwd.path(), cache.path())
        .args([
            "build",
            "app",
            "--locked",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    assert!(
        server.log().iter().all(|r| r.path.starts_with("/files/")),
        "{:?}",
        server.log()
    );
    let manifest: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("dist/app/manifest.json"))).unwrap();
    assert_eq!(manifest["files"].as_array().unwrap().len(), 4);
    // A lock made for another target is refused.
    bundle(cwd.path(), cache.path())
        .args(["build", "app", "--locked", "--target", "chatgpt-2023"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "was locked for target ubuntu-20.04",
        ));
    // A lock for other requirements is out of date.
    std::fs::copy(
        cwd.path().join("app.lock.json"),
        cwd.path().join("lib.lock.json"),
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "lib", "--locked"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "lib.lock.json is out of date: the requirements from <command line> (now lib; locked app) changed since it was locked",
        ));
    // --locked --name, with no items: the lock as it stands, offline.
    std::fs::remove_dir_all(cwd.path().join("dist")).unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "--locked", "--offline", "--name", "app"])
        .assert()
        .success();
    let manifest: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("dist/app/manifest.json"))).unwrap();
    assert_eq!(manifest["files"].as_array().unwrap().len(), 4);
    bundle(cwd.path(), cache.path())
        .args(["build", "--locked"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --name NAME"));
    bundle(cwd.path(), cache.path())
        .args(["build", "--locked", "--name", "nolock"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "there is no nolock.lock.json here",
        ));
}

#[test]
fn ctrl_c_stops_cleanly_and_leaves_nothing() {
    let (server, cwd, cache) = setup();
    server.delay("/files/lib-2.1-py3-none-any.whl", 30_000);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bundle"))
        .args(["build", "lib==2.1", "--index-url", &server.index_url()])
        .current_dir(cwd.path())
        .env("BUNDLE_CACHE_DIR", cache.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the download is under way.
    let start = std::time::Instant::now();
    while server
        .requests_to("/files/lib-2.1-py3-none-any.whl")
        .is_empty()
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "download never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    // The shell's built-in kill: no procps needed.
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let dist = cwd.path().join("dist");
    let left: Vec<_> = std::fs::read_dir(&dist)
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(walk(&cache.path().join("tmp")), 0);
}

#[test]
fn tar_gz_and_dir_formats() {
    let (server, cwd, cache) = setup();
    let build = |d: &std::path::Path, format: &str| {
        bundle(d, cache.path())
            .args([
                "build",
                "app",
                "--format",
                format,
                "--index-url",
                &server.index_url(),
            ])
            .assert()
            .success();
    };
    let cwd2 = tempfile::tempdir().unwrap();
    build(cwd.path(), "tar.gz");
    build(cwd2.path(), "tar.gz");
    let a = std::fs::read(cwd.path().join("dist/app.tar.gz")).unwrap();
    assert_eq!(
        a,
        std::fs::read(cwd2.path().join("dist/app.tar.gz")).unwrap()
    );
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
    let mut names = Vec::new();
    for e in tar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 315_532_800);
        assert_eq!(h.uid().unwrap(), 0);
        names.push(e.path().unwrap().display().to_string());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"app/install.py".to_string()));
    let prompt = read_to_string(&cwd.path().join("dist/app/PROMPT.txt"));
    assert!(
        prompt.contains("tarfile.open(fileobj=joined, mode=\"r:gz\")"),
        "{prompt}"
    );
    // dir: the folder only.
    let cwd3 = tempfile::tempdir().unwrap();
    build(cwd3.path(), "dir");
    let entries: Vec<_> = std::fs::read_dir(cwd3.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["app"]);
    // After a zip (and a split) build, a folder build leaves no archive or
    // volume of the same bundle beside it to be uploaded by mistake; other
    // bundles' archives stay.
    build(cwd3.path(), "zip");
    std::fs::write(cwd3.path().join("dist/app.zip.001"), b"an old volume").unwrap();
    std::fs::write(cwd3.path().join("dist/other.zip"), b"another bundle").unwrap();
    assert!(cwd3.path().join("dist/app.zip").is_file());
    build(cwd3.path(), "dir");
    let mut entries: Vec<_> = std::fs::read_dir(cwd3.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, vec!["app", "other.zip"]);
}

#[test]
fn source_date_epoch_sets_archive_times() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["build", "lib==1.5", "--index-url", &server.index_url()])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .assert()
        .success();
    let mut z = zip::ZipArchive::new(std::fs::File::open(cwd.path().join("dist/lib.zip")).unwrap())
        .unwrap();
    let t = z.by_index(0).unwrap().last_modified().unwrap();
    assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
}

#[test]
#[ignore = "needs python3 (bash .ci/run installs it)"]
fn captured_profile_is_a_valid_target() {
    let (server, cwd, cache) = setup();
    let snippet = bundle(cwd.path(), cache.path())
        .args(["target", "capture"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    // Run the snippet in a Python, as a user would in the sandbox.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(String::from_utf8(snippet).unwrap())
        .output()
        .expect("needs python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let profile = cwd.path().join("captured.toml");
    std::fs::write(&profile, &out.stdout).unwrap();
    bundle(cwd.path(), cache.path())
        .args([
            "plan",
            "lib==1.5",
            "--target",
            profile.to_str().unwrap(),
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("for captured"));
}

#[test]
fn cache_commands() {
    let (server, cwd, cache) = setup();
    bundle(cwd.path(), cache.path())
        .args(["cache", "dir"])
        .assert()
        .success()
        .stdout(predicate::str::contains(cache.path().to_str().unwrap()));
    bundle(cwd.path(), cache.path())
        .args(["build", "lib==1.5", "--index-url", &server.index_url()])
        .assert()
        .success();
    bundle(cwd.path(), cache.path())
        .args(["cache", "info"])
        .assert()
        .success()
        .stdout(predicate::str::contains(" files, "));
    bundle(cwd.path(), cache.path())
        .args(["cache", "clean"])
        .assert()
        .success();
    assert_eq!(walk(cache.path()), 0);
}

#[test]
fn url_dependency_of_a_package_is_a_failure_not_bad_input() {
    let server = Server::start();
    publish(
        &server,
        &[WheelSpec::new("odd", "1.0")
            .requires(&["dep @ https://example.invalid/dep-1.0-py3-none-any.whl"])],
    );
    let cwd = tempfile::tempdir().unwrap();
    let err = fails(
        bundle(cwd.path(), cwd.path()).args(["plan", "odd", "--index-url", &server.index_url()]),
        1,
    );
    assert!(err.contains("odd 1.0 depends on `dep @"), "{err}");
}

#[test]
fn requires_python_from_metadata_when_the_index_omits_it() {
    let server = Server::start();
    publish(
        &server,
        &[
            WheelSpec::new("lib", "1.0"),
            WheelSpec::new("lib", "2.0")
                .requires_python(">=3.9")
                .index_hides_requires_python(),
        ],
    );
    let cwd = tempfile::tempdir().unwrap();
    let plan = index_plan(&server, cwd.path(), cwd.path(), &["lib"]);
    assert_eq!(pins(&plan), vec!["lib==1.0"]);
    let err = fails(
        bundle(cwd.path(), cwd.path()).args(["plan", "lib>=2", "--index-url", &server.index_url()]),
        1,
    );
    assert!(
        err.contains("requires Python >=3.9 (target has 3.8.10)"),
        "{err}"
    );
}

#[test]
fn index_file_names_cannot_escape_the_bundle() {
    // wheels/<name> is dist/.bundle-*/<bundle>/wheels/<name> while staged:
    // three `..` reach dist/, four the working folder. Each depth is tried,
    // and looked for where it would land.
    for depth in 2..=4 {
        let server = Server::start();
        let w = WheelSpec::new("evil", "1.0");
        let bytes = w.build();
        server.route(
            "/files/x.whl",
            bytes.clone(),
            "application/octet-stream",
            false,
        );
        let name = format!("{}escaped-1.0-py3-none-any.whl", "../".repeat(depth));
        let page = serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": "evil",
            "files": [{
                "filename": name,
                "url": "../../files/x.whl",
                "hashes": {"sha256": sha256(&bytes)},
            }],
        });
        server.route(
            "/simple/evil/",
            serde_json::to_vec(&page).unwrap(),
            "application/vnd.pypi.simple.v1+json",
            false,
        );
        let cwd = tempfile::tempdir().unwrap();
        let work = cwd.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let err = fails(
            bundle(&work, &cwd.path().join("cache")).args([
                "build",
                "evil",
                "--index-url",
                &server.index_url(),
            ]),
            1,
        );
        assert!(err.contains("not a plain file name"), "{err}");
        for at in [
            "work/dist/escaped-1.0-py3-none-any.whl",
            "work/escaped-1.0-py3-none-any.whl",
            "escaped-1.0-py3-none-any.whl",
        ] {
            assert!(!cwd.path().join(at).exists(), "depth {depth}: {at}");
        }
    }
}

#[test]
fn tls_trusts_ssl_cert_file() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let openssl = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl makes the test certificates");
        assert!(ok.success(), "openssl {args:?}");
    };
    // A private CA (as a TLS-intercepting proxy has) and a server cert for 127.0.0.1.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=bundle test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let server = Server::start_tls(&p("srv.pem"), &p("srv.key"));
    publish(&server, &[WheelSpec::new("lib", "1.0")]);
    assert!(server.index_url().starts_with("https://"));
    let cwd = tempfile::tempdir().unwrap();
    let run = |cert_file: &std::path::Path| {
        let mut c = bundle(cwd.path(), cwd.path());
        c.args(["build", "lib", "--index-url", &server.index_url()])
            .env("SSL_CERT_FILE", cert_file)
            .env_remove("SSL_CERT_DIR");
        c
    };
    // Trusting only the system roots: the private CA is unknown.
    let err = fails(&mut run(std::path::Path::new("/nonexistent.pem")), 1);
    assert!(err.contains("cannot reach https://127.0.0.1"), "{err}");
    assert!(!cwd.path().join("dist/lib").exists());
    // With SSL_CERT_FILE naming the CA, as for pip and curl, it works.
    run(&p("ca.pem")).assert().success();
    assert!(cwd
        .path()
        .join("dist/lib/wheels/lib-1.0-py3-none-any.whl")
        .is_file());
}

#[test]
fn rebuilding_a_name_for_another_target_says_so() {
    let (server, cwd, cache) = setup();
    let build = |target: &str| {
        let mut cmd = bundle(cwd.path(), cache.path());
        cmd.args([
            "build",
            "lib==1.5",
            "--name",
            "x",
            "--target",
            target,
            "--index-url",
            &server.index_url(),
        ]);
        stderr_of(&cmd.assert().success())
    };
    assert!(!build("ubuntu-20.04").contains("replacing"));
    let err = build("chatgpt-2023");
    assert!(
        err.contains("built for target ubuntu-20.04, with a build for chatgpt-2023"),
        "{err}"
    );
}

#[test]
fn uploads_are_planned_and_cut_to_the_limit() {
    let (server, cwd, cache) = serve(&[WheelSpec::new("big", "1.0")
        .file("big/blob.bin", noise(30_000, 3))
        .file("big/helper.so", std::fs::read("/bin/true").unwrap())]);
    let index = server.index_url();

    // plan shows sizes and flags the wheel over the limit.
    let out = bundle(cwd.path(), cache.path())
        .args(["plan", "big", "--max-upload", "10KB", "--index-url", &index])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("OVER the 9.8 KiB upload limit: split across volumes"),
        "{text}"
    );
    assert!(
        text.contains("(the archive will be split into volumes)"),
        "{text}"
    );
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &["big", "--max-upload", "10KB", "--index-url", &index],
    );
    assert_eq!(plan["sizes"]["max_file_bytes"], 10_000);
    assert_eq!(plan["sizes"]["over_limit"][0], "big-1.0-py3-none-any.whl");
    assert!(plan["sizes"]["total"].as_u64().unwrap() > 30_000);

    // A first build under the default limit: one archive.
    let out = bundle(cwd.path(), cache.path())
        .args(["build", "big", "--json", "--index-url", &index])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let json = &json["build"];
    assert_eq!(json["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(json["uploads"][0]["path"], "big.zip");
    let dist = cwd.path().join("dist");
    let zip = std::fs::read(dist.join("big.zip")).unwrap();
    assert_eq!(json["uploads"][0]["sha256"], sha256(&zip));

    // A limit below 1 MB cuts a bundle into many tiny volumes: refused
    // (exit 2, in bytes) unless --force says the sandbox really is that small.
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            "big",
            "--max-upload",
            "100",
            "--index-url",
            &index,
        ]),
        2,
    );
    assert!(
        err.contains("--max-upload 100 bytes is below 1 MB (1000000 bytes)"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(dist.join("big.zip")).unwrap(), zip);

    // --no-split over the limit: exit 1, and the earlier build is kept.
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            "big",
            "--max-upload",
            "10KB",
            "--force",
            "--no-split",
            "--index-url",
            &index,
        ]),
        1,
    );
    assert!(
        err.contains("big.zip is") && err.contains("over the upload limit of 10000 bytes"),
        "{err}"
    );
    assert!(err.contains("leave out --no-split"), "{err}");
    assert_eq!(std::fs::read(dist.join("big.zip")).unwrap(), zip);

    // Split: volumes within the limit that join into the archive; the
    // earlier single archive is gone, so dist/ holds only what to upload.
    let out = bundle(cwd.path(), cache.path())
        .args([
            "build",
            "big",
            "--max-upload",
            "10KB",
            "--force",
            "--json",
            "--index-url",
            &index,
        ])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let json = &json["build"];
    let uploads = json["uploads"].as_array().unwrap();
    assert!(uploads.len() >= 4, "{uploads:?}");
    let mut joined = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        assert_eq!(u["path"], format!("big.zip.{:03}", i + 1));
        let data = std::fs::read(dist.join(u["path"].as_str().unwrap())).unwrap();
        assert!(data.len() <= 10_000);
        assert_eq!(u["size"], data.len() as u64);
        assert_eq!(u["sha256"], sha256(&data));
        joined.extend(data);
    }
    assert!(!dist.join("big.zip").exists());
    assert!(json["archive"].is_null());
    // inspect reads a volume with the others, as the archive they join into.
    let out = bundle(cwd.path(), cache.path())
        .args(["inspect", "dist/big.zip.001", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("big-1.0-py3-none-any.whl!big/helper.so")),
        "{files:?}"
    );
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["inspect", "dist/nothing.zip.001"]),
        2,
    );
    assert!(err.contains("dist/nothing.zip.001 does not exist"), "{err}");
    let listed: Value =
        serde_json::from_str(&read_to_string(&dist.join("big/uploads.json"))).unwrap();
    assert_eq!(listed["archive"]["sha256"], sha256(&joined));
    assert_eq!(listed["uploads"], json["uploads"]);
    let names = {
        let z = zip::ZipArchive::new(std::io::Cursor::new(joined)).unwrap();
        z.file_names()
            .map(|n| n.unwrap().into_owned())
            .collect::<Vec<_>>()
    };
    assert!(names.contains(&"big/wheels/big-1.0-py3-none-any.whl".to_string()));
    let prompt = read_to_string(&dist.join("big/PROMPT.txt"));
    for u in uploads {
        assert!(prompt.contains(u["sha256"].as_str().unwrap()), "{prompt}");
    }

    // Back under the limit: the volumes are removed.
    bundle(cwd.path(), cache.path())
        .args(["build", "big", "--index-url", &index])
        .assert()
        .success();
    let mut left: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["big", "big.zip"]);
}

#[test]
fn a_request_the_target_already_has_leaves_nothing_to_upload() {
    let (server, cwd, cache) = serve(&[
        WheelSpec::new("click", "8.1.4"),
        WheelSpec::new("click", "8.1.7"),
    ]);
    let out = bundle(cwd.path(), cache.path())
        .args([
            "build",
            "click<9",
            "--target",
            "chatgpt-2023",
            "--json",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("Nothing to upload: everything asked for is already on target chatgpt-2023."),
        "{err}"
    );
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let json = &json["build"];
    assert_eq!(json["uploads"], serde_json::json!([]));
    assert_eq!(json["excluded"][0]["package"], "click");
    let dist: Vec<String> = std::fs::read_dir(cwd.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dist.len(), 1, "the folder and no archive: {dist:?}");
    assert!(!dist.iter().any(|f| f.ends_with(".zip")), "{dist:?}");
    let prompt = read_to_string(&cwd.path().join("dist").join(&dist[0]).join("PROMPT.txt"));
    assert!(
        prompt.contains("already installed in this sandbox (click 8.1.4)"),
        "{prompt}"
    );
}

#[test]
fn apt_items_on_the_command_line_and_the_source_of_each() {
    let (server, cwd, cache) =
        serve(&[WheelSpec::new("jq", "1.6.0"), WheelSpec::new("lib", "1.0")]);
    let index = server.index_url();
    // A bare `jq` is the PyPI package: visible at once, with a hint.
    let out = bundle(cwd.path(), cache.path())
        .args(["plan", "lib", "jq", "--json", "--index-url", &index])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "warning: `jq` is read as the PyPI package `jq`; for the program, write apt:jq"
        ),
        "{err}"
    );
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        plan["sources"],
        serde_json::json!([
            {"item": "lib", "source": "pypi"},
            {"item": "jq", "source": "pypi", "hint": "`jq` is read as the PyPI package `jq`; for the program, write apt:jq"}
        ])
    );
    // apt:NAME and apt:PKG=BIN,BIN name apt packages and their programs.
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &[
            "lib",
            "apt:jq",
            "apt:lua5.3=lua5.3,luac5.3",
            "--index-url",
            &index,
            "--target",
            &fixture_target("debian11-bare"),
        ],
    );
    assert_eq!(plan["apt"]["packages"], serde_json::json!(["jq", "lua5.3"]));
    assert_eq!(
        plan["apt"]["binaries"],
        serde_json::json!(["jq", "lua5.3", "luac5.3"])
    );
    assert_eq!(pins(&plan), ["lib==1.0"]);
    assert_eq!(plan["sources"][1]["source"], "apt");
    let text = String::from_utf8(
        bundle(cwd.path(), cache.path())
            .args(["plan", "lib", "apt:jq", "--index-url", &index])
            .args(["--target", &fixture_target("debian11-bare")])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert!(
        text.contains("  from      lib (pypi), apt:jq (apt)"),
        "{text}"
    );
    // A name that cannot be a Debian package is bad input.
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["plan", "apt:jq;rm -rf /", "--index-url", &index]),
        2,
    );
    assert!(err.contains("is not a Debian package name"), "{err}");
}

#[test]
fn did_you_mean_for_recipes_and_targets() {
    let (server, cwd, cache) = serve(&[WheelSpec::new("lib", "1.0")]);
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "lua53",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(err.contains("did you mean the recipe `lua5.3`?"), "{err}");
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["plan", "lib", "--target", "chatgpt2023"]),
        2,
    );
    assert!(err.contains("did you mean `chatgpt-2023`?"), "{err}");
}

#[test]
fn requirements_files_constraints_hashes_and_projects() {
    let lib15 = WheelSpec::new("lib", "1.5");
    let lib21 = WheelSpec::new("lib", "2.1");
    let app = WheelSpec::new("app", "1.0").requires(&["lib>=1"]);
    let (server, cwd, cache) = serve(&[
        app.clone(),
        lib15.clone(),
        lib21.clone(),
        WheelSpec::new("cli", "0.3"),
    ]);
    let index = server.index_url();
    let dir = cwd.path().join("reqs");
    std::fs::create_dir_all(&dir).unwrap();
    // -r with a comment, a nested -r and a -c constraint (relative to the file).
    std::fs::write(
        dir.join("requirements.txt"),
        "# the app\napp==1.0  # pinned\n-r more.txt\n-c constraints.txt\n",
    )
    .unwrap();
    std::fs::write(dir.join("more.txt"), "cli\n").unwrap();
    std::fs::write(dir.join("constraints.txt"), "lib<2\n").unwrap();
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &["-r", "reqs/requirements.txt", "--index-url", &index],
    );
    assert_eq!(pins(&plan), ["app==1.0", "cli==0.3", "lib==1.5"]);
    assert_eq!(plan["name"], "requirements");
    // -c on the command line too; without it, the newest lib.
    let plan = plan_json(cwd.path(), cache.path(), &["app", "--index-url", &index]);
    assert!(pins(&plan).contains(&"lib==2.1".to_string()));
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &["app", "-c", "reqs/constraints.txt", "--index-url", &index],
    );
    assert!(pins(&plan).contains(&"lib==1.5".to_string()));

    // --hash pins: the chosen file must be one of them.
    let good = sha256(&lib21.build());
    std::fs::write(
        dir.join("hashed.txt"),
        format!("lib==2.1 \\\n  --hash=sha256:{good}\n"),
    )
    .unwrap();
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &["-r", "reqs/hashed.txt", "--index-url", &index],
    );
    assert_eq!(pins(&plan), ["lib==2.1"]);
    // `plan -r reqs/hashed.txt` with `text` in that file, failing with `code`.
    let hashed_fails = |text: String, code: i32| {
        std::fs::write(dir.join("hashed.txt"), text).unwrap();
        fails(
            bundle(cwd.path(), cache.path()).args([
                "plan",
                "-r",
                "reqs/hashed.txt",
                "--index-url",
                &index,
            ]),
            code,
        )
    };
    let err = hashed_fails(format!("lib==2.1 --hash=sha256:{}\n", "0".repeat(64)), 1);
    assert!(
        err.contains(&format!(
            "lib-2.1-py3-none-any.whl has sha256 {good}, which is not among the hashes"
        )),
        "{err}"
    );
    // Hash-checking mode, as pip's: a dependency installed without a
    // --hash is refused (exit 2), with the line to add.
    let err = hashed_fails(
        format!("app==1.0 --hash sha256:{}\n", sha256(&app.build())),
        2,
    );
    assert!(
        err.contains("lib 2.1 is installed but has no --hash"),
        "{err}"
    );
    assert!(
        err.contains(&format!("add `lib==2.1 --hash=sha256:{good}`")),
        "{err}"
    );
    // A bad line names the file and line, exit 2.
    std::fs::write(dir.join("bad.txt"), "app\n--index-url http://x\n").unwrap();
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "-r",
            "reqs/bad.txt",
            "--index-url",
            &index,
        ]),
        2,
    );
    assert!(
        err.contains("reqs/bad.txt:2: the option `--index-url`"),
        "{err}"
    );

    // A project's dependencies only (--no-install-project): `.` reads
    // [project].dependencies, --extra adds its extras.
    let project = cwd.path().join("proj");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"demo\"\ndependencies = [\"app\"]\n[project.optional-dependencies]\ncli = [\"cli\"]\n",
    )
    .unwrap();
    let out = bundle(&project, cache.path())
        .args([
            "plan",
            ".",
            "--no-install-project",
            "--extra",
            "cli",
            "--json",
            "--index-url",
            &index,
        ])
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["name"], "demo");
    assert_eq!(pins(&plan), ["app==1.0", "cli==0.3", "lib==2.1"]);
    assert_eq!(plan["sources"][0]["source"], "project (pypi)");
    let plan = plan_json(
        cwd.path(),
        cache.path(),
        &[
            "proj/pyproject.toml",
            "--no-install-project",
            "--index-url",
            &index,
        ],
    );
    assert_eq!(pins(&plan), ["app==1.0", "lib==2.1"]);
    // Without it, the project itself is built: its version must be set.
    let err = fails(
        bundle(&project, cache.path()).args(["plan", ".", "--index-url", &index]),
        2,
    );
    assert!(err.contains("its version is dynamic"), "{err}");
    assert!(err.contains("--no-install-project"), "{err}");

    // --exclude-newer on the command line (every file here is from 2023-01-01).
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "app",
            "--exclude-newer",
            "2022-12-31",
            "--index-url",
            &index,
        ]),
        1,
    );
    assert!(err.contains("after exclude_newer 2022-12-31"), "{err}");
    plan_json(
        cwd.path(),
        cache.path(),
        &[
            "app",
            "--exclude-newer",
            "2023-06-01",
            "--index-url",
            &index,
        ],
    );
    // Impossible dates are refused (exit 2) with the forms accepted, on
    // the command line and in a recipe (at their file:line:col).
    for bad in ["last week", "2023-13-45", "2023-02-30", "2024-12-99"] {
        let err = fails(
            bundle(cwd.path(), cache.path()).args(["plan", "app", "--exclude-newer", bad]),
            2,
        );
        assert!(err.contains(&format!("`{bad}` is not a date")), "{err}");
        assert!(err.contains("write YYYY-MM-DD"), "{err}");
    }
    std::fs::write(
        cwd.path().join("dated.toml"),
        "[pypi]\nrequirements = [\"app\"]\nexclude_newer = \"2024-12-99\"\n",
    )
    .unwrap();
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["plan", "dated.toml", "--index-url", &index]),
        2,
    );
    assert!(
        err.contains("dated.toml:3:17: `2024-12-99` is not a date"),
        "{err}"
    );
}

#[test]
fn a_lock_covers_the_whole_target_profile_and_bundles_carry_pylock() {
    let lib = WheelSpec::new("lib", "2.1");
    let (server, cwd, cache) =
        serve(&[WheelSpec::new("app", "1.0").requires(&["lib"]), lib.clone()]);
    let index = server.index_url();
    let profile = cwd.path().join("sandbox.toml");
    let write_profile = |preinstalled: &str| {
        std::fs::write(
            &profile,
            format!(
                "description = \"s\"\nimage = \"ubuntu:20.04\"\nplatform = \"linux/amd64\"\nglibc = \"2.31\"\npython = \"3.8.10\"\npreinstalled = [{preinstalled}]\n"
            ),
        )
        .unwrap();
    };
    write_profile("\"six==1.16.0\"");
    bundle(cwd.path(), cache.path())
        .args([
            "lock",
            "app",
            "--target",
            "sandbox.toml",
            "--index-url",
            &index,
        ])
        .assert()
        .success();
    // --locked builds for the lock's own target when no --target is given.
    let out = bundle(cwd.path(), cache.path())
        .args(["build", "app", "--locked", "--json", "--index-url", &index])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["build"]["target"]["name"], "sandbox");
    // Its bundle carries a PEP 751 pylock.toml pointing at wheels/<file>.
    let dir = cwd.path().join("dist/app");
    let lock: toml::Table = toml::from_str(&read_to_string(&dir.join("pylock.toml"))).unwrap();
    assert_eq!(lock["lock-version"].as_str(), Some("1.0"));
    assert_eq!(lock["requires-python"].as_str(), Some("==3.8.*"));
    let packages = lock["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "lib"]);
    for p in packages {
        let wheel = &p["wheels"].as_array().unwrap()[0];
        let path = wheel["path"].as_str().unwrap();
        assert!(path.starts_with("wheels/"), "{path}");
        let data = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(wheel["hashes"]["sha256"].as_str().unwrap(), sha256(&data));
        assert_eq!(wheel["size"].as_integer().unwrap() as usize, data.len());
    }
    // Changing the profile's preinstalled set makes --locked refuse, naming it.
    write_profile("\"six==1.17.0\", \"attrs==23.1.0\"");
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["build", "app", "--locked", "--index-url", &index]),
        2,
    );
    assert!(
        err.contains("target sandbox changed since it was locked"),
        "{err}"
    );
    assert!(
        err.contains("preinstalled: no longer six==1.16.0; now attrs==23.1.0, six==1.17.0"),
        "{err}"
    );
    // lock --format pylock: the plan's wheels with their URLs.
    bundle(cwd.path(), cache.path())
        .args(["lock", "app", "--format", "pylock", "--index-url", &index])
        .assert()
        .success();
    let lock: toml::Table =
        toml::from_str(&read_to_string(&cwd.path().join("pylock.toml"))).unwrap();
    let lib_entry = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("lib"))
        .unwrap();
    let wheel = &lib_entry["wheels"].as_array().unwrap()[0];
    assert!(wheel["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert_eq!(
        wheel["hashes"]["sha256"].as_str().unwrap(),
        sha256(&lib.build())
    );
}

#[test]
fn several_targets_in_one_run() {
    let (server, cwd, cache) = setup();
    let index = server.index_url();
    let profile = cwd.path().join("py39.toml");
    std::fs::write(
        &profile,
        "description = \"s\"\nimage = \"debian:11\"\nplatform = \"linux/amd64\"\nglibc = \"2.31\"\npython = \"3.9.2\"\n",
    )
    .unwrap();
    let out = bundle(cwd.path(), cache.path())
        .args(["build", "app", "--json", "--index-url", &index])
        .args(["--target", "ubuntu-20.04", "--target", "py39.toml"])
        .assert()
        .success();
    let docs: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["target"], "ubuntu-20.04");
    assert_eq!(docs[1]["target"], "py39.toml");
    assert_eq!(docs[1]["build"]["target"]["python"], "3.9.2");
    for (folder, doc) in [("ubuntu-20.04", &docs[0]), ("py39", &docs[1])] {
        let dir = cwd.path().join("dist").join(folder).join("app");
        assert!(dir.join("manifest.json").is_file(), "{folder}");
        assert!(cwd
            .path()
            .join("dist")
            .join(folder)
            .join("app.zip")
            .is_file());
        assert!(doc["build"]["bundle_dir"]
            .as_str()
            .unwrap()
            .ends_with(&format!("dist/{folder}/app")));
    }
    // A target that fails is reported in its place; the run exits with its code.
    let out = bundle(cwd.path(), cache.path())
        .args(["build", "app", "--json", "--index-url", &index])
        .args(["--target", "ubuntu-20.04", "--target", "nope-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let docs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(docs[0].get("error").is_none(), "{docs}");
    assert_eq!(docs[1]["error"]["kind"], "target");
    // plan and lock take one target.
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "plan",
            "app",
            "-t",
            "ubuntu-20.04",
            "-t",
            "chatgpt-2023",
        ]),
        2,
    );
    assert!(err.contains("plan and lock take one --target"), "{err}");
}

#[test]
fn a_build_fetches_chosen_wheels_while_resolving_and_each_once() {
    let (server, cwd, cache) = setup();
    // A slow file: the fetch stage asks for it while the download the
    // resolver started is still under way, and must wait for that one.
    server.delay("/files/app-2.0-py3-none-any.whl", 600);
    bundle(cwd.path(), cache.path())
        .args(["build", "app", "--index-url", &server.index_url()])
        .assert()
        .success();
    for file in [
        "app-2.0-py3-none-any.whl",
        "lib-2.1-py3-none-any.whl",
        "speedup-0.9-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ] {
        let whole: Vec<_> = server
            .requests_to(&format!("/files/{file}"))
            .into_iter()
            .filter(|r| r.range.is_none())
            .collect();
        assert_eq!(whole.len(), 1, "{file}: {whole:?}");
        assert!(cwd.path().join("dist/app/wheels").join(file).is_file());
    }
}

#[test]
fn an_unchanged_build_is_up_to_date_and_a_changed_output_is_built_again() {
    let (server, cwd, cache) = setup();
    let build = |extra: &[&str]| {
        let out = bundle(cwd.path(), cache.path())
            .env("BUNDLE_LOG", "bundle=info")
            .args(["build", "app", "--index-url", &server.index_url()])
            .args(extra)
            .assert()
            .success();
        stderr_of(&out)
    };
    build(&[]);
    let wheel = cwd.path().join("dist/app/wheels/app-2.0-py3-none-any.whl");
    let good = std::fs::read(&wheel).unwrap();
    // The same request over index pages still fresh in the cache: neither
    // the solver nor the index is asked, and nothing is written.
    server.clear_log();
    let err = build(&[]);
    assert!(
        err.contains("resolution: the same request over unchanged index pages"),
        "{err}"
    );
    assert!(
        err.contains("dist/app and its uploads are up to date"),
        "{err}"
    );
    assert!(server.log().is_empty(), "{:?}", server.log());
    // A file of the output changed (apart from the build's own write by
    // more than a clock tick): built again, and the file is right again.
    std::thread::sleep(std::time::Duration::from_millis(30));
    std::fs::write(&wheel, b"not the wheel").unwrap();
    let err = build(&[]);
    assert!(!err.contains("up to date"), "{err}");
    assert_eq!(std::fs::read(&wheel).unwrap(), good);
    // Another output option is another build; so is --refresh, which asks
    // the index again.
    let err = build(&["--format", "tar.gz"]);
    assert!(!err.contains("up to date"), "{err}");
    server.clear_log();
    let err = build(&["--refresh"]);
    assert!(!err.contains("resolution: the same request"), "{err}");
    assert!(!server.log().is_empty());
}

#[test]
fn json_names_a_bad_requirement_as_such_and_lists_every_stage_timing() {
    let (server, cwd, cache) = serve(&[WheelSpec::new("lib", "1.0")]);
    let out = bundle(cwd.path(), cache.path())
        .args(["plan", "not a requirement!!", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "requirement", "{doc}");
    // A wheels-only build: no Docker stage ran, yet every stage is listed.
    let out = bundle(cwd.path(), cache.path())
        .args(["build", "lib", "--json", "--index-url", &server.index_url()])
        .assert()
        .success();
    let doc: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let timings = doc["build"]["timings"].as_object().unwrap();
    let keys: Vec<&str> = timings.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "assembling",
            "building",
            "checking",
            "fetching",
            "resolving",
            "staging"
        ]
    );
    assert_eq!(timings["building"], 0.0);
    crate::schemas::validate("build-result.schema.json", &doc);
}

#[test]
fn a_project_whose_dependencies_cannot_be_read_or_whose_python_is_excluded_is_refused() {
    let (server, cwd, cache) = serve(&[WheelSpec::new("lib", "1.0")]);
    let index = server.index_url();
    let project = |text: &str, extra: &[&str]| {
        std::fs::write(cwd.path().join("pyproject.toml"), text).unwrap();
        fails(
            bundle(cwd.path(), cache.path())
                .args(["build", ".", "--index-url", &index])
                .args(extra),
            2,
        )
    };
    let deps_only = ["--no-install-project"];
    // Dynamic dependencies, the project left out: said plainly, not
    // "already installed" (a build of the project reads them; see the
    // Docker test `a_project_folder_is_built_and_bundled_with_its_dynamic_dependencies`).
    let err = project(
        "[project]\nname = \"app\"\nversion = \"1\"\ndynamic = [\"dependencies\"]\n",
        &deps_only,
    );
    assert!(err.contains("its dependencies are dynamic"), "{err}");
    assert!(!err.contains("already"), "{err}");
    // No dependencies at all, the project left out: nothing to bundle.
    let err = project("[project]\nname = \"app\"\nversion = \"1\"\n", &deps_only);
    assert!(err.contains("declares no dependencies to bundle"), "{err}");
    // A version the build backend computes: the project cannot be named.
    let err = project(
        "[project]\nname = \"app\"\ndynamic = [\"version\"]\ndependencies = [\"lib\"]\n",
        &[],
    );
    assert!(err.contains("its version is dynamic"), "{err}");
    // requires-python that excludes the target's Python (3.8.10 here).
    let err = project(
        "[project]\nname = \"app\"\nversion = \"1\"\nrequires-python = \">=3.10\"\ndependencies = [\"lib\"]\n",
        &deps_only,
    );
    assert!(
        err.contains("requires-python `>=3.10` excludes Python 3.8.10 of target ubuntu-20.04"),
        "{err}"
    );
    assert!(!cwd.path().join("dist").exists());
    // One that allows it builds.
    std::fs::write(
        cwd.path().join("pyproject.toml"),
        "[project]\nname = \"app\"\nversion = \"1\"\nrequires-python = \">=3.8\"\ndependencies = [\"lib\"]\n",
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", ".", "--no-install-project", "--index-url", &index])
        .assert()
        .success();
}

#[test]
fn wheels_named_by_path_file_url_or_hashed_url_are_bundled_and_checked() {
    let lib = WheelSpec::new("lib", "1.0");
    // app is on no index: only the user has it.
    let app = WheelSpec::new("app", "2.0").requires(&["lib"]);
    let (server, cwd, cache) = serve(std::slice::from_ref(&lib));
    let index = server.index_url();
    let data = app.build();
    std::fs::create_dir_all(cwd.path().join("wheels")).unwrap();
    let local = cwd.path().join("wheels").join(app.filename());
    std::fs::write(&local, &data).unwrap();
    let wheels_of = |name: &str| -> Vec<(String, String)> {
        let m: Value = serde_json::from_str(&read_to_string(
            &cwd.path().join(format!("dist/{name}/manifest.json")),
        ))
        .unwrap();
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "wheel")
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected = vec![
        (format!("wheels/{}", app.filename()), sha256(&data)),
        (format!("wheels/{}", lib.filename()), sha256(&lib.build())),
    ];
    // A path relative to where bundle runs; its dependency from the index.
    let spec = format!("app @ ./wheels/{}", app.filename());
    bundle(cwd.path(), cache.path())
        .args(["build", &spec, "--name", "bypath", "--index-url", &index])
        .assert()
        .success();
    assert_eq!(wheels_of("bypath"), expected);
    // A file:// URL, and a path in a requirements file, relative to it.
    let url = format!("app @ file://{}", local.display());
    bundle(cwd.path(), cache.path())
        .args(["build", &url, "--name", "byurl", "--index-url", &index])
        .assert()
        .success();
    assert_eq!(wheels_of("byurl"), expected);
    std::fs::create_dir_all(cwd.path().join("reqs")).unwrap();
    std::fs::write(
        cwd.path().join("reqs/requirements.txt"),
        format!("app @ ../wheels/{}\n", app.filename()),
    )
    .unwrap();
    bundle(cwd.path(), cache.path())
        .args(["build", "-r", "reqs/requirements.txt", "--name", "byfile"])
        .args(["--index-url", &index])
        .assert()
        .success();
    assert_eq!(wheels_of("byfile"), expected);

    // Over HTTP, with the hash in the URL.
    server.route(
        "/direct/app-2.0-py3-none-any.whl",
        data.clone(),
        "application/octet-stream",
        false,
    );
    let remote = server.url("/direct/app-2.0-py3-none-any.whl");
    let hashed = format!("app @ {remote}#sha256={}", sha256(&data));
    bundle(cwd.path(), cache.path())
        .args(["build", &hashed, "--name", "byhttp", "--index-url", &index])
        .assert()
        .success();
    assert_eq!(wheels_of("byhttp"), expected);
    // Without a hash: refused before anything is fetched (exit 2).
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            &format!("app @ {remote}"),
            "--name",
            "nohash",
            "--index-url",
            &index,
        ]),
        2,
    );
    assert!(err.contains("comes with no sha256"), "{err}");
    // With a wrong one: a mismatch (exit 1), and nothing written.
    let wrong = format!("app @ {remote}#sha256={}", "0".repeat(64));
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            &wrong,
            "--name",
            "wrong",
            "--index-url",
            &index,
        ]),
        1,
    );
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert!(!cwd.path().join("dist/wrong").exists());
    assert!(!cwd.path().join("dist/wrong.zip").exists());
    // A local file that is not the package named, or not there.
    let err = fails(
        bundle(cwd.path(), cache.path()).args([
            "build",
            &format!("other @ ./wheels/{}", app.filename()),
            "--index-url",
            &index,
        ]),
        2,
    );
    assert!(err.contains("is a file of app, not of other"), "{err}");
    // In a requirements file, a URL line's error names the file and line.
    let refused = |text: &str| {
        std::fs::write(cwd.path().join("reqs/bad.txt"), text).unwrap();
        fails(
            bundle(cwd.path(), cache.path()).args([
                "build",
                "-r",
                "reqs/bad.txt",
                "--index-url",
                &index,
            ]),
            2,
        )
    };
    let err =
        refused("lib\napp @ ./missing-2.0-py3-none-any.whl\nx @ git+https://127.0.0.1/x.git\n");
    assert!(err.contains("reqs/bad.txt:2"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let err = refused("x @ git+https://127.0.0.1/x.git\n");
    assert!(err.contains("reqs/bad.txt:1"), "{err}");
    assert!(err.contains("git+https: URLs are not supported"), "{err}");
}
