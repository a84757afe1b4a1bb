//! Remote engines, reached as the docker CLI reaches them, tested against
//! the local daemon through real parts on 127.0.0.1:
//! - TLS: `socat` terminates TLS in front of the daemon's socket, with a CA
//!   and client certificates `openssl` makes here; the daemon is reached
//!   with DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, and through a
//!   docker context;
//! - SSH: an `sshd` with a key made here, reached with
//!   `DOCKER_HOST=ssh://USER@127.0.0.1:PORT`.
//!
//! And arm64 targets, run through qemu-user-static on this amd64 engine
//! (`.ci/run` registers it and builds the arm64 test image).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A child process killed when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 (free when asked).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `port`.
fn wait_for(port: u16, what: &str, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} ended at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} does not listen on {port}");
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.pem`/`.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    sh(
        dir,
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}-ca.key -out {name}-ca.pem -days 2 -subj '/CN={name} test CA' \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null"
        ),
    );
}

/// A certificate `OUT.pem`/`OUT.key` signed by CA `ca`, for a server on
/// 127.0.0.1 or a client.
fn issue(dir: &Path, ca: &str, out: &str, server: bool) {
    let ext = if server {
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    } else {
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(format!("{out}.ext")), ext).unwrap();
    sh(
        dir,
        &format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {out}.key -out {out}.csr -subj /CN={out} 2>/dev/null
             openssl x509 -req -in {out}.csr -CA {ca}-ca.pem -CAkey {ca}-ca.key -CAcreateserial \
             -out {out}.pem -days 2 -extfile {out}.ext 2>/dev/null"
        ),
    );
}

/// A folder as DOCKER_CERT_PATH wants it: ca.pem, cert.pem, key.pem.
fn cert_path(dir: &Path, name: &str, ca: &str, client: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(dir.join(format!("{ca}-ca.pem")), d.join("ca.pem")).unwrap();
    std::fs::copy(dir.join(format!("{client}.pem")), d.join("cert.pem")).unwrap();
    std::fs::copy(dir.join(format!("{client}.key")), d.join("key.pem")).unwrap();
    d
}

/// The daemon's socket behind TLS on 127.0.0.1: the server's certificate
/// from CA `good`, and only clients with a certificate from `good` let in.
struct TlsEngine {
    dir: tempfile::TempDir,
    port: u16,
    _socat: Daemon,
}

