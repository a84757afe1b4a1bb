//! Release archives and the ELF check, against a local server and ELF files
//! compiled by the test with gcc.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use predicates::prelude::*;
use serde_json::Value;

const MAIN: &str = "#include <stdio.h>\nint main(void){puts(\"tool 1.2.3\");return 0;}\n";
const LIB: &str = "#include <stdio.h>\nvoid hello(void){puts(\"hi\");}\n";

/// A static executable: no DT_NEEDED, no symbol versions; runs anywhere.
fn static_tool(dir: &Path) -> Vec<u8> {
    std::fs::read(cc(dir, "tool", MAIN, &["-static", "-O1"])).unwrap()
}

/// Highest GLIBC_x.y in `readelf -V` output: the independent oracle.
fn readelf_max_glibc(path: &Path) -> Option<String> {
    let out = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut best: Option<(Vec<u64>, String)> = None;
    for word in text.split(|c: char| c.is_whitespace()) {
        if let Some(v) = word.strip_prefix("GLIBC_") {
            if !v.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let key: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, v.to_string()));
            }
        }
    }
    best.map(|(_, v)| v)
}

fn zip_of(members: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in members {
        let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, o).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tar_of(members: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        // Write the name raw: tar's own checks would refuse `..`.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn recipe(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir.join("recipes")).unwrap();
    std::fs::write(dir.join(format!("recipes/{name}.toml")), body).unwrap();
}

struct World {
    server: Server,
    cwd: tempfile::TempDir,
    cache: tempfile::TempDir,
    fixtures: tempfile::TempDir,
}

fn world() -> World {
    World {
        server: Server::start(),
        cwd: tempfile::tempdir().unwrap(),
        cache: tempfile::tempdir().unwrap(),
        fixtures: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn serve(&self, path: &str, data: Vec<u8>) -> String {
        self.server
            .route(path, data, "application/octet-stream", true);
        self.server.url(path)
    }
    fn serve_with_sum(&self, path: &str, data: Vec<u8>, sum_line: Option<String>) -> String {
        let line = sum_line.unwrap_or_else(|| {
            format!("{}  {}\n", sha256(&data), path.rsplit('/').next().unwrap())
        });
        self.server.route(
            &format!("{path}.sha256sum"),
            line.into_bytes(),
            "text/plain",
            false,
        );
        self.serve(path, data)
    }
    /// Serve `data` at `path` and write recipe `name` pinning it by sha256.
    fn pinned(&self, name: &str, path: &str, data: &[u8], file: &str) {
        let url = self.serve(path, data.to_vec());
        recipe(
            self.cwd.path(),
            name,
            &format!(
                "[[release]]\nname = \"{name}\"\nversion = \"1\"\nurl = \"{url}\"\nsha256 = \"{}\"\nfiles = [\"{file}\"]\n",
                sha256(data)
            ),
        );
    }
    fn bundle(&self) -> assert_cmd::Command {
        bundle(self.cwd.path(), self.cache.path())
    }
}

#[test]
fn zip_release_with_sha256sum_becomes_an_executable() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let base = w.server.url("/dl/v{version}/tool-{triple}.zip");
    w.serve_with_sum(
        "/dl/v1.2.3/tool-x86_64-unknown-linux-gnu.zip",
        zip_of(&[("tool", &tool, 0o644), ("README", b"hi", 0o644)]),
        Some(format!(
            "{}\n",
            sha256(&zip_of(&[("tool", &tool, 0o644), ("README", b"hi", 0o644)]))
        )),
    );
    recipe(
        w.cwd.path(),
        "tool",
        &format!(
            "description = \"t\"\n[[release]]\nname = \"tool\"\nversion = \"1.2.3\"\nurl = \"{base}\"\nsha256_url = \"{{url}}.sha256sum\"\nfiles = [\"tool\"]\ncheck = [{{ run = \"tool\", expect = \"tool 1.2.3\" }}]\n"
        ),
    );
    let built = w.bundle().args(["build", "tool"]).assert().success();
    let err = stderr_of(&built);
    assert!(err.contains("  binary    bin/tool 1.2.3 (static)"), "{err}");
    let bin = w.cwd.path().join("dist/tool/bin/tool");
    assert_eq!(std::fs::read(&bin).unwrap(), tool);
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let manifest: Value = serde_json::from_str(&read_to_string(
        &w.cwd.path().join("dist/tool/manifest.json"),
    ))
    .unwrap();
    let f = &manifest["files"][0];
    assert_eq!(f["path"], "bin/tool");
    assert_eq!(f["kind"], "binary");
    assert_eq!(f["version"], "1.2.3");
    assert_eq!(f["needed"], serde_json::json!([]));
    assert_eq!(manifest["checks"][0]["expect"], "tool 1.2.3");
    // In the zip too, the run bit is set.
    let mut z =
        zip::ZipArchive::new(std::fs::File::open(w.cwd.path().join("dist/tool.zip")).unwrap())
            .unwrap();
    let e = z.by_name("tool/bin/tool").unwrap();
    assert_eq!(e.unix_mode().unwrap() & 0o777, 0o755);
}

#[test]
fn latest_version_comes_from_the_releases_api() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let archive = gz(&tar_of(&[("tool-2.0.0/bin/tool", &tool)], &[]));
    let asset = "tool-aarch64-unknown-linux-gnu.tar.gz";
    let dl = w.serve_with_sum(&format!("/assets/v2.0.0/{asset}"), archive, None);
    let api = serde_json::json!({
        "tag_name": "v2.0.0",
        "assets": [{"name": asset, "browser_download_url": dl}],
    });
    w.server.route(
        "/api/repos/acme/tool/releases/latest",
        serde_json::to_vec(&api).unwrap(),
        "application/json",
        false,
    );
    recipe(
        w.cwd.path(),
        "tool",
        "[[release]]\nname = \"tool\"\nversion = \"latest\"\nurl = \"https://github.com/acme/tool/releases/download/v{version}/tool-{triple}.tar.gz\"\nsha256_url = \"{url}.sha256sum\"\nfiles = [\"tool\"]\n",
    );
    let out = w
        .bundle()
        .args(["plan", "tool", "--json", "--target", "ubuntu-20.04-arm64"])
        .env("BUNDLE_GITHUB_API", w.server.url("/api"))
        .env("GITHUB_TOKEN", "t0ken")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let plan: Value = serde_json::from_slice(&out).unwrap();
    let r = &plan["releases"][0];
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(r["url"], dl);
    assert_eq!(r["archive"], "tar-gz");
    assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
    // The token goes to the API only, never to the download host.
    for req in w.server.log() {
        let expected = req.path.starts_with("/api/").then_some("Bearer t0ken");
        assert_eq!(req.authorization.as_deref(), expected, "{}", req.path);
    }
}

