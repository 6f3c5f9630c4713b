//! The one owner of a process's background tasks.
//!
//! Every long-lived task (the replication publisher and applier, the lease keeper and its
//! fence, the scheduler and its lease, the reply listener, the HTTP server, the shard
//! consumers, the embedded nats-server's keeper) is started here, under a name and with what
//! its panic means:
//!
//! - [`Tasks::restart`]: the task keeps no state a panic could leave half-done (it reads what
//!   it needs again when it starts), so it is started again after a back-off that doubles
//!   while it keeps failing (0.5 s up to 30 s) and resets once it has run for a minute.
//! - [`Tasks::essential`]: the task holds state a panic loses (the publisher's queue, the
//!   leases held, the listening socket), so the process stops cleanly: [`Tasks::failed`]
//!   resolves, and `troupe serve` shuts down in order and exits with an error, for its
//!   supervisor (Kubernetes, systemd) to start it again on the durable state.
//!
//! A task ends by itself (its work is over) or when it is asked to stop: each gets a
//! [`StopSignal`], set by [`Task::stop`] for that task alone or by [`Tasks::shutdown`] for all
//! of them. `shutdown` waits for every task up to a grace period and aborts the ones still
//! running after it, naming them. Short jobs an actor starts for itself (a run's start, a
//! sweep) belong to that actor, and HTTP connections to the server task that accepted them.
//!
//! Fault injection for tests: `TROUPE_FAULT_TASK_PANIC=<name>[,<name>…]` makes each named
//! task panic once, at its first start.

use crate::metric_definitions::{TASK_PANICS, TASK_RESTARTS};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError, JoinHandle};

/// First wait before a failed task starts again.
pub const RESTART_MIN: Duration = Duration::from_millis(500);
/// Longest wait between restarts of a task that keeps failing.
pub const RESTART_MAX: Duration = Duration::from_secs(30);
/// A task that ran this long before it failed starts again after [`RESTART_MIN`].
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What a task's panic means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPanic {
    Restart,
    StopProcess,
}

/// Set when a task should finish what it is doing and return.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the task is asked to stop.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

struct Entry {
    name: String,
    stop: watch::Sender<bool>,
    /// The supervisor's end.
    done: watch::Receiver<bool>,
    /// The running attempt, to abort after the grace period.
    current: Arc<Mutex<Option<AbortHandle>>>,
}

#[derive(Default)]
struct Inner {
    entries: Mutex<Vec<Entry>>,
    /// Why the process must stop: the first essential task that panicked.
    fatal: watch::Sender<Option<String>>,
    shutting_down: AtomicBool,
    /// Tasks to make panic once at their next start (tests).
    inject: Mutex<Vec<String>>,
}

/// The owner. Cheap to clone; clones share the tasks.
#[derive(Clone, Default)]
pub struct Tasks(Arc<Inner>);

/// One task: stop it alone, or see whether it has ended.
pub struct Task {
    name: String,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

impl Task {
    /// Asks the task to stop, without waiting (it is not restarted after that).
    pub fn ask_to_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Asks the task to stop and waits until it has.
    pub async fn stop(self) {
        self.ask_to_stop();
        let mut done = self.done;
        let _ = done.wait_for(|d| *d).await;
        tracing::debug!(task = self.name, "task stopped");
    }

    /// True once the task has ended for good (returned, stopped, or failed and not restarted).
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }
}

/// What a supervisor needs of its task's registration.
struct Parts {
    name: String,
    stop: StopSignal,
    current: Arc<Mutex<Option<AbortHandle>>>,
    done: watch::Sender<bool>,
    owner: Tasks,
}

impl Tasks {
    /// Starts a task that is started again when it panics. `make` is called for every start.
    pub fn restart<F, Fut>(&self, name: impl Into<String>, make: F) -> Task
    where
        F: FnMut(StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (task, parts) = self.register(name.into());
        tokio::spawn(supervise(parts, OnPanic::Restart, make, tokio::spawn));
        task
    }