impl TlsEngine {
    fn start() -> TlsEngine {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "good");
        make_ca(d, "other");
        issue(d, "good", "server", true);
        issue(d, "good", "client", false);
        issue(d, "other", "stranger", false);
        let port = free_port();
        let mut socat = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={s}.pem,key={s}.key,cafile={ca},verify=1",
                s = d.join("server").display(),
                ca = d.join("good-ca.pem").display()
            ))
            .arg(format!("UNIX-CONNECT:{DOCKER_SOCKET}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (bash .ci/run installs it)");
        wait_for(port, "socat", &mut socat);
        TlsEngine {
            dir,
            port,
            _socat: Daemon(socat),
        }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// `bundle build lua5.3` for the bare test image, with `env`.
fn apt_build(t: &DockerTest, env: &[(&str, &str)]) -> assert_cmd::Command {
    let mut cmd = t.bundle();
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args([
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
#[ignore = "needs dockerd, socat and the test image (bash .ci/run sets them up)"]
fn an_apt_build_works_through_a_tls_engine_and_a_wrong_ca_is_refused() {
    let t = docker_test();
    let tls = TlsEngine::start();
    let d = tls.dir.path();
    let good = cert_path(d, "good", "good", "client");
    let host = tls.host();
    // `bundle build lua5.3` through `host` with DOCKER_TLS_VERIFY and `certs`.
    let via_tls = |host: &str, certs: &Path| {
        apt_build(
            &t,
            &[
                ("DOCKER_HOST", host),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
            ],
        )
    };

    // Wrong CA: the engine's certificate is not signed by it. Exit 1,
    // named, with a hint, and nothing written.
    let wrong_ca = cert_path(d, "wrong-ca", "other", "client");
    let err = fails(&mut via_tls(&host, &wrong_ca), 1);
    assert!(
        err.contains(&format!("the engine at {host} (from DOCKER_HOST, TLS) presented a certificate that failed TLS verification"))
            && err.contains("UnknownIssuer")
            && err.contains(&format!("hint: the engine's certificate must be signed by the CA in {}", wrong_ca.join("ca.pem").display())),
        "{err}"
    );
    assert!(!t.work.path().join("dist/lua5.3").exists());
    // The engine refuses a client certificate from another CA.
    let stranger = cert_path(d, "stranger", "good", "stranger");
    let err = fails(&mut via_tls(&host, &stranger), 1);
    assert!(
        err.contains("refused this client's TLS certificate") && err.contains("hint:"),
        "{err}"
    );
    // Nothing listening.
    let dead = format!("tcp://127.0.0.1:{}", free_port());
    let err = fails(&mut via_tls(&dead, &good), 1);
    assert!(
        err.contains(&format!(
            "the engine at {dead} (from DOCKER_HOST, TLS) does not answer"
        )),
        "{err}"
    );
    // TLS without verification is refused before connecting (exit 2).
    let err = fails(
        &mut apt_build(&t, &[("DOCKER_HOST", &host), ("DOCKER_TLS", "1")]),
        2,
    );
    assert!(
        err.contains("asks for TLS without verifying the engine's certificate"),
        "{err}"
    );

    // The right CA and client certificate: the whole apt build, with its
    // containers, goes through TLS.
    let started = Instant::now();
    via_tls(&host, &good).assert().success();
    eprintln!(
        "apt build over TLS: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = t.work.path().join("dist/lua5.3");
    assert!(dir.join("lib/libreadline.so.8").is_file());
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "echo 'print(6*7)' | /b/bin/lua5.3 -");
    assert!(ok && out.contains("42"), "{out}");
    assert!(t.containers().is_empty(), "containers left behind");
}

/// A docker config folder whose context `name` points at `host`, with the
/// TLS files of `certs`.
fn context_store(dir: &Path, name: &str, host: &str, certs: &Path) -> PathBuf {
    let config = dir.join("docker-config");
    let id = sha256(name.as_bytes());
    let meta = config.join("contexts/meta").join(&id);
    std::fs::create_dir_all(&meta).unwrap();
    let json = serde_json::json!({
        "Name": name,
        "Metadata": {"Description": "the test engine behind TLS"},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
    });
    std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
    let tls = config.join("contexts/tls").join(&id).join("docker");
    std::fs::create_dir_all(&tls).unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(certs.join(f), tls.join(f)).unwrap();
    }
    config
}

#[test]
#[ignore = "needs dockerd, socat and the test image (bash .ci/run sets them up)"]
fn a_docker_context_names_the_engine_and_its_tls_files() {
    let t = docker_test();
    let tls = TlsEngine::start();
    let d = tls.dir.path();
    let good = cert_path(d, "good", "good", "client");
    let config = context_store(d, "remote-build", &tls.host(), &good);
    let config_s = config.to_str().unwrap();
    // The current context of config.json.
    std::fs::write(
        config.join("config.json"),
        r#"{"auths": {}, "currentContext": "remote-build"}"#,
    )
    .unwrap();
    let out = apt_build(
        &t,
        &[("DOCKER_CONFIG", config_s), ("BUNDLE_LOG", "bundle=debug")],
    )
    .assert()
    .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "docker engine: {} (from docker context \"remote-build\", TLS)",
            tls.host()
        )),
        "{err}"
    );
    assert!(t.work.path().join("dist/lua5.3/bin/lua5.3").is_file());
    // DOCKER_CONTEXT names one that is not there: exit 2, named.
    let err = fails(
        &mut apt_build(
            &t,
            &[("DOCKER_CONFIG", config_s), ("DOCKER_CONTEXT", "nope")],
        ),
        2,
    );
    assert!(
        err.contains("docker context \"nope\" is not in the context store"),
        "{err}"
    );
    assert!(t.containers().is_empty(), "containers left behind");
}

/// An sshd on 127.0.0.1 letting in this user with a key made here; the
/// remote `docker` is this machine's.
struct SshEngine {
    dir: tempfile::TempDir,
    port: u16,
    user: String,
    _sshd: Daemon,
}

