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

/// The Python code that checks the uploaded archive (joining its volumes
/// first) and unpacks it into the upload folder.
fn unpack_code(uploads: &Uploads, up: &str) -> String {
    let Some(archive) = &uploads.archive else {
        return String::new();
    };
    let name = &archive.path;
    let open = if name.ends_with(".zip") {
        format!("import zipfile\nzipfile.ZipFile(up + \"/{name}\").extractall(up)\n")
    } else {
        format!("import tarfile\ntarfile.open(up + \"/{name}\").extractall(up)\n")
    };
    let mut code = format!("import hashlib\nup = {}\n", py(up));
    if uploads.split() {
        code.push_str("volumes = [\n");
        for v in &uploads.uploads {
            code.push_str(&format!("    ({}, \"{}\"),\n", py(&v.path), v.sha256));
        }
        code.push_str(&format!(
            "]\nwhole = hashlib.sha256()\nwith open(up + \"/{name}\", \"wb\") as joined:\n    for volume, sha256 in volumes:\n        h = hashlib.sha256()\n        with open(up + \"/\" + volume, \"rb\") as f:\n            for chunk in iter(lambda: f.read(1 << 20), b\"\"):\n                h.update(chunk)\n                whole.update(chunk)\n                joined.write(chunk)\n        assert h.hexdigest() == sha256, volume + \" is not the file bundle wrote: upload it again\"\nassert whole.hexdigest() == \"{sha}\", \"the joined {name} is not the archive bundle wrote\"\n",
            sha = archive.sha256
        ));
    } else {
        code.push_str(&format!(
            "h = hashlib.sha256()\nwith open(up + \"/{name}\", \"rb\") as f:\n    for chunk in iter(lambda: f.read(1 << 20), b\"\"):\n        h.update(chunk)\nassert h.hexdigest() == \"{sha}\", \"{name} is not the file bundle wrote: upload it again\"\n",
            sha = archive.sha256
        ));
    }
    code.push_str(&open);
    code
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
        "I uploaded {uploaded} to {up}. It is an offline bundle made for this sandbox ({platform}, glibc {glibc}, Python {python}): {what}. No internet is needed. Please run this Python code to install it, then show me its output:\n\n```python\n{unpack}import subprocess, sys\nsubprocess.run([sys.executable, {install}], check=True)\n```\n{after}",
        uploaded = uploaded_words(manifest, uploads),
        unpack = unpack_code(uploads, up),
        install = py(&format!("{home}/install.py")),
        platform = manifest.target.platform,
        glibc = manifest.target.glibc,
        python = manifest.target.python,
    )
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
