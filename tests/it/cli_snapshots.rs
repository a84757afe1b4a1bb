//! Snapshot tests of what the CLI prints, with its exit code: each snapshot
//! records success, exit code, stdout and stderr.

use crate::bundle_snapshot;
use crate::common::*;

#[test]
fn targets_list() {
    let d = tempfile::tempdir().unwrap();
    bundle_snapshot!("targets_list", bundle(d.path(), d.path()).arg("targets"));
}

#[test]
fn recipes_list() {
    let d = tempfile::tempdir().unwrap();
    bundle_snapshot!("recipes_list", bundle(d.path(), d.path()).arg("recipes"));
}

fn small_index() -> Server {
    let server = Server::start();
    publish(
        &server,
        &[
            WheelSpec::new("app", "1.0").requires(&[
                "helper>=2",
                "backport; python_version < \"3.9\"",
                "click",
            ]),
            WheelSpec::new("helper", "2.5"),
            WheelSpec::new("backport", "1.0"),
            WheelSpec::new("click", "8.1.4"),
            WheelSpec::new("click", "8.2.0").requires_python(">=3.10"),
        ],
    );
    server
}

#[test]
fn plan_human_and_json() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    let index = server.index_url();
    bundle_snapshot!(
        "plan_human",
        bundle(d.path(), d.path()).args(["plan", "app", "--index-url", &index])
    );
    bundle_snapshot!(
        "plan_json",
        bundle(d.path(), d.path()).args(["plan", "app", "--json", "--index-url", &index])
    );
}

#[test]
fn build_summary_on_stderr() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    bundle_snapshot!(
        "build_summary_on_stderr",
        bundle(d.path(), d.path()).args([
            "build",
            "app",
            "--target",
            "chatgpt-2023",
            "--index-url",
            &server.index_url()
        ])
    );
}

#[test]
fn conflict_with_preinstalled_is_explained() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    bundle_snapshot!(
        "conflict_with_preinstalled_is_explained",
        bundle(d.path(), d.path()).args([
            "plan",
            "app",
            "click>=8.2",
            "--target",
            "chatgpt-2023",
            "--index-url",
            &server.index_url()
        ])
    );
}

#[test]
fn unknown_key_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("recipes")).unwrap();
    std::fs::write(
        d.path().join("recipes/typo.toml"),
        "[pypi]\nrequirements = [\"a\"]\n\n[[release]]\nname = \"x\"\nversion = \"1\"\nurl = \"u\"\nfiles = [\"x\"]\nsha = \"00\"\n",
    )
    .unwrap();
    bundle_snapshot!(
        "unknown_key_error",
        bundle(d.path(), d.path()).args(["build", "typo"])
    );
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    bundle_snapshot!(
        "unknown_target",
        bundle(d.path(), d.path()).args(["plan", "app", "--target", "ubuntu-99", "--offline"])
    );
    bundle_snapshot!("no_arguments", bundle(d.path(), d.path()).args(["build"]));
}
