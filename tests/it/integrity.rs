//! Integrity and fault tolerance, against a hostile or broken 127.0.0.1
//! index: corrupt cache entries, hashes that are paths, broken zip
//! directories, endless and dripping bodies, silent servers, lying
//! metadata, tampered lock files, and bad names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn three() -> Vec<WheelSpec> {
    vec![
        WheelSpec::new("app", "1.0").requires(&["lib>=1", "util"]),
        WheelSpec::new("lib", "1.5"),
        WheelSpec::new("util", "0.3").no_pep658(),
    ]
}

/// Every cached blob (the files under blobs/, not their stamps).
fn blobs(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = cache.join("blobs/sha256");
    for d in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The manifest's wheel hashes must be those of the files in the folder,
/// and those of the files the index serves.
fn assert_bundle_is_true(dir: &Path, served: &[WheelSpec]) {
    let m: Value = serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), served.len());
    for f in files {
        let path = f["path"].as_str().unwrap();
        let on_disk = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(&on_disk), "{path}");
        let spec = served
            .iter()
            .find(|w| path.ends_with(&w.filename()))
            .unwrap();
        assert_eq!(on_disk, spec.build(), "{path} is not the served file");
    }
}

#[test]
fn corrupt_cache_files_are_fetched_again_and_never_shipped() {
    let server = Server::start();
    publish(&server, &three());
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let build = |extra: &[&str]| {
        let mut cmd = bundle(cwd.path(), cache.path());
        cmd.args(["build", "app", "--index-url", &server.index_url()])
            .args(extra);
        cmd
    };
    build(&[]).assert().success();
    let dir = cwd.path().join("dist/app");
    assert_bundle_is_true(&dir, &three());
    assert_eq!(blobs(cache.path()).len(), 3);

    // Let the files settle so that the next run stamps them, then run once
    // more: from here on the stamps are what a cheap check would trust.
    // (Each build starts without the output: an up-to-date build would not
    // look at the cache at all.)
    std::thread::sleep(Duration::from_millis(2100));
    std::fs::remove_dir_all(cwd.path().join("dist")).unwrap();
    build(&[]).assert().success();
    let stamps = walk_files(cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".stamp"))
        .count();
    assert_eq!(stamps, 3, "settled blobs are stamped");

    // One byte flipped in each cached wheel: online, they come again.
    for (round, extra) in [&[][..], &["--refresh"][..]].into_iter().enumerate() {
        for p in blobs(cache.path()) {
            let mut b = std::fs::read(&p).unwrap();
            let i = b.len() / 3;
            b[i] ^= 0x01;
            std::fs::write(&p, b).unwrap();
        }
        server.clear_log();
        std::fs::remove_dir_all(cwd.path().join("dist")).unwrap();
        build(extra).assert().success();
        assert_bundle_is_true(&dir, &three());
        let refetched = server
            .log()
            .iter()
            .filter(|r| r.path.ends_with(".whl") && r.range.is_none())
            .count();
        assert_eq!(
            refetched, 3,
            "round {round}: every corrupt wheel is fetched again"
        );
    }

    // Emptied, offline: a clear failure, exit 1, and nothing shipped.
    for p in blobs(cache.path()) {
        std::fs::write(&p, b"").unwrap();
    }
    std::fs::remove_dir_all(cwd.path().join("dist")).unwrap();
    let err = fails(&mut build(&["--offline"]), 1);
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("--offline forbids fetching it again"), "{err}");
    assert!(!dir.exists(), "nothing may be written");
}

fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn corrupt_cached_pages_and_metadata_are_fetched_again() {
    let server = Server::start();
    publish(&server, &three());
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plan = || {
        plan_json(
            cwd.path(),
            cache.path(),
            &["app", "--index-url", &server.index_url()],
        )
    };
    let first = plan();
    let mut damaged = 0;
    for p in walk_files(cache.path()) {
        let name = p.to_string_lossy().into_owned();
        if name.ends_with(".page") || name.ends_with(".METADATA") {
            let mut b = std::fs::read(&p).unwrap();
            let last = b.len() - 1;
            b[last] ^= 0x55;
            std::fs::write(&p, b).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 5, "pages and metadata are cached ({damaged})");
    server.clear_log();
    // The pages are fresh (ten minutes), so only damage sends us back.
    assert_eq!(plan(), first);
    let pages = server.requests_to("/").len();
    let meta = server.requests_to(".metadata").len();
    assert_eq!(pages, 3, "each damaged page is fetched again");
    assert_eq!(meta, 2, "each damaged PEP 658 file is fetched again");
}

/// Run `bundle ARGS --index-url <server>` in fresh folders; it must exit
/// with `code`. Returns the folders and stderr.
fn fails_against(
    server: &Server,
    args: &[&str],
    code: i32,
) -> (tempfile::TempDir, tempfile::TempDir, String) {
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let err = fails(
        bundle(cwd.path(), cache.path())
            .args(args)
            .args(["--index-url", &server.index_url()]),
        code,
    );
    (cwd, cache, err)
}

/// An index page whose files carry the given hashes.
fn page_with(server: &Server, project: &str, files: Value) {
    let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files});
    server.route(
        &format!("/simple/{project}/"),
        serde_json::to_vec(&page).unwrap(),
        "application/vnd.pypi.simple.v1+json",
        false,
    );
}

