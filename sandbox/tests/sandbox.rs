//! The sandbox against hostile and ordinary code, with real Wasmer and the real QuickJS guest.

use serde_json::{json, Value};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use troupe_sandbox::{Limits, Sandbox, SandboxError, WASI_EXAMPLE_PATH};

/// One sandbox for the whole file (the first one compiles QuickJS; later ones load the cache).
static SANDBOX: LazyLock<Sandbox> = LazyLock::new(|| {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-cache");
    Sandbox::new(Limits::default(), Some(cache)).expect("sandbox")
});

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn js(code: &str, inputs: Value) -> Result<troupe_sandbox::Outcome, SandboxError> {
    SANDBOX.run_js(code, &inputs, soon())
}

#[test]
fn an_activepieces_code_step_runs_with_its_inputs() {
    let code = r#"export const code = async (inputs) => {
        const total = inputs.numbers.reduce((a, b) => a + b, 0);
        await new Promise((resolve) => setTimeout(resolve, 10));
        console.log('total is', total, {n: inputs.numbers.length});
        return { total, upper: inputs.name.toUpperCase(), re: /b+/.exec('abbbc')[0], keys: Object.keys(inputs).sort(),
                 date: new Date(0).toISOString(), pi: Math.round(Math.E * 100) / 100 };
    };"#;
    let out = js(code, json!({"numbers": [1, 2, 3, 4], "name": "ada"})).unwrap();
    assert_eq!(
        out.output,
        json!({"total": 10, "upper": "ADA", "re": "bbb", "keys": ["name", "numbers"], "date": "1970-01-01T00:00:00.000Z", "pi": 2.72})
    );
    assert_eq!(out.logs, "total is 10 {\"n\":4}\n");
}

#[test]
fn return_values_of_every_shape_come_back_as_json() {
    let cases = [
        ("undefined", Value::Null),
        ("null", Value::Null),
        ("({a: {b: [1, {c: 'd'}]}})", json!({"a": {"b": [1, {"c": "d"}]}})),
        ("'héllo → 世界 🎉'", json!("héllo → 世界 🎉")),
        ("inputs.text + '!'", json!("ünï ✓!")),
        ("[1.5, true, -0]", json!([1.5, true, 0])),
    ];
    for (expr, want) in cases {
        let code = format!("export const code = async (inputs) => {expr};");
        let out = js(&code, json!({"text": "ünï ✓"})).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(out.output, want, "{expr}");
    }
}

#[test]
fn a_step_that_throws_fails_with_the_javascript_message() {
    let err =
        js("export const code = async () => { throw new TypeError('no such customer'); };", json!({})).unwrap_err();
    assert_eq!(err, SandboxError::Failed("TypeError: no such customer".into()));
    let err =
        js("export const code = async () => { console.log('looking', 42); throw new Error('gone'); };", json!({}))
            .unwrap_err();
    assert_eq!(err, SandboxError::Failed("Error: gone; its last output: looking 42".into()));
    let err = js("export const code = async (inputs) => inputs.missing.field;", json!({})).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.starts_with("TypeError")), "{err}");
    let err = js("export const code = (", json!({})).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.starts_with("SyntaxError")), "{err}");
    let err = js("export const notCode = 1;", json!({})).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.contains("export a function named `code`")), "{err}");
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let started = Instant::now();
    let err = SANDBOX
        .run_js(
            "export const code = async () => { while (true) {} };",
            &json!({}),
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
    assert!(matches!(err, SandboxError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // the same sandbox carries on
    assert_eq!(js("export const code = async () => 7;", json!({})).unwrap().output, json!(7));
}

#[test]
fn fuel_stops_a_loop_when_the_deadline_is_far() {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-cache");
    let small = Sandbox::new(Limits { fuel: 50_000_000, ..Limits::default() }, Some(cache)).unwrap();
    let err = small
        .run_js(
            "export const code = async () => { for (;;) {} };",
            &json!({}),
            Instant::now() + Duration::from_secs(600),
        )
        .unwrap_err();
    assert!(matches!(&err, SandboxError::Timeout(m) if m.contains("instruction budget")), "{err}");
}

#[test]
fn a_memory_bomb_hits_the_cap_and_nothing_else() {
    let code = "export const code = async () => { const a = []; for (;;) { a.push(new Array(1e6).fill(1.5)); } };";
    let err = js(code, json!({})).unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit(_)), "{err}");
    let code = "export const code = async () => { let s = 'x'; for (;;) { s = s + s; } };";
    let err = js(code, json!({})).unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit(_) | SandboxError::Failed(_)), "{err}");
    assert_eq!(js("export const code = async () => 'fine';", json!({})).unwrap().output, json!("fine"));
}