    /// Starts a task whose panic stops the process.
    pub fn essential<F, Fut>(&self, name: impl Into<String>, make: F) -> Task
    where
        F: FnOnce(StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (task, parts) = self.register(name.into());
        tokio::spawn(supervise(parts, OnPanic::StopProcess, once(make), tokio::spawn));
        task
    }

    /// [`Tasks::restart`] for a task that must run on this thread's local set (the actix
    /// arbiter: a task that starts actors).
    pub fn restart_local<F, Fut>(&self, name: impl Into<String>, make: F) -> Task
    where
        F: FnMut(StopSignal) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (task, parts) = self.register(name.into());
        tokio::task::spawn_local(supervise(parts, OnPanic::Restart, make, tokio::task::spawn_local));
        task
    }

    /// [`Tasks::essential`] on this thread's local set.
    pub fn essential_local<F, Fut>(&self, name: impl Into<String>, make: F) -> Task
    where
        F: FnOnce(StopSignal) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (task, parts) = self.register(name.into());
        tokio::task::spawn_local(supervise(parts, OnPanic::StopProcess, once(make), tokio::task::spawn_local));
        task
    }

    /// Fault injection for tests: the next task started under `name` panics as it first starts.
    pub fn inject_panic(&self, name: &str) {
        self.0.inject.lock().expect("tasks lock").push(name.to_string());
    }

    fn take_injected(&self, name: &str) -> Option<Duration> {
        let mut inject = self.0.inject.lock().expect("tasks lock");
        let found = inject.iter().position(|n| n == name);
        found.map(|i| inject.remove(i)).map(|_| Duration::ZERO)
    }

    fn register(&self, name: String) -> (Task, Parts) {
        let (stop, stop_rx) = watch::channel(self.0.shutting_down.load(Ordering::SeqCst));
        let (done_tx, done) = watch::channel(false);
        let current = Arc::new(Mutex::new(None));
        let mut entries = self.0.entries.lock().expect("tasks lock");
        entries.retain(|e| !*e.done.borrow());
        entries.push(Entry { name: name.clone(), stop: stop.clone(), done: done.clone(), current: current.clone() });
        let parts =
            Parts { name: name.clone(), stop: StopSignal(stop_rx), current, done: done_tx, owner: self.clone() };
        (Task { name, stop, done }, parts)
    }

    /// Resolves with the reason once an essential task has panicked: the process should stop.
    pub async fn failed(&self) -> String {
        let mut rx = self.0.fatal.subscribe();
        let why = rx.wait_for(Option::is_some).await.map(|why| why.clone().unwrap_or_default());
        match why {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    }

    /// Why the process must stop, if an essential task has panicked.
    pub fn failure(&self) -> Option<String> {
        self.0.fatal.borrow().clone()
    }

    /// The tasks running now, by name.
    pub fn running(&self) -> Vec<String> {
        let entries = self.0.entries.lock().expect("tasks lock");
        entries.iter().filter(|e| !*e.done.borrow()).map(|e| e.name.clone()).collect()
    }

    /// Asks every task to stop, waits up to `grace` for them, then aborts the ones left;
    /// returns their names (empty when all stopped in time). A task started after this is
    /// asked to stop at once.
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        self.0.shutting_down.store(true, Ordering::SeqCst);
        let entries: Vec<_> = {
            let entries = self.0.entries.lock().expect("tasks lock");
            entries.iter().map(|e| (e.name.clone(), e.stop.clone(), e.done.clone(), e.current.clone())).collect()
        };
        for (_, stop, _, _) in &entries {
            let _ = stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut late = Vec::new();
        for (name, _, mut done, current) in entries {
            if tokio::time::timeout_at(deadline, done.wait_for(|d| *d)).await.is_err() {
                if let Some(task) = current.lock().expect("task lock").take() {
                    task.abort();
                }
                late.push(name);
            }
        }
        if !late.is_empty() {
            tracing::warn!(?late, "tasks still running after the grace period; aborted");
        }
        late
    }
}

/// An essential task's `make`, callable as often as a restartable one's (it is called once).
fn once<F, Fut>(make: F) -> impl FnMut(StopSignal) -> Fut
where
    F: FnOnce(StopSignal) -> Fut,
{
    let mut make = Some(make);
    move |stop| make.take().expect("an essential task starts once")(stop)
}