#[test]
fn a_hash_that_is_a_path_is_refused_wherever_it_enters() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.zip");
    std::fs::write(&secret, b"not yours").unwrap();
    // A value that would lead from blobs/sha256/<aa>/ to the secret file.
    let evil = format!("../../../../../../../../../..{}", secret.display());
    let server = Server::start();
    let w = WheelSpec::new("evil", "1.0");
    server.route(
        &format!("/files/{}", w.filename()),
        w.build(),
        "application/octet-stream",
        true,
    );
    page_with(
        &server,
        "evil",
        serde_json::json!([{"filename": w.filename(), "url": format!("../../files/{}", w.filename()), "hashes": {"sha256": evil}}]),
    );
    let (cwd, _cache, err) = fails_against(&server, &["build", "evil"], 1);
    assert!(
        err.contains("/simple/evil/: the sha256 of evil-1.0-py3-none-any.whl is invalid"),
        "{err}"
    );
    assert!(err.contains("is not a sha256 (64 hex digits)"), "{err}");
    assert!(!cwd.path().join("dist").exists());

    // The same through PEP 658's hash.
    page_with(
        &server,
        "evil",
        serde_json::json!([{"filename": w.filename(), "url": format!("../../files/{}", w.filename()),
            "hashes": {"sha256": sha256(&w.build())}, "core-metadata": {"sha256": "../x"}}]),
    );
    let cache2 = tempfile::tempdir().unwrap();
    let err = fails(
        bundle(cwd.path(), cache2.path()).args([
            "plan",
            "evil",
            "--index-url",
            &server.index_url(),
        ]),
        1,
    );
    assert!(
        err.contains("the core-metadata sha256 of evil-1.0-py3-none-any.whl is invalid"),
        "{err}"
    );

    // And through a lock file: exit 2, naming the lock file.
    let good = Server::start();
    publish(&good, &[WheelSpec::new("evil", "1.0")]);
    bundle(cwd.path(), cache2.path())
        .args(["lock", "evil", "--index-url", &good.index_url()])
        .assert()
        .success();
    let lock_path = cwd.path().join("evil.lock.json");
    let mut lock: Value = serde_json::from_str(&read_to_string(&lock_path)).unwrap();
    lock["wheels"][0]["sha256"] = evil.clone().into();
    std::fs::write(&lock_path, lock.to_string()).unwrap();
    let err = fails(
        bundle(cwd.path(), cache2.path()).args([
            "build",
            "evil",
            "--locked",
            "--index-url",
            &good.index_url(),
        ]),
        2,
    );
    assert!(
        err.contains("evil.lock.json: not a bundle lock file"),
        "{err}"
    );
    assert!(err.contains("is not a sha256 (64 hex digits)"), "{err}");
    assert!(!cwd.path().join("dist").exists());
}

/// A wheel whose end-of-central-directory record points past the file.
fn broken_directory_wheel() -> (WheelSpec, Vec<u8>) {
    let w = WheelSpec::new("brokenzip", "1.0").no_pep658();
    let mut bytes = w.build();
    let eocd = (0..bytes.len() - 21)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .unwrap();
    bytes[eocd + 16..eocd + 20].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    (w, bytes)
}

#[test]
fn a_zip_directory_pointing_past_the_data_is_a_clean_error() {
    let server = Server::start();
    let (w, bytes) = broken_directory_wheel();
    server.route(
        &format!("/files/{}", w.filename()),
        bytes.clone(),
        "application/octet-stream",
        true,
    );
    page_with(
        &server,
        "brokenzip",
        serde_json::json!([{"filename": w.filename(), "url": format!("../../files/{}", w.filename()),
            "hashes": {"sha256": sha256(&bytes)}, "size": bytes.len()}]),
    );
    let (_cwd, _cache, err) = fails_against(&server, &["plan", "brokenzip"], 1);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("cannot read the metadata of brokenzip-1.0-py3-none-any.whl"),
        "{err}"
    );
}

