//! Start-up and shutdown of `troupe serve`: the embedded default wires NATS, the store, the
//! engine and the HTTP server in one process.

use crate::nats_child::NatsChild;
use anyhow::Context;
use rand::Rng;
use std::sync::Arc;
use tokio::net::TcpListener;
use troupe_gateway::AppState;
use troupe_store::config::ContainerType;
use troupe_store::tasks::Tasks;
use troupe_store::{Config, Store};

/// Makes sure an admin key exists: `AP_API_KEY`, or one generated on first start, printed once
/// and written to `$AP_CONFIG_PATH/api-key` (mode 0600).
fn ensure_api_key(config: &Config, store: &Store) -> anyhow::Result<()> {
    if let Some(key) = &config.api_key {
        store.add_api_key(key, "AP_API_KEY")?;
        return Ok(());
    }
    if store.has_api_keys() {
        return Ok(());
    }
    let mut rng = rand::rng();
    let key: String = (0..40)
        .map(|_| {
            let i = rng.random_range(0..62u8);
            (match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            }) as char
        })
        .collect();
    let key = format!("sk-{key}");
    store.add_api_key(&key, "generated at first start")?;
    let path = config.api_key_file();
    write_private(&path, &key)?;
    println!("Created an admin API key (shown once, also saved in {}):\n{key}", path.display());
    Ok(())
}

/// Writes a secret to a file only its owner can read.
fn write_private(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

/// Installs the connections' encryption key: `AP_ENCRYPTION_KEY`, or the key generated into
/// `$AP_CONFIG_PATH/encryption-key` at first start. A key that does not open the stored data
/// stops the start.
fn unlock_store(config: &Config, store: &Store) -> anyhow::Result<()> {
    let path = config.config_path.join("encryption-key");
    let key = match &config.encryption_key {
        Some(k) => k.clone(),
        None if path.exists() => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?.trim().to_string()
        }
        None => {
            let key = troupe_store::connection::Cipher::generate_key();
            write_private(&path, &key)?;
            println!("Generated an encryption key for connections into {} (mode 0600); back it up", path.display());
            key
        }
    };
    store.unlock(&key).context("refusing to start")?;
    Ok(())
}

/// Joins the cluster's replicated state: this process's node id, the state applied through
/// the stream's end, and the default project the cluster agreed on.
async fn join_cluster(
    config: &Config,
    store: &Store,
    js: &async_nats::jetstream::Context,
    tasks: &Tasks,
) -> anyhow::Result<(Option<String>, String)> {
    if config.encryption_key.is_none() {
        anyhow::bail!(
            "AP_CONTAINER_TYPE is set, so this process joins a cluster: set AP_ENCRYPTION_KEY, the same on every process, so that each can open the connections the others stored"
        );
    }
    let node = store.node_id()?;
    // a new origin per start: what this node published before a crash is applied again
    let origin = format!("{node}-{}", troupe_store::ids::new_ordered_id().to_lowercase());
    let replication = store.replicate(js.clone(), origin, tasks);
    tracing::info!(node, "applying the cluster's replicated state");
    replication.catch_up(js, std::time::Duration::from_secs(120)).await.map_err(anyhow::Error::msg)?;
    let kv = troupe_store::lease::cluster_bucket(js, config.nats_replicas).await.map_err(anyhow::Error::msg)?;
    let proposal = troupe_store::ids::new_ordered_id();
    let default_project = troupe_store::lease::agree(&kv, troupe_store::names::cluster::DEFAULT_PROJECT, &proposal)
        .await
        .map_err(anyhow::Error::msg)?;
    store.set_default_project(&default_project)?;
    tracing::info!(node, role = ?config.container_type, "joined the cluster");
    Ok((Some(node), default_project))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs `troupe serve` until SIGTERM or Ctrl-C. Must run inside an actix `System`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    troupe_gateway::metric_definitions::register();
    troupe_actors::metric_definitions::register();
    troupe_scheduler::metric_definitions::register();
    troupe_sandbox::register_metrics();
    troupe_store::metric_definitions::register();
    std::fs::create_dir_all(&config.config_path)
        .with_context(|| format!("creating AP_CONFIG_PATH {}", config.config_path.display()))?;
    // the one owner of every background task of this process
    let tasks = Tasks::default();
    let (nats_url, child) = match &config.nats_url {
        Some(url) => (url.clone(), None),
        None => {
            let child = NatsChild::start(&config.nats_store_dir(), &tasks).await?;
            (child.url.clone(), Some(child))
        }
    };
    // the embedded server's user for this process's role; for a cluster, AP_NATS_CREDS or
    // AP_NATS_USER and AP_NATS_PASSWORD
    let mut config = config;
    if let Some(child) = &child {
        use troupe_store::names::nats_permissions::{APP_USER, WORKER_USER};
        config.nats_user = Some(match config.container_type {
            ContainerType::Worker => (WORKER_USER.to_string(), child.users.worker.clone()),
            _ => (APP_USER.to_string(), child.users.app.clone()),
        });
    }
    let result = run_with_nats(&config, &nats_url, &tasks).await;
    // what is left (the replication tasks, in a cluster) stops with everything written; then
    // the embedded nats-server
    let late = tasks.shutdown(TASKS_GRACE).await;
    if let Some(child) = child {
        child.stop().await;
    }
    result?;
    if !late.is_empty() {
        tracing::warn!(?late, "background tasks did not stop within {} s", TASKS_GRACE.as_secs());
    }
    match tasks.failure() {
        Some(why) => anyhow::bail!("stopped because {why}"),
        None => Ok(()),
    }
}

