//! Snapshot tests of what the CLI prints.

mod common;

use common::*;

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(cmd.assert().get_output().stdout.clone()).unwrap()
}

fn stderr(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(cmd.assert().get_output().stderr.clone()).unwrap()
}

fn filtered<F: FnOnce()>(f: F) {
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "[SERVER]"),
        (r"in \d+\.\d+s", "in [TIME]"),
        (r"[0-9a-f]{64}", "[SHA256]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
    ]}, {
        f()
    });
}

#[test]
fn targets_list() {
    let d = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(stdout(bundle(d.path(), d.path()).arg("targets")));
}

#[test]
fn recipes_list() {
    let d = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(stdout(bundle(d.path(), d.path()).arg("recipes")));
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
    filtered(|| {
        insta::assert_snapshot!(
            "plan_human",
            stdout(bundle(d.path(), d.path()).args([
                "plan",
                "app",
                "--index-url",
                &server.index_url()
            ]))
        );
        insta::assert_snapshot!(
            "plan_json",
            stdout(bundle(d.path(), d.path()).args([
                "plan",
                "app",
                "--json",
                "--index-url",
                &server.index_url()
            ]))
        );
    });
}

#[test]
fn build_summary_on_stderr() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    filtered(|| {
        insta::assert_snapshot!(stderr(bundle(d.path(), d.path()).args([
            "build",
            "app",
            "--target",
            "chatgpt-2023",
            "--index-url",
            &server.index_url()
        ])));
    });
}

#[test]
fn conflict_with_preinstalled_is_explained() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    filtered(|| {
        insta::assert_snapshot!(stderr(bundle(d.path(), d.path()).args([
            "plan",
            "app",
            "click>=8.2",
            "--target",
            "chatgpt-2023",
            "--index-url",
            &server.index_url()
        ])));
    });
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
    insta::assert_snapshot!(stderr(bundle(d.path(), d.path()).args(["build", "typo"])));
}