#[test]
fn wrong_checksum_fails_and_leaves_nothing() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let url = w.serve_with_sum(
        "/dl/tool.tar.xz",
        xz(&tar_of(&[("tool", &tool)], &[])),
        Some(format!("{}  tool.tar.xz\n", "ab".repeat(32))),
    );
    recipe(
        w.cwd.path(),
        "tool",
        &format!("[[release]]\nname = \"tool\"\nversion = \"1\"\nurl = \"{url}\"\nsha256_url = \"{{url}}.sha256sum\"\nfiles = [\"tool\"]\n"),
    );
    w.bundle()
        .args(["build", "tool"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sha256 mismatch"));
    assert!(!w.cwd.path().join("dist/tool").exists());
    assert!(!w.cwd.path().join("dist/tool.zip").exists());
}

#[test]
fn unpinned_release_is_refused_with_its_hash() {
    let w = world();
    let data = b"#!/bin/sh\necho hi\n".to_vec();
    let hash = sha256(&data);
    let url = w.serve("/dl/script", data);
    recipe(
        w.cwd.path(),
        "s",
        &format!("[[release]]\nname = \"s\"\nversion = \"1\"\nurl = \"{url}\"\nfiles = [\"s\"]\n"),
    );
    w.bundle()
        .args(["build", "s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("sha256 = \"{hash}\"")));
    // Pinning it makes the build pass; a bare file becomes bin/<files[0]>.
    recipe(
        w.cwd.path(),
        "s",
        &format!("[[release]]\nname = \"s\"\nversion = \"1\"\nurl = \"{url}\"\nsha256 = \"{hash}\"\nfiles = [\"s\"]\n"),
    );
    w.bundle().args(["build", "s"]).assert().success();
    assert!(w.cwd.path().join("dist/s/bin/s").is_file());
}