#[test]
fn deep_recursion_is_a_range_error() {
    let err = js("const f = (n) => f(n + 1) + 1; export const code = async () => f(0);", json!({})).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.contains("stack")), "{err}");
}

#[test]
fn a_huge_output_is_refused() {
    let code = "export const code = async () => 'x'.repeat(11 * 1024 * 1024);";
    let err = js(code, json!({})).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.contains("output is larger")), "{err}");
}

#[test]
fn logs_are_bounded() {
    let code =
        "export const code = async () => { for (let i = 0; i < 100000; i++) console.log('line', i); return 1; };";
    let out = js(code, json!({})).unwrap();
    assert!(out.logs.len() <= 64 * 1024, "{}", out.logs.len());
    assert!(out.logs.contains("line 0\n"));
}

#[test]
fn there_is_no_file_system_network_or_environment() {
    let code = r#"export const code = async () => ({
        require: typeof require, process: typeof process, xhr: typeof XMLHttpRequest,
        std: typeof std, os: typeof os, deno: typeof Deno, wasm: typeof WebAssembly,
    });"#;
    let out = js(code, json!({})).unwrap();
    for (name, kind) in out.output.as_object().unwrap() {
        assert_eq!(kind, "undefined", "{name} is reachable");
    }
    // fetch exists, and reaches out only through a host that answers it (the engine's egress)
    let err = js("export const code = async () => fetch('http://127.0.0.1:1/')", json!({})).unwrap_err();
    assert!(err.to_string().contains("fetch is not available here"), "{err}");
    for module in ["std", "os", "fs", "node:fs"] {
        let code = format!("import * as m from '{module}'; export const code = async () => Object.keys(m);");
        let err = js(&code, json!({})).unwrap_err();
        assert!(matches!(err, SandboxError::Failed(_)), "{module}: {err}");
    }
    let err =
        js("export const code = async () => (await import('fs')).readFileSync('/etc/passwd');", json!({})).unwrap_err();
    assert!(matches!(err, SandboxError::Failed(_)), "{err}");
}

#[test]
fn nothing_survives_from_one_execution_to_the_next() {
    let code = "export const code = async () => { const seen = globalThis.counter ?? 0; globalThis.counter = seen + 1; Object.prototype.polluted = 1; return { seen, polluted: ({}).polluted ?? null, r: Math.random() }; };";
    let a = js(code, json!({})).unwrap().output;
    let b = js(code, json!({})).unwrap().output;
    assert_eq!(a["seen"], 0);
    assert_eq!(b["seen"], 0);
    assert_eq!(a["polluted"], 1);
    assert_ne!(a["r"], b["r"], "Math.random repeats across executions");
}

#[test]
fn expressions_evaluate_against_the_scope() {
    let scope = json!({"trigger": {"body": {"name": "ada", "items": [1, 2, 3]}}, "step_1": {"n": 4}});
    let exprs = [
        "trigger.body.items.length + 1",
        "trigger.body.name.toUpperCase()",
        "step_1.n * 2",
        "nope.x",
        "(() => { while (true) {} })()",
    ];
    let err = SANDBOX.eval_expressions(&exprs, &scope, Instant::now() + Duration::from_millis(500)).unwrap_err();
    assert!(matches!(err, SandboxError::Timeout(_)), "{err}");
    let got = SANDBOX.eval_expressions(&exprs[..4], &scope, soon()).unwrap();
    assert_eq!(got[0], Ok(json!(4)));
    assert_eq!(got[1], Ok(json!("ADA")));
    assert_eq!(got[2], Ok(json!(8)));
    assert!(matches!(&got[3], Err(m) if m.to_string().contains("nope")), "{:?}", got[3]);
}

