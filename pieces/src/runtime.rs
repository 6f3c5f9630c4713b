//! The piece runtime: an installed npm piece loaded in the sandbox's JS engine, and its
//! actions run there with Activepieces' context.
//!
//! Loading evaluates the Node layer (`runtime/node.js`: Node's globals and built-ins over the
//! guest's natives and the host-call channel) and the loader (`runtime/piece.js`: CommonJS
//! `require` over the lock's packages, the piece found among the exports, its metadata), then
//! keeps the engine's memory as an [`Image`]. Every action starts from that image, so a piece
//! is parsed and initialised once per process.
//!
//! Host calls a piece makes: `read` (a file of its packages, while loading), `fetch` (through
//! the [`Egress`]), `sleep` (a timer that is due later, bounded by the deadline); every other
//! call (`store.*`, `connection`, `waitpoint`, `resumeUrl`, `files.write`) goes to the caller's
//! [`HostOps`], which knows the run.

use crate::egress::{self, Egress};
use crate::package::PackageFiles;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use troupe_sandbox::{HostHandler, Image, Outcome, Sandbox, SandboxError};
use troupe_store::piece::PieceRecord;

const NODE_LAYER: &str = include_str!("runtime/node.js");
const LOADER: &str = include_str!("runtime/piece.js");
/// Calls the loader's operation named by the request's `operation`.
const OPERATION: &str = "(request) => __troupe_piece[request.operation](request)";

/// What a call into a loaded piece does (Activepieces' engine operations).
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    /// Execute an action (`run`).
    Action,
    /// Execute Property: a dropdown's options or a dynamic prop's props (`options`).
    Options,
    /// The piece's `auth.validate` on a connection value (`validateAuth`).
    ValidateAuth,
    /// A trigger hook: `onEnable`, `onDisable`, `run`, `test`, `onHandshake` (`trigger`).
    Trigger,
    /// An app webhook's event for the piece (`events.verify` and `events.parseAndReply`).
    AppEvent,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Action => "run",
            Operation::Options => "options",
            Operation::ValidateAuth => "validateAuth",
            Operation::Trigger => "trigger",
            Operation::AppEvent => "appEvent",
        }
    }
}

/// The script that loads a piece: the Node layer, then the loader (which evaluates to the
/// function called with the package tree).
static LOAD_SCRIPT: LazyLock<String> = LazyLock::new(|| format!("{NODE_LAYER}\n;\n{LOADER}"));

/// The engine with the Node layer loaded and nothing else: what code steps start from, so that
/// they have the globals pieces have (`Buffer`, `URL`, `crypto`, `fetch`, `TextEncoder`, …).
pub fn node_image(sandbox: &Sandbox) -> Result<Image, SandboxError> {
    let script = format!("{NODE_LAYER}\n;() => null");
    let deadline = Instant::now() + Duration::from_secs(60);
    sandbox.prepare_image(&script, &Value::Null, deadline, None).map(|(image, _)| image)
}

/// Answers the host calls that concern a run: `store.get/put/delete`, `connection`,
/// `waitpoint`, `resumeUrl`, `files.write`. `None` for a call it does not know.
pub type HostOps = Arc<dyn Fn(&Value) -> Option<Value> + Send + Sync>;

/// A piece loaded in the JS engine.
pub struct LoadedPiece {
    pub name: String,
    pub version: String,
    /// What `piece.metadata()` gave, with the package's name and version (Activepieces'
    /// piece metadata shape; functions left out).
    pub metadata: Value,
    image: Image,
}

impl LoadedPiece {
    /// Bytes this loaded piece keeps in memory.
    pub fn resident_bytes(&self) -> usize {
        self.image.resident_bytes()
    }
}

