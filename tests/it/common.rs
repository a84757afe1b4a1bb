//! Test ground: a real HTTP server on 127.0.0.1 serving a PEP 691 index,
//! wheels, archives and checksums that the tests generate.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone)]
pub struct Route {
    pub body: Vec<u8>,
    pub content_type: String,
    /// Honour `Range:` requests with 206.
    pub ranges: bool,
    pub status: u16,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// How the body is sent.
    pub mode: Mode,
}

/// Hostile ways of answering, for the fault tests. Each one stops by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// The headers, with no length, then zeros until the client goes away
    /// (or 16 GiB, or two minutes).
    Endless,
    /// The body one byte at a time, this many milliseconds apart.
    Drip(u64),
    /// Read the request and never answer (for two minutes at most).
    Silent,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    log: Vec<Request>,
}

/// A small HTTP/1.1 server (one thread per connection, `Connection: close`).
pub struct Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    scheme: &'static str,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None)
    }

    /// An HTTPS server presenting `cert_chain` (PEM) with `key` (PEM).
    pub fn start_tls(cert_chain: &Path, key: &Path) -> Server {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Server::start_with(Some(Arc::new(config)))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let st = st.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = match tls {
                        None => handle(stream, &st),
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(conn) => handle(rustls::StreamOwned::new(conn, stream), &st),
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        Server {
            port,
            state,
            scheme,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{}", self.scheme, self.port, path)
    }

    pub fn index_url(&self) -> String {
        self.url("/simple/")
    }

    pub fn route(&self, path: &str, body: Vec<u8>, content_type: &str, ranges: bool) {
        self.state.lock().unwrap().routes.insert(
            path.to_string(),
            Route {
                body,
                content_type: content_type.to_string(),
                ranges,
                status: 200,
                delay_ms: 0,
                mode: Mode::Normal,
            },
        );
    }

    /// Make an existing route (or a new, empty one) answer in `mode`.
    pub fn behave(&self, path: &str, mode: Mode) {
        let mut st = self.state.lock().unwrap();
        let r = st.routes.entry(path.to_string()).or_insert(Route {
            body: Vec::new(),
            content_type: "application/octet-stream".into(),
            ranges: false,
            status: 200,
            delay_ms: 0,
            mode,
        });
        r.mode = mode;
    }

    pub fn status(&self, path: &str, status: u16) {
        self.state.lock().unwrap().routes.insert(
            path.to_string(),
            Route {
                body: b"error".to_vec(),
                content_type: "text/plain".into(),
                ranges: false,
                status,
                delay_ms: 0,
                mode: Mode::Normal,
            },
        );
    }

    /// Make an existing route answer only after `ms` milliseconds.
    pub fn delay(&self, path: &str, ms: u64) {
        if let Some(r) = self.state.lock().unwrap().routes.get_mut(path) {
            r.delay_ms = ms;
        }
    }

    pub fn log(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    pub fn requests_to(&self, path_suffix: &str) -> Vec<Request> {
        self.log()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }
}

fn handle<S: Read + Write>(mut stream: S, state: &Mutex<State>) -> std::io::Result<()> {
    let mut path = String::from("/");
    let mut range = None;
    let mut accept = None;
    let mut authorization = None;
    {
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(p) = line.split_whitespace().nth(1) {
            path = p.to_string();
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(v.trim().to_string()),
                    "accept" => accept = Some(v.trim().to_string()),
                    "authorization" => authorization = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
    }
    let route = {
        let mut s = state.lock().unwrap();
        s.log.push(Request {
            path: path.clone(),
            range: range.clone(),
            accept,
            authorization,
        });
        s.routes.get(&path).cloned()
    };
    let result = respond(&mut stream, route, range);
    stream.flush()?;
    result
}

fn respond<S: Write>(
    out: &mut S,
    route: Option<Route>,
    range: Option<String>,
) -> std::io::Result<()> {
    if let Some(r) = &route {
        std::thread::sleep(std::time::Duration::from_millis(r.delay_ms));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    match route.as_ref().map(|r| r.mode) {
        Some(Mode::Silent) => {
            while std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            return Ok(());
        }
        Some(Mode::Endless) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            )?;
            let zeros = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < 16 << 30 && std::time::Instant::now() < deadline {
                out.write_all(&zeros)?;
                sent += zeros.len() as u64;
            }
            return Ok(());
        }
        Some(Mode::Drip(ms)) => {
            let body = &route.as_ref().unwrap().body;
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            for b in body {
                if std::time::Instant::now() >= deadline {
                    break;
                }
                out.write_all(&[*b])?;
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            return Ok(());
        }
        _ => {}
    }
    let Some(route) = route else {
        return write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
        );
    };
    if route.status != 200 {
        return write!(
            out,
            "HTTP/1.1 {} Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            route.status,
            route.body.len(),
            String::from_utf8_lossy(&route.body)
        );
    }
    let total = route.body.len();
    if let (true, Some(r)) = (route.ranges, range.as_deref()) {
        if let Some((start, end)) = parse_range(r, total) {
            let part = &route.body[start..=end];
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Type: {}\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{total}\r\nConnection: close\r\n\r\n",
                route.content_type,
                part.len()
            )?;
            return out.write_all(part);
        }
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n",
        route.content_type
    )?;
    out.write_all(&route.body)
}

fn parse_range(r: &str, total: usize) -> Option<(usize, usize)> {
    let spec = r.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: usize = b.parse().ok()?;
        let n = n.min(total);
        return Some((total - n, total - 1));
    }
    let start: usize = a.parse().ok()?;
    let end: usize = if b.is_empty() {
        total - 1
    } else {
        b.parse::<usize>().ok()?.min(total - 1)
    };
    (start <= end).then_some((start, end))
}