/// Starts the task, and on a panic starts it again or stops the process; marks it done when
/// it has ended for good.
async fn supervise<F, Fut, S>(parts: Parts, on_panic: OnPanic, mut make: F, spawn: S)
where
    F: FnMut(StopSignal) -> Fut,
    Fut: Future<Output = ()>,
    S: Fn(Faulty<Fut>) -> JoinHandle<()>,
{
    let Parts { name, stop, current, done, owner } = parts;
    let mut backoff = RESTART_MIN;
    let mut starts = 0u32;
    loop {
        let started = Instant::now();
        starts += 1;
        let fault = if starts == 1 { fault_injected(&name).or_else(|| owner.take_injected(&name)) } else { None };
        let handle = spawn(Faulty::new(make(stop.clone()), fault, &name));
        *current.lock().expect("task lock") = Some(handle.abort_handle());
        let Some(why) = panic_of(handle.await) else { break };
        TASK_PANICS.with_label_values(&[&name]).inc();
        if stop.is_set() {
            tracing::error!(task = name, panic = why, "a task panicked while stopping");
            break;
        }
        match on_panic {
            OnPanic::StopProcess => {
                tracing::error!(task = name, panic = why, "an essential task panicked; stopping the process");
                let reason = format!("the task {name:?} panicked: {why}");
                owner.0.fatal.send_if_modified(|f| f.is_none() && f.replace(reason).is_none());
                break;
            }
            OnPanic::Restart => {
                if started.elapsed() > HEALTHY_AFTER {
                    backoff = RESTART_MIN;
                }
                tracing::error!(task = name, panic = why, after = ?backoff, "a task panicked; restarting it");
                let mut waiting = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = waiting.wait() => break,
                }
                backoff = (backoff * 2).min(RESTART_MAX);
                TASK_RESTARTS.with_label_values(&[&name]).inc();
            }
        }
    }
    *current.lock().expect("task lock") = None;
    let _ = done.send(true);
}

/// When the task `name` is to panic, the first time it starts in this process:
/// `TROUPE_FAULT_TASK_PANIC=<name>[@<seconds>],…` names it (at once, or that long after it
/// started).
pub fn fault_injected(name: &str) -> Option<Duration> {
    // read once: a request's handler asks at every API request
    static FAULTS: std::sync::OnceLock<Vec<(String, Duration, AtomicBool)>> = std::sync::OnceLock::new();
    let faults = FAULTS.get_or_init(|| {
        let names = std::env::var("TROUPE_FAULT_TASK_PANIC").unwrap_or_default();
        names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                let (n, after) = n.split_once('@').map_or((n, None), |(n, a)| (n, Some(a)));
                let after = Duration::from_secs_f64(after.and_then(|a| a.parse().ok()).unwrap_or(0.0));
                (n.to_string(), after, AtomicBool::new(false))
            })
            .collect()
    });
    let (_, after, fired) = faults.iter().find(|(n, _, _)| n == name)?;
    (!fired.swap(true, Ordering::SeqCst)).then_some(*after)
}

/// A task's future, made to panic at a set time when a fault is injected.
pub struct Faulty<Fut> {
    task: std::pin::Pin<Box<Fut>>,
    fault: Option<(std::pin::Pin<Box<tokio::time::Sleep>>, String)>,
}

impl<Fut> Faulty<Fut> {
    fn new(task: Fut, fault: Option<Duration>, name: &str) -> Faulty<Fut> {
        let fault = fault.map(|after| (Box::pin(tokio::time::sleep(after)), name.to_string()));
        Faulty { task: Box::pin(task), fault }
    }
}

impl<Fut: Future<Output = ()>> Future for Faulty<Fut> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if let Some((at, name)) = &mut self.fault {
            if at.as_mut().poll(cx).is_ready() {
                panic!("TROUPE_FAULT_TASK_PANIC: the task {name} panics");
            }
        }
        self.task.as_mut().poll(cx)
    }
}

