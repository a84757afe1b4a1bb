//! `install.sh`: the installer for a target without Python, in POSIX sh. It
//! does what install.py does for a bundle without wheels: check the machine,
//! check every file against its sha256, make `bin/` executable, and run the
//! checks as the user would (programs by their full paths).

use super::Manifest;
use crate::model::sh_quote;

/// The script for `manifest` (the sha256 list and checks are written in).
pub fn script(manifest: &Manifest) -> String {
    let t = &manifest.target;
    let machine = match t.platform.as_str() {
        "linux/arm64" | "linux/arm64/v8" => "aarch64",
        _ => "x86_64",
    };
    let mut sums = String::new();
    for f in &manifest.files {
        sums.push_str(&format!("{}  {}\n", f.sha256, f.path));
    }
    let mut checks = String::new();
    for c in &manifest.checks {
        // `$HERE` is expanded by the shell that runs the check.
        let command = manifest.check_command(&c.run, "$HERE");
        let command = command.replace("'$HERE/", "\"$HERE\"'/");
        checks.push_str(&format!(
            "  check {} {}\n",
            sh_quote(&command),
            sh_quote(c.expect.as_deref().unwrap_or(""))
        ));
    }
    let programs: Vec<String> = manifest.programs().keys().cloned().collect();
    format!(
        r#"#!/bin/sh
# Install this bundle offline: written by `bundle` for a machine without
# Python. POSIX sh; needs sha256sum, as coreutils and busybox have.
#
#     sh install.sh            # check the machine and the files, run the checks
#     sh install.sh --no-check # skip the checks
HERE=$(cd "$(dirname "$0")" && pwd) || exit 1
export HERE
say() {{ printf '[bundle] %s\n' "$*"; }}
say "bundle {name} for {target}"

machine=$(uname -m)
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{{print $2}}')
if [ "$machine" != "{machine}" ] || [ -z "$glibc" ] || \
   ! awk -v have="$glibc" -v want="{glibc}" 'BEGIN {{ split(have, h, "."); split(want, w, "."); exit !(h[1] > w[1] || (h[1] == w[1] && h[2] + 0 >= w[2] + 0)) }}'; then
  say "ERROR: this bundle was made for {target} ({platform}, glibc {glibc}), but this machine is $machine with glibc ${{glibc:-absent}}. Nothing was installed."
  say "hint: build it for this machine with a profile of it: bundle build {name} --target PROFILE.toml"
  exit 1
fi

if ! command -v sha256sum >/dev/null 2>&1; then
  say "ERROR: sha256sum is missing, so the files cannot be checked; nothing was installed."
  exit 1
fi
bad=$(cd "$HERE" && sha256sum -c - 2>&1 <<'BUNDLE_SUMS' | grep -v ': OK$'
{sums}BUNDLE_SUMS
)
if [ -n "$bad" ]; then
  printf '%s\n' "$bad" | while read -r line; do say "ERROR: $line (does not match what bundle wrote)"; done
  say "ERROR: files of the bundle differ from what was built; nothing was installed. Build the bundle again and upload it anew."
  exit 1
fi

if [ -d "$HERE/bin" ]; then
  chmod a+x "$HERE"/bin/* "$HERE"/libexec/* 2>/dev/null
fi
for p in {programs}; do
  say "program: $HERE/bin/$p"
done

failed=0
check() {{
  out=$(cd "$HERE" && sh -c "$1" 2>&1)
  code=$?
  if [ "$code" -eq 0 ] && case "$out" in *"$2"*) true ;; *) false ;; esac; then
    say "check ok: $1"
  else
    say "check FAILED: $1"
    say "  exit code $code; expected '$2' in output:"
    printf '%s\n' "$out"
    failed=1
  fi
}}
if [ "${{1:-}}" != "--no-check" ] && [ "${{BUNDLE_INSTALL_NO_CHECK:-}}" != "1" ]; then
  :
{checks}fi
[ "$failed" -eq 0 ] || exit 1
say "done"
"#,
        name = manifest.name,
        target = t.name,
        platform = t.platform,
        glibc = t.glibc,
        programs = if programs.is_empty() {
            String::new()
        } else {
            programs
                .iter()
                .map(|p| sh_quote(p))
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}