#[test]
fn zip_slip_and_symlink_escape_are_refused() {
    let w = world();
    let cases: [(&str, &str, Vec<u8>, &str); 3] = [
        (
            "slip",
            "/dl/slip.zip",
            zip_of(&[("tool", b"x", 0o755), ("../../../evil", b"owned", 0o644)]),
            "`../../../evil` would be written outside the bundle",
        ),
        (
            "link",
            "/dl/link.tar.gz",
            gz(&tar_of(&[("real", b"x")], &[("tool", "/etc/passwd")])),
            "symlink to absolute path /etc/passwd",
        ),
        (
            "up",
            "/dl/up.tar.gz",
            gz(&tar_of(&[("real", b"x")], &[("tool", "../../x")])),
            "points outside",
        ),
    ];
    for (name, path, archive, refusal) in &cases {
        w.pinned(name, path, archive, "tool");
        w.bundle()
            .args(["build", name])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(*refusal));
    }
    assert!(!w.cwd.path().join("dist/slip").exists());
    // Where `../../evil` would land from bin/ in the staged bundle (the
    // staging folder is gone, so look at its parent and above too).
    for at in ["dist/evil", "evil", "dist/slip/evil"] {
        assert!(!w.cwd.path().join(at).exists(), "{at}");
    }
}

#[test]
fn binary_needing_newer_glibc_fails_the_build() {
    let w = world();
    // fixtures/elf: a program that needs GLIBC_2.99 on any host.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/elf");
    let dir = w.fixtures.path();
    let lib = dir.join("libfuture.so.1");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libfuture.so.1"])
        .arg(format!(
            "-Wl,--version-script={}",
            fixtures.join("future.map").display()
        ))
        .arg(fixtures.join("future.c"))
        .arg("-o")
        .arg(&lib)
        .status()
        .expect("gcc is needed for the ELF fixtures");
    assert!(status.success());
    let exe = dir.join("future");
    let status = Command::new("gcc")
        .arg(fixtures.join("needs-future.c"))
        .arg("-o")
        .arg(&exe)
        .arg(&lib)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        readelf_max_glibc(&exe).as_deref(),
        Some("2.99"),
        "the oracle agrees"
    );
    let data = std::fs::read(&exe).unwrap();
    w.pinned("future", "/dl/future", &data, "future");
    w.bundle()
        .args(["build", "future"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "bin/future needs GLIBC_2.99; target ubuntu-20.04 has 2.31",
        ))
        // The way out: build it from source in the target's own image.
        .stderr(predicate::str::contains("with a [[build]] recipe"));
    assert!(!w.cwd.path().join("dist/future").exists());
}

