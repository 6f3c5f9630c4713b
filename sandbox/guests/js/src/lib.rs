//! The JavaScript engine of Troupe's sandbox: QuickJS (through rquickjs), built for
//! wasm32-wasip1 and run by the host in Wasmer.
//!
//! The host calls `troupe_init` once and snapshots the memory; every execution then starts from
//! that snapshot in a fresh instance and calls `troupe_run`, which reads one JSON request on
//! stdin and writes one JSON answer on stdout:
//!
//! - `{"kind":"code","source":"export const code = async (inputs) => …","inputs":…,"seed":[a,b]}`
//! - `{"kind":"expr","exprs":["step_1.items.length + 1", …],"scope":{…},"seed":[a,b]}`
//! - `{"kind":"script","source":"(arg) => …","arg":…,"seed":[a,b]}`: the script evaluates to a
//!   function, called with `arg`; its value (awaited) is the answer's. The pieces runtime
//!   loads its Node layer and a piece this way (with `"keep":true`), and the host snapshots
//!   the memory after.
//!
//! The answer is `{"ok":true,"value":…,"logs":[…]}` or `{"ok":false,"error":{"name","message","stack"},"logs":[…]}`.

use std::cell::RefCell;
use std::io::{Read, Write};

mod native;

use rquickjs::{Context, Ctx, Function, Module, Object, Promise, Runtime, Value};

/// QuickJS's own stack limit, below the 4 MiB shadow stack the module is linked with.
const MAX_STACK: usize = 3 * 1024 * 1024;

// The host-call channel: one request out, one reply back, both JSON text. The host answers
// only while an execution gave it a handler (`-1` otherwise).
#[link(wasm_import_module = "troupe")]
extern "C" {
    /// Hands the host a request; returns the length of its reply, or -1.
    fn host_call(request: *const u8, len: u32) -> i32;
    /// Copies the reply of the last `host_call` to `into`.
    fn host_reply(into: *mut u8);
}

/// `__troupe_host(request)`: the host's reply to `request`, or `null` when there is no host.
fn call_host(request: String) -> Option<String> {
    // SAFETY: the host reads `len` bytes at `request`, then writes exactly the announced
    // number of bytes into the buffer we size for it.
    unsafe {
        let len = host_call(request.as_ptr(), request.len() as u32);
        if len < 0 {
            return None;
        }
        let mut reply = vec![0u8; len as usize];
        host_reply(reply.as_mut_ptr());
        String::from_utf8(reply).ok()
    }
}

thread_local! {
    /// Set by a request with `"keep": true`: the host snapshots the memory after it.
    static KEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ENGINE: RefCell<Option<(Runtime, Context)>> = const { RefCell::new(None) };
}

#[no_mangle]
pub extern "C" fn troupe_init(memory_limit: i64) -> i32 {
    let Ok(runtime) = Runtime::new() else { return 1 };
    runtime.set_max_stack_size(MAX_STACK);
    if memory_limit > 0 {
        runtime.set_memory_limit(memory_limit as usize);
    }
    let Ok(context) = Context::full(&runtime) else { return 2 };
    let ok = context.with(|ctx| {
        let host = Function::new(ctx.clone(), call_host).and_then(|f| ctx.globals().set("__troupe_host", f));
        host.is_ok() && native::install(&ctx).is_ok() && ctx.eval::<(), _>(include_str!("prelude.js")).is_ok()
    });
    if !ok {
        return 3;
    }
    leave_gc_headroom(&runtime);
    ENGINE.with(|e| *e.borrow_mut() = Some((runtime, context)));
    0
}

/// Bytes an execution may allocate before QuickJS collects cycles. QuickJS frees most garbage
/// by reference counting at once; its cycle collector walks and marks every object of the
/// heap, which in an instance started from a snapshot copies every heap page. A snapshot is
/// taken with this much headroom, so that a short execution never pays for that.
const GC_HEADROOM: usize = 16 << 20;

fn leave_gc_headroom(runtime: &Runtime) {
    let used = runtime.memory_usage().malloc_size.max(0) as usize;
    runtime.set_gc_threshold(used + GC_HEADROOM);
}

