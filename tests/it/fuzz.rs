//! A fuzz-style sweep with a fixed seed: thousands of mutations of recipes,
//! target profiles, index pages, zip directories, archives and ELF headers,
//! fed to the readers users' inputs and servers' answers go through. Each
//! must end in a value or an error: no panic. The counts are printed for
//! the README's reliability table.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::Arc;

use bundle::archive::{self, ArchiveKind};
use bundle::config::recipe::Recipe;
use bundle::config::target::Target;
use bundle::fetch::cache::Cache;
use bundle::fetch::Fetcher;
use bundle::report::NoReporter;
use bundle::resolve::index::Index;
use bundle::resolve::zipdir;

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\n",
    b"#",
    b",",
    b".",
    b"\\",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"[[release]]\n",
    b"[pypi]\n",
    b"[apt]\n",
    b"-1",
    b"1e999",
    b"99999999999999999999",
    b"../../",
    b"{version}",
    b"{nope}",
    b"\"\"\"",
    b"true",
];

/// One random change: flip, overwrite, insert, delete, truncate, repeat.
fn mutate(rng: &mut Rng, input: &[u8], text: bool) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(3) {
        let len = v.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => v[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => v[at.min(len - 1)] = [0, 0xff, 0x7f, 0x80][rng.below(4)],
            2 if text => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 => {
                // Overwrite 4 or 8 bytes with an extreme little-endian number.
                let n: u64 = [0, u64::MAX, u32::MAX as u64, 0xFFFF_FF00, 1 << 31][rng.below(5)];
                let bytes = n.to_le_bytes();
                let w = if rng.below(2) == 0 { 4 } else { 8 };
                for (i, b) in bytes[..w].iter().enumerate() {
                    if let Some(x) = v.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
            3 => {
                let end = (at + rng.below(64)).min(len);
                v.drain(at..end);
            }
            4 => v.truncate(at),
            5 if len > 0 => {
                let end = (at + rng.below(256)).min(len);
                let chunk = v[at.min(end)..end].to_vec();
                v.splice(at..at, chunk);
            }
            _ => v.insert(at, rng.next() as u8),
        }
    }
    v
}

/// Run `f` on `count` mutations of `seed_input`; count the panics.
fn sweep(
    name: &str,
    rng: &mut Rng,
    seed_input: &[u8],
    count: usize,
    text: bool,
    f: &dyn Fn(&[u8]),
) -> (usize, Vec<usize>) {
    let mut panics = Vec::new();
    for i in 0..count {
        let input = mutate(rng, seed_input, text);
        if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
            panics.push(i);
        }
    }
    eprintln!("fuzz {name}: {count} inputs, {} panics", panics.len());
    (count, panics)
}

const RECIPE: &str = r#"description = "everything"
target = "chatgpt-2023"
[pypi]
requirements = ["sqlite-utils>=3", "httpx[http2]<1; python_version >= '3.8'"]
exclude_newer = "2023-05-03"
sdists = "build"
check = [{ run = "sqlite-utils --version", expect = "3" }]
[[release]]
name = "deno"
version = "1.33.1"
url = "https://example.org/v{version}/deno-{triple}.zip"
sha256 = "2d2b6b8c0a0d6f2b1e6d3a0b3e0f3c8b2a1d0e9f8c7b6a5d4c3b2a1f0e9d8c7b"
files = ["deno"]
check = [{ run = "deno --version", expect = "deno 1.33.1" }]
[apt]
packages = ["lua5.3", "jq"]
binaries = ["lua5.3", "jq"]
link = "wrapper"
"#;

const TARGET: &str = r#"description = "a target"
image = "ubuntu:20.04"
platform = "linux/amd64"
glibc = "2.31"
python = "3.8.10"
system_packages = ["python3", "python3-pip"]
preinstalled = ["click==8.1.4", "six==1.16.0"]
upload_dir = "/mnt/data"
user = "sandbox"
command_timeout_s = 60
max_file_bytes = 536870912
glibcxx = "3.4.28"
libraries = ["libz.so.1"]
"#;

fn wheel_bytes() -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default();
    w.start_file("pkg/__init__.py", o).unwrap();
    w.write_all(&[b'#'; 3000]).unwrap();
    w.start_file("pkg-1.0.dist-info/METADATA", o).unwrap();
    w.write_all(b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\nRequires-Dist: six\n")
        .unwrap();
    w.start_file("pkg-1.0.dist-info/RECORD", o).unwrap();
    w.finish().unwrap().into_inner()
}

fn tar_gz_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("t/bin/tool", &b"\x7fELF tool"[..]), ("t/README", b"hi")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "t/tool", "bin/tool").unwrap();
    let tar = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &tar).unwrap();
    e.finish().unwrap()
}