/// A wheel the tests generate.
#[derive(Clone)]
pub struct WheelSpec {
    pub name: String,
    pub version: String,
    pub tag: String,
    pub requires: Vec<String>,
    pub extras: Vec<String>,
    pub requires_python: Option<String>,
    pub yanked: Option<String>,
    /// Serve a PEP 658 `.metadata` file.
    pub pep658: bool,
    /// Extra files inside the wheel (path, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// Leave `requires-python` out of the index page (metadata keeps it).
    pub index_hides_requires_python: bool,
    /// `Root-Is-Purelib` in its WHEEL file.
    pub purelib: bool,
}

impl WheelSpec {
    pub fn new(name: &str, version: &str) -> WheelSpec {
        WheelSpec {
            name: name.into(),
            version: version.into(),
            tag: "py3-none-any".into(),
            requires: Vec::new(),
            extras: Vec::new(),
            requires_python: None,
            yanked: None,
            pep658: true,
            files: Vec::new(),
            index_hides_requires_python: false,
            purelib: true,
        }
    }
    pub fn requires(mut self, r: &[&str]) -> Self {
        self.requires = r.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn extras(mut self, e: &[&str]) -> Self {
        self.extras = e.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn tag(mut self, t: &str) -> Self {
        self.tag = t.into();
        self
    }
    pub fn requires_python(mut self, r: &str) -> Self {
        self.requires_python = Some(r.into());
        self
    }
    pub fn yanked(mut self, reason: &str) -> Self {
        self.yanked = Some(reason.into());
        self
    }
    pub fn index_hides_requires_python(mut self) -> Self {
        self.index_hides_requires_python = true;
        self
    }
    /// A wheel whose root is platlib (`Root-Is-Purelib: false`).
    pub fn platlib(mut self) -> Self {
        self.purelib = false;
        self
    }
    pub fn no_pep658(mut self) -> Self {
        self.pep658 = false;
        self
    }
    pub fn file(mut self, path: &str, data: Vec<u8>) -> Self {
        self.files.push((path.into(), data));
        self
    }

    fn dist(&self) -> String {
        self.name.replace('-', "_")
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-{}.whl", self.dist(), self.version, self.tag)
    }

    pub fn metadata(&self) -> String {
        let mut m = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        if let Some(rp) = &self.requires_python {
            m.push_str(&format!("Requires-Python: {rp}\n"));
        }
        for e in &self.extras {
            m.push_str(&format!("Provides-Extra: {e}\n"));
        }
        for r in &self.requires {
            m.push_str(&format!("Requires-Dist: {r}\n"));
        }
        m.push_str("\nA test package.\n");
        m
    }

    /// The wheel's bytes (deterministic).
    pub fn build(&self) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        let pkg = self.dist();
        let di = format!("{}-{}.dist-info", pkg, self.version);
        let mut files: Vec<(String, Vec<u8>)> = vec![(
            format!("{pkg}/__init__.py"),
            format!(
                "__version__ = \"{}\"\n{}",
                self.version,
                "# padding\n".repeat(2000)
            )
            .into_bytes(),
        )];
        files.extend(self.files.iter().cloned());
        files.push((format!("{di}/METADATA"), self.metadata().into_bytes()));
        files.push((
            format!("{di}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {}\nTag: {}\n",
                self.purelib, self.tag
            )
            .into_bytes(),
        ));
        let mut record = String::new();
        for (p, _) in &files {
            record.push_str(&format!("{p},,\n"));
        }
        record.push_str(&format!("{di}/RECORD,,\n"));
        files.push((format!("{di}/RECORD"), record.into_bytes()));
        for (p, d) in files {
            w.start_file(p, o).unwrap();
            w.write_all(&d).unwrap();
        }
        w.finish().unwrap().into_inner()
    }
}

/// A server publishing `wheels`, with a working folder and a cache.
pub fn serve(wheels: &[WheelSpec]) -> (Server, tempfile::TempDir, tempfile::TempDir) {
    let server = Server::start();
    publish(&server, wheels);
    (
        server,
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    )
}

/// Publish wheels on the server as a PEP 691 index at `/simple/`.
pub fn publish(server: &Server, wheels: &[WheelSpec]) {
    publish_with(server, wheels, true, &[])
}

/// `ranges`: whether wheel files honour Range requests.
/// `sdists`: (project, filename) source distributions to list.
pub fn publish_with(server: &Server, wheels: &[WheelSpec], ranges: bool, sdists: &[(&str, &str)]) {
    let listed: Vec<(String, String, Option<Vec<u8>>)> = sdists
        .iter()
        .map(|(p, f)| (p.to_string(), f.to_string(), None))
        .collect();
    publish_files(server, wheels, ranges, &listed)
}

/// Wheels plus sdists served with real bytes: (project, filename, bytes).
pub fn publish_sdists(server: &Server, wheels: &[WheelSpec], sdists: &[(&str, String, Vec<u8>)]) {
    let listed: Vec<(String, String, Option<Vec<u8>>)> = sdists
        .iter()
        .map(|(p, f, b)| (p.to_string(), f.clone(), Some(b.clone())))
        .collect();
    publish_files(server, wheels, true, &listed)
}

fn publish_files(
    server: &Server,
    wheels: &[WheelSpec],
    ranges: bool,
    sdists: &[(String, String, Option<Vec<u8>>)],
) {
    let mut projects: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for w in wheels {
        let bytes = w.build();
        let fname = w.filename();
        let path = format!("/files/{fname}");
        let mut file = serde_json::json!({
            "filename": fname,
            "url": format!("../../files/{fname}"),
            "hashes": {"sha256": sha256(&bytes)},
            "size": bytes.len(),
            "upload-time": "2023-01-01T00:00:00.000000Z",
        });
        if let Some(rp) = w
            .requires_python
            .as_ref()
            .filter(|_| !w.index_hides_requires_python)
        {
            file["requires-python"] = rp.clone().into();
        }
        if let Some(y) = &w.yanked {
            file["yanked"] = y.clone().into();
        }
        if w.pep658 {
            let meta = w.metadata().into_bytes();
            file["core-metadata"] = serde_json::json!({"sha256": sha256(&meta)});
            server.route(&format!("{path}.metadata"), meta, "text/plain", false);
        }
        server.route(&path, bytes, "application/octet-stream", ranges);
        let key = w.name.to_lowercase().replace(['_', '.'], "-");
        projects.entry(key).or_default().push(file);
    }
    for (project, fname, bytes) in sdists {
        let hash = match bytes {
            Some(b) => {
                server.route(
                    &format!("/files/{fname}"),
                    b.clone(),
                    "application/gzip",
                    true,
                );
                sha256(b)
            }
            None => "0".repeat(64),
        };
        projects
            .entry(project.to_string())
            .or_default()
            .push(serde_json::json!({
                "filename": fname,
                "url": format!("../../files/{fname}"),
                "hashes": {"sha256": hash},
            }));
    }
    for (name, files) in projects {
        let page = serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": name,
            "files": files,
        });
        server.route(
            &format!("/simple/{name}/"),
            serde_json::to_vec(&page).unwrap(),
            "application/vnd.pypi.simple.v1+json",
            false,
        );
    }
}

