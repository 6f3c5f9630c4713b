//! Memory of an idle FlowActor (`cargo bench -p troupe-actors --bench idle_flow_actor`).
//!
//! Counts the bytes the global allocator holds before and after starting 10,000 FlowActors on
//! an actix System, with the engine's real shared context (a real sled store on a temp dir; a
//! NATS client that is never used, so no server is needed), and prints bytes per actor: the
//! actor, its actix context and mailbox, its eviction timer and its registration.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use troupe_actors::context::EngineCtx;
use troupe_actors::flow::FlowRegistry;

struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ACTORS: usize = 10_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let system = actix::System::new();
    system.block_on(async {
        let config = troupe_store::Config::from_lookup(|k| match k {
            "AP_CONFIG_PATH" => Some(dir.path().display().to_string()),
            "AP_SANDBOX_CACHE_DIR" => Some(std::env::temp_dir().join("troupe-bench-sandbox").display().to_string()),
            _ => None,
        })
        .unwrap();
        let store = troupe_store::Store::open(&config.data_dir()).unwrap();
        let nats =
            async_nats::ConnectOptions::new().retry_on_initial_connect().connect("nats://127.0.0.1:1").await.unwrap();
        let code = Arc::new(troupe_actors::code::CodeRunner::start(&config));
        let npm = Arc::new(troupe_actors::npm::NpmPieces::from_config(&config, &store));
        let flows = FlowRegistry::new(Arc::new(
            EngineCtx::new(
                config.clone(),
                store,
                nats,
                code,
                Arc::new(troupe_pieces::egress::Egress::new(&config).unwrap()),
                npm,
            )
            .unwrap(),
        ));
        // let the sandbox thread and the NATS client settle before counting
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let ids: Vec<String> = (0..ACTORS).map(|i| format!("flow-{i:08}")).collect();
        let before = HELD.load(Ordering::Relaxed);
        for id in &ids {
            flows.actor(id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let after = HELD.load(Ordering::Relaxed);
        let per_actor = (after - before) as f64 / ACTORS as f64;
        println!("idle FlowActor: {per_actor:.0} bytes each ({ACTORS} actors, {} bytes in all)", after - before);
        std::process::exit(0);
    });
}
