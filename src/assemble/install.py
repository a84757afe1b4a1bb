#!/usr/bin/env python3
"""Install this bundle offline. Written by `bundle`; needs only the standard library.

Run it with the Python that should receive the packages:

    python3 install.py            # install wheels, make bin/ executable, run checks
    python3 install.py --no-check # skip the checks
"""
import hashlib
import json
import os
import platform
import stat
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def say(msg):
    print("[bundle] " + msg, flush=True)


def load_manifest():
    with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inside(rel):
    """The file's full path, or None when the path would leave the bundle."""
    full = os.path.realpath(os.path.join(HERE, rel))
    root = os.path.realpath(HERE)
    return full if full.startswith(root + os.sep) else None


def verify_files(manifest):
    """Every file must be the one `bundle` wrote: checked before anything runs."""
    bad = []
    for f in manifest["files"]:
        full = inside(f["path"])
        if full is None:
            bad.append("%s (a path outside the bundle)" % f["path"])
        elif not os.path.isfile(full):
            bad.append("%s (missing)" % f["path"])
        elif sha256_of(full) != f["sha256"].lower():
            bad.append("%s (changed)" % f["path"])
    for b in bad:
        say("ERROR: %s does not match manifest.json" % b)
    if bad:
        say("ERROR: %d file(s) of the bundle differ from what was built; nothing was installed. "
            "Build the bundle again and upload it anew." % len(bad))
    return not bad


def version_key(v):
    out = []
    for part in v.split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    return out


def this_machine():
    """(implementation, major.minor, machine, glibc) of the running Python."""
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    glibc = libc.split()[-1] if libc and libc.startswith("glibc") else None
    return (
        sys.implementation.name,
        "%d.%d" % sys.version_info[:2],
        platform.machine(),
        glibc,
    )


def check_machine(manifest):
    """The bundle runs here only on the machine it was made for."""
    target = manifest["target"]
    impl, version, machine, glibc = this_machine()
    wanted_machine = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}.get(
        target["platform"], target["platform"])
    wanted_version = ".".join(target["python"].split(".")[:2])
    wheels = any(f["kind"] == "wheel" for f in manifest["files"])
    problems = []
    if machine != wanted_machine:
        problems.append("the machine is %s, not %s" % (machine, wanted_machine))
    if glibc is None or version_key(glibc) < version_key(target["glibc"]):
        problems.append("glibc is %s, older than %s" % (glibc or "absent", target["glibc"]))
    if wheels and impl != "cpython":
        problems.append("Python is %s, not CPython" % impl)
    if wheels and version != wanted_version:
        problems.append("Python is %s, not %s" % (version, wanted_version))
    if not problems:
        return True
    say("ERROR: this bundle was made for %s (%s, glibc %s, CPython %s), "
        "but this machine is %s %s on %s with glibc %s: %s. Nothing was installed."
        % (target["name"], target["platform"], target["glibc"], wanted_version,
           impl, version, machine, glibc or "absent", "; ".join(problems)))
    say("hint: build it for this machine: run the snippet of `bundle target capture` here, "
        "save what it prints as a profile, then `bundle build %s --target PROFILE.toml`"
        % manifest["name"])
    return False


def have_pip():
    try:
        import importlib.util

        return importlib.util.find_spec("pip") is not None
    except Exception:
        return False


def install_wheels(manifest):
    wheels = [f for f in manifest["files"] if f["kind"] == "wheel"]
    if not wheels:
        say("no wheels to install")
        return True
    if not have_pip():
        say(
            "ERROR: pip is not available for %s, so the %d wheel(s) in %s cannot be installed. "
            "Install pip for this Python (e.g. the python3-pip package), or run this script "
            "with a Python that has pip." % (sys.executable, len(wheels), os.path.join(HERE, "wheels"))
        )
        return False
    # pip checks each wheel against its sha256 too (--require-hashes).
    lines = []
    for f in wheels:
        lines.append("%s==%s --hash=sha256:%s" % (f["package"], f["version"], f["sha256"].lower()))
    fd, reqs = tempfile.mkstemp(prefix="bundle-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--no-index", "--find-links", os.path.join(HERE, "wheels"),
        "--require-hashes", "-r", reqs,
        "--disable-pip-version-check", "--no-warn-script-location",
    ]
    say("installing %d wheel(s) offline" % len(wheels))
    try:
        result = subprocess.run(cmd)
    finally:
        os.unlink(reqs)
    if result.returncode != 0:
        say("ERROR: pip failed with exit code %d" % result.returncode)
        return False
    return True


def make_executable(manifest):
    for f in manifest["files"]:
        if f["kind"] == "binary":
            p = os.path.join(HERE, f["path"])
            mode = os.stat(p).st_mode
            want = mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            if want == mode:
                continue
            try:
                os.chmod(p, want)
            except OSError as e:
                say("WARNING: cannot make %s executable: %s" % (f["path"], e))


def check_env():
    env = dict(os.environ)
    dirs = [os.path.join(HERE, "bin")]
    for scheme in (None, os.name + "_user"):
        try:
            d = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if d:
            dirs.append(d)
    dirs.append(os.path.expanduser("~/.local/bin"))
    env["PATH"] = os.pathsep.join(dirs + [env.get("PATH", "")])
    # No LD_LIBRARY_PATH: programs find the bundle's lib/ by themselves
    # (RUNPATH or a wrapper), as they must when the user runs them.
    return env


def run_checks(manifest):
    checks = manifest.get("checks", [])
    if not checks:
        return True
    env = check_env()
    ok = True
    for c in checks:
        try:
            r = subprocess.run(
                c["run"], shell=True, env=env, cwd=HERE, timeout=60,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            )
            out, code = r.stdout, r.returncode
        except subprocess.TimeoutExpired:
            out, code = "timed out after 60 s", -1
        expect = c.get("expect")
        passed = code == 0 and (expect is None or expect in out)
        say("check %s: %s" % ("ok" if passed else "FAILED", c["run"]))
        if not passed:
            ok = False
            say("  exit code %d; expected %r in output:\n%s" % (code, expect, out.strip()))
    return ok


def main():
    manifest = load_manifest()
    say("bundle %s for %s" % (manifest["name"], manifest["target"]["name"]))
    if not check_machine(manifest):
        return 1
    if not verify_files(manifest):
        return 1
    if not install_wheels(manifest):
        return 1
    make_executable(manifest)
    if os.path.isdir(os.path.join(HERE, "bin")):
        say("programs are in %s" % os.path.join(HERE, "bin"))
    skip = "--no-check" in sys.argv[1:] or os.environ.get("BUNDLE_INSTALL_NO_CHECK") == "1"
    if not skip and not run_checks(manifest):
        return 1
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
