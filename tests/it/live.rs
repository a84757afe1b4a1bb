//! Tests against the real default index, compiled only with
//! `cargo test --features live-tests` (they need the network; the default
//! run never touches it). Two also need Docker with the test image.

use crate::common::*;
use serde_json::Value;

fn live_plan(args: &[&str]) -> Value {
    let cwd = tempfile::tempdir().unwrap();
    plan_json(cwd.path(), cwd.path(), args)
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["package"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sqlite_utils_for_chatgpt_2023_is_three_uploads() {
    let plan = live_plan(&["sqlite-utils", "--target", "chatgpt-2023"]);
    assert_eq!(
        names(&plan, "wheels"),
        ["click-default-group", "sqlite-fts4", "sqlite-utils"]
    );
    let excluded = names(&plan, "excluded");
    for p in ["click", "tabulate", "python-dateutil", "pluggy"] {
        assert!(excluded.contains(&p.to_string()), "{p} in {excluded:?}");
    }
}

#[test]
fn numpy_for_cp38_comes_from_the_manylinux2014_wheel() {
    let plan = live_plan(&["numpy<2"]);
    let f = plan["wheels"][0]["filename"].as_str().unwrap();
    assert!(f.starts_with("numpy-1.24.4-cp38-cp38-manylinux"), "{f}");
    assert!(
        f.contains("manylinux2014_x86_64") || f.contains("manylinux_2_17_x86_64"),
        "{f}"
    );
}

#[test]
fn backports_for_python_3_8_are_kept() {
    // matplotlib on 3.8 needs importlib-resources (python_version < "3.9").
    let plan = live_plan(&["matplotlib"]);
    assert!(names(&plan, "wheels").contains(&"importlib-resources".to_string()));
}

#[test]
fn real_sdist_only_packages_build_and_import_on_glibc_2_31() {
    require_docker();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("sdists.toml"),
        "[pypi]\nrequirements = [\"click-default-group==1.2.2\", \"python-Levenshtein==0.12.2\"]\n\
         sdists = \"build\"\n\
         check = [{ run = \"python3 -c 'import Levenshtein; print(Levenshtein.distance(\\\"kitten\\\", \\\"sitting\\\"))'\", expect = \"3\" }]\n",
    )
    .unwrap();
    let out = bundle(work.path(), work.path())
        .args([
            "build",
            "sdists.toml",
            "--verify",
            "--target",
            &fixture_target("debian11"),
        ])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("All steps passed."), "{err}");
    let manifest = read_to_string(&work.path().join("dist/sdists/manifest.json"));
    assert!(
        manifest.contains("\"built_from\": \"click-default-group-1.2.2.tar.gz\""),
        "{manifest}"
    );
    assert!(
        manifest.contains("python_Levenshtein-0.12.2-cp39-cp39-linux_x86_64.whl"),
        "{manifest}"
    );
}

#[test]
fn sqlite_utils_verifies_in_the_test_sandbox() {
    require_docker();
    let work = tempfile::tempdir().unwrap();
    let out = bundle(work.path(), work.path())
        .args([
            "build",
            "sqlite-utils",
            "--verify",
            "--target",
            &fixture_target("debian11"),
        ])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("check: sqlite-utils --version") && err.contains("All steps passed."),
        "{err}"
    );
}

#[test]
fn ripgrep_from_crates_io_builds_for_debian11_and_runs_under_verify() {
    require_docker();
    let work = tempfile::tempdir().unwrap();
    let out = bundle(work.path(), work.path())
        .args([
            "build",
            "ripgrep",
            "--verify",
            "--target",
            &fixture_target("debian11-nopython"),
        ])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("check: rg --version") && err.contains("All steps passed."),
        "{err}"
    );
    let manifest: Value = serde_json::from_str(&read_to_string(
        &work.path().join("dist/ripgrep/manifest.json"),
    ))
    .unwrap();
    let rg = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "bin/rg")
        .unwrap();
    assert!(rg["version"].as_str().unwrap().starts_with("14."), "{rg}");
    let glibc: Vec<u32> = rg["glibc"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(glibc[..2] <= [2, 31][..], "{rg}");
}

#[test]
fn prettier_from_npm_builds_for_the_default_target_with_a_node_that_runs_there() {
    let cwd = tempfile::tempdir().unwrap();
    bundle(cwd.path(), cwd.path())
        .args(["build", "npm:prettier@^3"])
        .assert()
        .success();
    let dir = cwd.path().join("dist/prettier");
    let manifest: Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json"))).unwrap();
    let node = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "runtime/node/bin/node")
        .expect("the bundled node");
    let glibc = node["glibc"].as_str().unwrap();
    let minor: u32 = glibc.split('.').nth(1).unwrap().parse().unwrap();
    assert!(minor <= 31, "node needs glibc {glibc}");
    assert!(read_to_string(&dir.join("PROMPT.txt")).contains("/mnt/data/prettier/bin/prettier"));
    let lock: Value =
        serde_json::from_str(&read_to_string(&dir.join("package-lock.json"))).unwrap();
    assert!(lock["packages"]["node_modules/prettier"]["version"]
        .as_str()
        .unwrap()
        .starts_with("3."));
}

#[test]
fn esbuild_takes_the_platform_package_of_the_target_not_the_host() {
    for (target, want) in [
        ("ubuntu-20.04", "@esbuild/linux-x64"),
        ("ubuntu-20.04-arm64", "@esbuild/linux-arm64"),
    ] {
        let plan = live_plan(&["npm:esbuild", "--target", target]);
        let names: Vec<&str> = plan["npm"]["tree"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&want), "{target}: {names:?}");
        assert_eq!(
            names.iter().filter(|n| n.starts_with("@esbuild/")).count(),
            1,
            "{names:?}"
        );
    }
}
