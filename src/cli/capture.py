# Run this in the sandbox (paste it into the chat as Python code). It prints
# a bundle target profile of the machine it runs on; save the output as
# NAME.toml and pass `--target NAME.toml` to bundle.
import glob, json, os, platform, re, subprocess, sys

def first_line(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=20).stdout
    except Exception:
        return ""

def os_release():
    out = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.strip().partition("=")
                    if k:
                        out[k] = v.strip().strip('"')
            break
        except OSError:
            pass
    return out

def dpkg_installed():
    have, name = set(), None
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Package: "):
                    name = line[9:].strip()
                elif line.startswith("Status: ") and line.split()[-1] == "installed" and name:
                    have.add(name.split(":")[0])
    except OSError:
        pass
    return have

def sonames():
    text = ""
    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        text = first_line([ldconfig, "-p"])
        if text:
            break
    names, paths = set(), {}
    for line in text.splitlines()[1:]:
        m = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
        if m and ("x86-64" in m.group(2) or "AArch64" in m.group(2) or "64bit" in m.group(2)):
            names.add(m.group(1))
            paths.setdefault(m.group(1), m.group(3))
    return sorted(names), paths

def glibcxx(paths):
    path = paths.get("libstdc++.so.6")
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    found = set(re.findall(rb"GLIBCXX_(\d+\.\d+(?:\.\d+)?)\x00", data))
    if not found:
        return None
    return max((v.decode() for v in found), key=lambda v: [int(x) for x in v.split(".")])

def have_pip():
    try:
        import importlib.util
        return importlib.util.find_spec("pip") is not None
    except Exception:
        return False

try:
    from importlib import metadata as md
    dists = sorted({(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]},
                   key=lambda nv: nv[0].lower())
except Exception:
    dists = []
try:
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name
except Exception:
    user = os.environ.get("USER", "sandbox")
libc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0").split()[-1]
arch = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(platform.machine(), platform.machine())
rel = os_release()
image = "%s:%s" % (rel.get("ID", "ubuntu"), rel.get("VERSION_ID", "20.04"))
uploads = [d for d in ("/mnt/data", "/mnt/user-data", "/mnt/user-data/uploads", "/mnt/uploads")
           if os.path.isdir(d)]
dpkg = dpkg_installed()
pip = have_pip()
system = [p for p in ("python3", "python3-pip", "python3-venv") if p in dpkg]
notes = []
distro_python = os.path.realpath(sys.executable).startswith("/usr/bin/python3")
if "python3" not in system:
    system.insert(0, "python3")
if not distro_python:
    notes.append("this Python (%s) is not the distribution's: the image's python3 stands in for it;"
                 " set `image` to one whose python3 is %s" % (sys.executable, platform.python_version()))
if pip and "python3-pip" not in system:
    system.append("python3-pip")
    notes.append("pip is importable here but not from apt: python3-pip stands in for it")
libraries, paths = sonames()
cxx = glibcxx(paths)

q = json.dumps
print('description = %s' % q("captured from %s (%s)" % (rel.get("PRETTY_NAME", platform.platform()), platform.platform())))
print('image = %s  # from /etc/os-release: %s' % (q(image), rel.get("PRETTY_NAME", "unknown")))
print('platform = %s' % q(arch))
print('glibc = %s' % q(".".join(libc.split(".")[:2])))
print('python = %s  # %s, pip %s' % (q(platform.python_version()), sys.executable, "present" if pip else "absent"))
for n in notes:
    print("# " + n)
print('system_packages = %s' % q(system))
if uploads:
    print('upload_dir = %s' % q(uploads[0]))
else:
    print('upload_dir = %s  # no known upload folder exists; this is the working directory' % q(os.getcwd()))
print('user = %s' % q(user))
if cxx:
    print('glibcxx = %s' % q(cxx))
print('libraries = [')
for s in libraries:
    print('  %s,' % q(s))
print(']')
print('preinstalled = [')
for n, v in dists:
    print('  %s,' % q("%s==%s" % (n, v)))
print(']')
