//! The WASI preview 1 imports a guest sees: stdin, stdout and stderr as memory buffers, the
//! clocks and random numbers, and nothing else. There are no preopened directories, no
//! environment, no arguments and no sockets: every other WASI function answers `ENOSYS`, so a
//! guest that tries to open a file, read a variable or connect gets an ordinary error.
//! Imports from any other module are refused when the module is loaded.

use rand::RngCore;
use wasmer::{
    imports, AsStoreMut, ExternType, Function, FunctionEnv, FunctionEnvMut, FunctionType, Imports, Memory, MemoryView,
    Module, RuntimeError, Type, Value,
};

pub const NAMESPACE: &str = "wasi_snapshot_preview1";
/// The host-call channel of Troupe's own JS engine (never offered to uploaded modules).
pub const HOST_NAMESPACE: &str = "troupe";
/// Largest request a guest may hand the host.
const MAX_HOST_REQUEST: u32 = 16 << 20;

/// What answers a guest's host calls during one execution: a request in, a reply out (JSON
/// text both ways; the caller decides what requests mean).
pub type HostHandler = std::sync::Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFBIG: i32 = 22;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ESPIPE: i32 = 70;

/// What one execution reads and writes.
pub struct Host {
    pub memory: Option<Memory>,
    pub stdin: Vec<u8>,
    stdin_pos: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    out_limit: usize,
    log_limit: usize,
    /// stdout went past its limit: the execution fails with a clear message.
    pub output_overflow: bool,
    /// Answers host calls, when this execution has one.
    pub handler: Option<HostHandler>,
    /// The reply of the last host call, until the guest copies it.
    reply: Vec<u8>,
}

impl Host {
    pub fn new(stdin: Vec<u8>, out_limit: usize, log_limit: usize) -> Host {
        Host {
            memory: None,
            stdin,
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            out_limit,
            log_limit,
            output_overflow: false,
            handler: None,
            reply: Vec::new(),
        }
    }
}

/// `proc_exit`: unwinds the guest with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("the module exited with code {0}")]
pub struct Exit(pub i32);

/// A module import the sandbox does not provide: anything but a WASI function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the module imports {module}.{name}, which the sandbox does not provide (only {NAMESPACE} functions)")]
pub struct ForeignImport {
    pub module: String,
    pub name: String,
}

/// Checks that a module imports nothing but WASI functions (and, when `host_calls`, the
/// host-call channel: Troupe's own JS engine only).
pub fn check_imports(module: &Module, host_calls: bool) -> Result<(), ForeignImport> {
    for import in module.imports() {
        let allowed = import.module() == NAMESPACE || host_calls && import.module() == HOST_NAMESPACE;
        if !allowed || !matches!(import.ty(), ExternType::Function(_)) {
            return Err(ForeignImport { module: import.module().to_string(), name: import.name().to_string() });
        }
    }
    Ok(())
}

