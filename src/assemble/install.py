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
import time

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


def file_problem(f):
    """Why the bundle's file `f` is not the one `bundle` wrote, or None."""
    full = inside(f["path"])
    if full is None:
        return "%s (a path outside the bundle)" % f["path"]
    if not os.path.isfile(full):
        return "%s (missing)" % f["path"]
    if sha256_of(full) != f["sha256"].lower():
        return "%s (changed)" % f["path"]
    return None


def verify_files(manifest):
    """Every file must be the one `bundle` wrote: checked before anything runs
    (on several threads: hashlib lets go of the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        bad = [b for b in pool.map(file_problem, manifest["files"]) if b is not None]
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


# --- Installing wheels without pip ------------------------------------------
#
# Each wheel is unpacked as the wheel spec (the PyPA binary distribution
# format) says, into the scheme pip would choose for this user: a venv's
# site-packages, or the user site when the system's is not writable. The
# package's files come first, its .dist-info last, and RECORD and INSTALLER
# last of all: a distribution whose RECORD is there is whole, so an install
# cut short leaves no half-installed distribution that looks installed, and
# a rerun finishes it. No .pyc is compiled here (Python writes them on first
# import). Wheels are unpacked on several threads: zlib and file writes let
# go of the GIL.

SCHEME_KEYS = ("purelib", "platlib", "scripts", "data")


class Unsupported(Exception):
    """A wheel (or a machine) this installer leaves to pip."""


def writable(path):
    """Whether files can be created under `path` (it or its first existing parent)."""
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


def install_scheme():
    """Where pip would install for this user: (paths, why), or raise Unsupported."""
    import site
    import sysconfig

    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        paths = sysconfig.get_paths()
        why = "the virtual environment " + sys.prefix
    else:
        default = sysconfig.get_paths()
        if writable(default["purelib"]):
            # A writable system site (root, or a Python of the user's own):
            # distributions patch where pip puts files there; leave it to pip.
            raise Unsupported("the system site-packages is writable here")
        if not site.ENABLE_USER_SITE:
            raise Unsupported("the user site-packages is disabled")
        get = getattr(sysconfig, "get_preferred_scheme", None)
        scheme = get("user") if get else ("posix_user" if os.name == "posix" else "nt_user")
        paths = sysconfig.get_paths(scheme)
        why = "the user site " + paths["purelib"]
    out = {k: paths[k] for k in SCHEME_KEYS}
    for k, v in out.items():
        if not writable(v):
            raise Unsupported("%s (%s) is not writable" % (k, v))
    return out, why


def norm_name(name):
    """PEP 503: runs of -, _ and . are one -, lower case."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def parse_kv(text):
    """`Key: value` lines (WHEEL, METADATA headers) as a dict of lists."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            break
        k, sep, v = line.partition(":")
        if sep:
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def safe_parts(name):
    """The path's parts, refusing one that could leave its folder."""
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise ValueError("unsafe path in wheel: %r" % name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError("unsafe path in wheel: %r" % name)
    return parts


def record_hash(data):
    import base64

    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def script_launcher(reference):
    """A console-script launcher, as pip writes them, for `module:attr`."""
    module, _, attr = reference.partition(":")
    return (
        "#!%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom %s import %s\n"
        "if __name__ == \"__main__\":\n"
        "    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n"
        "    sys.exit(%s())\n" % (sys.executable, module, attr.split(".")[0], attr)
    )


def entry_point_scripts(text):
    """console_scripts and gui_scripts of an entry_points.txt: {name: 'mod:attr'}."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section in ("console_scripts", "gui_scripts") and "=" in line:
            name, _, ref = line.partition("=")
            ref = ref.split("[")[0].strip()
            if name.strip() and ":" in ref:
                out[name.strip()] = ref
    return out


def installed_dist_info(site_dir, name):
    """The .dist-info folders of project `name` in `site_dir`."""
    want = norm_name(name)
    try:
        entries = os.listdir(site_dir)
    except OSError:
        return []
    return [e for e in entries
            if e.endswith(".dist-info") and norm_name(e[: -len(".dist-info")].rsplit("-", 1)[0]) == want]


def record_paths(site_dir, dist_info):
    import csv

    try:
        with open(os.path.join(site_dir, dist_info, "RECORD"), newline="", encoding="utf-8") as f:
            return [os.path.normpath(os.path.join(site_dir, row[0])) for row in csv.reader(f) if row]
    except (OSError, ValueError):
        return None


def is_installed(site_dir, dist_info):
    """A distribution is installed when its RECORD is there and names only files that are."""
    paths = record_paths(site_dir, dist_info)
    return paths is not None and all(os.path.exists(p) for p in paths)


def uninstall(site_dir, dist_info):
    """Remove another version's files (as pip does before installing a new one)."""
    import shutil

    for p in record_paths(site_dir, dist_info) or []:
        if os.path.isfile(p) or os.path.islink(p):
            try:
                os.unlink(p)
            except OSError:
                pass
    shutil.rmtree(os.path.join(site_dir, dist_info), ignore_errors=True)


def install_wheel(path, scheme, entry):
    """Install one wheel; returns (what happened, seconds). Raises Unsupported
    for a layout left to pip, and ValueError for a broken wheel."""
    import csv
    import io
    import zipfile

    started = time.time()
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        dist_infos = sorted({n.split("/")[0] for n in names
                             if n.split("/")[0].endswith(".dist-info") and n.count("/") == 1})
        if len(dist_infos) != 1:
            raise Unsupported("%d .dist-info folders" % len(dist_infos))
        dist_info = dist_infos[0]
        wheel = parse_kv(z.read(dist_info + "/WHEEL").decode("utf-8"))
        version = (wheel.get("wheel-version") or ["?"])[0]
        if version.split(".")[0] != "1":
            raise Unsupported("Wheel-Version %s" % version)
        purelib = (wheel.get("root-is-purelib") or ["true"])[0].lower() == "true"
        root = scheme["purelib"] if purelib else scheme["platlib"]
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        if dist_info in installed_dist_info(root, entry["package"]) and is_installed(root, dist_info):
            return "already installed", time.time() - started
        for other in installed_dist_info(root, entry["package"]):
            uninstall(root, other)
        original = {}
        if dist_info + "/RECORD" in names:
            for row in csv.reader(io.StringIO(z.read(dist_info + "/RECORD").decode("utf-8"))):
                if len(row) >= 3:
                    original[row[0]] = (row[1], row[2])
        plan = []
        for info in infos:
            if info.filename.endswith("/"):
                continue
            parts = safe_parts(info.filename)
            if parts[0] == data_dir:
                if len(parts) < 3 or parts[1] not in SCHEME_KEYS:
                    raise Unsupported("%s/%s" % (data_dir, parts[1] if len(parts) > 1 else ""))
                dest = os.path.join(scheme[parts[1]], *parts[2:])
                kind = parts[1]
            else:
                dest = os.path.join(root, *parts)
                kind = "dist-info" if parts[0] == dist_info else "package"
            plan.append((info, dest, kind))
        # The package first, its .dist-info last (RECORD and INSTALLER are
        # written after everything else).
        plan.sort(key=lambda p: p[2] == "dist-info")
        made = set()
        record = []
        for info, dest, kind in plan:
            if info.filename in (dist_info + "/RECORD", dist_info + "/INSTALLER"):
                continue
            folder = os.path.dirname(dest)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            mode = (info.external_attr >> 16) & 0o777
            if kind == "scripts":
                data = z.read(info)
                if data.startswith(b"#!python"):
                    # The spec's placeholder: this interpreter.
                    _, nl, rest = data.partition(b"\n")
                    data = ("#!" + sys.executable).encode() + nl + rest
                with open(dest, "wb") as out:
                    out.write(data)
                os.chmod(dest, 0o755)
                record.append((dest, record_hash(data), str(len(data))))
                continue
            with z.open(info) as src, open(dest, "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            if mode & 0o111:
                os.chmod(dest, 0o755)
            h, size = original.get(info.filename, ("", ""))
            record.append((dest, h, size))
        # Console scripts, as pip writes them.
        eps = dist_info + "/entry_points.txt"
        if eps in names:
            for name, ref in sorted(entry_point_scripts(z.read(eps).decode("utf-8")).items()):
                if "/" in name or name.startswith("."):
                    continue
                dest = os.path.join(scheme["scripts"], name)
                data = script_launcher(ref).encode("utf-8")
                os.makedirs(scheme["scripts"], exist_ok=True)
                with open(dest, "wb") as out:
                    out.write(data)
                os.chmod(dest, 0o755)
                record.append((dest, record_hash(data), str(len(data))))
        info_dir = os.path.join(root, dist_info)
        os.makedirs(info_dir, exist_ok=True)
        installer = os.path.join(info_dir, "INSTALLER")
        with open(installer, "w") as out:
            out.write("bundle\n")
        record.append((installer, record_hash(b"bundle\n"), "7"))
        record_path = os.path.join(info_dir, "RECORD")
        lines = io.StringIO()
        writer = csv.writer(lines, lineterminator="\n")
        for dest, h, size in record:
            writer.writerow((os.path.relpath(dest, root).replace(os.sep, "/"), h, size))
        writer.writerow((os.path.relpath(record_path, root).replace(os.sep, "/"), "", ""))
        with open(record_path + ".tmp", "w", encoding="utf-8") as out:
            out.write(lines.getvalue())
        os.replace(record_path + ".tmp", record_path)
    return "installed", time.time() - started


def install_with_pip(wheels):
    """pip, offline, each wheel checked against its sha256 (--require-hashes)."""
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
    try:
        result = subprocess.run(cmd)
    finally:
        os.unlink(reqs)
    if result.returncode != 0:
        say("ERROR: pip failed with exit code %d" % result.returncode)
        return False
    return True


def installed_projects():
    """Normalized names of the distributions this Python sees (.dist-info and
    .egg-info folders on sys.path)."""
    names = set()
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            listing = os.listdir(entry)
        except OSError:
            continue
        for d in listing:
            for ext in (".dist-info", ".egg-info"):
                if d.endswith(ext):
                    names.add(norm_name(d[: -len(ext)].split("-")[0]))
    return names


def check_requirements(manifest):
    """Every project a wheel requires here must come with the bundle or be
    installed already: checked before anything is installed."""
    wheels = [f for f in manifest["files"] if f["kind"] == "wheel"]
    carried = set(norm_name(f.get("package", "")) for f in wheels)
    needs = [(f, r) for f in wheels for r in f.get("requires", []) if norm_name(r) not in carried]
    if not needs:
        return True
    present = installed_projects()
    missing = [(f, r) for f, r in needs if norm_name(r) not in present]
    for f, r in missing:
        say("ERROR: %s %s requires %s, which the bundle does not carry and %s does not have"
            % (f["package"], f["version"], r, sys.executable))
    if missing:
        say("ERROR: nothing was installed. Build the bundle again for this machine "
            "(`bundle target capture` prints its profile; the preinstalled packages it lists are left out of bundles).")
    return not missing


def install_wheels(manifest):
    wheels = [f for f in manifest["files"] if f["kind"] == "wheel"]
    if not wheels:
        say("no wheels to install")
        return True
    started = time.time()
    total = sum(f.get("size", 0) for f in wheels)
    rest = list(wheels)
    force_pip = os.environ.get("BUNDLE_INSTALL_WITH_PIP") == "1"
    try:
        if force_pip:
            raise Unsupported("BUNDLE_INSTALL_WITH_PIP=1")
        scheme, where = install_scheme()
    except Unsupported as e:
        scheme, where = None, None
        say("installing with pip: %s" % e)
    if scheme is not None:
        from concurrent.futures import ThreadPoolExecutor

        say("installing %d wheel(s), %.1f MB, into %s" % (len(wheels), total / 1e6, where))
        # The largest first, so that the threads finish together.
        order = sorted(wheels, key=lambda f: -f.get("size", 0))
        workers = max(1, min(4, os.cpu_count() or 1))
        rest = []

        def one(f):
            try:
                return f, install_wheel(os.path.join(HERE, f["path"]), scheme, f), None
            except Unsupported as e:
                return f, None, "a layout this installer leaves to pip (%s)" % e
            except Exception as e:  # a broken wheel, a full disk: say which
                return f, None, "%s: %s" % (type(e).__name__, e)

        failed = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f, done, problem in pool.map(one, order):
                label = "%s %s" % (f["package"], f["version"])
                if done is not None:
                    say("  %s: %s (%.1f s)" % (label, done[0], done[1]))
                elif problem.startswith("a layout"):
                    say("  %s: %s" % (label, problem))
                    rest.append(f)
                else:
                    say("ERROR: %s could not be installed: %s" % (label, problem))
                    failed.append(f)
        if failed:
            say("ERROR: %d wheel(s) failed; run this script again to finish (what is installed stays)" % len(failed))
            return False
    if rest:
        if not have_pip():
            say(
                "ERROR: pip is not available for %s, so %d wheel(s) in %s cannot be installed. "
                "Install pip for this Python (e.g. the python3-pip package), or run this script "
                "with a Python that has pip." % (sys.executable, len(rest), os.path.join(HERE, "wheels"))
            )
            return False
        say("installing %d wheel(s) with pip, offline" % len(rest))
        if not install_with_pip(rest):
            return False
    say("installed %d wheel(s) in %.1f s" % (len(wheels), time.time() - started))
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
    if not check_requirements(manifest):
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
