//! A real SMTP server for tests (feature `test-util`): aiosmtpd run from
//! `tests/mail/smtp_server.py` as a subprocess on a free loopback port, and
//! `tests/mail/check_mail.py`, which parses what it received with Python's
//! `email` package. Needs `python3` and `pip install aiosmtpd`; without them
//! `start` fails saying so (never a silent skip).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The repository root (scripts live in its `tests/mail/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/mail/<name>` of this repository.
pub fn script(name: &str) -> PathBuf {
    root().join("tests/mail").join(name)
}

/// How the server misbehaves.
#[derive(Debug, Default, Clone)]
pub struct Behaviour {
    /// Answer 454 to the first N RCPT commands.
    pub tempfail: u32,
    /// Answer 550 to RCPT TO these addresses.
    pub reject: Vec<String>,
    /// Listen on this address instead of 127.0.0.1 (see `non_loopback_ip`).
    pub host: Option<String>,
    /// Offer STARTTLS (and require it) with this certificate.
    pub tls: Option<TestCert>,
    /// TLS from the first byte (smtps) with `tls`'s certificate.
    pub implicit_tls: bool,
}

/// A test CA and a server certificate it signed for one host (made with the
/// `openssl` command line at test time; never committed).
#[derive(Debug, Clone)]
pub struct TestCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the TLS tests need the openssl command ({e})"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCert {
    /// A CA and a certificate for `ip` (an IP subject alternative name) in `dir`.
    pub fn for_ip(dir: &Path, ip: &str) -> Self {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=cpo test CA",
            "-days",
            "2",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        let subject = format!("/CN={ip}");
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &subject,
        ]);
        openssl(dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName=IP:{ip}\n"
            ),
        )
        .expect("write server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// An IPv4 address of this machine that is not loopback (`hostname -I`), so a
/// test can reach a local server the way it would reach a remote one.
pub fn non_loopback_ip() -> String {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap_or_else(|e| panic!("hostname -I: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .expect("this test needs a non-loopback IPv4 address (hostname -I shows none)")
}

pub struct SmtpServer {
    child: Child,
    // Held open: the server stops when it closes.
    _stdin: ChildStdin,
    pub port: u16,
    pub host: String,
    pub dir: PathBuf,
}

impl SmtpServer {
    /// Starts the server storing messages in `dir`; panics with what to
    /// install when python3 or aiosmtpd is missing.
    pub fn start(dir: &Path, behaviour: &Behaviour) -> Self {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .unwrap_or_else(|e| panic!("the SMTP tests need python3 ({e})"));
        assert!(
            probe.status.success(),
            "the SMTP tests need aiosmtpd: pip install aiosmtpd ({})",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        let mut command = Command::new("python3");
        command
            .arg(script("smtp_server.py"))
            .arg("--out")
            .arg(dir)
            .arg("--tempfail")
            .arg(behaviour.tempfail.to_string());
        for address in &behaviour.reject {
            command.arg("--reject").arg(address);
        }
        if let Some(host) = &behaviour.host {
            command.arg("--host").arg(host);
        }
        if let Some(tls) = &behaviour.tls {
            command
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key);
            if behaviour.implicit_tls {
                command.arg("--implicit-tls");
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its log (TLS handshakes the tests make fail on purpose) goes
            // beside the messages rather than into the test output.
            .stderr(
                std::fs::File::create(dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::inherit()),
            )
            .spawn()
            .expect("start tests/mail/smtp_server.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("smtp_server.py did not start: {line:?}"));
        Self {
            child,
            _stdin: stdin,
            port,
            host: behaviour.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
            dir: dir.to_path_buf(),
        }
    }

    /// `smtp://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}:{}", self.host, self.port)
    }

    /// The stored messages, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `check_mail.py DIR ARGS..`; `Ok(summary JSON)` or `Err(what failed)`.
pub fn check_mail(dir: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new("python3")
        .arg(script("check_mail.py"))
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("run check_mail.py: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("check_mail.py output: {e}"))
}
