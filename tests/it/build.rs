//! `[[build]]` recipes against a real daemon and the bare Debian 11 test
//! image: a C project linking libsqlite3, and a crate with a dependency
//! from a 127.0.0.1 sparse index, built with the host's Rust toolchain.
//! The sources come from a 127.0.0.1 server; the build image's apt
//! packages come from the Debian mirror through the default bridge.

use std::path::Path;

use crate::common::*;

/// `dir` (a fixtures folder) as a `.tar.gz` whose members sit under
/// `top/`, with fixed times: a source archive or a `.crate` file.
fn pack(dir: &Path, top: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut add = |name: String, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for f in files {
        let rel = f.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        add(format!("{top}/{rel}"), &std::fs::read(&f).unwrap(), 0o644);
    }
    for (name, data) in extra {
        add(format!("{top}/{name}"), data, 0o644);
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// The hello-sqlite project served as `hello-1.0.tar.gz`; the recipe text
/// for it, with `script` (its sha256 pinned).
fn hello_recipe(server: &Server, script: &str) -> String {
    let tarball = pack(&fixture("build/hello-sqlite"), "hello-1.0", &[]);
    let sha = sha256(&tarball);
    server.route("/src/hello-1.0.tar.gz", tarball, "application/gzip", false);
    format!(
        r#"description = "hello, linked with libsqlite3, built in the target's image"
[[build]]
name = "hello"
version = "1.0"
url = "{}"
sha256 = "{sha}"
packages = ["build-essential", "libsqlite3-dev"]
script = {script:?}
binaries = ["hello"]
check = [{{ run = "hello", expect = "hello from sqlite" }}]
"#,
        server.url("/src/hello-{version}.tar.gz")
    )
}

/// Whether a manifest entry's highest GLIBC_x.y[.z] is at most `max`.
fn glibc_at_most(entry: &serde_json::Value, max: [u32; 2]) -> bool {
    let v: Vec<u32> = entry["glibc"]
        .as_str()
        .expect("an ELF entry records its glibc")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    v[..2] <= max[..]
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap()
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_c_project_is_built_in_the_target_image_and_carries_its_libraries() {
    let t = docker_test();
    let server = Server::start();
    let recipe = hello_recipe(&server, "make install PREFIX=\"$PREFIX\"");
    let target = fixture_target("debian11-bare");
    t.build("hello", &recipe, &target, &[]).assert().success();
    let dir = t.work.path().join("dist/hello");
    assert!(dir.join("bin/hello").is_file());
    assert!(dir.join("lib/libsqlite3.so.0").is_file());
    let m = manifest(&dir);
    crate::schemas::validate("manifest.schema.json", &m);
    let files = m["files"].as_array().unwrap();
    let bin = files.iter().find(|f| f["path"] == "bin/hello").unwrap();
    assert_eq!(bin["kind"], "binary");
    assert_eq!(bin["link"], "runpath");
    assert_eq!(bin["package"], "hello");
    assert_eq!(bin["version"], "1.0");
    assert!(glibc_at_most(bin, [2, 31]), "{bin}");
    let build = &bin["build"];
    assert_eq!(build["from"], server.url("/src/hello-1.0.tar.gz"));
    assert_eq!(
        build["image"],
        format!("{TEST_IMAGE} + build-essential libsqlite3-dev")
    );
    assert_eq!(bin["built_from"], server.url("/src/hello-1.0.tar.gz"));
    let lib = files
        .iter()
        .find(|f| f["path"] == "lib/libsqlite3.so.0")
        .unwrap();
    assert_eq!(lib["kind"], "library");
    assert_eq!(lib["package"], "libsqlite3-0");
    // The check ran at build time is in the manifest for verify and PROMPT.
    assert!(read_to_string(&dir.join("PROMPT.txt")).contains("bin/hello"));

    // It runs in a pristine container with no network; the binary alone
    // does not, for want of libsqlite3.
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "/b/bin/hello");
    assert!(ok, "{out}");
    assert!(
        out.contains("hello from sqlite 3.") && out.contains(": 42"),
        "{out}"
    );
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "cp /b/bin/hello /tmp/h && /tmp/h");
    assert!(!ok);
    assert!(out.contains("libsqlite3.so.0"), "{out}");

    // A second build takes the result from the cache: Docker is not needed.
    let first = std::fs::read(dir.join("bin/hello")).unwrap();
    let out = t
        .build("hello", &recipe, &target, &[])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("BUNDLE_LOG", "bundle=info")
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("build hello: reused an identical earlier build"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(dir.join("bin/hello")).unwrap(), first);
    assert!(dir.join("lib/libsqlite3.so.0").is_file());
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_failing_script_shows_its_last_lines_and_the_build_has_no_network() {
    let t = docker_test();
    let server = Server::start();
    let target = fixture_target("debian11-bare");
    let recipe = hello_recipe(
        &server,
        "echo configuring; echo 'error: the widget is missing' >&2; exit 3",
    );
    let err = fails(&mut t.build("hello", &recipe, &target, &[]), 1);
    assert!(
        err.contains("[[build]] `hello` failed (exit code 3)"),
        "{err}"
    );
    assert!(err.contains("error: the widget is missing"), "{err}");
    assert!(err.contains("no network"), "{err}");
    assert!(!t.work.path().join("dist/hello").exists());

    // A script that reaches for the host (a listener on every address,
    // at the bridge's gateway) gets no network, and no connection arrives.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let inspect = |field: &str| {
        String::from_utf8_lossy(
            &docker(&[
                "network",
                "inspect",
                "bridge",
                "-f",
                &format!("{{{{(index .IPAM.Config 0).{field}}}}}"),
            ])
            .stdout,
        )
        .trim()
        .to_string()
    };
    // Some engines leave the gateway out of the bridge's IPAM config: it is
    // then the subnet's first address, as Docker assigns it.
    let mut gateway = inspect("Gateway");
    if gateway.is_empty() {
        let subnet = inspect("Subnet");
        let net: std::net::Ipv4Addr = subnet
            .split('/')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|_| panic!("no bridge gateway or subnet: {subnet:?}"));
        gateway = std::net::Ipv4Addr::from(u32::from(net) + 1).to_string();
    }
    assert!(!gateway.is_empty(), "no bridge gateway");
    let recipe = hello_recipe(
        &server,
        &format!("bash -c 'exec 3<>/dev/tcp/{gateway}/{port}' && echo reached-the-host"),
    );
    let err = fails(&mut t.build("hello", &recipe, &target, &[]), 1);
    assert!(!err.contains("reached-the-host"), "{err}");
    assert!(err.contains("Network is unreachable"), "{err}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the build container connected to the host"
    );

    // A program the build did not install is named, with what it did.
    let recipe = hello_recipe(&server, "make install PREFIX=\"$PREFIX\"")
        .replace("binaries = [\"hello\"]", "binaries = [\"goodbye\"]");
    let err = fails(&mut t.build("hello", &recipe, &target, &[]), 2);
    assert!(err.contains("installed no `goodbye`"), "{err}");
    assert!(err.contains("bin/hello"), "{err}");

    // Outputs are held to the archive rule: a link that leaves $PREFIX is
    // refused, naming where it leads, and nothing of the image ships.
    for (link, leads) in [
        ("/etc/shadow", "/etc/shadow"),
        ("../../../etc/passwd", "/etc/passwd"),
    ] {
        let recipe = hello_recipe(
            &server,
            &format!("mkdir -p \"$PREFIX/bin\" && ln -s {link} \"$PREFIX/bin/hello\""),
        );
        let err = fails(&mut t.build("hello", &recipe, &target, &[]), 2);
        assert!(
            err.contains(&format!(
                "`hello` leads outside $PREFIX (/opt/bundle-prefix), to {leads}"
            )),
            "{err}"
        );
        assert!(!t.work.path().join("dist/hello").exists());
    }
    // A 3 GiB sparse file is a clear error, not a 3 GiB copy.
    let recipe = hello_recipe(
        &server,
        "mkdir -p \"$PREFIX/bin\" && truncate -s 3G \"$PREFIX/bin/hello\"",
    );
    let err = fails(&mut t.build("hello", &recipe, &target, &[]), 2);
    assert!(
        err.contains("`hello` is 3221225472 bytes, over the 2147483648-byte limit"),
        "{err}"
    );
    assert!(err.contains("BUNDLE_MAX_BUILD_OUTPUT"), "{err}");
    assert!(t.containers().is_empty(), "containers left behind");
}

