//! `bundle recipes`, `bundle targets` and `bundle target capture`.

use bundle::config::recipe;
use bundle::config::target::{self, Target};
use bundle::Error;

use super::{out, outln, print_json};

pub fn recipes(json: bool) -> Result<(), Error> {
    let list = recipe::builtin();
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
            .collect();
        print_json(&v);
    } else {
        for (n, d) in list {
            outln!("{n:<24} {d}");
        }
    }
    Ok(())
}

pub fn targets(json: bool) -> Result<(), Error> {
    let mut rows = Vec::new();
    for n in target::builtin_names() {
        let t = Target::load(&n)?;
        rows.push(t);
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "description": t.description,
                    "platform": t.platform,
                    "glibc": t.glibc_str(),
                    "python": t.python.to_string(),
                    "preinstalled": t.preinstalled.len(),
                    "default": t.name == target::DEFAULT_TARGET,
                })
            })
            .collect();
        print_json(&v);
    } else {
        for t in rows {
            let default = if t.name == target::DEFAULT_TARGET {
                " (default)"
            } else {
                ""
            };
            outln!(
                "{:<20} {} glibc {} Python {}, {} preinstalled{default}\n{:<20} {}",
                t.name,
                t.platform,
                t.glibc_str(),
                t.python,
                t.preinstalled.len(),
                "",
                t.description
            );
        }
    }
    Ok(())
}

pub fn capture() -> Result<(), Error> {
    out(CAPTURE_SNIPPET);
    Ok(())
}

const CAPTURE_SNIPPET: &str = r#"# Run this in the sandbox (e.g. paste it into the chat as Python code).
# It prints a bundle target profile for the machine it runs on.
import os, platform, sys
try:
    from importlib import metadata as md
    dists = sorted({(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]})
except Exception:
    dists = []
libc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0").split()[-1]
arch = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(platform.machine(), platform.machine())
print('description = "captured from %s"' % platform.platform())
print('image = "ubuntu:20.04"  # the closest public image; adjust')
print('platform = "%s"' % arch)
print('glibc = "%s"' % ".".join(libc.split(".")[:2]))
print('python = "%s"' % platform.python_version())
print('upload_dir = "%s"' % os.getcwd())
print('preinstalled = [')
for n, v in dists:
    print('  "%s==%s",' % (n, v))
print(']')
"#;