#[test]
fn many_threads_at_once_each_get_their_own_answer() {
    let handles: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..10 {
                    let out = js(
                        "export const code = async (inputs) => inputs.i * 1000 + inputs.j;",
                        json!({"i": i, "j": j}),
                    )
                    .unwrap();
                    assert_eq!(out.output, json!(i * 1000 + j));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn example() -> Vec<u8> {
    std::fs::read(WASI_EXAMPLE_PATH).expect("the example guest was built")
}

#[test]
fn a_wasi_module_reads_stdin_and_writes_stdout() {
    let wasm = example();
    let id = SANDBOX.add_module(&wasm).unwrap();
    assert_eq!(id.len(), 64);
    let out = SANDBOX.run_wasi(&id, || None, &json!({"text": "héllo wide world"}), soon()).unwrap();
    assert_eq!(out.output, json!({"words": 3, "chars": 16, "upper": "HÉLLO WIDE WORLD"}));
    assert!(out.logs.contains("bytes of input"), "{}", out.logs);
}

#[test]
fn a_wasi_module_cannot_reach_files_environment_or_network() {
    let wasm = example();
    let id = SANDBOX.add_module(&wasm).unwrap();
    let out = SANDBOX.run_wasi(&id, || None, &json!({"try": "file"}), soon()).unwrap().output;
    for op in ["read", "list", "write"] {
        assert!(out[op].get("Err").is_some(), "{op}: {out}");
    }
    let out = SANDBOX.run_wasi(&id, || None, &json!({"try": "env"}), soon()).unwrap().output;
    assert_eq!(out, json!({"vars": [], "args": 0}));
    let out = SANDBOX.run_wasi(&id, || None, &json!({"try": "net"}), soon()).unwrap().output;
    assert!(out["connect"].get("Err").is_some(), "{out}");
}

#[test]
fn a_hostile_wasi_module_is_contained() {
    let id = SANDBOX.add_module(&example()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    let err = SANDBOX.run_wasi(&id, || None, &json!({"try": "loop"}), deadline).unwrap_err();
    assert!(matches!(err, SandboxError::Timeout(_)), "{err}");
    let err = SANDBOX.run_wasi(&id, || None, &json!({"try": "memory"}), soon()).unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit(_)), "{err}");
    let err = SANDBOX.run_wasi(&id, || None, &json!({"try": "exit"}), soon()).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.contains("code 3")), "{err}");
    let err = SANDBOX.run_wasi(&id, || None, &json!({"try": "panic"}), soon()).unwrap_err();
    assert!(matches!(&err, SandboxError::Failed(m) if m.contains("panicked on purpose")), "{err}");
}

#[test]
fn modules_that_are_not_wasi_programs_are_refused() {
    let err = SANDBOX.add_module(b"not wasm at all").unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err}");
    let foreign = wat_module(
        r#"(module (import "env" "open" (func (param i32) (result i32))) (memory (export "memory") 1) (func (export "_start")))"#,
    );
    let err = SANDBOX.add_module(&foreign).unwrap_err();
    assert!(matches!(&err, SandboxError::Invalid(m) if m.contains("env.open")), "{err}");
    let greedy = wat_module(r#"(module (memory (export "memory") 4000) (func (export "_start")))"#);
    let id = SANDBOX.add_module(&greedy).unwrap();
    let err = SANDBOX.run_wasi(&id, || None, &json!({}), soon()).unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit(_)), "{err}");
    let err = SANDBOX.run_wasi(&"0".repeat(64), || None, &json!({}), soon()).unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err}");
}