#[test]
fn thousands_of_mutations_end_in_values_or_errors() {
    let mut rng = Rng(0x5EED_B0B5_1234_5678);
    let mut total = 0;
    let mut panicked: Vec<String> = Vec::new();
    let mut record = |name: &str, (n, p): (usize, Vec<usize>)| {
        total += n;
        if !p.is_empty() {
            panicked.push(format!("{name}: inputs {p:?}"));
        }
    };

    record(
        "recipes",
        sweep("recipes", &mut rng, RECIPE.as_bytes(), 1500, true, &|b| {
            let _ = Recipe::parse("r", &String::from_utf8_lossy(b), "r.toml");
        }),
    );
    record(
        "targets",
        sweep("targets", &mut rng, TARGET.as_bytes(), 1000, true, &|b| {
            let _ = Target::parse("t", &String::from_utf8_lossy(b), "t.toml", None);
        }),
    );

    // Index pages, through the same filter the resolver uses.
    let dir = tempfile::tempdir().unwrap();
    let target = Target::load("ubuntu-20.04").unwrap();
    let fetcher =
        Arc::new(Fetcher::new(Cache::new(dir.path()), true, Arc::new(NoReporter)).unwrap());
    let index = Index::new("http://127.0.0.1:9/simple/", fetcher, &target, None).unwrap();
    let name = pep508_rs::PackageName::from_str("pkg").unwrap();
    let url = reqwest::Url::parse("http://127.0.0.1:9/simple/pkg/").unwrap();
    let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": "pkg", "files": [
        {"filename": "pkg-1.0-py3-none-any.whl", "url": "../../f/pkg-1.0-py3-none-any.whl",
         "hashes": {"sha256": "0".repeat(64)}, "requires-python": ">=3.7", "yanked": false,
         "core-metadata": {"sha256": "1".repeat(64)}, "size": 1234, "upload-time": "2023-01-01T00:00:00Z"},
        {"filename": "pkg-1.1-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "url": "https://x/pkg-1.1.whl", "hashes": {"sha256": "2".repeat(64)}, "yanked": "bad"},
        {"filename": "pkg-1.2.tar.gz", "url": "../../f/pkg-1.2.tar.gz", "hashes": {}}
    ]});
    let page = serde_json::to_vec_pretty(&page).unwrap();
    record(
        "index pages",
        sweep("index pages", &mut rng, &page, 1500, true, &|b| {
            let _ = index.parse_page(&name, &url, b);
        }),
    );

    // Zip directories read from ranges, and whole wheels.
    let wheel = wheel_bytes();
    record(
        "zip directories",
        sweep("zip directories", &mut rng, &wheel, 1500, false, &|b| {
            let tail_start = b.len().saturating_sub(300) as u64;
            let tail = &b[tail_start as usize..];
            if let Some(dir) = zipdir::find_central_directory(tail, tail_start) {
                let cd = zipdir::slice_in(b, 0, dir.offset, dir.size).unwrap_or(tail);
                if let Some(entry) = zipdir::find_metadata_entry(cd) {
                    if let Ok(start) = usize::try_from(entry.header_offset) {
                        if let Some(local) = b.get(start..) {
                            let _ = zipdir::read_local_entry(local, &entry);
                        }
                    }
                }
            }
        }),
    );
    let scratch = tempfile::tempdir().unwrap();
    let wheel_path = scratch.path().join("w.whl");
    record(
        "wheels",
        sweep("wheels", &mut rng, &wheel, 500, false, &|b| {
            std::fs::write(&wheel_path, b).unwrap();
            let _ = bundle::resolve::index::metadata_from_wheel_file(&wheel_path);
            let _ = bundle::check::scan(&wheel_path);
        }),
    );

    // Release archives: listing, links and streaming.
    let tgz = tar_gz_bytes();
    let tgz_path = scratch.path().join("a.tar.gz");
    let out = scratch.path().join("out");
    record(
        "archives",
        sweep("archives", &mut rng, &tgz, 500, false, &|b| {
            std::fs::write(&tgz_path, b).unwrap();
            let limits = archive::Limits::default();
            if let Ok(l) = archive::list(ArchiveKind::TarGz, &tgz_path, limits) {
                let _ = l.resolve(std::path::Path::new("t/tool"));
            }
            let _ = std::fs::remove_dir_all(&out);
            let _ = archive::unpack_files(ArchiveKind::TarGz, &tgz_path, limits, &out);
        }),
    );

    // ELF headers and tables.
    let elf = std::fs::read("/bin/true")
        .or_else(|_| std::fs::read(std::env::current_exe().unwrap()))
        .unwrap();
    let elf = &elf[..elf.len().min(64 * 1024)];
    let t = target.clone();
    record(
        "ELF files",
        sweep("ELF files", &mut rng, elf, 1500, false, &|b| {
            if let Some(info) = bundle::check::read_elf("bin/x", b) {
                let _ = bundle::check::judge(&t, info, &Default::default());
            }
        }),
    );

    eprintln!("fuzz: {total} inputs in all, {} panics", panicked.len());
    assert!(total >= 8000);
    assert!(panicked.is_empty(), "panics: {panicked:#?}");
}
