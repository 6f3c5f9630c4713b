//! Running untrusted code in Wasmer: JavaScript code steps and template expressions through
//! QuickJS compiled to WebAssembly (`guests/js`), and plain WASI modules, each under a memory
//! cap, a deadline and fuel, with no filesystem, network or environment. It knows nothing of
//! flows.
//!
//! Nothing leaks from one execution to the next. A WASI module runs in a fresh `Store` and
//! instance every time. The JavaScript engine is initialised once and its memory recorded (the
//! snapshot); each execution starts from exactly that memory: in a fresh instance (only the pages
//! that differ from a fresh one are written), or in an instance an earlier execution on the
//! same thread returned from normally, its memory reset to the snapshot ([`restore`]). An
//! instance whose call trapped (deadline, fuel, memory cap, crash) or whose memory grew is
//! dropped, never reused. Modules are compiled once with a metered Cranelift engine, serialized
//! under the cache folder by content hash and kept in memory.

mod metric_definitions;
mod restore;
mod tunables;
mod wasi;
pub use wasi::HostHandler;
mod watchdog;

pub use metric_definitions::{register as register_metrics, *};

use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder, NativeEngineExt};
use wasmer::{Engine, FunctionEnv, Instance, Memory, Module, Pages, RuntimeError, Store};
use wasmer_middlewares::metering::{get_remaining_points, set_remaining_points, MeteringPoints};
use wasmer_middlewares::Metering;

/// QuickJS, built for wasm32-wasip1 by `build.rs`.
pub const JS_ENGINE_WASM: &[u8] = include_bytes!(env!("TROUPE_GUEST_JS"));
/// Where the build left the example WASI step (`guests/wasi-example`), for tests and docs.
pub const WASI_EXAMPLE_PATH: &str = env!("TROUPE_WASI_EXAMPLE");

/// Changes whenever serialized artifacts would no longer load: Wasmer's version, the compiler,
/// the middlewares.
const ARTIFACT_TAG: &str = "wasmer-7.4.2-cranelift-metered-1";
/// Bytes of JSON a JavaScript answer may add around the output itself (logs, framing).
const ANSWER_SLACK: usize = 256 * 1024;
/// Memory left to the JS engine's own bookkeeping and stack beyond QuickJS's heap limit.
const JS_HEADROOM: u64 = 8 * 1024 * 1024;
const PAGE: usize = 64 * 1024;

/// What every execution is held to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory cap (`AP_SANDBOX_MEMORY_LIMIT_MB`).
    pub memory_bytes: u64,
    /// Largest output, in bytes of JSON.
    pub max_output_bytes: usize,
    /// Largest log (console output, stderr) kept per execution.
    pub max_log_bytes: usize,
    /// Wasm instructions an execution may run: the second guard after the deadline.
    pub fuel: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { memory_bytes: 128 << 20, max_output_bytes: 10 << 20, max_log_bytes: 64 << 10, fuel: 1_000_000_000_000 }
    }
}

/// How an execution ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The code threw, returned something that is not JSON, or exited non-zero.
    #[error("{0}")]
    Failed(String),
    /// The deadline passed or the fuel ran out.
    #[error("{0}")]
    Timeout(String),
    /// The code needed more memory than the cap.
    #[error("{0}")]
    MemoryLimit(String),
    /// A module that cannot be loaded (not wasm, foreign imports, no `_start`).
    #[error("{0}")]
    Invalid(String),
    /// The sandbox itself failed.
    #[error("{0}")]
    Internal(String),
}

impl SandboxError {
    fn outcome(&self) -> &'static str {
        match self {
            SandboxError::Failed(_) | SandboxError::Invalid(_) => "failed",
            SandboxError::Timeout(_) => "timeout",
            SandboxError::MemoryLimit(_) => "memory_limit",
            SandboxError::Internal(_) => "internal",
        }
    }
}

/// A successful execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub output: Value,
    /// What the code logged (console, stderr), bounded by `Limits::max_log_bytes`.
    pub logs: String,
}

/// One expression's result: its value, or the error it threw.
pub type Evaluated = Result<Value, ExpressionError>;

/// What a template expression threw (`c is not defined`), as JavaScript words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpressionError(String);

impl From<String> for ExpressionError {
    fn from(message: String) -> ExpressionError {
        ExpressionError(message)
    }
}

