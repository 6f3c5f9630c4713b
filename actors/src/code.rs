//! Code steps and template expressions: the bridge from runs to the sandbox.
//!
//! The sandbox is prepared on a thread of its own when the engine starts (loading or compiling
//! QuickJS takes from milliseconds to seconds), so the first code step may wait for it; nothing
//! else does. Executions run on tokio's blocking pool, at most `AP_SANDBOX_CONCURRENCY` at once.

use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{watch, Semaphore};
use troupe_sandbox::{Evaluated, Image, Limits, Outcome, Sandbox, SandboxError};
use troupe_store::{Config, Store};

/// The sandbox, and the image code steps start from: the engine with the Node layer loaded
/// (`Buffer`, `URL`, `crypto`, `fetch`, … as pieces have them).
type Ready = Option<Result<Arc<(Sandbox, Image)>, Arc<SandboxError>>>;

pub struct CodeRunner {
    ready: watch::Receiver<Ready>,
    slots: Semaphore,
    /// TypeScript code steps, stripped to JavaScript once per source.
    pub typescript: crate::typescript::Stripped,
}

impl CodeRunner {
    /// Starts preparing the sandbox in the background.
    pub fn start(config: &Config) -> CodeRunner {
        let (tx, rx) = watch::channel(None);
        let limits = Limits {
            memory_bytes: config.sandbox_memory_limit_mb << 20,
            max_output_bytes: (config.max_file_size_mb as usize) << 20,
            fuel: config.sandbox_fuel,
            ..Limits::default()
        };
        let cache = config.sandbox_cache_dir.clone();
        std::thread::Builder::new()
            .name("sandbox-init".into())
            .spawn(move || {
                let started = Instant::now();
                let sandbox = Sandbox::new(limits, Some(cache))
                    .and_then(|s| {
                        let node = troupe_pieces::runtime::node_image(&s)?;
                        Ok(Arc::new((s, node)))
                    })
                    .map_err(Arc::new);
                match &sandbox {
                    Ok(_) => tracing::info!(took_ms = started.elapsed().as_millis() as u64, "code sandbox ready"),
                    Err(e) => tracing::error!(error = %e, "the code sandbox could not start; code steps will fail"),
                }
                let _ = tx.send(Some(sandbox));
            })
            .expect("spawn the sandbox thread");
        CodeRunner { ready: rx, slots: Semaphore::new(config.sandbox_concurrency), typescript: Default::default() }
    }

    async fn sandbox(&self) -> Result<Arc<(Sandbox, Image)>, SandboxError> {
        let mut rx = self.ready.clone();
        let ready = rx.wait_for(Option::is_some).await.map_err(|_| internal("the sandbox thread is gone"))?;
        ready.clone().expect("waited for Some").map_err(|e| internal(&format!("the sandbox did not start: {e}")))
    }

    /// Runs `f` on the blocking pool once a slot is free.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Sandbox) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, SandboxError> {
        self.blocking_node(move |s, _| f(s)).await
    }

    /// [`Self::blocking`], with the image that has the Node layer loaded.
    async fn blocking_node<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Sandbox, &Image) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, SandboxError> {
        let ready = self.sandbox().await?;
        let _slot = self.slots.acquire().await.map_err(|_| internal("the sandbox is closed"))?;
        tokio::task::spawn_blocking(move || f(&ready.0, &ready.1))
            .await
            .unwrap_or_else(|e| Err(internal(&format!("the sandbox execution panicked: {e}"))))
    }

    pub async fn run_js(&self, source: String, inputs: Value, deadline: Instant) -> Result<Outcome, SandboxError> {
        self.blocking_node(move |s, node| s.run_js_in(Some(node), &source, &inputs, deadline, None)).await
    }

    /// A code step whose host calls (`fetch`) `host` answers.
    pub async fn run_js_with(
        &self,
        source: String,
        inputs: Value,
        deadline: Instant,
        host: troupe_sandbox::HostHandler,
    ) -> Result<Outcome, SandboxError> {
        self.blocking_node(move |s, node| s.run_js_in(Some(node), &source, &inputs, deadline, Some(host))).await
    }

    pub async fn eval(
        &self,
        exprs: Vec<String>,
        scope: Value,
        deadline: Instant,
    ) -> Result<Vec<Evaluated>, SandboxError> {
        self.blocking(move |s| {
            let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
            s.eval_expressions(&exprs, &scope, deadline)
        })
        .await
    }

    pub async fn run_wasi(
        &self,
        store: Store,
        id: String,
        input: Value,
        deadline: Instant,
    ) -> Result<Outcome, SandboxError> {
        self.blocking(move |s| s.run_wasi(&id, || store.wasm_module(&id).ok().flatten(), &input, deadline)).await
    }

    /// Checks and compiles a module for upload; returns its id.
    pub async fn add_module(&self, wasm: Vec<u8>) -> Result<String, SandboxError> {
        self.blocking(move |s| s.add_module(&wasm)).await
    }
}

fn internal(msg: &str) -> SandboxError {
    SandboxError::Internal(msg.to_string())
}