/// A `bundle` command with an isolated cache and working directory.
pub fn bundle(cwd: &Path, cache: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("bundle").unwrap();
    cmd.current_dir(cwd)
        .env("BUNDLE_CACHE_DIR", cache)
        .env_remove("PIP_INDEX_URL")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("NO_COLOR", "1");
    cmd
}

pub fn read_zip_names(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap();
    let z = zip::ZipArchive::new(f).unwrap();
    let mut n: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
    n.sort();
    n
}

pub fn read_to_string(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// `bundle plan ARGS --json`, which must succeed, parsed.
pub fn plan_json(cwd: &Path, cache: &Path, args: &[&str]) -> serde_json::Value {
    let out = bundle(cwd, cache)
        .arg("plan")
        .args(args)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// Run a command that must exit with `code`; its stderr.
pub fn fails(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().stderr.clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// The locally built Debian 11 (glibc 2.31) image the Docker tests use;
/// `.ci/run` builds it with debootstrap and `docker import`.
pub const TEST_IMAGE: &str = "bundle-test/bullseye:glibc2.31";

/// Why these tests are ignored in a plain `cargo test`.
pub const NEEDS_DOCKER: &str = "needs dockerd and the test image (bash .ci/run sets them up)";

/// Panics with the reason when no daemon answers or the test image is
/// missing: the Docker tests are `#[ignore]`d, and run only when asked for.
pub fn require_docker() {
    let reason = match std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", TEST_IMAGE])
        .output()
    {
        Err(e) => format!("the docker CLI cannot run: {e}"),
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
    };
    panic!("Docker is not usable: {reason} (bash .ci/run starts dockerd and builds {TEST_IMAGE})");
}

/// Run the docker CLI; its stdout (panics on failure to start).
pub fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

/// Ids of containers carrying `label` (`key=value`), running or not.
pub fn labelled(label: &str) -> Vec<String> {
    let out = docker(&["ps", "-a", "-q", "--filter", &format!("label={label}")]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The running containers labelled `label`. (A run killed between creating
/// a container and starting it leaves one that never runs: no lifeline ends
/// it, the next run's connect reaps it. Tests of the lifeline wait for this.)
pub fn running_labelled(label: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "status=running",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A test target profile under fixtures/targets.
pub fn fixture_target(name: &str) -> String {
    format!(
        "{}/fixtures/targets/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// What a Docker test works in: its folders, its own container label (so
/// that it counts only the containers it started), and the lock that keeps
/// the Docker tests one at a time (two cores; they share derived images).
pub struct DockerTest {
    pub work: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    /// `bundle.test=<unique>`, put on every container this test's runs start.
    pub label: String,
    _serial: std::sync::MutexGuard<'static, ()>,
}

static DOCKER_SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
static DOCKER_TESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A [`DockerTest`]; panics when Docker is not usable.
pub fn docker_test() -> DockerTest {
    require_docker();
    let n = DOCKER_TESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    DockerTest {
        _serial: DOCKER_SERIAL.lock().unwrap_or_else(|e| e.into_inner()),
        work: tempfile::tempdir().unwrap(),
        cache: tempfile::tempdir().unwrap(),
        label: format!("bundle.test={}-{n}", std::process::id()),
    }
}

impl DockerTest {
    /// `bundle` in this test's folders, labelling its containers.
    pub fn bundle(&self) -> assert_cmd::Command {
        let mut cmd = bundle(self.work.path(), self.cache.path());
        cmd.env("BUNDLE_DOCKER_LABELS", &self.label);
        cmd
    }

    /// The same as a plain command (to send it signals).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = bundle_command(self.work.path(), self.cache.path());
        cmd.env("BUNDLE_DOCKER_LABELS", &self.label);
        cmd
    }

    /// This test's containers, running or not.
    pub fn containers(&self) -> Vec<String> {
        labelled(&self.label)
    }

    /// The running ones among them.
    pub fn running_containers(&self) -> Vec<String> {
        running_labelled(&self.label)
    }

    /// Write `<name>.toml` and build it for `target` (a profile's path).
    pub fn build(
        &self,
        name: &str,
        recipe: &str,
        target: &str,
        extra: &[&str],
    ) -> assert_cmd::Command {
        std::fs::write(self.work.path().join(format!("{name}.toml")), recipe).unwrap();
        let mut cmd = self.bundle();
        cmd.args(["build", &format!("{name}.toml"), "--target", target])
            .args(extra);
        cmd
    }
}

/// What a finished command wrote on stderr.
pub fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// What a finished child did, with its peak resident memory.
pub struct Measured {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size of `bundle`, in bytes, as it reported it
    /// (VmHWM of its own address space; wait4's ru_maxrss would count the
    /// test process too, whose pages the child shares until exec).
    pub peak_rss: u64,
}

/// Run `cmd` to its end and measure its peak memory. It is killed after
/// `limit` (a bound on a test that must end, not a timing assertion).
// The child is reaped by wait4 below, which std's Child cannot do.
#[allow(clippy::zombie_processes)]
pub fn run_measured(mut cmd: std::process::Command, limit: std::time::Duration) -> Measured {
    use std::process::Stdio;
    let mut child = cmd
        .env("BUNDLE_REPORT_PEAK_MEMORY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let killer = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // Signal 0 tells whether the process still exists (it stays a
            // zombie until wait4 below reaps it).
            let mut st = String::new();
            let alive = std::fs::File::open(format!("/proc/{pid}/stat"))
                .and_then(|mut f| f.read_to_string(&mut st))
                .is_ok()
                && !st.contains(") Z ");
            if !alive {
                return;
            }
        }
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    killer.join().unwrap();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let stderr = t_err.join().unwrap();
    let peak_rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bundle: peak memory "))
        .and_then(|v| v.trim_end_matches(" KiB").parse::<u64>().ok())
        .expect("bundle reports its peak memory")
        * 1024;
    Measured {
        code,
        stdout: t_out.join().unwrap(),
        stderr,
        peak_rss,
    }
}

/// The `bundle` binary as a plain command, in `cwd` with cache `cache`.
pub fn bundle_command(cwd: &Path, cache: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bundle"));
    cmd.current_dir(cwd)
        .env("BUNDLE_CACHE_DIR", cache)
        .env_remove("PIP_INDEX_URL")
        .env("NO_COLOR", "1");
    cmd
}

/// What a finished command did, as a snapshot records it: whether it
/// succeeded, its exit code (a documented contract), stdout and stderr.
pub fn render_run(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().expect("the command runs");
    format!(
        "success: {}\nexit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        out.status.success(),
        out.status
            .code()
            .map_or("none (signal)".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// Snapshot a `bundle` run whole (see [`render_run`]), with the parts that
/// change from run to run (ports, times, hashes, temporary paths) masked.
#[macro_export]
macro_rules! bundle_snapshot {
    ($name:expr, $cmd:expr) => {
        insta::with_settings!({filters => vec![
            (r"127\.0\.0\.1:\d+", "[SERVER]"),
            (r"in \d+\.\d+s", "in [TIME]"),
            (r"[0-9a-f]{64}", "[SHA256]"),
            (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
        ]}, {
            insta::assert_snapshot!($name, $crate::common::render_run($cmd));
        })
    };
}

/// The sandbox stand-in the user-side tests run in, made once from the test
/// image with a two-line Dockerfile: python3 and pip from the distribution, a
/// user `sandbox` (uid 1000) and /mnt/data owned by it. Independent of the
/// images `bundle` derives, so that `bundle` is checked against the user's
/// view, not its own.
pub fn user_sandbox_image() -> String {
    const TAG: &str = "bundle-test/sandbox:debian11-python3";
    static MADE: std::sync::Once = std::sync::Once::new();
    MADE.call_once(|| {
        if docker(&["image", "inspect", TAG]).status.success() {
            return;
        }
        let dockerfile = format!(
            "FROM {TEST_IMAGE}\nRUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/* && useradd --uid 1000 --create-home --shell /bin/sh sandbox && mkdir -p /mnt/data && chown sandbox /mnt/data\n"
        );
        let mut child = std::process::Command::new("docker")
            .args(["build", "--platform", "linux/amd64", "-q", "-t", TAG, "-"])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker CLI");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "building {TAG}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TAG.to_string()
}

/// The code of a PROMPT.txt and the program that runs it, as the chat
/// would: (`python3` or `sh`, code).
pub fn prompt_code(prompt: &str) -> (&'static str, String) {
    let (fence, interpreter) = if prompt.contains("```sh\n") {
        ("```sh\n", "sh")
    } else {
        ("```python\n", "python3")
    };
    let start = prompt.find(fence).expect("PROMPT.txt has code") + fence.len();
    let end = start + prompt[start..].find("```").unwrap();
    (interpreter, prompt[start..end].to_string())
}

/// What the user does: upload `uploads` (paths relative to `out`) into
/// /mnt/data of a fresh sandbox with no network, run PROMPT.txt's Python
/// code as user `sandbox`, then `then` (sh) with the image's own PATH.
/// Returns (success, output).
pub fn as_the_user(out: &Path, uploads: &[String], prompt: &str, then: &str) -> (bool, String) {
    as_the_user_in(&user_sandbox_image(), out, uploads, prompt, then)
}

/// [`as_the_user`] in `image`, where the user `sandbox` and /mnt/data are
/// made first if the image lacks them.
pub fn as_the_user_in(
    image: &str,
    out: &Path,
    uploads: &[String],
    prompt: &str,
    then: &str,
) -> (bool, String) {
    let stage = tempfile::tempdir().unwrap();
    let data = stage.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for u in uploads {
        let to = data.join(u);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(out.join(u), &to).unwrap();
    }
    let (interpreter, code) = prompt_code(prompt);
    std::fs::write(stage.path().join("prompt.py"), code).unwrap();
    let script = format!(
        "set -e\ncd /mnt/data\n{interpreter} /tmp/prompt.py\necho '--- after PROMPT'\n{then}\n"
    );
    let id = docker(&[
        "create",
        "--network",
        "none",
        "--platform",
        "linux/amd64",
        "--label",
        "bundle.test=as-the-user",
        image,
        "sh",
        "-c",
        // Uploads belong to the user, as a chat's do; then the user's
        // session, with the image's PATH as it is.
        &format!(
            "(id -u sandbox >/dev/null 2>&1 || useradd --uid 1000 --create-home --shell /bin/sh sandbox) && mkdir -p /mnt/data && cp -R /tmp/upload/. /mnt/data/ && chown -R 1000:1000 /mnt/data /tmp/prompt.py && HOME=/home/sandbox exec setpriv --reuid=1000 --regid=1000 --init-groups sh -c {}",
            shell_quote(&script)
        ),
    ]);
    assert!(
        id.status.success(),
        "{}",
        String::from_utf8_lossy(&id.stderr)
    );
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&data)
        .args([
            "--owner=1000",
            "--group=1000",
            "-cf",
            "-",
            "--transform",
            "s,^\\.,upload,",
            ".",
        ])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let copy = |tar: &[u8], into: &str| {
        let mut cp = std::process::Command::new("docker")
            .args(["cp", "-", &format!("{id}:{into}")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        cp.stdin.take().unwrap().write_all(tar).unwrap();
        assert!(cp.wait().unwrap().success(), "docker cp into {into}");
    };
    copy(&tar.stdout, "/tmp");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(stage.path())
        .args(["--owner=1000", "--group=1000", "-cf", "-", "prompt.py"])
        .output()
        .unwrap();
    copy(&tar.stdout, "/tmp");
    let run = docker(&["start", "-a", &id]);
    docker(&["rm", "-f", &id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    (run.status.success(), text)
}

/// Quote for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `n` bytes that do not compress (xorshift), the same for the same seed.
pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as u8
        })
        .collect()
}

/// Run `script` in a pristine container of the test image, with no network
/// and `dir` mounted read-only at /b.
pub fn run_pristine(image: &str, dir: &Path, script: &str) -> (bool, String) {
    run_pristine_on("linux/amd64", image, dir, script)
}

/// [`run_pristine`] in a `platform` container.
pub fn run_pristine_on(platform: &str, image: &str, dir: &Path, script: &str) -> (bool, String) {
    let mount = format!("{}:/b:ro", dir.display());
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        platform,
        "-v",
        &mount,
        image,
        "sh",
        "-c",
        script,
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Remove a file from a bundle folder and from its manifest, as a bundle
/// built without it would be.
pub fn remove_with_manifest(dir: &Path, rel: &str) {
    std::fs::remove_file(dir.join(rel)).unwrap();
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&read_to_string(&path)).unwrap();
    m["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["path"] != rel);
    std::fs::write(&path, m.to_string()).unwrap();
}

/// Copy a folder's files (recursively) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
}

pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Compile C source with gcc into `dir/name`. `args` go after the source
/// (libraries last).
pub fn cc(dir: &Path, name: &str, src: &str, args: &[&str]) -> std::path::PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let status = std::process::Command::new("gcc")
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .args(args)
        .current_dir(dir)
        .status()
        .expect("gcc is needed for the ELF fixtures");
    assert!(status.success(), "gcc failed for {name}");
    out
}