impl From<&str> for ExpressionError {
    fn from(message: &str) -> ExpressionError {
        ExpressionError(message.to_string())
    }
}

/// The initialised JS engine's memory: its size, the pages that differ from a fresh instance
/// (to start a fresh one), and the whole image (to put a used one back).
struct Snapshot {
    /// Tells pooled instances of one snapshot from another's.
    id: u64,
    pages: Pages,
    chunks: Vec<(u64, Vec<u8>)>,
    image: Vec<u8>,
    layout: restore::Layout,
    /// The image in a memory file, mapped copy-on-write over instances instead of written into
    /// them (`image` and `chunks` are then empty); none where memory files do not exist.
    cow: Option<restore::CowImage>,
}

impl Snapshot {
    /// Bytes of memory an instance of this snapshot has.
    fn len(&self) -> usize {
        self.cow.as_ref().map(|c| c.len()).unwrap_or(self.image.len())
    }
}

/// JS engine instances a thread keeps for reuse, at most this many. Wasmer's `Store` cannot
/// move between threads, so each thread keeps its own.
const POOL_MAX: usize = 2;

thread_local! {
    /// Instances this thread ran JS in that returned normally, by the id of their sandbox.
    static POOL: std::cell::RefCell<Vec<((u64, u64), Parts)>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_SANDBOX_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_SNAPSHOT_ID: AtomicU64 = AtomicU64::new(1);

/// A JS engine's memory to start scripts from: the engine with a script's work done (a
/// loaded piece). Made by [`Sandbox::prepare_image`], good only for the sandbox that made it.
#[derive(Clone)]
pub struct Image(Arc<Snapshot>);

impl Image {
    /// Bytes this image keeps in memory: its whole image and the pages that differ from a
    /// fresh instance, or, mapped copy-on-write, its non-zero pages in the memory file.
    pub fn resident_bytes(&self) -> usize {
        let cow = self.0.cow.as_ref().map_or(0, |_| self.0.layout.nonzero_bytes());
        self.0.image.len() + self.0.chunks.iter().map(|(_, b)| b.len()).sum::<usize>() + cow
    }
}

pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    modules: Mutex<HashMap<String, Module>>,
    js: Module,
    snapshot: Arc<Snapshot>,
    /// Tells this sandbox's pooled instances from another's.
    id: u64,
}

/// The sha256 of a module, in hex: its id.
pub fn module_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

