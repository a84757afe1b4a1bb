//! The sandbox side of a bundle, as the user lives it: in the sandbox
//! stand-in (Debian 11, python3 and pip from apt, user `sandbox`,
//! /mnt/data, no network), PROMPT.txt's code unpacks the upload and
//! install.py installs the wheels itself (the wheel spec: purelib and
//! platlib roots, `.data` folders, RECORD, INSTALLER, console scripts);
//! what it installed is seen by importlib.metadata and pip; a second run
//! changes nothing; a run killed halfway leaves Python usable and a rerun
//! finishes it.

use crate::common::*;

/// The wheels: `app` (console script, a `#!python` script and a data file
/// in its `.data`), `plat` (platlib root), and `big` (30 files of 3 MB that
/// do not compress: long enough to be killed while it is written).
fn wheels() -> Vec<WheelSpec> {
    let mut big = WheelSpec::new("big", "1.0");
    for i in 0..30 {
        big = big.file(&format!("big/blob_{i:02}.bin"), noise(3_000_000, i + 1));
    }
    vec![
        WheelSpec::new("app", "1.0")
            .requires(&["plat", "big"])
            .file(
                "app/cli.py",
                b"def main():\n    print('app-hello ran')\n".to_vec(),
            )
            .file(
                "app-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\napp-hello = app.cli:main\n".to_vec(),
            )
            .file(
                "app-1.0.data/scripts/app-tool",
                b"#!python\nimport sys\nprint('app-tool on', sys.executable)\n".to_vec(),
            )
            .file(
                "app-1.0.data/data/share/app/readme.txt",
                b"app's data\n".to_vec(),
            ),
        WheelSpec::new("plat", "2.0")
            .platlib()
            .tag("py3-none-manylinux2014_x86_64"),
        big,
    ]
}

