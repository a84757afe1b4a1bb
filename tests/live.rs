//! Opt-in tests against the real default index: `cargo test -- --ignored`.
//! They need the network; the default run never touches it.

mod common;

use common::*;
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
#[ignore = "needs the real package index"]
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
#[ignore = "needs the real package index"]
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
#[ignore = "needs the real package index"]
fn backports_for_python_3_8_are_kept() {
    // matplotlib on 3.8 needs importlib-resources (python_version < "3.9").
    let plan = live_plan(&["matplotlib"]);
    assert!(names(&plan, "wheels").contains(&"importlib-resources".to_string()));
}