/// How long the tasks left at the end of a shutdown have to stop.
const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn run_with_nats(config: &Config, nats_url: &str, tasks: &Tasks) -> anyhow::Result<()> {
    // AP_NATS_URL may list several servers of one cluster, comma-separated
    let servers = nats_url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("AP_NATS_URL={nats_url:?} is not a NATS URL (or a comma-separated list of them)"))?;
    let options = match (&config.nats_creds, &config.nats_user) {
        (Some(creds), _) => async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .with_context(|| format!("reading AP_NATS_CREDS {}", creds.display()))?,
        (None, Some((user, password))) => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        (None, None) => async_nats::ConnectOptions::new(),
    };
    let nats = options
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let js = async_nats::jetstream::new(nats.clone());
    // a NATS cluster that is just starting has no JetStream leader yet: retry for a while
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            troupe_store::streams::ensure_streams(
                &js,
                config.webhook_stream_max_bytes,
                config.nats_replicas,
                config.cluster,
            ),
        )
        .await;
        match attempt {
            Ok(Ok(kept)) => {
                tracing::debug!(?kept, "JetStream streams ready (name, max bytes)");
                break;
            }
            Ok(Err(e)) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("creating JetStream streams: {e}")
            }
            Err(_) if tokio::time::Instant::now() >= deadline => anyhow::bail!("NATS did not answer within 60 s"),
            Ok(Err(e)) => tracing::warn!(error = %e, "JetStream not ready; retrying"),
            Err(_) => tracing::warn!("NATS did not answer; retrying"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    let store = Store::open(&config.data_dir())
        .with_context(|| format!("opening the store in {}", config.data_dir().display()))?;
    let (node, default_project) = if config.cluster {
        join_cluster(config, &store, &js, tasks).await?
    } else {
        (None, store.ensure_default_project()?)
    };
    unlock_store(config, &store)?;
    if config.container_type != ContainerType::Worker {
        ensure_api_key(config, &store)?;
        troupe_gateway::users::ensure_first_admin(
            &store,
            config.admin_email.as_deref(),
            config.admin_password.as_deref(),
        )?;
    }
    store.flush().await?;

    let code = Arc::new(troupe_actors::code::CodeRunner::start(config));
    // the one way out for steps and triggers (SSRF policy, proxies, extra CAs)
    let egress = Arc::new(troupe_pieces::egress::Egress::new(config)?);
    let npm = Arc::new(troupe_actors::npm::NpmPieces::from_config(config, &store));
    let triggers = Arc::new(troupe_actors::npm::NpmTriggers {
        npm: npm.clone(),
        code: code.clone(),
        egress: egress.clone(),
        store: store.clone(),
        config: config.clone(),
    });
    // the engine's context, and the APP's own for test runs (the same parts, its own state)
    let engine_ctx = || {
        troupe_actors::context::EngineCtx::new(
            config.clone(),
            store.clone(),
            nats.clone(),
            code.clone(),
            egress.clone(),
            npm.clone(),
        )
        .map(|ctx| ctx.with_tasks(tasks.clone()))
    };
    let engine = if config.container_type != ContainerType::App {
        Some(troupe_actors::engine::Engine::start(engine_ctx()?, node.clone()).await?)
    } else {
        None
    };

    let mut scheduler_lease = None;
    let scheduler = if config.container_type != ContainerType::Worker {
        // in a cluster, one APP at a time fires timers: the holder of the scheduler lease
        let leader = match &node {
            Some(node) => {
                let kv =
                    troupe_store::lease::lease_bucket(&js, config.nats_replicas).await.map_err(anyhow::Error::msg)?;
                let (held, task) = troupe_store::lease::hold(
                    kv,
                    troupe_store::names::cluster::SCHEDULER_LEASE.into(),
                    node.clone(),
                    tasks,
                );
                scheduler_lease = Some(task);
                Some(held)
            }
            None => None,
        };
        Some(troupe_scheduler::Scheduler::start(
            config.clone(),
            store.clone(),
            async_nats::jetstream::new(nats.clone()),
            std::sync::Arc::new(troupe_scheduler::SystemClock),
            egress.clone(),
            Some(triggers.clone() as Arc<dyn troupe_scheduler::PieceTriggers>),
            leader,
            tasks,
        ))
    } else {
        None
    };

    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(troupe_gateway::server::load_tls(c, k)?),
        (None, None) => None,
        _ => anyhow::bail!("set both AP_TLS_CERT and AP_TLS_KEY to serve HTTPS, or neither"),
    };
    let replies = troupe_gateway::replies::Replies::start(&nats, tasks).await.context("subscribing to sync replies")?;
    let tester = Arc::new(engine_ctx()?);
    let state = Arc::new(AppState {
        tester,
        config: config.clone(),
        store: store.clone(),
        nats,
        js,
        default_project,
        code,
        replies,
        npm,
        egress: egress.clone(),
        triggers,
        handshakes: Default::default(),
    });
    let server = {
        let listener = TcpListener::bind(("0.0.0.0", config.port))
            .await
            .with_context(|| format!("binding port {} (AP_PORT)", config.port))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("troupe listening on {scheme}://127.0.0.1:{}", listener.local_addr()?.port());
        // without its listener the process serves nothing: a panic stops it
        tasks.essential("http server", move |stop| troupe_gateway::server::serve(listener, tls, state, stop))
    };

    let failed = tokio::select! {
        _ = shutdown_signal() => None,
        why = tasks.failed() => Some(why),
    };
    match &failed {
        None => tracing::info!("shutting down"),
        Some(why) => tracing::error!(why, "shutting down: an essential task failed"),
    }
    // in order: no new request, no new timer, no new run; the runs in flight finish (up to
    // the engine's grace), then everything is written
    server.stop().await;
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    if let Some(task) = scheduler_lease {
        task.stop().await;
    }
    if let Some(engine) = engine {
        engine.stop().await;
    }
    store.flush().await?;
    Ok(())
}