static HIGH_WATER: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Loads (or compiles, once) the JS engine and prepares its snapshot. `cache_dir` keeps
    /// compiled artifacts across restarts.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Sandbox, SandboxError> {
        let max_pages = Pages((limits.memory_bytes / PAGE as u64) as u32);
        let mut engine: Engine = EngineBuilder::headless().engine().into();
        engine.set_tunables(tunables::LimitingTunables::new(max_pages));
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| internal("create the sandbox cache folder", e))?;
        }
        let modules = Mutex::new(HashMap::new());
        let js = load_module(&engine, cache_dir.as_ref(), &modules, &module_hash(JS_ENGINE_WASM), true, || {
            Some(JS_ENGINE_WASM.to_vec())
        })?;
        let empty = Snapshot {
            id: 0,
            pages: Pages(0),
            chunks: Vec::new(),
            image: Vec::new(),
            layout: restore::Layout::of(&[]),
            cow: None,
        };
        let id = NEXT_SANDBOX_ID.fetch_add(1, Ordering::Relaxed);
        let mut sandbox = Sandbox { engine, limits, cache_dir, modules, js, snapshot: Arc::new(empty), id };
        sandbox.snapshot = Arc::new(sandbox.prepare_js()?);
        Ok(sandbox)
    }

    /// Runs an Activepieces code step: `source` exports `code`, called with `inputs`.
    pub fn run_js(&self, source: &str, inputs: &Value, deadline: Instant) -> Result<Outcome, SandboxError> {
        self.run_js_with(source, inputs, deadline, None)
    }

    /// [`Sandbox::run_js`] with `host` answering the code's host calls (`fetch`).
    pub fn run_js_with(
        &self,
        source: &str,
        inputs: &Value,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<Outcome, SandboxError> {
        self.run_js_in(None, source, inputs, deadline, host)
    }

    /// [`Sandbox::run_js_with`], starting from `image` when given (the bare engine else).
    pub fn run_js_in(
        &self,
        image: Option<&Image>,
        source: &str,
        inputs: &Value,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<Outcome, SandboxError> {
        let request = json!({"kind": "code", "source": source, "inputs": inputs});
        let snapshot = image.map(|i| &i.0).unwrap_or(&self.snapshot);
        let started = Instant::now();
        let result = self.js_call(snapshot, request, deadline, host).and_then(|(answer, logs)| outcome(answer, logs));
        record("js", started, &result);
        result
    }

    /// Runs a script in the JS engine: `source` evaluates to a function, called with `arg`
    /// (its promise awaited). It starts from `image` when given (a piece loaded by
    /// [`Sandbox::prepare_image`]), else from the bare engine.
    pub fn run_script(
        &self,
        image: Option<&Image>,
        source: &str,
        arg: &Value,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<Outcome, SandboxError> {
        let request = json!({"kind": "script", "source": source, "arg": arg});
        let snapshot = image.map(|i| &i.0).unwrap_or(&self.snapshot);
        let started = Instant::now();
        let result = self.js_call(snapshot, request, deadline, host).and_then(|(answer, logs)| outcome(answer, logs));
        record("script", started, &result);
        result
    }

    /// Runs a script as [`Sandbox::run_script`] does from the bare engine, then keeps the
    /// engine's memory as an image later scripts start from: a piece is loaded once, each of
    /// its actions starts from the loaded piece.
    pub fn prepare_image(
        &self,
        source: &str,
        arg: &Value,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<(Image, Outcome), SandboxError> {
        let mut request = json!({"kind": "script", "source": source, "arg": arg, "keep": true});
        let started = Instant::now();
        let result = (|| {
            let mut exec = self.fresh_execution(&self.snapshot, &mut request)?;
            let (answer, logs) = self.answer(&mut exec, deadline, host)?;
            let outcome = outcome(answer, logs)?;
            let snapshot = self.record_snapshot(&exec)?;
            Ok((Image(Arc::new(snapshot)), outcome))
        })();
        record("image", started, &result);
        result
    }

    /// Evaluates template expressions (`step_1.items.length + 1`) with `scope`'s keys as names.
    pub fn eval_expressions(
        &self,
        exprs: &[&str],
        scope: &Value,
        deadline: Instant,
    ) -> Result<Vec<Evaluated>, SandboxError> {
        let request = json!({"kind": "expr", "exprs": exprs, "scope": scope});
        let started = Instant::now();
        let result = self.js_call(&self.snapshot, request, deadline, None).map(|(answer, _)| {
            let values = answer["value"].as_array().cloned().unwrap_or_default();
            values
                .into_iter()
                .map(|v| {
                    if v["ok"] == true {
                        Ok(v.get("value").cloned().unwrap_or(Value::Null))
                    } else {
                        Err(v["error"].as_str().unwrap_or("the expression failed").into())
                    }
                })
                .collect()
        });
        record("expression", started, &result);
        result
    }

    /// Checks and compiles a WASI module, caching it; returns its id (sha256, hex).
    pub fn add_module(&self, wasm: &[u8]) -> Result<String, SandboxError> {
        let hash = module_hash(wasm);
        let module = self.load(&hash, || Some(wasm.to_vec()))?;
        if module.exports().functions().all(|f| f.name() != "_start") {
            return Err(SandboxError::Invalid(
                "the module has no `_start` export: build it as a wasm32-wasip1 program (a `main`)".into(),
            ));
        }
        Ok(hash)
    }

    /// Runs a WASI module: `input` as JSON on stdin, the output JSON read from stdout.
    /// `fetch` gives the module's bytes when it is neither in memory nor in the cache folder.
    pub fn run_wasi(
        &self,
        hash: &str,
        fetch: impl FnOnce() -> Option<Vec<u8>>,
        input: &Value,
        deadline: Instant,
    ) -> Result<Outcome, SandboxError> {
        let started = Instant::now();
        let result = self.load(hash, fetch).and_then(|module| {
            let stdin = serde_json::to_vec(input).map_err(|e| internal("encode the input", e))?;
            let mut exec = Execution::new(self, &module, stdin, self.limits.max_output_bytes)?;
            let call = exec.instance.exports.get_function("_start").cloned().map_err(|e| {
                SandboxError::Invalid(format!("the module has no `_start` export ({e}); build it as a program"))
            })?;
            let outcome = exec.run(deadline, |store| call.call(store, &[]).map(|_| ()));
            let exited_ok = match outcome {
                Ok(()) => true,
                Err(e) => match e.downcast_ref::<wasi::Exit>() {
                    Some(wasi::Exit(0)) => true,
                    Some(wasi::Exit(code)) => {
                        let logs = exec.logs();
                        return Err(SandboxError::Failed(format!("the module exited with code {code}{}", tail(&logs))));
                    }
                    None => return Err(exec.classify(e)),
                },
            };
            debug_assert!(exited_ok);
            let logs = exec.logs();
            let out = &exec.host().stdout;
            let output = if out.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(out).map_err(|e| {
                    SandboxError::Failed(format!("the module's stdout is not JSON ({e}){}", tail(&logs)))
                })?
            };
            Ok(Outcome { output, logs })
        });
        record("wasi", started, &result);
        result
    }

    fn load(&self, hash: &str, fetch: impl FnOnce() -> Option<Vec<u8>>) -> Result<Module, SandboxError> {
        load_module(&self.engine, self.cache_dir.as_ref(), &self.modules, hash, false, fetch)
    }

    /// Initialises QuickJS in one instance and records how its memory differs from a fresh one.
    fn prepare_js(&self) -> Result<Snapshot, SandboxError> {
        let mut exec = Execution::new(self, &self.js, Vec::new(), 0)?;
        let far = Instant::now() + std::time::Duration::from_secs(60);
        if let Ok(f) = exec.instance.exports.get_function("_initialize").cloned() {
            exec.run(far, |store| f.call(store, &[]).map(|_| ())).map_err(|e| internal("initialise the guest", e))?;
        }
        let init = exec
            .instance
            .exports
            .get_typed_function::<i64, i32>(&exec.store, "troupe_init")
            .map_err(|e| internal("find troupe_init", e))?;
        let heap_limit = self.limits.memory_bytes.saturating_sub(JS_HEADROOM) as i64;
        let status =
            exec.run(far, |store| init.call(store, heap_limit)).map_err(|e| internal("initialise QuickJS", e))?;
        if status != 0 {
            return Err(SandboxError::Internal(format!("QuickJS did not initialise (status {status})")));
        }
        let snapshot = self.record_snapshot(&exec)?;
        tracing::info!(
            pages = snapshot.pages.0,
            differing_bytes = snapshot.chunks.iter().map(|(_, b)| b.len()).sum::<usize>(),
            nonzero_bytes = snapshot.layout.nonzero_bytes(),
            "JS engine snapshot ready"
        );
        Ok(snapshot)
    }

    /// Records how `exec`'s memory differs from a fresh instance's.
    fn record_snapshot(&self, exec: &Execution<'_>) -> Result<Snapshot, SandboxError> {
        let image = exec.memory.view(&exec.store).copy_to_vec().map_err(|e| internal("read memory", e))?;
        let pages = exec.memory.view(&exec.store).size();
        let layout = restore::Layout::of(&image);
        let id = NEXT_SNAPSHOT_ID.fetch_add(1, Ordering::Relaxed);
        // mapped from a memory file, the image needs neither a copy nor its difference from a
        // fresh instance
        if let Some(cow) = restore::CowImage::new(&image, &layout) {
            return Ok(Snapshot { id, pages, chunks: Vec::new(), image: Vec::new(), layout, cow: Some(cow) });
        }
        let fresh = Execution::new(self, &self.js, Vec::new(), 0)?;
        let base = fresh.memory.view(&fresh.store).copy_to_vec().map_err(|e| internal("read memory", e))?;
        const CHUNK: usize = 4096;
        let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
        for (i, chunk) in image.chunks(CHUNK).enumerate() {
            let at = i * CHUNK;
            let same = match base.get(at..at + chunk.len()) {
                Some(b) => b == chunk,
                None => chunk.iter().all(|&b| b == 0),
            };
            if same {
                continue;
            }
            match chunks.last_mut() {
                Some((start, bytes)) if *start as usize + bytes.len() == at => bytes.extend_from_slice(chunk),
                _ => chunks.push((at as u64, chunk.to_vec())),
            }
        }
        Ok(Snapshot { id, pages, chunks, image, layout, cow: None })
    }

    /// One JS engine call: restore the snapshot, pass the request, read the answer.
    fn js_call(
        &self,
        snapshot: &Arc<Snapshot>,
        mut request: Value,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<(Value, String), SandboxError> {
        let stdin = stdin_of(&mut request)?;
        let out_limit = self.limits.max_output_bytes + ANSWER_SLACK;
        let key = (self.id, snapshot.id);
        let pooled = POOL.with_borrow_mut(|pool| {
            let at = pool.iter().rposition(|(k, _)| *k == key)?;
            Some(pool.swap_remove(at).1)
        });
        let mut exec = match pooled {
            Some(parts) => {
                let exec = Execution::reuse(self, parts, stdin, out_limit);
                let view = exec.memory.view(&exec.store);
                // `recycle` kept only instances whose memory is the snapshot's size
                assert_eq!(view.data_size(), snapshot.len() as u64, "a pooled instance's memory grew");
                match &snapshot.cow {
                    // SAFETY: the image was mapped over this static memory when the instance
                    // was made; no code runs in this store while it is reset.
                    Some(cow) => {
                        if !unsafe { cow.reset(view.data_ptr()) } {
                            return Err(internal("reset an instance", std::io::Error::last_os_error()));
                        }
                    }
                    None => {
                        // SAFETY: Wasmer's linear memory is a page-aligned private anonymous
                        // mapping of `data_size` bytes; no code runs in this store while it is
                        // reset.
                        unsafe { restore::reset(view.data_ptr(), &snapshot.image, &snapshot.layout) };
                        #[cfg(debug_assertions)]
                        assert!(
                            view.copy_to_vec().is_ok_and(|m| m == snapshot.image),
                            "a reused instance's memory differs from the snapshot"
                        );
                    }
                }
                INSTANCES.with_label_values(&["reused"]).inc();
                exec
            }
            None => {
                let exec = self.restored(snapshot, stdin, out_limit)?;
                INSTANCES.with_label_values(&["new"]).inc();
                exec
            }
        };
        let answer = self.answer(&mut exec, deadline, host)?;
        self.recycle(exec, snapshot, deadline);
        Ok(answer)
    }

    /// A new instance whose memory is `snapshot`'s, never pooled.
    fn fresh_execution(&self, snapshot: &Snapshot, request: &mut Value) -> Result<Execution<'_>, SandboxError> {
        let stdin = stdin_of(request)?;
        self.restored(snapshot, stdin, self.limits.max_output_bytes + ANSWER_SLACK)
    }

    fn restored(&self, snapshot: &Snapshot, stdin: Vec<u8>, out_limit: usize) -> Result<Execution<'_>, SandboxError> {
        let mut exec = Execution::new(self, &self.js, stdin, out_limit)?;
        let view_pages = exec.memory.view(&exec.store).size();
        if snapshot.pages > view_pages {
            exec.memory.grow(&mut exec.store, snapshot.pages - view_pages).map_err(|e| {
                SandboxError::MemoryLimit(format!(
                    "the loaded engine needs more memory than the sandbox allows ({} MiB): {e}",
                    self.limits.memory_bytes >> 20
                ))
            })?;
        }
        let view = exec.memory.view(&exec.store);
        if let Some(cow) = &snapshot.cow {
            // SAFETY: the memory is Wasmer's static linear memory (its base never moves), at
            // least the snapshot's size, and nothing has run in it.
            if !unsafe { cow.map_over(view.data_ptr()) } {
                return Err(internal("map the image", std::io::Error::last_os_error()));
            }
            return Ok(exec);
        }
        for (at, bytes) in &snapshot.chunks {
            view.write(*at, bytes).map_err(|e| internal("restore the snapshot", e))?;
        }
        Ok(exec)
    }

    /// Calls `troupe_run` in `exec` and reads its answer and logs.
    fn answer(
        &self,
        exec: &mut Execution<'_>,
        deadline: Instant,
        host: Option<wasi::HostHandler>,
    ) -> Result<(Value, String), SandboxError> {
        exec.env.as_mut(&mut exec.store).handler = host;
        let run = exec
            .instance
            .exports
            .get_typed_function::<(), i32>(&exec.store, "troupe_run")
            .map_err(|e| internal("find troupe_run", e))?;
        let status = match exec.run(deadline, |store| run.call(store)) {
            Ok(status) => status,
            Err(e) => return Err(exec.classify(e)),
        };
        exec.env.as_mut(&mut exec.store).handler = None;
        if exec.host().output_overflow {
            return Err(exec.output_too_large());
        }
        if status != 0 {
            return Err(SandboxError::Internal(format!("the JS engine failed to run (status {status})")));
        }
        let stdout = std::mem::take(&mut exec.env.as_mut(&mut exec.store).stdout);
        let answer: Value = serde_json::from_slice(&stdout).map_err(|e| internal("read the JS engine's answer", e))?;
        let logs = format_logs(&answer["logs"], self.limits.max_log_bytes);
        if let Some(value) = answer.get("value") {
            let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
            if size > self.limits.max_output_bytes {
                return Err(self.output_too_large());
            }
        }
        Ok((answer, logs))
    }

    /// Keeps a JS engine instance that returned normally for the next execution, unless its
    /// memory grew past the snapshot's (it would have to be cleared beyond the image), its
    /// deadline passed (the watchdog may have signalled it), or the pool is full.
    fn recycle(&self, exec: Execution<'_>, snapshot: &Snapshot, deadline: Instant) {
        if exec.deadline_hit || Instant::now() >= deadline || exec.memory.view(&exec.store).size() != snapshot.pages {
            return;
        }
        let parts = exec.into_parts();
        POOL.with_borrow_mut(|pool| {
            if pool.len() >= POOL_MAX {
                pool.remove(0);
            }
            pool.push(((self.id, snapshot.id), parts));
        });
    }

    /// JS engine instances of this sandbox the calling thread keeps for reuse.
    pub fn idle_instances(&self) -> usize {
        POOL.with_borrow(|pool| pool.iter().filter(|((id, _), _)| *id == self.id).count())
    }

    fn output_too_large(&self) -> SandboxError {
        SandboxError::Failed(format!(
            "the output is larger than the sandbox allows ({} bytes)",
            self.limits.max_output_bytes
        ))
    }
}

/// A request's bytes, with a fresh seed for the guest's `Math.random`.
fn stdin_of(request: &mut Value) -> Result<Vec<u8>, SandboxError> {
    let mut rng = rand::rng();
    request["seed"] = json!([rng.next_u32(), rng.next_u32()]);
    serde_json::to_vec(request).map_err(|e| internal("encode the request", e))
}

/// A JS answer as an outcome: its value, or the error it threw with what it logged before.
fn outcome(answer: Value, logs: String) -> Result<Outcome, SandboxError> {
    if answer["ok"] == true {
        Ok(Outcome { output: answer.get("value").cloned().unwrap_or(Value::Null), logs })
    } else {
        Err(match js_error(&answer["error"]) {
            SandboxError::Failed(m) => SandboxError::Failed(format!("{m}{}", tail(&logs))),
            other => other,
        })
    }
}

/// The module with this hash: from memory, the cache folder, or compiled from `fetch`.
fn load_module(
    engine: &Engine,
    cache_dir: Option<&PathBuf>,
    modules: &Mutex<HashMap<String, Module>>,
    hash: &str,
    host_calls: bool,
    fetch: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<Module, SandboxError> {
    if let Some(m) = modules.lock().unwrap().get(hash) {
        MODULE_LOADS.with_label_values(&["memory"]).inc();
        return Ok(m.clone());
    }
    let artifact = cache_dir.map(|d| d.join(format!("{hash}.{ARTIFACT_TAG}.bin")));
    let mut module = None;
    if let Some(path) = artifact.as_ref().filter(|p| p.exists()) {
        // SAFETY: artifacts in the cache folder are written by this process family only,
        // from modules it compiled itself; a corrupt one fails to load and is rebuilt.
        match unsafe { Module::deserialize_from_file(engine, path) } {
            Ok(m) => {
                MODULE_LOADS.with_label_values(&["disk"]).inc();
                module = Some(m);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable sandbox artifact");
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let module = match module {
        Some(m) => m,
        None => {
            let wasm = fetch().ok_or_else(|| SandboxError::Invalid(format!("no WASI module with id {hash}")))?;
            if module_hash(&wasm) != hash {
                return Err(SandboxError::Invalid(format!("the module's bytes do not hash to {hash}")));
            }
            let bytes = compile(&wasm, host_calls)?;
            if let Some(path) = &artifact {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path)).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            MODULE_LOADS.with_label_values(&["compiled"]).inc();
            // SAFETY: these bytes were serialized just above by the same Wasmer build.
            unsafe { Module::deserialize(engine, bytes) }.map_err(|e| internal("load a compiled module", e))?
        }
    };
    wasi::check_imports(&module, host_calls).map_err(|e| SandboxError::Invalid(e.to_string()))?;
    modules.lock().unwrap().insert(hash.to_string(), module.clone());
    Ok(module)
}

/// One instance in its own store, with the limits applied.
struct Execution<'a> {
    sandbox: &'a Sandbox,
    store: Store,
    env: FunctionEnv<wasi::Host>,
    instance: Instance,
    memory: Memory,
    deadline_hit: bool,
}

/// An instance between two executions.
struct Parts {
    store: Store,
    env: FunctionEnv<wasi::Host>,
    instance: Instance,
    memory: Memory,
}

impl<'a> Execution<'a> {
    fn new(sandbox: &'a Sandbox, module: &Module, stdin: Vec<u8>, out_limit: usize) -> Result<Self, SandboxError> {
        let mut store = Store::new(sandbox.engine.clone());
        let env = FunctionEnv::new(&mut store, wasi::Host::new(stdin, out_limit, sandbox.limits.max_log_bytes));
        let imports = wasi::imports_for(&mut store, &env, module);
        let instance = Instance::new(&mut store, module, &imports).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("pages of memory at start") {
                SandboxError::MemoryLimit(msg)
            } else {
                SandboxError::Invalid(format!("the module cannot be instantiated: {msg}"))
            }
        })?;
        let memory = instance
            .exports
            .get_memory("memory")
            .cloned()
            .map_err(|_| SandboxError::Invalid("the module exports no memory".into()))?;
        env.as_mut(&mut store).memory = Some(memory.clone());
        set_remaining_points(&mut store, &instance, sandbox.limits.fuel);
        Ok(Execution { sandbox, store, env, instance, memory, deadline_hit: false })
    }

    /// An instance that ran before, with a new host state (stdin, empty outputs) and full fuel.
    /// Its memory is the caller's to restore.
    fn reuse(sandbox: &'a Sandbox, parts: Parts, stdin: Vec<u8>, out_limit: usize) -> Self {
        let Parts { mut store, env, instance, memory } = parts;
        let mut host = wasi::Host::new(stdin, out_limit, sandbox.limits.max_log_bytes);
        host.memory = Some(memory.clone());
        *env.as_mut(&mut store) = host;
        set_remaining_points(&mut store, &instance, sandbox.limits.fuel);
        Execution { sandbox, store, env, instance, memory, deadline_hit: false }
    }

    fn into_parts(self) -> Parts {
        Parts { store: self.store, env: self.env, instance: self.instance, memory: self.memory }
    }

    fn host(&self) -> &wasi::Host {
        self.env.as_ref(&self.store)
    }

    /// Calls into the instance under the deadline.
    fn run<T>(
        &mut self,
        deadline: Instant,
        call: impl FnOnce(&mut Store) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        if Instant::now() >= deadline {
            self.deadline_hit = true;
            return Err(RuntimeError::new("the deadline had already passed"));
        }
        ACTIVE.inc();
        let guard = watchdog::watch(deadline, self.store.interrupter());
        let result = call(&mut self.store);
        self.deadline_hit = guard.fired();
        drop(guard);
        ACTIVE.dec();
        let used = self.memory.view(&self.store).data_size();
        if used > HIGH_WATER.fetch_max(used, Ordering::Relaxed) {
            MEMORY_HIGH_WATER.set(used as i64);
        }
        result
    }

    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.host().stderr).into_owned()
    }

    fn output_too_large(&self) -> SandboxError {
        self.sandbox.output_too_large()
    }

    /// Why a call trapped: the deadline, the fuel, the memory cap, or the code itself.
    fn classify(&mut self, e: RuntimeError) -> SandboxError {
        if self.deadline_hit {
            return SandboxError::Timeout("the code was still running at the run's deadline".into());
        }
        if matches!(get_remaining_points(&mut self.store, &self.instance), MeteringPoints::Exhausted) {
            return SandboxError::Timeout(format!(
                "the code used its instruction budget ({} wasm instructions)",
                self.sandbox.limits.fuel
            ));
        }
        if self.host().output_overflow {
            return self.output_too_large();
        }
        let used = self.memory.view(&self.store).data_size();
        let message = e.message();
        let logs = self.logs();
        // a guest whose allocation failed aborts (Rust prints this line first); a guest that
        // traps with its memory at the cap ran out of it in some other way
        if used + 2 * PAGE as u64 > self.sandbox.limits.memory_bytes || logs.contains("memory allocation of") {
            return SandboxError::MemoryLimit(format!(
                "the code used all the memory the sandbox allows ({} MiB): {message}",
                self.sandbox.limits.memory_bytes >> 20
            ));
        }
        SandboxError::Failed(format!("the code crashed: {message}{}", tail(&logs)))
    }
}