impl SshEngine {
    fn start() -> SshEngine {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sh(
            d,
            "ssh-keygen -q -t ed25519 -N '' -f host_key
             ssh-keygen -q -t ed25519 -N '' -f id
             ssh-keygen -q -t ed25519 -N '' -f other
             cp id.pub authorized_keys && chmod 600 authorized_keys",
        );
        let port = free_port();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile {d}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
                d = d.display()
            ),
        )
        .unwrap();
        // sshd started as root wants its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd (bash .ci/run installs openssh-server)");
        wait_for(port, "sshd", &mut sshd);
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .unwrap();
        SshEngine {
            dir,
            port,
            user,
            _sshd: Daemon(sshd),
        }
    }

    /// `ssh` with `key`, trusting only this sshd's host key (or none).
    fn command(&self, key: &str, known_hosts: bool) -> String {
        let d = self.dir.path().display();
        let known = if known_hosts {
            format!("{d}/known_hosts")
        } else {
            "/dev/null".into()
        };
        format!(
            "ssh -i {d}/{key} -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o LogLevel=ERROR"
        )
    }

    fn host(&self) -> String {
        format!("ssh://{}@127.0.0.1:{}", self.user, self.port)
    }

    /// Logins sshd has accepted so far.
    fn logins(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }
}

#[test]
#[ignore = "needs dockerd, sshd and the test image (bash .ci/run sets them up)"]
fn an_apt_build_works_over_ssh_and_a_refused_login_is_told() {
    let t = docker_test();
    let ssh = SshEngine::start();
    let host = ssh.host();
    // A key the server does not know.
    let err = fails(
        &mut apt_build(
            &t,
            &[
                ("DOCKER_HOST", &host),
                ("BUNDLE_SSH_COMMAND", &ssh.command("other", true)),
            ],
        ),
        1,
    );
    assert!(
        err.contains(&format!(
            "the engine at {host} (from DOCKER_HOST) refused the SSH login (authentication failed)"
        )) && err.contains("Permission denied")
            && err.contains("must work without a prompt"),
        "{err}"
    );
    // A host key that is not trusted.
    let err = fails(
        &mut apt_build(
            &t,
            &[
                ("DOCKER_HOST", &host),
                ("BUNDLE_SSH_COMMAND", &ssh.command("id", false)),
            ],
        ),
        1,
    );
    assert!(
        err.contains("has an SSH host key that is not trusted here"),
        "{err}"
    );
    assert!(!t.work.path().join("dist/lua5.3").exists());

    // All connections share one login, its socket in a private folder
    // (XDG_RUNTIME_DIR), gone when the run is.
    let runtime = tempfile::tempdir().unwrap();
    // (A folder others can enter would not do: the socket is the login.)
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let logins_before = ssh.logins();
    let started = Instant::now();
    apt_build(
        &t,
        &[
            ("DOCKER_HOST", &host),
            ("BUNDLE_SSH_COMMAND", &ssh.command("id", true)),
            ("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap()),
        ],
    )
    .assert()
    .success();
    // The check's login and the shared one; dozens without sharing.
    let logins = ssh.logins() - logins_before;
    assert!(logins <= 3, "{logins} logins");
    wait_until_empty(runtime.path());
    eprintln!(
        "apt build over SSH: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = t.work.path().join("dist/lua5.3");
    let (ok, out) = run_pristine(TEST_IMAGE, &dir, "echo 'print(6*7)' | /b/bin/lua5.3 -");
    assert!(ok && out.contains("42"), "{out}");
    assert!(t.containers().is_empty(), "containers left behind");

    // SIGKILL midway (an empty cache, so the apt container runs): the
    // container's attachment was the killed run's ssh process, whose input
    // closes; the container ends by itself.
    let cache = tempfile::tempdir().unwrap();
    let mut child = t.command();
    child
        .env("BUNDLE_CACHE_DIR", cache.path())
        .env("DOCKER_HOST", &host)
        .env("BUNDLE_SSH_COMMAND", ssh.command("id", true))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args([
            "-q",
            "build",
            "lua5.3",
            "--target",
            &fixture_target("debian11-bare"),
        ]);
    let mut child = child.spawn().unwrap();
    // (Killed once its container runs: see `running_labelled`.)
    let status = crate::docker::signal_when(&mut child, "KILL", Duration::from_secs(120), || {
        !t.running_containers().is_empty()
    });
    assert_eq!(status.code(), None, "killed by the signal");
    let gone = Instant::now();
    while !t.containers().is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(60),
            "the container outlived its owner over SSH"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The killed run's shared login ends by itself too.
    wait_until_empty(runtime.path());
}

/// Wait until `dir` is empty (a control socket removed by its master).
fn wait_until_empty(dir: &Path) {
    let started = Instant::now();
    while std::fs::read_dir(dir).unwrap().next().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the shared SSH login outlived its run: {:?}",
            std::fs::read_dir(dir).unwrap().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
