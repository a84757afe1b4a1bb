//! PROMPT.txt: what to paste into the chat after uploading. Its Python code
//! checks and unpacks the uploads (joining volumes first) and runs
//! install.py; its text names every program by its full path.

use super::uploads::Uploads;
use super::{FileKind, Manifest};
use crate::config::target::Target;
use crate::model::manifest::Program;
use crate::model::sh_quote;

/// A Python string literal for `s`.
fn py(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The Python code that checks the uploaded archive, whole, before anything
/// is unpacked (each volume named when one is not the file written), then
/// unpacks it into the upload folder, reading the volumes in place as one
/// file: no joined copy is written. Checks are explicit (`raise
/// SystemExit`), never `assert`, which `python -O` removes.
fn unpack_code(uploads: &Uploads, up: &str, bundle_name: &str) -> String {
    let Some(archive) = &uploads.archive else {
        return String::new();
    };
    let name = &archive.path;
    let mut code = format!(
        "import hashlib, io, os, time\nup = {}\nstarted = time.time()\nparts = [\n",
        py(up)
    );
    let parts: Vec<(&str, Option<&str>)> = if uploads.split() {
        uploads
            .uploads
            .iter()
            .map(|v| (v.path.as_str(), Some(v.sha256.as_str())))
            .collect()
    } else {
        vec![(name.as_str(), None)]
    };
    for (path, sha) in &parts {
        code.push_str(&format!(
            "    ({}, {}),\n",
            py(path),
            sha.map_or("None".to_string(), |s| format!("\"{s}\""))
        ));
    }
    code.push_str(&format!(
        "]\n\
keep_uploads = False  # True keeps the uploaded files once the bundle is installed
unpacked = os.path.join(up, {name_dir}, \"manifest.json\")
if not all(os.path.exists(os.path.join(up, p)) for p, _ in parts) and os.path.exists(unpacked):
    print(\"[bundle] the uploads were removed after an earlier install: installing from\", os.path.dirname(unpacked), flush=True)
    parts = []
def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(os.path.join(up, p), \"rb\") as f:
            for chunk in iter(lambda: f.read(1 << 20), b\"\"):
                h.update(chunk)
    return h.hexdigest()
if parts and sha256_of([p for p, _ in parts]) != \"{sha}\":
    bad = [p for p, s in parts if s is not None and sha256_of([p]) != s] or [{name_py}]
    raise SystemExit(\"not unpacked: \" + \", \".join(bad) + \" is not the file bundle wrote: upload it again\")
class Joined(io.RawIOBase):
    \"\"\"The volumes read in place as one file.\"\"\"
    def __init__(self, paths):
        self.files = [open(os.path.join(up, p), \"rb\") for p in paths]
        self.starts, self.size = [], 0
        for f in self.files:
            self.starts.append(self.size)
            self.size += os.fstat(f.fileno()).st_size
        self.pos = 0
    def readable(self):
        return True
    def seekable(self):
        return True
    def tell(self):
        return self.pos
    def seek(self, offset, whence=0):
        self.pos = max(0, offset + (0, self.pos, self.size)[whence])
        return self.pos
    def readinto(self, b):
        i = len(self.starts) - 1
        while i > 0 and self.starts[i] > self.pos:
            i -= 1
        if self.pos >= self.size:
            return 0
        f = self.files[i]
        f.seek(self.pos - self.starts[i])
        n = f.readinto(memoryview(b)[: (self.starts[i + 1] if i + 1 < len(self.starts) else self.size) - self.pos])
        self.pos += n
        return n
    def close(self):
        for f in self.files:
            f.close()
        super().close()
if parts:
    with io.BufferedReader(Joined([p for p, _ in parts]), 1 << 20) as joined:
    {open}    print(\"[bundle] checked and unpacked {what} ({{:.1f}} MB) in {{:.1f}} s\".format({size} / 1e6, time.time() - started), flush=True)
",
        sha = archive.sha256,
        name_py = py(name),
        size = archive.size,
        what = if uploads.split() {
            format!("the {} volumes of {name}", uploads.uploads.len())
        } else {
            name.clone()
        },
        name_dir = py(bundle_name),
        open = if name.ends_with(".zip") {
            "    import zipfile\n        zipfile.ZipFile(joined).extractall(up)\n"
        } else {
            "    import tarfile\n        tarfile.open(fileobj=joined, mode=\"r:gz\").extractall(up)\n"
        },
    ));
    code
}

/// After a successful install, the uploaded archive (or volumes) is no
/// longer needed: the bundle is unpacked beside it. It is removed, saying
/// so, unless `keep_uploads` is set at the top of the code. The code
/// stands alone (it names the files again), as `verify` runs it apart from
/// the unpacking.
fn cleanup_code(uploads: &Uploads, up: &str) -> String {
    if uploads.archive.is_none() {
        return String::new();
    }
    let names: Vec<String> = uploads.uploads.iter().map(|u| py(&u.path)).collect();
    format!(
        "import os\n\
uploaded = [os.path.join({up}, p) for p in [{names}]]\n\
if not globals().get(\"keep_uploads\") and all(os.path.exists(p) for p in uploaded):\n    \
gone = sum(os.path.getsize(p) for p in uploaded)\n    \
for p in uploaded:\n        os.remove(p)\n    \
print(\"[bundle] removed the uploaded\", \", \".join(os.path.basename(p) for p in uploaded), \"(%.1f MB): the bundle is installed from its unpacked folder (set keep_uploads = True to keep them)\" % (gone / 1e6), flush=True)\n",
        up = py(up),
        names = names.join(", ")
    )
}

/// The shell code (for a target without Python) that checks the uploaded
/// archive (joining its volumes first) and unpacks it.
fn unpack_code_sh(uploads: &Uploads, up: &str) -> String {
    let Some(archive) = &uploads.archive else {
        return String::new();
    };
    let name = sh_quote(&archive.path);
    let mut code = format!("set -e\ncd {}\n", sh_quote(up));
    if uploads.split() {
        code.push_str("sha256sum -c - <<'EOF'\n");
        for v in &uploads.uploads {
            code.push_str(&format!("{}  {}\n", v.sha256, v.path));
        }
        let names: Vec<String> = uploads.uploads.iter().map(|u| sh_quote(&u.path)).collect();
        code.push_str(&format!("EOF\ncat {} > {name}\n", names.join(" ")));
    }
    code.push_str(&format!(
        "echo '{}  {}' | sha256sum -c -\n",
        archive.sha256, archive.path
    ));
    if archive.path.ends_with(".zip") {
        code.push_str(&format!("unzip -q -o {name}\n"));
    } else {
        code.push_str(&format!("tar -xzf {name}\n"));
    }
    code
}

/// What was uploaded, in words.
fn uploaded_words(manifest: &Manifest, uploads: &Uploads) -> String {
    match &uploads.archive {
        Some(a) if uploads.split() => {
            let names: Vec<&str> = uploads.uploads.iter().map(|u| u.path.as_str()).collect();
            format!(
                "the {} volumes of {} ({})",
                names.len(),
                a.path,
                names.join(", ")
            )
        }
        Some(a) => a.path.clone(),
        None => format!("the folder {}/", manifest.name),
    }
}

/// The text to paste into the chat after uploading `uploads`.
pub fn prompt_text(manifest: &Manifest, target: &Target, uploads: &Uploads) -> String {
    let name = &manifest.name;
    let up = target.upload_dir.trim_end_matches('/');
    if manifest.files.is_empty() {
        let have: Vec<String> = manifest
            .excluded
            .iter()
            .map(|e| format!("{} {}", e.package, e.version))
            .collect();
        return format!(
            "Everything this task needs is already installed in this sandbox ({}): nothing was uploaded and nothing needs installing. Please use it directly.\n",
            if have.is_empty() { "nothing was asked for".into() } else { have.join(", ") }
        );
    }
    let home = format!("{up}/{name}");
    let wheels: Vec<String> = manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wheel)
        .map(|w| {
            format!(
                "{} {}",
                w.package.as_deref().unwrap_or("?"),
                w.version.as_deref().unwrap_or("?")
            )
        })
        .collect();
    let programs = manifest.programs();
    let mut what = Vec::new();
    if !wheels.is_empty() {
        what.push(format!("Python wheels ({})", wheels.join(", ")));
    }
    if let Some(npm) = npm_words(manifest) {
        what.push(npm);
    }
    if !programs.is_empty() {
        let names: Vec<&str> = programs.keys().map(String::as_str).collect();
        what.push(format!("programs ({})", names.join(", ")));
    }
    let what = if what.is_empty() {
        "nothing to install: everything is already on this machine".to_string()
    } else {
        what.join(" and ")
    };
    let mut after = Vec::new();
    if !programs.is_empty() {
        let list: Vec<String> = programs
            .iter()
            .map(|(p, kind)| match kind {
                Program::Binary => format!("- {home}/bin/{p}"),
                Program::Script { package, .. } => {
                    format!("- {home}/bin/{p} (from {package})")
                }
            })
            .collect();
        after.push(format!(
            "After that, run the programs by these full paths (they are not on PATH):\n{}",
            list.join("\n")
        ));
    }
    let modules: Vec<String> = requested_modules(manifest);
    if !wheels.is_empty() {
        let example = match modules.first() {
            Some(m) => format!(", e.g. `import {m}`"),
            None => String::new(),
        };
        after.push(format!(
            "The Python packages are installed for the Python that ran this code (sys.executable): import them there{example}."
        ));
    }
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("\n{}\n", after.join("\n\n"))
    };
    if manifest.target.python == "none" {
        return format!(
            "I uploaded {uploaded} to {up}. It is an offline bundle made for this machine ({platform}, glibc {glibc}): {what}. No internet is needed. Please run these shell commands to install it, then show me their output:\n\n```sh\n{unpack}sh {install}\n```\n{after}",
            uploaded = uploaded_words(manifest, uploads),
            unpack = unpack_code_sh(uploads, up),
            install = sh_quote(&format!("{home}/install.sh")),
            platform = manifest.target.platform,
            glibc = manifest.target.glibc,
        );
    }
    format!(
        "I uploaded {uploaded} to {up}. It is an offline bundle made for this sandbox ({platform}, glibc {glibc}, Python {python}): {what}. No internet is needed. Please run this Python code to install it, then show me its output:\n\n```python\n{unpack}import subprocess, sys\nsubprocess.run([sys.executable, {install}], check=True)\n{cleanup}```\n{after}",
        uploaded = uploaded_words(manifest, uploads),
        unpack = unpack_code(uploads, up, name),
        cleanup = cleanup_code(uploads, up),
        install = py(&format!("{home}/install.py")),
        platform = manifest.target.platform,
        glibc = manifest.target.glibc,
        python = manifest.target.python,
    )
}

/// How many npm packages `node_modules/` holds, and the runtime that runs
/// them, in words (None without npm packages).
fn npm_words(manifest: &Manifest) -> Option<String> {
    let count = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("node_modules/") && f.path.ends_with("/package.json"))
        .filter(|f| {
            // A package's own package.json, not one deeper in its files.
            let rest = &f.path[..f.path.len() - "/package.json".len()];
            let last = rest.rsplit("node_modules/").next().unwrap_or("");
            last.split('/').count() == 1 + usize::from(last.starts_with('@'))
        })
        .count();
    if count == 0 {
        return None;
    }
    let runtime = manifest.files.iter().find_map(|f| match f.path.as_str() {
        "runtime/node/bin/node" => Some(format!("Node {}", f.version.as_deref().unwrap_or(""))),
        "runtime/deno/deno" => Some(format!("Deno {}", f.version.as_deref().unwrap_or(""))),
        _ => None,
    });
    Some(match runtime {
        Some(r) => format!("{count} npm package(s) in node_modules/ with a bundled {r}"),
        None => format!("{count} npm package(s) in node_modules/ for this machine's own node"),
    })
}

/// Import names of the wheels the user asked for (all wheels' when the
/// manifest does not say), in file order.
fn requested_modules(manifest: &Manifest) -> Vec<String> {
    use std::str::FromStr;
    let asked: std::collections::BTreeSet<String> = manifest
        .requirements
        .iter()
        .filter_map(|r| pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(r).ok())
        .map(|r| r.name.to_string())
        .collect();
    manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wheel)
        .filter(|f| {
            asked.is_empty()
                || f.package.as_deref().is_some_and(|p| {
                    pep508_rs::PackageName::from_str(p).is_ok_and(|n| asked.contains(n.as_ref()))
                })
        })
        .filter_map(|f| f.import_name(&f.modules).map(str::to_string))
        .collect()
}