/// A 127.0.0.1 sparse index serving hello-crate 0.2.0 (and a yanked
/// 0.3.0), which depends on greet-dep 1.0.0. Returns the index URL.
fn crate_index(server: &Server) -> (String, String) {
    let dep = pack(&fixture("crates/greet-dep"), "greet-dep-1.0.0", &[]);
    let dep_sum = sha256(&dep);
    let lock = format!(
        "version = 3\n\n[[package]]\nname = \"greet-dep\"\nversion = \"1.0.0\"\n\
         source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{dep_sum}\"\n\n\
         [[package]]\nname = \"hello-crate\"\nversion = \"0.2.0\"\ndependencies = [\n \"greet-dep\",\n]\n"
    );
    let main = pack(
        &fixture("crates/hello-crate"),
        "hello-crate-0.2.0",
        &[("Cargo.lock", lock.as_bytes())],
    );
    let line = |name: &str, vers: &str, sum: &str, yanked: bool| {
        serde_json::json!({"name": name, "vers": vers, "deps": [], "cksum": sum, "features": {}, "yanked": yanked})
            .to_string()
    };
    server.route(
        "/index/config.json",
        serde_json::json!({"dl": server.url("/dl")})
            .to_string()
            .into_bytes(),
        "application/json",
        false,
    );
    let listing = format!(
        "{}\n{}\n",
        line("hello-crate", "0.2.0", &sha256(&main), false),
        line("hello-crate", "0.3.0", &"0".repeat(64), true)
    );
    server.route(
        "/index/he/ll/hello-crate",
        listing.clone().into_bytes(),
        "text/plain",
        false,
    );
    server.route(
        "/index/gr/ee/greet-dep",
        format!("{}\n", line("greet-dep", "1.0.0", &dep_sum, false)).into_bytes(),
        "text/plain",
        false,
    );
    server.route(
        "/dl/hello-crate/0.2.0/download",
        main,
        "application/gzip",
        false,
    );
    server.route(
        "/dl/greet-dep/1.0.0/download",
        dep,
        "application/gzip",
        false,
    );
    (server.url("/index/"), listing)
}

