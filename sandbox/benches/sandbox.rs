//! Start-up and per-execution cost of the sandbox (`cargo bench -p troupe-sandbox`).
//!
//! - `js_warm`: a trivial async code step in a fresh instance restored from the snapshot.
//! - `expression`: one template expression.
//! - `wasi_warm`: the example WASI step (a hot module, fresh instance).
//! - `cold_start`: a new `Sandbox` from the artifact cache (deserialize QuickJS, initialise it,
//!   take the snapshot) plus its first execution: what a restarted worker pays once.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::time::{Duration, Instant};
use troupe_sandbox::{Limits, Sandbox, WASI_EXAMPLE_PATH};

const STEP: &str = "export const code = async (inputs) => { return { sum: inputs.a + inputs.b }; };";

fn benches(c: &mut Criterion) {
    let cache = std::env::temp_dir().join("troupe-sandbox-bench-cache");
    let sandbox = Sandbox::new(Limits::default(), Some(cache.clone())).unwrap();
    let far = || Instant::now() + Duration::from_secs(60);
    let inputs = json!({"a": 1, "b": 2});
    c.bench_function("js_warm", |b| b.iter(|| sandbox.run_js(STEP, &inputs, far()).unwrap()));
    let scope = json!({"trigger": {"body": {"items": [1, 2, 3]}}});
    c.bench_function("expression", |b| {
        b.iter(|| sandbox.eval_expressions(&["trigger.body.items.length + 1"], &scope, far()).unwrap())
    });
    let id = sandbox.add_module(&std::fs::read(WASI_EXAMPLE_PATH).unwrap()).unwrap();
    let text = json!({"text": "a few words"});
    c.bench_function("wasi_warm", |b| b.iter(|| sandbox.run_wasi(&id, || None, &text, far()).unwrap()));
    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    group.bench_function("cold_start", |b| {
        b.iter(|| {
            let fresh = Sandbox::new(Limits::default(), Some(cache.clone())).unwrap();
            fresh.run_js(STEP, &inputs, far()).unwrap()
        })
    });
    group.finish();
}

criterion_group!(sandbox, benches);
criterion_main!(sandbox);
