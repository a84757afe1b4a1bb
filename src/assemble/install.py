#!/usr/bin/env python3
"""Install this bundle offline. Written by `bundle`; needs only the standard library.

Run it with the Python that should receive the packages:

    python3 install.py            # install wheels, write bin/ launchers, run checks
    python3 install.py --no-check # skip the checks
"""
import hashlib
import json
import os
import platform
import stat
import subprocess
import sys
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


def programs(manifest):
    """bin/ once installed: {name: None for a binary, or (package, "module:attr")}.
    Binaries keep their names; then each wheel's scripts, in file order."""
    out = {}
    for f in manifest["files"]:
        if f["kind"] == "binary" and f["path"].startswith("bin/"):
            out[f["path"][len("bin/"):]] = None
    for f in manifest["files"]:
        if f["kind"] == "wheel":
            for name, ref in sorted(f.get("scripts", {}).items()):
                out.setdefault(name, (f.get("package", "?"), ref))
    return out


def launcher(reference):
    """A console-script launcher that runs `module:attr` with this Python."""
    module, _, attr = reference.partition(":")
    head = attr.split(".")[0]
    exe = sys.executable
    if len(exe) <= 127 and not any(c.isspace() for c in exe):
        shebang = "#!%s\n" % exe
    else:
        # Too long or spaced for a #! line: sh runs the same file with Python.
        shebang = "#!/bin/sh\n'''exec' \"%s\" \"$0\" \"$@\"\n' '''\n" % exe.replace('"', '\\"')
    return (
        shebang
        + "# Written by bundle's install.py: runs %s\n" % reference
        + "import sys\n"
        + "from %s import %s\n" % (module, head)
        + "if __name__ == \"__main__\":\n"
        + "    sys.argv[0] = sys.argv[0].rsplit(\"/\", 1)[-1]\n"
        + "    sys.exit(%s())\n" % attr
    )


def write_launchers(manifest):
    """bin/<script> for each console script, pointing at this interpreter."""
    scripts = [(n, p) for n, p in sorted(programs(manifest).items()) if p is not None]
    if not scripts:
        return True
    bin_dir = os.path.join(HERE, "bin")
    try:
        if not os.path.isdir(bin_dir):
            os.makedirs(bin_dir)
        for name, (_, ref) in scripts:
            path = os.path.join(bin_dir, name)
            with open(path, "w", encoding="utf-8") as out:
                out.write(launcher(ref))
            os.chmod(path, 0o755)
    except OSError as e:
        say("ERROR: cannot write the launchers in %s: %s" % (bin_dir, e))
        return False
    return True


def check_command(manifest, run):
    """The check as the user runs it: a first word naming one of the bundle's
    programs becomes its full path; PATH is the machine's own."""
    stripped = run.lstrip()
    end = len(stripped)
    for i, c in enumerate(stripped):
        if c.isspace() or c in ";|&":
            end = i
            break
    word, rest = stripped[:end], stripped[end:]
    if word in programs(manifest):
        path = os.path.join(HERE, "bin", word)
        return "'%s'%s" % (path.replace("'", "'\\''"), rest)
    return run


def run_checks(manifest):
    checks = manifest.get("checks", [])
    if not checks:
        return True
    ok = True
    for c in checks:
        try:
            # The user's own environment: nothing is added to PATH, and no
            # LD_LIBRARY_PATH (programs find the bundle's lib/ by themselves).
            r = subprocess.run(
                check_command(manifest, c["run"]), shell=True, cwd=HERE, timeout=60,
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
    if not write_launchers(manifest):
        return 1
    for name in sorted(programs(manifest)):
        say("program: %s" % os.path.join(HERE, "bin", name))
    skip = "--no-check" in sys.argv[1:] or os.environ.get("BUNDLE_INSTALL_NO_CHECK") == "1"
    if not skip and not run_checks(manifest):
        return 1
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