/// Compiles with a fresh metered engine (one `Metering` can compile only one module) and
/// returns the serialized artifact.
fn compile(wasm: &[u8], host_calls: bool) -> Result<bytes::Bytes, SandboxError> {
    let mut compiler = Cranelift::default();
    compiler.push_middleware(Arc::new(Metering::new(0, |_: &wasmer::wasmparser::Operator| 1)));
    let engine: Engine = EngineBuilder::new(compiler).engine().into();
    let module = Module::new(&engine, wasm).map_err(|e| SandboxError::Invalid(format!("not a valid module: {e}")))?;
    wasi::check_imports(&module, host_calls).map_err(|e| SandboxError::Invalid(e.to_string()))?;
    module.serialize().map_err(|e| internal("serialize a compiled module", e))
}

fn js_error(error: &Value) -> SandboxError {
    let name = error["name"].as_str().unwrap_or("Error");
    let message = error["message"].as_str().unwrap_or("");
    if name == "InternalError" && message.contains("out of memory") {
        return SandboxError::MemoryLimit(format!("the code ran out of memory: {name}: {message}"));
    }
    SandboxError::Failed(format!("{name}: {message}"))
}

/// `console` lines as text, one per call; levels other than `log` are marked.
fn format_logs(logs: &Value, limit: usize) -> String {
    let mut out = String::new();
    for line in logs.as_array().into_iter().flatten() {
        let level = line["level"].as_str().unwrap_or("log");
        let message = line["message"].as_str().unwrap_or("");
        if level != "log" && level != "info" {
            out.push_str(&format!("[{level}] "));
        }
        out.push_str(message);
        out.push('\n');
        if out.len() > limit {
            let mut cut = limit;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            break;
        }
    }
    out
}