/// The panic's message, when the task panicked (`None` when it returned or was aborted).
fn panic_of(outcome: Result<(), JoinError>) -> Option<String> {
    let payload = match outcome {
        Err(e) if e.is_panic() => e.into_panic(),
        _ => return None,
    };
    Some(match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => {
            payload.downcast::<&'static str>().map(|s| s.to_string()).unwrap_or_else(|_| "(no message)".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A task that counts its starts and runs until stopped.
    fn counting(starts: &Arc<AtomicU32>) -> impl FnMut(StopSignal) -> futures::future::BoxFuture<'static, ()> {
        let starts = starts.clone();
        move |mut stop| {
            let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                if n == 2 {
                    panic!("its second start panics too");
                }
                stop.wait().await;
            })
        }
    }

    #[tokio::test]
    async fn a_restartable_task_that_panics_starts_again_after_a_growing_back_off() {
        let tasks = Tasks::default();
        tasks.inject_panic("worker");
        let starts = Arc::new(AtomicU32::new(0));
        let began = Instant::now();
        let task = tasks.restart("worker", counting(&starts));
        // the injected panic, then its second start panics of itself, the third runs
        let deadline = Instant::now() + Duration::from_secs(5);
        while starts.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // two panics: waits of 0.5 s and 1 s before the second and third starts
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(began.elapsed() >= RESTART_MIN * 3, "{:?}", began.elapsed());
        assert!(!task.is_finished());
        assert_eq!(TASK_PANICS.with_label_values(&["worker"]).get(), 2);
        assert_eq!(TASK_RESTARTS.with_label_values(&["worker"]).get(), 2);
        assert_eq!(tasks.running(), vec!["worker".to_string()]);
        assert!(tasks.failure().is_none(), "a restartable task does not stop the process");
        task.stop().await;
        assert!(tasks.running().is_empty());
        assert_eq!(starts.load(Ordering::SeqCst), 3, "a stopped task is not started again");
    }

    #[tokio::test]
    async fn an_essential_task_that_panics_stops_the_process_and_is_not_restarted() {
        let tasks = Tasks::default();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let task = tasks.essential("keeper", move |_| async move {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("the keeper's state is gone");
        });
        let why = tokio::time::timeout(Duration::from_secs(5), tasks.failed()).await.expect("failed() resolves");
        assert!(why.contains("\"keeper\"") && why.contains("the keeper's state is gone"), "{why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(task.is_finished());
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(tasks.failure().as_deref(), Some(why.as_str()));
    }

    #[tokio::test]
    async fn shutdown_waits_for_every_task_and_aborts_and_names_the_ones_that_do_not_stop() {
        let tasks = Tasks::default();
        let cleaned = Arc::new(AtomicBool::new(false));
        let flag = cleaned.clone();
        tasks.restart("polite", move |mut stop| {
            let flag = flag.clone();
            async move {
                stop.wait().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                flag.store(true, Ordering::SeqCst);
            }
        });
        tasks.restart("deaf", |_| std::future::pending::<()>());
        let late = tasks.shutdown(Duration::from_millis(500)).await;
        assert_eq!(late, vec!["deaf".to_string()]);
        assert!(cleaned.load(Ordering::SeqCst), "the polite task finished its cleanup");
        // a task started during shutdown is asked to stop at once
        let late_start = tasks.restart("late", |mut stop| async move { stop.wait().await });
        tokio::time::timeout(Duration::from_secs(1), late_start.stop()).await.expect("stops at once");
    }

    #[test]
    fn local_tasks_run_on_the_local_set_and_are_restarted_there() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let tasks = Tasks::default();
            tasks.inject_panic("actor-side");
            // not Send: an Rc, as an actix task may hold
            let starts = std::rc::Rc::new(std::cell::Cell::new(0));
            let counted = starts.clone();
            let task = tasks.restart_local("actor-side", move |mut stop| {
                counted.set(counted.get() + 1);
                async move { stop.wait().await }
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while starts.get() < 2 {
                assert!(Instant::now() < deadline, "not restarted");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            task.stop().await;
            let ended = std::rc::Rc::new(std::cell::Cell::new(false));
            let flag = ended.clone();
            tasks.essential_local("actor-side once", move |_| async move { flag.set(true) }).stop().await;
            assert!(ended.get());
        });
    }
}