/// Builds the imports `module` asks for, over `env`.
pub fn imports_for(store: &mut impl AsStoreMut, env: &FunctionEnv<Host>, module: &Module) -> Imports {
    let mut imports = imports! {};
    for import in module.imports() {
        let ExternType::Function(ty) = import.ty() else { continue };
        if import.module() == HOST_NAMESPACE {
            let f = match import.name() {
                "host_call" => Function::new_typed_with_env(store, env, host_call),
                "host_reply" => Function::new_typed_with_env(store, env, host_reply),
                _ => stub(store, env, ty, ENOSYS),
            };
            imports.define(HOST_NAMESPACE, import.name(), f);
            continue;
        }
        let f = match import.name() {
            "fd_read" => Function::new_typed_with_env(store, env, fd_read),
            "fd_write" => Function::new_typed_with_env(store, env, fd_write),
            "fd_fdstat_get" => Function::new_typed_with_env(store, env, fd_fdstat_get),
            "fd_close" => Function::new_typed_with_env(store, env, |_: FunctionEnvMut<Host>, fd: i32| -> i32 {
                if (0..=2).contains(&fd) {
                    ESUCCESS
                } else {
                    EBADF
                }
            }),
            "fd_seek" => Function::new_typed_with_env(
                store,
                env,
                |_: FunctionEnvMut<Host>, _fd: i32, _off: i64, _whence: i32, _out: i32| -> i32 { ESPIPE },
            ),
            "fd_prestat_get" | "fd_prestat_dir_name" => stub(store, env, ty, EBADF),
            "args_sizes_get" | "environ_sizes_get" => Function::new_typed_with_env(store, env, zero_sizes),
            "args_get" | "environ_get" => {
                Function::new_typed_with_env(store, env, |_: FunctionEnvMut<Host>, _: i32, _: i32| -> i32 { ESUCCESS })
            }
            "clock_time_get" => Function::new_typed_with_env(store, env, clock_time_get),
            "clock_res_get" => Function::new_typed_with_env(store, env, clock_res_get),
            "random_get" => Function::new_typed_with_env(store, env, random_get),
            "sched_yield" => Function::new_typed_with_env(store, env, |_: FunctionEnvMut<Host>| -> i32 { ESUCCESS }),
            "proc_exit" => Function::new_typed_with_env(
                store,
                env,
                |_: FunctionEnvMut<Host>, code: i32| -> Result<(), RuntimeError> {
                    Err(RuntimeError::user(Box::new(Exit(code))))
                },
            ),
            _ => stub(store, env, ty, ENOSYS),
        };
        imports.define(NAMESPACE, import.name(), f);
    }
    imports
}

/// A function of any signature that does nothing and answers `errno` when it returns an i32.
fn stub(store: &mut impl AsStoreMut, env: &FunctionEnv<Host>, ty: &FunctionType, errno: i32) -> Function {
    let results: Vec<Value> = ty
        .results()
        .iter()
        .map(|t| match t {
            Type::I32 => Value::I32(errno),
            Type::I64 => Value::I64(errno as i64),
            Type::F32 => Value::F32(0.0),
            Type::F64 => Value::F64(0.0),
            _ => Value::I32(0),
        })
        .collect();
    Function::new_with_env(store, env, ty, move |_env, _args| Ok(results.clone()))
}

fn view<'a>(env: &'a FunctionEnvMut<'_, Host>) -> Option<MemoryView<'a>> {
    env.data().memory.as_ref().map(|m| m.view(env))
}