fn wat_module(text: &str) -> Vec<u8> {
    wasmer::wat2wasm(text.as_bytes()).unwrap().into_owned()
}

#[test]
fn a_sandbox_can_be_shared_between_threads() {
    let shared: Arc<&Sandbox> = Arc::new(&SANDBOX);
    let s = shared.clone();
    std::thread::spawn(move || assert!(s.run_js("export const code = () => 1", &json!({}), soon()).is_ok()))
        .join()
        .unwrap();
}

#[test]
fn instances_are_reused_only_after_a_normal_return_and_start_from_the_snapshot() {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-cache");
    let sandbox = Sandbox::new(Limits::default(), Some(cache)).expect("sandbox");
    let run = |code: &str, deadline: Instant| sandbox.run_js(code, &json!({}), deadline);
    let pollute =
        "export const code = async () => { const seen = globalThis.counter ?? 0; globalThis.counter = seen + 1; \
                   Object.prototype.polluted = 1; return { seen }; };";
    assert_eq!(sandbox.idle_instances(), 0);
    for i in 0..5 {
        assert_eq!(run(pollute, soon()).unwrap().output["seen"], 0, "execution {i} saw an earlier one's global");
        assert_eq!(sandbox.idle_instances(), 1, "the instance went back to the pool");
    }
    let clean =
        "export const code = async () => ({ polluted: ({}).polluted ?? null, counter: globalThis.counter ?? null });";
    assert_eq!(run(clean, soon()).unwrap().output, json!({"polluted": null, "counter": null}));

    // a call that trapped (deadline) is dropped; the next execution gets a new instance
    let spin = "export const code = async () => { while (true) {} };";
    let err = run(spin, Instant::now() + Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, SandboxError::Timeout(_)), "{err}");
    assert_eq!(sandbox.idle_instances(), 0, "a trapped instance was kept");
    assert_eq!(run(clean, soon()).unwrap().output, json!({"polluted": null, "counter": null}));
    assert_eq!(sandbox.idle_instances(), 1);

    // one whose memory grew is dropped too (it could not be put back to the snapshot's size)
    let grow = "export const code = async () => { const a = new Array(4_000_000).fill(7); return a.length; };";
    assert_eq!(run(grow, soon()).unwrap().output, json!(4_000_000));
    assert_eq!(sandbox.idle_instances(), 0, "an instance with grown memory was kept");
    assert_eq!(run(clean, soon()).unwrap().output, json!({"polluted": null, "counter": null}));

    // a step that threw returned normally: its instance is reused, and the next one is clean
    let throw = "export const code = async () => { globalThis.counter = 9; throw new Error('no'); };";
    assert!(matches!(run(throw, soon()).unwrap_err(), SandboxError::Failed(_)));
    assert_eq!(sandbox.idle_instances(), 1);
    assert_eq!(run(clean, soon()).unwrap().output, json!({"polluted": null, "counter": null}));
}

#[test]
fn host_calls_reach_only_the_handler_their_execution_was_given() {
    let handler: troupe_sandbox::HostHandler = Arc::new(|request: &[u8]| {
        let r: Value = serde_json::from_slice(request).unwrap();
        let reply = json!({"ok": true, "status": 201, "statusText": "Created", "headers": {"x-seen": r["method"]}, "body": r["url"]});
        serde_json::to_vec(&reply).unwrap()
    });
    let code = "export const code = async () => { const r = await fetch('https://example.test/a', {method: 'post'}); return {s: r.status, ok: r.ok, b: await r.text(), h: r.headers.get('X-Seen')}; }";
    let out = SANDBOX.run_js_with(code, &json!({}), soon(), Some(handler)).unwrap();
    assert_eq!(out.output, json!({"s": 201, "ok": true, "b": "https://example.test/a", "h": "POST"}));
    // the next execution (likely the same reused instance) has no handler
    let err = js(code, json!({})).unwrap_err();
    assert!(err.to_string().contains("fetch is not available here"), "{err}");
}
