//! `bundle target capture`: a Python snippet that prints the profile of the
//! sandbox it runs in.

use bundle::Error;

use super::out;

pub fn run() -> Result<(), Error> {
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