#[test]
#[ignore = "needs dockerd and the test image (bash .ci/run sets them up)"]
fn wheels_install_without_pip_as_the_spec_says_and_a_killed_install_finishes_on_rerun() {
    let t = docker_test();
    let server = Server::start();
    publish(&server, &wheels());
    let target = fixture_target("debian11");
    t.build(
        "spec",
        "[pypi]\nrequirements = [\"app\"]\n",
        &target,
        &["--index-url", &server.index_url()],
    )
    .assert()
    .success();
    let dist = t.work.path().join("dist");
    let prompt = read_to_string(&dist.join("spec/PROMPT.txt"));
    // PROMPT's own code, uploaded beside the archive so that the session
    // below can run it (and kill it) itself.
    let (_, code) = prompt_code(&prompt);
    std::fs::write(dist.join("prompt_code.py"), &code).unwrap();
    let uploads = ["spec.zip".to_string(), "prompt_code.py".to_string()];

    // 1. The whole run, under python -O, then what a user checks.
    let (ok, out) = as_the_user(
        &dist,
        &uploads,
        "```python\nprint('uploaded')\n```\n",
        r#"cd /mnt/data && python3 -O prompt_code.py
site=$(python3 -c 'import site; print(site.getusersitepackages())')
if [ -d "$site/app/__pycache__" ]; then echo 'compiled at install'; else echo 'no .pyc at install'; fi
cd /tmp
python3 -c 'import importlib.metadata as m; print("metadata", m.version("app"), m.version("plat"), m.version("big"))'
python3 -m pip list 2>/dev/null | grep -E '^(app|plat|big) '
/mnt/data/spec/bin/app-hello
"$HOME/.local/bin/app-tool"
head -n 1 "$HOME/.local/bin/app-tool"
cat "$HOME/.local/share/app/readme.txt"
cat "$site/app-1.0.dist-info/INSTALLER"
grep -c '' "$site/big-1.0.dist-info/RECORD"
grep -q '^app/cli.py,' "$site/app-1.0.dist-info/RECORD" && echo 'RECORD lists the package'
grep -q '^../../../bin/app-hello,sha256=' "$site/app-1.0.dist-info/RECORD" && echo 'RECORD lists the launcher'
ls /mnt/data
echo '--- again'
python3 /mnt/data/spec/install.py --no-check
echo '--- prompt again'
cd /mnt/data && python3 prompt_code.py
"#,
    );
    assert!(ok, "{out}");
    let after = out.split("--- after PROMPT").nth(1).unwrap();
    for line in [
        "[bundle] checked and unpacked spec.zip",
        "[bundle] installing 3 wheel(s)",
        "into the user site /home/sandbox/.local/lib/python3.9/site-packages",
        "[bundle]   big 1.0: installed",
        "[bundle]   plat 2.0: installed",
        "[bundle] installed 3 wheel(s) in",
        "metadata 1.0 2.0 1.0",
        "app-hello ran",
        "app-tool on /usr/bin/python3",
        "#!/usr/bin/python3",
        "app's data",
        "RECORD lists the package",
        "RECORD lists the launcher",
        "no .pyc at install",
    ] {
        assert!(after.contains(line), "{line} missing from:\n{out}");
    }
    let pip: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("app ") || l.starts_with("plat ") || l.starts_with("big "))
        .collect();
    assert_eq!(pip.len(), 3, "pip list shows all three: {after}");
    assert!(
        !after.contains("bundle] installing 3 wheel(s) with pip"),
        "{after}"
    );
    // INSTALLER, then RECORD lines: 30 blobs, __init__.py, METADATA, WHEEL,
    // INSTALLER, RECORD.
    assert!(after.contains("bundle\n35\n"), "{after}");
    // The upload is removed once installed, saying so; the folder stays.
    assert!(
        out.contains("[bundle] removed the uploaded spec.zip ("),
        "{out}"
    );
    let listing = after.split("--- again").next().unwrap();
    assert!(
        !listing.lines().any(|l| l.trim() == "spec.zip"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l.trim() == "spec"), "{listing}");
    let again = after.split("--- again").nth(1).unwrap();
    let (again, prompt_again) = again.split_once("--- prompt again").unwrap();
    assert_eq!(again.matches(": already installed").count(), 3, "{again}");
    // PROMPT's code run again, its upload gone: it installs from the folder.
    assert!(
        prompt_again.contains("the uploads were removed after an earlier install"),
        "{prompt_again}"
    );
    assert_eq!(
        prompt_again.matches(": already installed").count(),
        3,
        "{prompt_again}"
    );

    // 2. Killed while `big` is being written, then run again.
    let (ok, out) = as_the_user(
        &dist,
        &uploads,
        "```python\nprint('uploaded')\n```\n",
        r#"cd /mnt/data
site=$(python3 -c 'import site; print(site.getusersitepackages())')
python3 prompt_code.py > /tmp/first.log 2>&1 &
i=0
while [ ! -e "$site/big/blob_00.bin" ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done
for p in /proc/[0-9]*; do
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q 'install.py\|prompt_code.py'; then kill -9 "${p#/proc/}" 2>/dev/null; fi
done
wait
if [ -e "$site/big/blob_00.bin" ] && [ ! -e "$site/big-1.0.dist-info/RECORD" ]; then echo 'killed halfway'; fi
cd /tmp
python3 -m pip list 2>/dev/null | grep -E '^big ' || echo 'big is not listed yet'
python3 -c 'import json; print("python still works")'
echo '--- rerun'
cd /mnt/data && python3 -O prompt_code.py
cd /tmp && python3 -c 'import app, plat, big, os; print("imports", len(os.listdir(os.path.dirname(big.__file__))))'
python3 -m pip list 2>/dev/null | grep -E '^big '
"#,
    );
    assert!(ok, "{out}");
    let after = out.split("--- after PROMPT").nth(1).unwrap();
    assert!(after.contains("killed halfway"), "{out}");
    assert!(after.contains("big is not listed yet"), "{out}");
    assert!(after.contains("python still works"), "{out}");
    let rerun = after.split("--- rerun").nth(1).unwrap();
    assert!(rerun.contains("[bundle]   big 1.0: installed"), "{rerun}");
    // 30 blobs, __init__.py, and __pycache__ from the import.
    assert!(rerun.contains("imports 32"), "{rerun}");
    assert!(rerun.lines().any(|l| l.starts_with("big ")), "{rerun}");

    // 3. A replaced upload (a valid zip whose install.py would print a
    // marker) under python -O: refused before anything is unpacked.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [
        ("spec/install.py", "print('REPLACED INSTALLER RAN')\n"),
        ("spec/manifest.json", "{}"),
    ] {
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, data.as_bytes()).unwrap();
    }
    let replaced = t.work.path().join("replaced");
    std::fs::create_dir_all(&replaced).unwrap();
    std::fs::write(replaced.join("spec.zip"), w.finish().unwrap().into_inner()).unwrap();
    std::fs::copy(dist.join("prompt_code.py"), replaced.join("prompt_code.py")).unwrap();
    let (ok, out) = as_the_user(
        &replaced,
        &uploads,
        "```python\nprint('uploaded')\n```\n",
        "cd /mnt/data && { python3 -O prompt_code.py || echo \"exit $?\"; } && ls /mnt/data",
    );
    assert!(ok, "{out}");
    let after = out.split("--- after PROMPT").nth(1).unwrap();
    assert!(
        after.contains("not unpacked: spec.zip is not the file bundle wrote: upload it again"),
        "{after}"
    );
    assert!(after.contains("exit 1"), "{after}");
    assert!(!after.contains("REPLACED INSTALLER RAN"), "{after}");
    assert!(
        !after.lines().any(|l| l.trim() == "spec"),
        "nothing unpacked: {after}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}