#[test]
#[ignore = "needs dockerd, the test image and a Rust toolchain (bash .ci/run sets them up)"]
fn a_crate_is_built_offline_with_its_locked_dependencies_and_the_hosts_toolchain() {
    let t = docker_test();
    let server = Server::start();
    let (index, listing) = crate_index(&server);
    let recipe = r#"
[[build]]
crate = "hello-crate"
version = "^0.2"
binaries = ["hello-crate"]
check = [{ run = "hello-crate", expect = "built offline" }]
"#;
    let target = fixture_target("debian11-bare");
    // The plan names the version chosen (0.3.0 is yanked) and its source.
    std::fs::write(t.work.path().join("hc.toml"), recipe).unwrap();
    let plan = {
        let out = t
            .bundle()
            .env("BUNDLE_CRATES_INDEX", &index)
            .args(["plan", "hc.toml", "--target", &target, "--json"])
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    crate::schemas::validate("plan.schema.json", &plan);
    let b = &plan["builds"][0];
    assert_eq!(b["version"], "0.2.0", "{plan}");
    assert_eq!(b["source"]["kind"], "crate");
    assert_eq!(b["source"]["crate"], "hello-crate");
    t.build("hc", recipe, &target, &[])
        .env("BUNDLE_CRATES_INDEX", &index)
        .assert()
        .success();
    let dir = t.work.path().join("dist/hc");
    let m = manifest(&dir);
    crate::schemas::validate("manifest.schema.json", &m);
    let bin = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "bin/hello-crate")
        .unwrap()
        .clone();
    assert_eq!(bin["build"]["from"], "crate hello-crate 0.2.0");
    let toolchain = bin["build"]["toolchain"].as_str().unwrap();
    assert!(toolchain.starts_with("rustc 1."), "{toolchain}");
    assert!(glibc_at_most(&bin, [2, 31]), "{bin}");
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "/b/bin/hello-crate");
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "hello from hello-crate, built offline");
    // Every .crate came through the fetch layer, checked: both are cached.
    for path in [
        "/dl/hello-crate/0.2.0/download",
        "/dl/greet-dep/1.0.0/download",
    ] {
        assert_eq!(server.requests_to(path).len(), 1, "{path}");
    }

    // A lock pins 0.2.0; once the index has a newer match, a plan takes
    // it, and `build --locked` still builds exactly 0.2.0.
    t.bundle()
        .env("BUNDLE_CRATES_INDEX", &index)
        .args(["lock", "hc.toml", "--target", &target])
        .assert()
        .success();
    let lock = read_to_string(&t.work.path().join("hc.lock.json"));
    assert!(lock.contains("\"version\": \"0.2.0\""), "{lock}");
    let newer = serde_json::json!({"name": "hello-crate", "vers": "0.2.9", "deps": [], "cksum": "1".repeat(64), "features": {}, "yanked": false});
    let listing = format!("{listing}{newer}\n");
    server.route(
        "/index/he/ll/hello-crate",
        listing.into_bytes(),
        "text/plain",
        false,
    );
    let out = t
        .bundle()
        .env("BUNDLE_CRATES_INDEX", &index)
        .args([
            "plan",
            "hc.toml",
            "--refresh",
            "--target",
            &target,
            "--json",
        ])
        .assert()
        .success();
    let plan: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["builds"][0]["version"], "0.2.9");
    t.bundle()
        .env("BUNDLE_CRATES_INDEX", &index)
        .args(["build", "hc.toml", "--locked", "--target", &target])
        .assert()
        .success();
    let again = manifest(&dir);
    assert_eq!(
        again["files"][0]["build"]["from"],
        "crate hello-crate 0.2.0"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
fn crate_versions_are_chosen_in_the_sparse_index_and_bad_ones_named() {
    let server = Server::start();
    let (index, _) = crate_index(&server);
    let work = tempfile::tempdir().unwrap();
    let recipe = |version: &str, krate: &str| {
        format!("[[build]]\ncrate = \"{krate}\"\nversion = \"{version}\"\nbinaries = [\"x\"]\n")
    };
    let plan = |text: String| {
        std::fs::write(work.path().join("c.toml"), text).unwrap();
        let mut cmd = bundle(work.path(), work.path());
        cmd.env("BUNDLE_CRATES_INDEX", &index).args([
            "plan",
            "c.toml",
            "--target",
            &fixture_target("debian11-bare"),
        ]);
        cmd
    };
    // 0.3.0 is yanked: `*` takes 0.2.0, and says so in text too.
    let out = plan(recipe("*", "hello-crate")).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("build     hello-crate 0.2.0  crate hello-crate"),
        "{text}"
    );
    let err = fails(&mut plan(recipe("^0.3", "hello-crate")), 2);
    assert!(
        err.contains("no version of crate `hello-crate` matches `^0.3` (newest versions: 0.2.0)"),
        "{err}"
    );
    let err = fails(&mut plan(recipe("*", "no-such-crate")), 2);
    assert!(
        err.contains("there is no crate `no-such-crate` in the index"),
        "{err}"
    );
    let err = fails(&mut plan(recipe("fourteen", "hello-crate")), 2);
    assert!(err.contains("is not a semver requirement"), "{err}");
}