/// Loads `record` (its packages' files given) in `sandbox`. Blocks: call it on a blocking
/// thread.
pub fn load(
    sandbox: &Sandbox,
    record: &PieceRecord,
    files: BTreeMap<String, PackageFiles>,
    egress: Arc<Egress>,
    deadline: Instant,
) -> Result<LoadedPiece, SandboxError> {
    let mut packages = serde_json::Map::new();
    for (key, p) in &record.lock.packages {
        let pkg = files.get(key).map(|f| &f.files);
        let kind = pkg
            .and_then(|f| f.get("package.json"))
            .and_then(|m| serde_json::from_slice::<Value>(m).ok())
            .and_then(|m| m["type"].as_str().map(str::to_string));
        packages.insert(
            key.clone(),
            json!({
                "name": p.name,
                "version": p.version,
                "dependencies": p.dependencies,
                "files": pkg.map(|f| f.keys().collect::<Vec<_>>()).unwrap_or_default(),
                "type": kind,
            }),
        );
    }
    let tree = json!({"root": record.lock.root, "packages": packages});
    let files = Arc::new(files);
    let reader = {
        let files = files.clone();
        Arc::new(move |r: &Value| -> Option<Value> {
            if r["op"] != "read" {
                return None;
            }
            let key = r["package"].as_str().unwrap_or_default();
            let path = r["path"].as_str().unwrap_or_default();
            Some(match files.get(key).and_then(|p| p.files.get(path)) {
                Some(bytes) => json!({"ok": true, "text": String::from_utf8_lossy(bytes)}),
                None => json!({"ok": false, "error": "no such file"}),
            })
        }) as HostOps
    };
    let host = host_handler(egress, deadline, reader, None);
    let (image, outcome) = sandbox.prepare_image(&LOAD_SCRIPT, &tree, deadline, Some(host))?;
    Ok(LoadedPiece { name: record.name.clone(), version: record.version.clone(), metadata: outcome.output, image })
}

/// Runs an action of `piece`: `request` carries the action's name, its resolved input and
/// the run's facts (see `runtime/piece.js`). The output is `{output, hook}`, where `hook`
/// says whether the action stopped, responded or paused the run. Blocks.
pub fn run_action(
    sandbox: &Sandbox,
    piece: &LoadedPiece,
    request: &Value,
    deadline: Instant,
    egress: Arc<Egress>,
    ops: HostOps,
) -> Result<Outcome, SandboxError> {
    call(sandbox, piece, Operation::Action, request, deadline, egress, ops)
}

/// Runs nothing in `piece`'s image (a script that returns at once): the floor under every
/// call, for benchmarks.
pub fn ping(sandbox: &Sandbox, piece: &LoadedPiece, deadline: Instant) -> Result<Outcome, SandboxError> {
    sandbox.run_script(Some(&piece.image), "() => null", &Value::Null, deadline, None)
}

/// Calls `operation` of `piece` with `request` (its fields as `runtime/piece.js` reads them).
/// Blocks.
pub fn call(
    sandbox: &Sandbox,
    piece: &LoadedPiece,
    operation: Operation,
    request: &Value,
    deadline: Instant,
    egress: Arc<Egress>,
    ops: HostOps,
) -> Result<Outcome, SandboxError> {
    let mut request = request.clone();
    request["operation"] = operation.name().into();
    let own_api = request["server"]["apiUrl"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
    let host = host_handler(egress, deadline, ops, own_api);
    sandbox.run_script(Some(&piece.image), OPERATION, &request, deadline, Some(host))
}

/// The host-call handler of a piece: fetch and sleep here, the rest to `ops`.
fn host_handler(egress: Arc<Egress>, deadline: Instant, ops: HostOps, own_api: Option<String>) -> HostHandler {
    let fetch = egress::fetch_handler_for(egress, deadline, own_api);
    Arc::new(move |request: &[u8]| {
        let parsed: Value = match serde_json::from_slice(request) {
            Ok(v) => v,
            Err(e) => return reply(json!({"ok": false, "error": format!("unreadable host call: {e}")})),
        };
        match parsed["op"].as_str().unwrap_or_default() {
            "fetch" => {
                let out = fetch(request);
                // a 401 is told to `ops` (`{"op": "unauthorized", "url"}`): an OAuth2 token may
                // have been revoked or expired early, and the run may refresh it and try again
                #[derive(serde::Deserialize)]
                struct Status {
                    status: Option<u16>,
                }
                if serde_json::from_slice::<Status>(&out).is_ok_and(|s| s.status == Some(401)) {
                    ops(&json!({"op": "unauthorized", "url": parsed["url"]}));
                }
                out
            }
            "sleep" => {
                let ms = parsed["ms"].as_u64().unwrap_or(0);
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(Duration::from_millis(ms).min(left));
                reply(json!({"ok": true}))
            }
            op => reply(
                ops(&parsed).unwrap_or_else(|| json!({"ok": false, "error": format!("unknown host call {op:?}")})),
            ),
        }
    })
}

fn reply(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("a reply serializes")
}

/// Loaded pieces of this process, by `name@version`, each loaded once even when asked for
/// by many runs at the same time.
#[derive(Default)]
pub struct LoadedPieces {
    cells: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<LoadedPiece>>>>>,
}

impl LoadedPieces {
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<Arc<LoadedPiece>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<LoadedPiece, E>>,
    {
        let cell = self.cells.lock().unwrap().entry(key.to_string()).or_default().clone();
        let loaded = cell.get_or_try_init(|| async { load().await.map(Arc::new) }).await?;
        Ok(loaded.clone())
    }
}