fn read_u32(view: &MemoryView<'_>, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    view.read(at, &mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

/// The (buffer, length) pairs of an iovec array.
fn iovecs(view: &MemoryView<'_>, iovs: i32, len: i32) -> Option<Vec<(u64, usize)>> {
    (0..len.max(0) as u64)
        .map(|i| {
            let at = iovs as u32 as u64 + i * 8;
            Some((read_u32(view, at)? as u64, read_u32(view, at + 4)? as usize))
        })
        .collect()
}

fn fd_read(mut env: FunctionEnvMut<Host>, fd: i32, iovs: i32, iovs_len: i32, nread: i32) -> i32 {
    if fd != 0 {
        return EBADF;
    }
    let (host, store) = env.data_and_store_mut();
    let Some(memory) = host.memory.clone() else { return EINVAL };
    let view = memory.view(&store);
    let Some(bufs) = iovecs(&view, iovs, iovs_len) else { return EINVAL };
    let mut total = 0usize;
    for (ptr, len) in bufs {
        let rest = &host.stdin[host.stdin_pos..];
        let n = rest.len().min(len);
        if n == 0 {
            break;
        }
        if view.write(ptr, &rest[..n]).is_err() {
            return EINVAL;
        }
        host.stdin_pos += n;
        total += n;
    }
    if view.write(nread as u32 as u64, &(total as u32).to_le_bytes()).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

fn fd_write(mut env: FunctionEnvMut<Host>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32 {
    let (host, store) = env.data_and_store_mut();
    let Some(memory) = host.memory.clone() else { return EINVAL };
    let view = memory.view(&store);
    let Some(bufs) = iovecs(&view, iovs, iovs_len) else { return EINVAL };
    let mut total = 0usize;
    for (ptr, len) in bufs {
        let (sink, limit) = match fd {
            1 => (&mut host.stdout, host.out_limit),
            2 => (&mut host.stderr, host.log_limit),
            _ => return EBADF,
        };
        if sink.len() + len > limit {
            if fd == 1 {
                host.output_overflow = true;
                return EFBIG;
            }
            // logs past their limit are dropped, the write still succeeds
            total += len;
            continue;
        }
        let start = sink.len();
        sink.resize(start + len, 0);
        if view.read(ptr, &mut sink[start..]).is_err() {
            sink.truncate(start);
            return EINVAL;
        }
        total += len;
    }
    if view.write(nwritten as u32 as u64, &(total as u32).to_le_bytes()).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

fn fd_fdstat_get(env: FunctionEnvMut<Host>, fd: i32, out: i32) -> i32 {
    if !(0..=2).contains(&fd) {
        return EBADF;
    }
    let Some(view) = view(&env) else { return EINVAL };
    // filetype character device, no flags, rights fd_read (bit 1) or fd_write (bit 6)
    let mut stat = [0u8; 24];
    stat[0] = 2;
    let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    if view.write(out as u32 as u64, &stat).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

fn zero_sizes(env: FunctionEnvMut<Host>, count: i32, size: i32) -> i32 {
    let Some(view) = view(&env) else { return EINVAL };
    if view.write(count as u32 as u64, &0u32.to_le_bytes()).is_err()
        || view.write(size as u32 as u64, &0u32.to_le_bytes()).is_err()
    {
        return EINVAL;
    }
    ESUCCESS
}

fn clock_time_get(env: FunctionEnvMut<Host>, id: i32, _precision: i64, out: i32) -> i32 {
    let nanos: u64 = match id {
        // realtime: what `Date.now()` needs
        0 => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
        // monotonic (and the process/thread CPU clocks, approximated by it)
        1..=3 => {
            static START: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
            START.elapsed().as_nanos() as u64
        }
        _ => return EINVAL,
    };
    let Some(view) = view(&env) else { return EINVAL };
    if view.write(out as u32 as u64, &nanos.to_le_bytes()).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

fn clock_res_get(env: FunctionEnvMut<Host>, _id: i32, out: i32) -> i32 {
    let Some(view) = view(&env) else { return EINVAL };
    if view.write(out as u32 as u64, &1_000u64.to_le_bytes()).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

fn random_get(env: FunctionEnvMut<Host>, buf: i32, len: i32) -> i32 {
    let Some(view) = view(&env) else { return EINVAL };
    let mut bytes = vec![0u8; len.max(0) as usize];
    rand::rng().fill_bytes(&mut bytes);
    if view.write(buf as u32 as u64, &bytes).is_err() {
        return EINVAL;
    }
    ESUCCESS
}

/// `host_call(request, len) -> reply length`: hands the request to this execution's handler.
fn host_call(mut env: FunctionEnvMut<Host>, request: i32, len: i32) -> i32 {
    let (host, store) = env.data_and_store_mut();
    let (Some(memory), Some(handler)) = (host.memory.clone(), host.handler.clone()) else { return -1 };
    let len = len as u32;
    if len > MAX_HOST_REQUEST {
        return -1;
    }
    let mut bytes = vec![0u8; len as usize];
    if memory.view(&store).read(request as u32 as u64, &mut bytes).is_err() {
        return -1;
    }
    host.reply = handler(&bytes);
    host.reply.len().try_into().unwrap_or(-1)
}

/// `host_reply(into)`: copies the last reply into the guest's buffer.
fn host_reply(mut env: FunctionEnvMut<Host>, into: i32) {
    let (host, store) = env.data_and_store_mut();
    let Some(memory) = host.memory.clone() else { return };
    let reply = std::mem::take(&mut host.reply);
    let _ = memory.view(&store).write(into as u32 as u64, &reply);
}