#[test]
fn inspect_agrees_with_readelf() {
    let w = world();
    let d = w.fixtures.path();
    let exe = cc(d, "dyn", MAIN, &[]);
    let so = cc(
        d,
        "libfoo.so",
        LIB,
        &["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1"],
    );
    for f in [&exe, &so] {
        let out = w
            .bundle()
            .args(["inspect", "--json"])
            .arg(f)
            .assert()
            .get_output()
            .clone();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let file = &v["files"][0];
        let ours = file["glibc"].as_str().map(str::to_string);
        assert_eq!(ours, readelf_max_glibc(f), "{}", f.display());
        assert!(file["needed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "libc.so.6"));
        let expected_ok = ours.as_deref().is_none_or(|g| {
            let k: Vec<u64> = g.split('.').map(|p| p.parse().unwrap()).collect();
            k <= vec![2, 31]
        });
        assert_eq!(v["ok"].as_bool().unwrap(), expected_ok);
        assert_eq!(out.status.code(), Some(if expected_ok { 0 } else { 1 }));
    }
    // The executable has an interpreter, the library a soname.
    let v: Value = serde_json::from_slice(
        &w.bundle()
            .args(["inspect", "--json"])
            .arg(&so)
            .assert()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["files"][0]["soname"], "libfoo.so.1");
}

#[test]
fn shared_objects_inside_wheels_are_checked() {
    let w = world();
    let d = w.fixtures.path();
    let foo = cc(
        d,
        "libfoo.so",
        LIB,
        &["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1"],
    );
    let ext = cc(
        d,
        "_native.so",
        "void hello(void);\nvoid call(void){hello();}\n",
        &["-shared", "-fPIC", "-L.", "-lfoo"],
    );
    let ext_bytes = std::fs::read(&ext).unwrap();
    // Alone, libfoo.so.1 is missing on the target: a warning, not a failure.
    let lonely = WheelSpec::new("native", "1.0")
        .tag("cp38-cp38-manylinux_2_17_x86_64")
        .file("native/_native.so", ext_bytes.clone());
    // Vendored (auditwheel style), it is provided.
    let vendored = WheelSpec::new("vendored", "1.0")
        .tag("cp38-cp38-manylinux_2_17_x86_64")
        .file("vendored/_native.so", ext_bytes)
        .file("vendored.libs/libfoo.so.1", std::fs::read(&foo).unwrap());
    publish(&w.server, &[lonely.clone(), vendored.clone()]);
    w.bundle()
        .args(["build", "native", "--index-url", &w.server.index_url()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "native-1.0-cp38-cp38-manylinux_2_17_x86_64.whl!native/_native.so needs libfoo.so.1",
        ));
    w.bundle()
        .args(["build", "vendored", "--index-url", &w.server.index_url()])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").not());
    // inspect reads wheels too.
    let whl = w
        .cwd
        .path()
        .join(format!("dist/native/wheels/{}", lonely.filename()));
    w.bundle()
        .arg("inspect")
        .arg(&whl)
        .assert()
        .success()
        .stdout(predicate::str::contains("native/_native.so"))
        .stdout(predicate::str::contains(
            "warning: target may lack libfoo.so.1",
        ));
    // So does inspect of the bundle archive: it opens the wheels it holds.
    w.bundle()
        .args(["inspect", "dist/native.zip"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "dist/native.zip!native/wheels/{}!native/_native.so",
            lonely.filename()
        )));
}

#[test]
fn one_recipe_combines_pypi_and_several_releases() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    publish(&w.server, &[WheelSpec::new("lib", "1.0")]);
    let a = zip_of(&[("a/tool", &tool, 0o755)]);
    let b = xz(&tar_of(&[("pkg/other", &tool)], &[]));
    let ua = w.serve("/dl/a.zip", a.clone());
    let ub = w.serve("/dl/b.tar.xz", b.clone());
    recipe(
        w.cwd.path(),
        "combo",
        &format!(
            "target = \"chatgpt-2023\"\n[pypi]\nrequirements = [\"lib\"]\n\n[[release]]\nname = \"a\"\nversion = \"1\"\nurl = \"{ua}\"\nsha256 = \"{}\"\nfiles = [\"a/tool\"]\n\n[[release]]\nname = \"b\"\nversion = \"2\"\nurl = \"{ub}\"\nsha256 = \"{}\"\nfiles = [\"other\"]\n",
            sha256(&a),
            sha256(&b)
        ),
    );
    w.bundle()
        .args(["build", "combo", "--index-url", &w.server.index_url()])
        .assert()
        .success();
    let names = read_zip_names(&w.cwd.path().join("dist/combo.zip"));
    for n in [
        "combo/bin/tool",
        "combo/bin/other",
        "combo/wheels/lib-1.0-py3-none-any.whl",
    ] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    let manifest: Value = serde_json::from_str(&read_to_string(
        &w.cwd.path().join("dist/combo/manifest.json"),
    ))
    .unwrap();
    assert_eq!(manifest["target"]["name"], "chatgpt-2023");
}

#[test]
fn missing_member_lists_what_is_there() {
    let w = world();
    let a = zip_of(&[("dir/real", b"x", 0o755)]);
    w.pinned("m", "/dl/a.zip", &a, "nope");
    w.bundle()
        .args(["build", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`nope` is not in the archive (it has: dir/real)",
        ));
}

