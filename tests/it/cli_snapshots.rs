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

/// The exit-code table of the README, one row per case: 2 for a problem
/// with the input, 1 for failed work, with `--json`'s error document.
#[test]
fn exit_code_table_and_json_errors() {
    let server = small_index();
    let d = tempfile::tempdir().unwrap();
    let index = server.index_url();
    let good = b"#!/bin/sh\necho tool\n".to_vec();
    let zip = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("tool", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, &good).unwrap();
        w.finish().unwrap().into_inner()
    };
    server.route("/dl/tool.zip", zip.clone(), "application/zip", false);
    let url = server.url("/dl/tool.zip");
    let recipes = d.path().join("recipes");
    std::fs::create_dir_all(&recipes).unwrap();
    let release = |name: &str, body: &str| {
        std::fs::write(
            recipes.join(format!("{name}.toml")),
            format!("[[release]]\nname = \"tool\"\nversion = \"1\"\n{body}"),
        )
        .unwrap();
    };
    release("nohash", &format!("url = \"{url}\"\nfiles = [\"tool\"]\n"));
    release(
        "nomember",
        &format!(
            "url = \"{url}\"\nsha256 = \"{}\"\nfiles = [\"absent\"]\n",
            sha256(&zip)
        ),
    );
    release(
        "badurl",
        "url = \"not a url\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nfiles = [\"tool\"]\n",
    );
    release(
        "wronghash",
        &format!(
            "url = \"{url}\"\nsha256 = \"{}\"\nfiles = [\"tool\"]\n",
            "ab".repeat(32)
        ),
    );
    release(
        "deadserver",
        "url = \"http://127.0.0.1:9/tool.zip\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nfiles = [\"tool\"]\n",
    );
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        ("no arguments", vec!["build"], 2),
        (
            "unknown target",
            vec!["plan", "app", "--target", "ubuntu-99"],
            2,
        ),
        ("release without a hash", vec!["build", "nohash"], 2),
        ("member the archive lacks", vec!["build", "nomember"], 2),
        ("bad URL", vec!["build", "badurl"], 2),
        (
            "verify of a missing path",
            vec!["verify", "no/such/bundle"],
            2,
        ),
        ("hash mismatch", vec!["build", "wronghash"], 1),
        ("dead server", vec!["build", "deadserver"], 1),
        (
            "no resolution",
            vec!["plan", "app", "click>=9", "--index-url", &index],
            1,
        ),
    ];
    let mut table = String::new();
    for (what, args, code) in cases {
        let out = bundle(d.path(), d.path())
            .args(&args)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{what}: {out:?}");
        // Exactly one JSON document on stdout, with the same exit code.
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON document ({e}): {out:?}"));
        let error = &doc["error"];
        assert_eq!(error["exit_code"], code, "{what}: {doc}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        table.push_str(&format!(
            "{code}  {what:<26} {:<9} {}\n",
            error["kind"].as_str().unwrap(),
            error["message"].as_str().unwrap().lines().next().unwrap()
        ));
    }
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "[SERVER]"),
        (r"[0-9a-f]{64}", "[SHA256]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
    ]}, {
        insta::assert_snapshot!("exit_code_table", table);
    });
    // The error document in full, for one case.
    bundle_snapshot!(
        "json_error_document",
        bundle(d.path(), d.path()).args(["plan", "app", "--target", "ubuntu-99", "--json"])
    );
}