#[test]
fn metadata_that_names_another_project_or_version_is_refused() {
    let server = Server::start();
    publish(&server, &[WheelSpec::new("honest", "1.0")]);
    // The PEP 658 file of `honest` 1.0 claims to be version 6.6.6.
    let w = WheelSpec::new("honest", "1.0");
    let lie = w.metadata().replace("Version: 1.0", "Version: 6.6.6");
    page_with(
        &server,
        "honest",
        serde_json::json!([{"filename": w.filename(), "url": format!("../../files/{}", w.filename()),
            "hashes": {"sha256": sha256(&w.build())}, "core-metadata": {"sha256": sha256(lie.as_bytes())}}]),
    );
    server.route(
        &format!("/files/{}.metadata", w.filename()),
        lie.into_bytes(),
        "text/plain",
        false,
    );
    let (_cwd, _cache, err) = fails_against(&server, &["plan", "honest"], 1);
    assert!(
        err.contains(
            "the metadata of honest-1.0-py3-none-any.whl says Version `6.6.6`, but the file is 1.0"
        ),
        "{err}"
    );
}

#[test]
fn files_without_a_hash_need_allow_unhashed() {
    let server = Server::start();
    let w = WheelSpec::new("nohash", "1.0");
    server.route(
        &format!("/files/{}", w.filename()),
        w.build(),
        "application/octet-stream",
        true,
    );
    page_with(
        &server,
        "nohash",
        serde_json::json!([{"filename": w.filename(), "url": format!("../../files/{}", w.filename())}]),
    );
    let (cwd, cache, err) = fails_against(&server, &["build", "nohash"], 1);
    assert!(
        err.contains("the index gives no sha256 (pass --allow-unhashed to accept it)"),
        "{err}"
    );
    let ok = bundle(cwd.path(), cache.path())
        .args([
            "build",
            "nohash",
            "--allow-unhashed",
            "--index-url",
            &server.index_url(),
        ])
        .assert()
        .success();
    assert!(stderr_of(&ok).contains("gives no sha256"));
    assert_bundle_is_true(&cwd.path().join("dist/nohash"), &[w]);
}

/// A partial download left in the cache's temporary folder.
fn cache_tmp_files(cache: &Path) -> Vec<PathBuf> {
    walk_files(&cache.join("tmp"))
        .into_iter()
        .filter(|p| !p.ends_with(".lock"))
        .collect()
}

#[test]
fn endless_bodies_are_cut_with_bounded_memory_and_disk() {
    let server = Server::start();
    // A wheel the index says is small, that never ends.
    let w = WheelSpec::new("endless", "1.0");
    publish(&server, &[w.clone().no_pep658()]);
    server.behave(&format!("/files/{}", w.filename()), Mode::Endless);
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cmd = bundle_command(cwd.path(), cache.path());
    cmd.args(["build", "endless", "--index-url", &server.index_url()]);
    let run = run_measured(cmd, Duration::from_secs(120));
    eprintln!("endless wheel: peak RSS {} MiB", run.peak_rss >> 20);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("sent more than"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the size the index declares"),
        "{}",
        run.stderr
    );
    assert!(
        cache_tmp_files(cache.path()).is_empty(),
        "no partial file is kept"
    );
    assert!(run.peak_rss < 150 << 20, "peak RSS {} bytes", run.peak_rss);

    // An endless PEP 658 file stops at the metadata cap.
    let server = Server::start();
    publish(&server, std::slice::from_ref(&w));
    server.behave(&format!("/files/{}.metadata", w.filename()), Mode::Endless);
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = bundle_command(cwd.path(), cache.path());
    cmd.args(["plan", "endless", "--index-url", &server.index_url()]);
    let run = run_measured(cmd, Duration::from_secs(120));
    eprintln!("endless metadata: peak RSS {} MiB", run.peak_rss >> 20);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("BUNDLE_MAX_METADATA_BYTES"),
        "{}",
        run.stderr
    );
    assert!(run.peak_rss < 150 << 20, "peak RSS {} bytes", run.peak_rss);
}