#[test]
fn bad_release_recipes_exit_2() {
    let w = world();
    recipe(
        w.cwd.path(),
        "r",
        "[[release]]\nname = \"r\"\nversion = \"1\"\nurl = \"http://127.0.0.1:9/{os}.zip\"\nsha256 = \"00\"\nfiles = [\"r\"]\n",
    );
    w.bundle().args(["build", "r"]).assert().code(2);
    recipe(
        w.cwd.path(),
        "r",
        "[[release]]\nname = \"r\"\nversion = \"1\"\nurl = \"http://127.0.0.1:9/r.zip\"\nfiles = []\n",
    );
    w.bundle()
        .args(["build", "r"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("recipes/r.toml:4:"));
}

#[test]
fn architecture_must_match_and_tarballs_are_inspected() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let tgz = w.fixtures.path().join("tool.tar.gz");
    std::fs::write(
        &tgz,
        gz(&tar_of(
            &[("pkg/tool", &tool), ("pkg/README", b"not elf")],
            &[],
        )),
    )
    .unwrap();
    // A static x86_64 program runs on the x86_64 target...
    w.bundle()
        .arg("inspect")
        .arg(&tgz)
        .assert()
        .success()
        .stdout(predicate::str::contains("tool.tar.gz!pkg/tool"))
        .stdout(predicate::str::contains("x86_64, glibc -"));
    // ...not on aarch64.
    w.bundle()
        .arg("inspect")
        .arg(&tgz)
        .args(["--target", "ubuntu-20.04-arm64"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "is built for x86_64; target ubuntu-20.04-arm64 is aarch64",
        ));
    // The build refuses it too.
    let data = std::fs::read(&tgz).unwrap();
    w.pinned("t", "/dl/tool.tar.gz", &data, "tool");
    w.bundle()
        .args(["build", "t", "--target", "ubuntu-20.04-arm64"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bin/tool is built for x86_64"));
    w.bundle().args(["build", "t"]).assert().success();
}

/// Highest `PREFIX_x.y.z` in `readelf -V` output.
fn readelf_max(path: &Path, prefix: &str) -> Option<String> {
    let out = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| c.is_whitespace())
        .filter_map(|w| w.strip_prefix(prefix))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .max_by_key(|v| {
            v.split('.')
                .map(|p| p.parse::<u64>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .map(str::to_string)
}

#[test]
fn glibcxx_is_read_and_judged_when_the_target_names_it() {
    let w = world();
    let d = w.fixtures.path();
    let src = d.join("c.cc");
    std::fs::write(
        &src,
        "#include <iostream>\n#include <string>\nint main(){std::string s(\"hi\"); std::cout << s << std::endl; return 0;}\n",
    )
    .unwrap();
    let exe = d.join("cxx");
    let status = Command::new("g++")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("g++ is needed for this fixture");
    assert!(status.success());
    let need = readelf_max(&exe, "GLIBCXX_").expect("a C++ program needs GLIBCXX");
    let v: Value = serde_json::from_slice(
        &w.bundle()
            .args(["inspect", "--json"])
            .arg(&exe)
            .assert()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["files"][0]["glibcxx"].as_str(), Some(need.as_str()));
    assert_eq!(
        v["files"][0]["cxxabi"].as_str(),
        readelf_max(&exe, "CXXABI_").as_deref()
    );
    assert!(v["files"][0]["needed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "libstdc++.so.6"));
    // A target with a new enough glibc but an older libstdc++ refuses it.
    let target = d.join("old-cxx.toml");
    std::fs::write(
        &target,
        "description = \"t\"\nimage = \"x\"\nplatform = \"linux/amd64\"\nglibc = \"2.99\"\npython = \"3.8.10\"\nglibcxx = \"3.4.1\"\n",
    )
    .unwrap();
    w.bundle()
        .args(["inspect", "--target", target.to_str().unwrap()])
        .arg(&exe)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "needs GLIBCXX_{need}; target old-cxx has 3.4.1"
        )));
}

/// A tar.gz holding `gib` GiB of zeros in member `bomb`, then `tool`, made
/// small by repeating one fully flushed deflate block: about 1 KiB per MiB.
fn zeros_bomb(gib: u64, tool: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    fn header(name: &str, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        h.as_bytes().to_vec()
    }
    let mut c = Compress::new(Compression::best(), false);
    let mut deflate = |input: &[u8], flush: FlushCompress| -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 1024);
        let start = c.total_in();
        loop {
            let done = (c.total_in() - start) as usize;
            c.compress_vec(&input[done..], &mut out, flush).unwrap();
            if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(64 * 1024);
        }
    };
    let mib = vec![0u8; 1 << 20];
    let mut body = deflate(&header("bomb", gib << 30), FlushCompress::Full);
    body.extend(deflate(&mib, FlushCompress::Full));
    let block = deflate(&mib, FlushCompress::Full);
    assert_eq!(
        block,
        deflate(&mib, FlushCompress::Full),
        "a flushed block repeats"
    );
    for _ in 1..(gib << 10) {
        body.extend_from_slice(&block);
    }
    let mut tail = header("tool", tool.len() as u64);
    tail.extend_from_slice(tool);
    tail.resize(tail.len().div_ceil(512) * 512 + 1024, 0);
    body.extend(deflate(&tail, FlushCompress::Finish));
    // gzip: header, the deflate stream, then CRC32 and size. The trailer is
    // never reached by a reader that stops at the limit; zeros will do.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(body);
    out.extend_from_slice(&[0; 8]);
    out
}

#[test]
fn an_archive_bomb_is_stopped_with_bounded_memory() {
    let w = world();
    let bomb = zeros_bomb(2, b"#!/bin/sh\necho tool\n");
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    // The bomb really unpacks to zeros after its header.
    let mut head = vec![0u8; 8 << 20];
    std::io::Read::read_exact(
        &mut flate2::read::DeflateDecoder::new(&bomb[10..]),
        &mut head,
    )
    .unwrap();
    assert!(head[512..].iter().all(|b| *b == 0));
    w.pinned("bomb", "/dl/bomb.tar.gz", &bomb, "tool");
    let mut cmd = bundle_command(w.cwd.path(), w.cache.path());
    cmd.args(["build", "bomb"]);
    let run = run_measured(cmd, Duration::from_secs(120));
    eprintln!("2 GiB tar.gz bomb: peak RSS {} MiB", run.peak_rss >> 20);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("BUNDLE_MAX_UNPACK_RATIO"),
        "{}",
        run.stderr
    );
    assert!(run.peak_rss < 150 << 20, "peak RSS {} bytes", run.peak_rss);
    assert!(!w.cwd.path().join("dist/bomb").exists());
}