#[test]
fn a_source_archive_that_escapes_its_folder_is_refused_before_any_build() {
    let server = Server::start();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    // `append_data` refuses `..`; write the name into the header itself.
    h.as_old_mut().name[..13].copy_from_slice(b"../escaped.sh");
    h.set_cksum();
    b.append(&h, &b"evil"[..]).unwrap();
    let tarball = b.into_inner().unwrap().finish().unwrap();
    let sha = sha256(&tarball);
    server.route("/src/evil-1.tar.gz", tarball, "application/gzip", false);
    let work = tempfile::tempdir().unwrap();
    let inner = work.path().join("w");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(
        inner.join("evil.toml"),
        format!(
            "[[build]]\nname = \"evil\"\nversion = \"1\"\nurl = \"{}\"\nsha256 = \"{sha}\"\nscript = \"true\"\nbinaries = [\"x\"]\n",
            server.url("/src/evil-{version}.tar.gz")
        ),
    )
    .unwrap();
    // No daemon is needed to refuse it: it never reaches one.
    let err = fails(
        bundle(&inner, work.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args([
                "build",
                "evil.toml",
                "--target",
                &fixture_target("debian11-bare"),
            ]),
        1,
    );
    assert!(
        err.contains("the source archive evil-1.tar.gz is unsafe"),
        "{err}"
    );
    assert!(!work.path().join("escaped.sh").exists());
    assert!(!inner.join("escaped.sh").exists());
    assert!(!inner.join("dist/evil").exists());
}