#[test]
fn silent_and_dripping_servers_fail_within_the_timeout() {
    let server = Server::start();
    server.behave("/simple/quiet/", Mode::Silent);
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let err = fails(
        bundle(cwd.path(), cache.path())
            .env("BUNDLE_HTTP_TIMEOUT", "1.5")
            .args(["plan", "quiet", "--index-url", &server.index_url()])
            .timeout(Duration::from_secs(60)),
        1,
    );
    assert!(
        err.contains("/simple/quiet/ did not answer within 2 s"),
        "{err}"
    );
    assert!(err.contains("BUNDLE_HTTP_TIMEOUT"), "{err}");

    // A body of 2 KiB at ten bytes a second.
    publish(&server, &[WheelSpec::new("slow", "1.0")]);
    let w = WheelSpec::new("slow", "1.0");
    server.behave(
        &format!("/files/{}.metadata", w.filename()),
        Mode::Drip(100),
    );
    let err = fails(
        bundle(cwd.path(), cache.path())
            .env("BUNDLE_HTTP_TIMEOUT", "1")
            .args(["plan", "slow", "--index-url", &server.index_url()])
            .timeout(Duration::from_secs(60)),
        1,
    );
    assert!(err.contains("is too slow"), "{err}");
    assert!(err.contains("below the minimum of 1024 bytes/s"), "{err}");
}

#[test]
fn bad_names_are_usage_errors() {
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (name, why) in [
        ("-rf", "starts with `.` or `-`"),
        ("a/b", "only letters, digits"),
        (&"n".repeat(101)[..], "at most 100"),
    ] {
        let err = fails(
            bundle(cwd.path(), cache.path()).args([
                "build",
                "app",
                &format!("--name={name}"),
                "--offline",
            ]),
            2,
        );
        assert!(err.contains("cannot be used as a bundle name"), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn an_invalid_release_url_is_bad_input_even_offline() {
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(
        cwd.path().join("r.toml"),
        format!(
            "[[release]]\nname = \"t\"\nversion = \"1\"\nurl = \"ht!tp://::nope/{{version}}\"\nsha256 = \"{}\"\nfiles = [\"t\"]\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let err = fails(
        bundle(cwd.path(), cache.path()).args(["build", "r.toml", "--offline"]),
        2,
    );
    assert!(err.contains("is not a valid http(s) URL"), "{err}");
}

#[test]
fn inspect_reports_a_truncated_elf() {
    let d = tempfile::tempdir().unwrap();
    let exe = std::fs::read("/bin/sh").or_else(|_| std::fs::read(std::env::current_exe().unwrap()));
    let mut bytes = exe.unwrap();
    bytes.truncate(200);
    let path = d.path().join("cut");
    std::fs::write(&path, &bytes).unwrap();
    let out = bundle(d.path(), d.path())
        .args(["inspect", path.to_str().unwrap()])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("damaged or truncated ELF"), "{text}");
    assert!(!text.contains("no ELF files"), "{text}");
}

#[test]
fn a_killed_download_leaves_nothing_after_the_next_run() {
    let server = Server::start();
    let w = WheelSpec::new("big", "1.0").no_pep658();
    publish(&server, std::slice::from_ref(&w));
    // The wheel comes slowly enough to be caught in the middle.
    server.behave(&format!("/files/{}", w.filename()), Mode::Drip(20));
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut child = bundle_command(cwd.path(), cache.path())
        .args(["build", "big", "--index-url", &server.index_url()])
        .spawn()
        .unwrap();
    // Wait for the wheel's transfer (not a cached page's brief temporary
    // file), then let a few bytes arrive.
    let started = std::time::Instant::now();
    while server.requests_to(".whl").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no download started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -KILL {}", child.id())])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), None);
    assert!(
        !cache_tmp_files(cache.path()).is_empty(),
        "the partial file is there"
    );
    let staged: Vec<_> = std::fs::read_dir(cwd.path().join("dist"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    // The next run (any that fetches) removes what the killed one left.
    server.behave(&format!("/files/{}", w.filename()), Mode::Normal);
    bundle(cwd.path(), cache.path())
        .args(["build", "big", "--index-url", &server.index_url()])
        .assert()
        .success();
    assert!(
        walk_files(&cache.path().join("tmp")).is_empty(),
        "cache tmp is empty"
    );
    let left: Vec<String> = std::fs::read_dir(cwd.path().join("dist"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?} (before: {staged:?})");
}

#[test]
fn sigterm_while_the_resolver_waits_on_a_page_stops_cleanly() {
    let server = Server::start();
    publish(
        &server,
        &[
            WheelSpec::new("app", "1.0").requires(&["lib"]),
            WheelSpec::new("lib", "1.0"),
        ],
    );
    // lib's page never comes: the resolver waits on it when the signal lands.
    server.behave("/simple/lib/", Mode::Silent);
    let (cwd, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let child = bundle_command(cwd.path(), cache.path())
        .args(["plan", "app", "--json", "--index-url", &server.index_url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while server.requests_to("/simple/lib/").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "lib's page was never asked for"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    // A clean stop: the error and its JSON, no panic of a thread left
    // waiting on the runtime as it shut down.
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "interrupted", "{doc}");
}
