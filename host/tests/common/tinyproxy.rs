//! A real HTTP proxy for the tests: Debian's tinyproxy, started with a generated
//! configuration on a free loopback port, with or without Basic credentials. `scripts/setup`
//! installs it; a machine without it fails these tests, it does not skip them.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tinyproxy; killed when dropped.
pub struct Tinyproxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// Where tinyproxy is: `$TINYPROXY`, else the first `tinyproxy` on `PATH` or in `/usr/bin`
/// and `/usr/sbin`.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TINYPROXY") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("tinyproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tinyproxy is not installed: these tests run a real HTTP proxy. \
                 Run scripts/setup (it installs Debian's tinyproxy), or set TINYPROXY to its path."
            )
        })
}

impl Tinyproxy {
    /// Starts tinyproxy on a free port; `auth` adds `BasicAuth user password`.
    pub fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        let bin = binary();
        // A free port: tinyproxy cannot report an ephemeral one, so take one and hand it
        // over (retrying if another process grabs it in between).
        for _ in 0..5 {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("tinyproxy.conf");
            let log = dir.path().join("tinyproxy.log");
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 5\nMaxClients 50\n\
                 LogLevel Info\nLogFile \"{}\"\nDisableViaHeader Yes\n",
                log.display()
            );
            // tinyproxy refuses to run as root without a user to drop to.
            if is_root() {
                text.push_str("User nobody\nGroup nogroup\n");
                // The log file must be writable by that user.
                std::fs::File::create(&log).unwrap();
                let _ = Command::new("chmod").arg("0666").arg(&log).status();
                let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
            }
            if let Some((u, p)) = auth {
                text.push_str(&format!("BasicAuth {u} {p}\n"));
            }
            std::fs::File::create(&conf)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut t = Tinyproxy { port, child, dir };
            if t.wait_ready() {
                return t;
            }
        }
        panic!("tinyproxy did not start listening (5 tries)");
    }

    /// `true` once it accepts connections; `false` if it exited.
    fn wait_ready(&mut self) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// `127.0.0.1:port`, with credentials when given.
    pub fn proxy(&self, creds: Option<(&str, &str)>) -> slup_host::Proxy {
        let text = match creds {
            Some((u, p)) => format!("{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        };
        slup_host::Proxy::parse(&text).unwrap()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
