//! Deadlines: one thread interrupts every execution that outlives its deadline.
//!
//! Wasmer's `interrupt()` does nothing when the store is not executing wasm at that instant (it
//! may be inside a host call), so an expired execution is interrupted again every few
//! milliseconds until its guard is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};
use wasmer::Interrupter;

const RETRY: Duration = Duration::from_millis(2);

struct Entry {
    deadline: Instant,
    interrupter: Interrupter,
    state: Arc<Flags>,
}

#[derive(Default)]
struct Flags {
    done: AtomicBool,
    fired: AtomicBool,
}

struct Watchdog {
    entries: Mutex<Vec<Entry>>,
    wake: Condvar,
}

static WATCHDOG: LazyLock<&'static Watchdog> = LazyLock::new(|| {
    let dog: &'static Watchdog =
        Box::leak(Box::new(Watchdog { entries: Mutex::new(Vec::new()), wake: Condvar::new() }));
    std::thread::Builder::new().name("sandbox-watchdog".into()).spawn(move || dog.run()).expect("spawn watchdog");
    dog
});

impl Watchdog {
    fn run(&self) {
        let mut entries = self.entries.lock().unwrap();
        loop {
            entries.retain(|e| !e.state.done.load(Ordering::Acquire));
            let now = Instant::now();
            let mut next = now + Duration::from_secs(3600);
            for e in entries.iter() {
                if e.deadline <= now {
                    e.state.fired.store(true, Ordering::Release);
                    e.interrupter.interrupt();
                    next = next.min(now + RETRY);
                } else {
                    next = next.min(e.deadline);
                }
            }
            entries = self.wake.wait_timeout(entries, next.saturating_duration_since(now)).unwrap().0;
        }
    }
}

/// Watches one execution until dropped.
pub struct Guard {
    state: Arc<Flags>,
}

impl Guard {
    /// Whether the deadline passed while the execution ran.
    pub fn fired(&self) -> bool {
        self.state.fired.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.state.done.store(true, Ordering::Release);
    }
}

/// Interrupts the store behind `interrupter` once `deadline` passes, until the guard is dropped.
pub fn watch(deadline: Instant, interrupter: Interrupter) -> Guard {
    let state = Arc::new(Flags::default());
    let dog = *WATCHDOG;
    dog.entries.lock().unwrap().push(Entry { deadline, interrupter, state: state.clone() });
    dog.wake.notify_one();
    Guard { state }
}
