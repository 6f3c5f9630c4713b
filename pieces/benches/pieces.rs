//! What an npm piece costs (`cargo bench -p troupe-pieces --bench pieces`): the first use of a
//! piece in a process (load its packages' files, evaluate the Node layer and the piece, take
//! the image), an action that does no I/O from that image (warm), and the memory a loaded
//! piece keeps. The packages come from the npm registry once, then from the cache under the
//! target directory.
//!
//! - `piece_action_warm/<piece>`: `advanced_mapping` of `piece-data-mapper` 0.3.15 (compiled
//!   TypeScript with its dependencies: the framework, zod, ai, axios, …) and `put` of
//!   `piece-store` 0.6.20 (one esbuild bundle) with a store answered in memory.
//! - `piece_first_use/<piece>`: `runtime::load` plus one action, from installed files.
//! - `piece_ping_warm/<piece>`: a script that does nothing, from the same image: the floor.
//! - `code_step_warm/{bare,node_layer}`: a trivial code step from the bare engine and from the
//!   engine with the Node layer (what code steps start from), same sitting.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use troupe_pieces::egress::Egress;
use troupe_pieces::installed::InstalledPieces;
use troupe_pieces::registry::{Registry, DEFAULT_REGISTRY};
use troupe_pieces::runtime::{self, HostOps};
use troupe_sandbox::{Limits, Sandbox};

const PIECES: &[(&str, &str, &str)] = &[
    ("@activepieces/piece-data-mapper", "0.3.15", "advanced_mapping"),
    ("@activepieces/piece-store", "0.6.20", "put"),
];

fn request(action: &str) -> Value {
    let input = match action {
        "put" => json!({"key": "k", "value": {"n": 1}, "store_scope": "COLLECTION"}),
        _ => json!({"mapping": {"who": "Ada", "n": 3, "nested": {"list": [1, 2, 3]}}}),
    };
    json!({
        "action": action, "input": input, "executionType": "BEGIN", "runId": "run-1", "projectId": "p",
        "flowId": "f", "flowVersionId": "v", "stepName": "step_1", "storeKeyMax": 128,
        "server": {"apiUrl": "http://troupe.test/api/", "publicUrl": "http://troupe.test/api/", "token": ""},
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = troupe_store::Store::open(dir.path()).unwrap();
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/npm-cache-bench");
    let installed = InstalledPieces::new(store, Registry::new(DEFAULT_REGISTRY, Some(cache)));
    let sandbox_cache = std::env::temp_dir().join("troupe-sandbox-bench-cache");
    let sandbox = Sandbox::new(Limits::default(), Some(sandbox_cache)).unwrap();
    let config = troupe_store::Config::from_lookup(|_| None).unwrap();
    let egress = Arc::new(Egress::new(&config).unwrap());
    let ops: HostOps = Arc::new(|r: &Value| Some(json!({"ok": true, "value": r.get("value").cloned()})));
    let far = || Instant::now() + Duration::from_secs(60);
    // a code step from the bare engine and from the engine with the Node layer, same sitting
    let node = runtime::node_image(&sandbox).unwrap();
    let step = "export const code = async (inputs) => { return { sum: inputs.a + inputs.b }; };";
    let inputs = json!({"a": 1, "b": 2});
    for (label, image) in [("bare", None), ("node_layer", Some(&node))] {
        c.bench_function(&format!("code_step_warm/{label}"), |b| {
            b.iter(|| sandbox.run_js_in(image, step, &inputs, far(), None).unwrap())
        });
    }
    eprintln!("the Node layer's image keeps {} KiB", node.resident_bytes() >> 10);
    for (name, version, action) in PIECES {
        let record = rt.block_on(installed.add(name, version, None)).unwrap();
        let short = name.trim_start_matches("@activepieces/piece-");
        let request = request(action);
        let mut group = c.benchmark_group("piece_first_use");
        group.sample_size(10);
        group.bench_function(short, |b| {
            b.iter(|| {
                let files = rt.block_on(installed.files(&record)).unwrap();
                let piece = runtime::load(&sandbox, &record, files, egress.clone(), far()).unwrap();
                runtime::run_action(&sandbox, &piece, &request, far(), egress.clone(), ops.clone()).unwrap()
            })
        });
        group.finish();
        let files = rt.block_on(installed.files(&record)).unwrap();
        let piece = runtime::load(&sandbox, &record, files, egress.clone(), far()).unwrap();
        eprintln!("{name}@{version}: the loaded piece keeps {} KiB", piece.resident_bytes() >> 10);
        let out = runtime::run_action(&sandbox, &piece, &request, far(), egress.clone(), ops.clone()).unwrap();
        assert!(out.output["hook"]["type"] == "none", "{}", out.output);
        c.bench_function(&format!("piece_ping_warm/{short}"), |b| {
            b.iter(|| runtime::ping(&sandbox, &piece, far()).unwrap())
        });
        c.bench_function(&format!("piece_action_warm/{short}"), |b| {
            b.iter(|| runtime::run_action(&sandbox, &piece, &request, far(), egress.clone(), ops.clone()).unwrap())
        });
    }
}

criterion_group!(pieces, benches);
criterion_main!(pieces);
