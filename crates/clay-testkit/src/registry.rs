//! A real container registry for tests: Debian's `docker-registry` on a loopback port, with its own storage and
//! htpasswd auth (and, on request, https: with a self-signed certificate, or one a test CA signed, optionally asking
//! clients for a certificate of that CA too); killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const USER: &str = "clay";
pub const PASSWORD: &str = "s3cret-pw";
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A port nothing listens on (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `docker-registry serve` on 127.0.0.1 with its own storage and htpasswd file; killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// How the registry serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP.
    None,
    /// https with a self-signed certificate for 127.0.0.1.
    SelfSigned,
    /// https with a certificate for 127.0.0.1 signed by a test CA (`ca.crt` in the registry's directory, see
    /// [`Registry::ca`]); with `client_certs`, clients must show a certificate of that CA ([`Registry::client`]).
    Ca { client_certs: bool },
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(Tls::None)
    }

    pub fn start_with(tls: Tls) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry apache2-utils skopeo"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd is missing: apt-get install apache2-utils");
        assert!(out.status.success(), "htpasswd failed");
        std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
        let d = dir.path();
        let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
        let serve_tls = format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display());
        let tls_config = match tls {
            Tls::None => String::new(),
            Tls::SelfSigned => {
                self_signed("/CN=127.0.0.1", &["-addext", "subjectAltName=IP:127.0.0.1"], &key, &cert);
                serve_tls
            }
            Tls::Ca { client_certs } => {
                let ca = d.join("ca.crt");
                self_signed("/CN=clay test CA", &[], &d.join("ca.key"), &ca);
                issue(d, "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth", &cert, &key);
                let (client_cert, client_key) = (d.join("client.cert"), d.join("client.key"));
                issue(d, "clay test client", "extendedKeyUsage=clientAuth", &client_cert, &client_key);
                if client_certs {
                    format!("{serve_tls}    clientcas:\n      - {}\n", ca.display())
                } else {
                    serve_tls
                }
            }
        };
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    \
                 rootdirectory: {root}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: clay-test-secret\n{tls_config}auth:\n  \
                 htpasswd:\n    realm: clay-test\n    path: {htpasswd}\n",
                root = dir.path().join("storage").display(),
                htpasswd = dir.path().join("htpasswd").display(),
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // Lost the port race, or a bad config: try another port.
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start: {log}");
    }

    /// The test CA's certificate (with [`Tls::Ca`]).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A client certificate and its key that the test CA signed (with [`Tls::Ca`]).
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.path().join("client.cert"), self.dir.path().join("client.key"))
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the registry has logged so far: errors, and a line in the combined log format for each request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// An auth.json (podman's format) in `dir` with these credentials for this registry; each user and password
    /// gets a file of its own.
    pub fn auth_file(&self, dir: &Path, user: &str, password: &str) -> PathBuf {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let path = dir.join(format!("auth-{user}-{}.json", auth.trim_end_matches('=')));
        let json = serde_json::json!({ "auths": { self.host(): { "auth": auth } } });
        std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        path
    }

    pub fn creds(&self) -> String {
        format!("{USER}:{PASSWORD}")
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is missing: apt-get install openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A fresh RSA key and a self-signed certificate for `subject` (valid two days), with more `openssl req` options.
fn self_signed(subject: &str, more: &[&str], key: &Path, cert: &Path) {
    let mut args = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject];
    args.extend_from_slice(more);
    args.extend_from_slice(&["-keyout", path(key), "-out", path(cert)]);
    openssl(&args);
}

/// A certificate for `cn` with `extensions` (openssl's `-extfile` lines), signed by the CA in `dir`.
fn issue(dir: &Path, cn: &str, extensions: &str, cert: &Path, key: &Path) {
    let (csr, ext) = (dir.join("request.csr"), dir.join("extensions.cnf"));
    std::fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}\n")).unwrap();
    let subject = format!("/CN={cn}");
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", path(key), "-out", path(&csr)]);
    let (ca, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let mut args = vec!["x509", "-req", "-in", path(&csr), "-CA", path(&ca), "-CAkey", path(&ca_key)];
    args.extend_from_slice(&["-set_serial", "2", "-days", "2", "-extfile", path(&ext), "-out", path(cert)]);
    openssl(&args);
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
