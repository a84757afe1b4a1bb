//! The JSON Schemas in `schema/` describe what the commands really print:
//! real outputs of plan, build (with and without errors, one target and
//! several) and the manifest are validated against them.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

const BASE: &str = "https://bundle.local/schema/";

/// Validate `instance` against `schema/<name>`, with the other schemas
/// loaded for their references.
pub fn validate(name: &str, instance: &Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let mut compiler = boon::Compiler::new();
    for file in [
        "manifest.schema.json",
        "plan.schema.json",
        "build-result.schema.json",
        "verify-report.schema.json",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        compiler
            .add_resource(&format!("{BASE}{file}"), value)
            .unwrap();
    }
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile(&format!("{BASE}{name}"), &mut schemas)
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
    if let Err(e) = schemas.validate(instance, index) {
        panic!("{name} rejects the output: {e:#}\n{instance:#}");
    }
}

/// A schema rejects what it must (so that the passes above mean something).
fn rejects(name: &str, instance: &Value) -> bool {
    std::panic::catch_unwind(|| validate(name, instance)).is_err()
}

#[test]
fn real_outputs_match_the_published_schemas() {
    let (server, cwd, cache) = serve(&[
        WheelSpec::new("app", "1.0").requires(&["lib"]).file(
            "app-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\napp = app:main\n".to_vec(),
        ),
        WheelSpec::new("lib", "2.1"),
    ]);
    let index = server.index_url();
    let run = |args: &[&str]| -> Value {
        let out = bundle(cwd.path(), cache.path())
            .args(args)
            .args(["--json", "--index-url", &index])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    };
    let plan = run(&["plan", "app"]);
    validate("plan.schema.json", &plan);
    let build = run(&["build", "app"]);
    validate("build-result.schema.json", &build);
    let manifest: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("dist/app/manifest.json"))).unwrap();
    validate("manifest.schema.json", &manifest);
    // The lock file is a Plan.
    bundle(cwd.path(), cache.path())
        .args(["lock", "app", "--index-url", &index])
        .assert()
        .success();
    let lock: Value =
        serde_json::from_str(&read_to_string(&cwd.path().join("app.lock.json"))).unwrap();
    validate("plan.schema.json", &lock);
    // Several targets: a list; a failure: the error document.
    let matrix = run(&[
        "build",
        "app",
        "--target",
        "ubuntu-20.04",
        "--target",
        "chatgpt-2023",
    ]);
    validate("build-result.schema.json", &matrix);
    let failed = run(&["build", "nosuchpackage"]);
    assert!(failed.get("error").is_some(), "{failed}");
    validate("build-result.schema.json", &failed);
    // And they are not vacuous.
    let mut bad = manifest.clone();
    bad["files"][0]["sha256"] = Value::String("../../etc/passwd".into());
    assert!(rejects("manifest.schema.json", &bad));
    let mut bad = build.clone();
    bad["build"]["uploads"] = serde_json::json!([{"path": "x.zip"}]);
    assert!(rejects("build-result.schema.json", &bad));
    assert!(rejects(
        "plan.schema.json",
        &serde_json::json!({"schema": 2})
    ));
}