/// The end of a log, to append to an error message.
fn tail(logs: &str) -> String {
    let logs = logs.trim();
    if logs.is_empty() {
        return String::new();
    }
    let mut start = logs.len().saturating_sub(500);
    while !logs.is_char_boundary(start) {
        start += 1;
    }
    format!("; its last output: {}", &logs[start..])
}

fn internal(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(format!("could not {what}: {e}"))
}

fn record<T>(kind: &str, started: Instant, result: &Result<T, SandboxError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    EXECUTIONS.with_label_values(&[kind, outcome]).inc();
    EXECUTION_DURATION.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use wasmer::wasmparser::{Parser, Payload};

    /// A reused instance gets its memory, fuel and host state back, but not its globals: that is
    /// sound only while the guest's one mutable global is the stack pointer, which every normal
    /// return restores (an instance whose call trapped is never reused).
    #[test]
    fn the_js_engine_has_no_mutable_global_but_its_stack_pointer() {
        let mut mutable = 0;
        for payload in Parser::new(0).parse_all(super::JS_ENGINE_WASM) {
            if let Payload::GlobalSection(globals) = payload.unwrap() {
                for g in globals {
                    mutable += usize::from(g.unwrap().ty.mutable);
                }
            }
        }
        assert_eq!(mutable, 1, "the guest has mutable globals a reused instance would carry over");
    }

    /// Nor can it change other instance state that outlives a call: tables and dropped segments.
    #[test]
    fn the_js_engine_never_changes_its_tables_or_segments() {
        use wasmer::wasmparser::Operator as O;
        let mut found = Vec::new();
        for payload in Parser::new(0).parse_all(super::JS_ENGINE_WASM) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut ops = body.get_operators_reader().unwrap();
                while !ops.eof() {
                    let op = ops.read().unwrap();
                    if matches!(
                        op,
                        O::TableSet { .. }
                            | O::TableGrow { .. }
                            | O::TableFill { .. }
                            | O::TableCopy { .. }
                            | O::TableInit { .. }
                            | O::ElemDrop { .. }
                            | O::DataDrop { .. }
                    ) {
                        found.push(format!("{op:?}"));
                    }
                }
            }
        }
        assert!(found.is_empty(), "instance state a reset would not restore: {found:?}");
    }
}