#[test]
fn duplicate_names_and_symlink_loops_are_refused() {
    let w = world();
    // Two `files` that both become bin/tool: bad input, exit 2.
    let archive = gz(&tar_of(&[("a/tool", b"1"), ("b/tool", b"2")], &[]));
    let url = w.serve("/dl/two.tar.gz", archive.clone());
    recipe(
        w.cwd.path(),
        "two",
        &format!(
            "[[release]]\nname = \"two\"\nversion = \"1\"\nurl = \"{url}\"\nsha256 = \"{}\"\nfiles = [\"a/tool\", \"b/tool\"]\n",
            sha256(&archive)
        ),
    );
    let err = fails(w.bundle().args(["build", "two"]), 2);
    assert!(
        err.contains("`files` lists `a/tool` and `b/tool`, which both become bin/tool"),
        "{err}"
    );
    // One member twice in the archive: not a silent overwrite.
    w.pinned(
        "dup",
        "/dl/dup.tar.gz",
        &gz(&tar_of(&[("tool", b"good"), ("./tool", b"evil")], &[])),
        "tool",
    );
    let err = fails(w.bundle().args(["build", "dup"]), 1);
    assert!(err.contains("the archive holds `./tool` twice"), "{err}");
    // A symlink loop is named as one.
    w.pinned(
        "loop",
        "/dl/loop.tar.gz",
        &gz(&tar_of(
            &[("x", b"1")],
            &[("tool", "other"), ("other", "tool")],
        )),
        "tool",
    );
    let err = fails(w.bundle().args(["build", "loop"]), 1);
    assert!(err.contains("`tool` is a symlink loop"), "{err}");
    assert!(!w.cwd.path().join("dist/two").exists());
    assert!(!w.cwd.path().join("dist/dup").exists());
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn a_target_without_python_gets_install_sh_and_refuses_wheels() {
    let t = docker_test();
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let data = zip_of(&[("tool", &tool, 0o644)]);
    let url = w.serve("/dl/tool.zip", data.clone());
    let target = fixture_target("debian11-nopython");
    let out = t
        .build(
            "tool",
            &format!(
                "[[release]]\nname = \"tool\"\nversion = \"1\"\nurl = \"{url}\"\nsha256 = \"{}\"\nfiles = [\"tool\"]\ncheck = [{{ run = \"tool\", expect = \"tool 1.2.3\" }}]\n",
                sha256(&data)
            ),
            &target,
            &["--verify"],
        )
        .assert()
        .success();
    let err = stderr_of(&out);
    // tar.gz by default: the machine's tar unpacks it; install.sh installs.
    for step in [
        "upload",
        "unpack",
        "install.sh",
        "programs",
        "check: tool",
        "All steps passed.",
    ] {
        assert!(err.contains(step), "{step} missing from:\n{err}");
    }
    let dist = t.work.path().join("dist");
    assert!(dist.join("tool.tar.gz").is_file());
    let dir = dist.join("tool");
    assert!(dir.join("install.sh").is_file());
    assert!(!dir.join("install.py").exists());
    let prompt = read_to_string(&dir.join("PROMPT.txt"));
    assert!(prompt.contains("```sh\n"), "{prompt}");
    assert!(prompt.contains("sh /mnt/data/tool/install.sh"), "{prompt}");
    assert!(prompt.contains("- /mnt/data/tool/bin/tool"), "{prompt}");

    // As the user, in the bare image (no Python at all): PROMPT's commands,
    // then the program at its full path with the image's PATH.
    let (ok, text) = as_the_user_in(
        TEST_IMAGE,
        &dist,
        &["tool.tar.gz".to_string()],
        &prompt,
        "command -v python3 || echo 'no python3'\n/mnt/data/tool/bin/tool",
    );
    assert!(ok, "{text}");
    assert!(text.contains("[bundle] check ok"), "{text}");
    let after = text.split("--- after PROMPT").nth(1).unwrap();
    assert!(after.contains("no python3"), "{after}");
    assert!(after.contains("tool 1.2.3"), "{after}");
    // A damaged upload is refused by PROMPT's own sha256 check.
    let damaged = t.work.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    let mut bytes = std::fs::read(dist.join("tool.tar.gz")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(damaged.join("tool.tar.gz"), bytes).unwrap();
    let (ok, text) = as_the_user_in(
        TEST_IMAGE,
        &damaged,
        &["tool.tar.gz".to_string()],
        &prompt,
        "true",
    );
    assert!(!ok, "{text}");
    assert!(text.contains("tool.tar.gz: FAILED"), "{text}");

    // Wheels for it are refused before anything is fetched.
    let err = fails(
        t.bundle()
            .args(["build", "sqlite-utils", "--target", &target]),
        2,
    );
    assert!(
        err.contains("target debian11-nopython has no Python"),
        "{err}"
    );
    // A zip it could not unpack is refused too.
    let err = fails(
        t.bundle()
            .args(["build", "tool.toml", "--format", "zip", "--target", &target]),
        2,
    );
    assert!(err.contains("neither Python nor unzip"), "{err}");
    assert!(t.containers().is_empty(), "containers left behind");
}

#[test]
fn releases_come_from_a_mirror_and_checksums_still_apply() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let data = zip_of(&[("tool", &tool, 0o644)]);
    // The recipe names a server that does not answer; the mirror has the file.
    let mirrored = w.serve("/mirror/dl/tool.zip", data.clone());
    let mirror_base = mirrored.trim_end_matches("dl/tool.zip").to_string();
    recipe(
        w.cwd.path(),
        "tool",
        &format!(
            "[[release]]\nname = \"tool\"\nversion = \"1\"\nurl = \"http://127.0.0.1:9/dl/tool.zip\"\nsha256 = \"{}\"\nfiles = [\"tool\"]\n",
            sha256(&data)
        ),
    );
    w.bundle()
        .env(
            "BUNDLE_RELEASE_MIRROR",
            format!("http://127.0.0.1:9/={mirror_base}"),
        )
        .args(["build", "tool"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(w.cwd.path().join("dist/tool/bin/tool")).unwrap(),
        tool
    );
    // The same from the config file's [mirrors] table.
    let config = w.cwd.path().join("ci.toml");
    std::fs::write(
        &config,
        format!("[mirrors]\n\"http://127.0.0.1:9/\" = \"{mirror_base}\"\n"),
    )
    .unwrap();
    let cache2 = tempfile::tempdir().unwrap();
    bundle(w.cwd.path(), cache2.path())
        .env("BUNDLE_CONFIG", &config)
        .args(["build", "tool"])
        .assert()
        .success();
    // A mirror serving other bytes is refused by the recipe's sha256.
    w.serve(
        "/evil/dl/tool.zip",
        zip_of(&[("tool", b"#!/bin/sh\necho evil\n", 0o755)]),
    );
    let evil_base = mirror_base.replace("/mirror/", "/evil/");
    let cache3 = tempfile::tempdir().unwrap();
    let err = fails(
        bundle(w.cwd.path(), cache3.path())
            .env(
                "BUNDLE_RELEASE_MIRROR",
                format!("http://127.0.0.1:9/={evil_base}"),
            )
            .args(["build", "tool"]),
        1,
    );
    assert!(err.contains("sha256 mismatch"), "{err}");
    // An unreachable release names the recipe and the release, and its
    // hint is about releases, not the package index.
    let cache4 = tempfile::tempdir().unwrap();
    recipe(
        w.cwd.path(),
        "gone",
        "[[release]]\nname = \"tool\"\nversion = \"1\"\nurl = \"http://127.0.0.1:9/x.zip\"\nsha256_url = \"{url}.sha256\"\nfiles = [\"tool\"]\n",
    );
    let err = fails(
        bundle(w.cwd.path(), cache4.path()).args(["build", "gone"]),
        1,
    );
    assert!(err.contains("error: recipe gone: "), "{err}");
    assert!(
        err.contains("release `tool`") || err.contains("cannot reach"),
        "{err}"
    );
    assert!(!err.contains("--index-url"), "{err}");
    assert!(err.contains("BUNDLE_RELEASE_MIRROR"), "{err}");
    // A bad mirror setting is bad input.
    let err = fails(
        w.bundle()
            .env("BUNDLE_RELEASE_MIRROR", "github.com")
            .args(["build", "tool"]),
        2,
    );
    assert!(err.contains("is not FROM=TO"), "{err}");
}

#[test]
fn a_version_requirement_picks_the_newest_matching_release() {
    let w = world();
    let tool = static_tool(w.fixtures.path());
    let archive = gz(&tar_of(&[("tool", &tool)], &[]));
    let asset = |v: &str| format!("tool-{v}-x86_64-unknown-linux-gnu.tar.gz");
    let dl = w.serve_with_sum(&format!("/assets/v2.1.3/{}", asset("2.1.3")), archive, None);
    let releases = serde_json::json!([
        {"tag_name": "v3.0.0-beta.1", "prerelease": true, "assets": []},
        {"tag_name": "v2.2.0", "draft": true, "assets": []},
        {"tag_name": "v2.1.3", "assets": [{"name": asset("2.1.3"), "browser_download_url": dl}]},
        {"tag_name": "v2.0.9", "assets": []},
        {"tag_name": "v1.9.0", "assets": []},
    ]);
    w.server.route(
        "/api/repos/acme/tool/releases?per_page=100",
        serde_json::to_vec(&releases).unwrap(),
        "application/json",
        false,
    );
    let write = |version: &str| {
        recipe(
            w.cwd.path(),
            "tool",
            &format!("[[release]]\nname = \"tool\"\nversion = \"{version}\"\nurl = \"https://github.com/acme/tool/releases/download/v{{version}}/tool-{{version}}-{{triple}}.tar.gz\"\nsha256_url = \"{{url}}.sha256sum\"\nfiles = [\"tool\"]\n"),
        )
    };
    write("^2.1");
    let out = w
        .bundle()
        .args(["plan", "tool", "--json"])
        .env("BUNDLE_GITHUB_API", w.server.url("/api"))
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["releases"][0]["version"], "2.1.3");
    assert_eq!(plan["releases"][0]["url"], dl);
    // No match: the error lists the newest versions (exit 2, the recipe's).
    write("^4");
    let err = fails(
        w.bundle()
            .args(["plan", "tool"])
            .env("BUNDLE_GITHUB_API", w.server.url("/api")),
        2,
    );
    assert!(
        err.contains("no release matches `^4`; the newest are 3.0.0-beta.1, 2.1.3, 2.0.9, 1.9.0"),
        "{err}"
    );
}