#[no_mangle]
pub extern "C" fn troupe_run() -> i32 {
    let mut request = String::new();
    if std::io::stdin().read_to_string(&mut request).is_err() {
        return 1;
    }
    let answer = ENGINE.with(|e| {
        let engine = e.borrow();
        let (runtime, context) = engine.as_ref()?;
        let answer = context.with(|ctx| match handle(&ctx, &request) {
            Ok(answer) => answer,
            Err(err) => failed(&ctx, err),
        });
        // what ran is about to be kept as a snapshot (a loaded piece): leave it room too
        if KEEP.with(|k| k.replace(false)) {
            leave_gc_headroom(runtime);
        }
        Some(answer)
    });
    let Some(answer) = answer else { return 2 };
    let mut out = std::io::stdout();
    if out.write_all(answer.as_bytes()).is_err() || out.flush().is_err() {
        return 3;
    }
    0
}

/// Turns an error into the failure answer, taking the pending exception when there is one.
fn failed(ctx: &Ctx<'_>, err: rquickjs::Error) -> String {
    let thrown = if matches!(err, rquickjs::Error::Exception) {
        ctx.catch()
    } else {
        rquickjs::String::from_str(ctx.clone(), &err.to_string()).map(|s| s.into_value()).unwrap_or_else(|_| Value::new_undefined(ctx.clone()))
    };
    let troupe: Object = ctx.globals().get("__troupe").expect("prelude ran");
    let encode: Function = troupe.get("failed").expect("prelude ran");
    encode.call((thrown,)).unwrap_or_else(|_| {
        r#"{"ok":false,"error":{"name":"InternalError","message":"the error could not be encoded","stack":""},"logs":[]}"#
            .to_string()
    })
}

fn handle(ctx: &Ctx<'_>, request: &str) -> rquickjs::Result<String> {
    let request: Object = ctx.json_parse(request)?.get().map_err(|_| rquickjs::Error::Unknown)?;
    let troupe: Object = ctx.globals().get("__troupe")?;
    let seed: Vec<u32> = request.get("seed").unwrap_or_default();
    let begin: Function = troupe.get("begin")?;
    begin.call::<_, ()>((seed.first().copied().unwrap_or(1), seed.get(1).copied().unwrap_or(2)))?;
    let kind: String = request.get("kind")?;
    if kind == "expr" {
        let exprs: Value = request.get("exprs")?;
        let scope: Value = request.get("scope")?;
        let expressions: Function = troupe.get("expressions")?;
        return expressions.call((exprs, scope));
    }
    let source: String = request.get("source")?;
    if kind == "script" {
        KEEP.with(|k| k.set(request.get::<_, Option<bool>>("keep").ok().flatten().unwrap_or(false)));
        let arg: Value = request.get("arg")?;
        let function: Value = ctx.eval(source)?;
        let Some(function) = function.as_function() else {
            return Err(ctx.throw(rquickjs::String::from_str(ctx.clone(), "the script must evaluate to a function")?.into_value()));
        };
        let returned: Value = function.call((arg,))?;
        return finish(ctx, &troupe, returned);
    }
    let inputs: Value = request.get("inputs")?;
    let (module, evaluated) = Module::declare(ctx.clone(), "step.mjs", source)?.eval()?;
    settle(ctx, &troupe, &evaluated)?;
    evaluated.result::<Value>().transpose()?;
    let code: Value = module.get("code")?;
    let Some(code) = code.as_function() else {
        return Err(ctx.throw(
            rquickjs::String::from_str(ctx.clone(), "the step's source must export a function named `code`")?
                .into_value(),
        ));
    };
    let returned: Value = code.call((inputs,))?;
    finish(ctx, &troupe, returned)
}

/// Awaits `returned` when it is a promise, then encodes the success answer.
fn finish<'js>(ctx: &Ctx<'js>, troupe: &Object<'js>, returned: Value<'js>) -> rquickjs::Result<String> {
    let value = match returned.as_promise() {
        Some(promise) => {
            settle(ctx, troupe, promise)?;
            match promise.result::<Value>() {
                Some(result) => result?,
                None => {
                    return Err(ctx.throw(
                        rquickjs::String::from_str(ctx.clone(), "the promise never settled")?.into_value(),
                    ))
                }
            }
        }
        None => returned,
    };
    let done: Function = troupe.get("done")?;
    done.call((value,))
}

/// Runs microtasks, then timers in due order, until `promise` settles or nothing is left to run.
fn settle<'js>(
    ctx: &Ctx<'js>,
    troupe: &Object<'js>,
    promise: &Promise<'js>,
) -> rquickjs::Result<()> {
    let run_timer: Function = troupe.get("runTimer")?;
    loop {
        // a job that throws rejects its promise; QuickJS keeps going with the next one
        while ctx.execute_pending_job() {}
        if promise.state() != rquickjs::promise::PromiseState::Pending {
            return Ok(());
        }
        if !run_timer.call::<_, bool>(())? {
            return Ok(());
        }
    }
}
