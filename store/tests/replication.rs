//! The replicated state over a real nats-server: two stores (two processes' sled copies) join
//! the same cluster; what one writes, the other applies; removals travel; concurrent writes of
//! one key end the same everywhere; a store that was away catches up from where it stopped.

use std::path::Path;
use std::time::{Duration, Instant};
use troupe_store::flow::{Flow, FlowStatus};
use troupe_store::tasks::Tasks;
use troupe_store::Store;
use troupe_testkit::NatsServer;

async fn join(url: &str, dir: &Path, origin: &str) -> (Store, async_nats::jetstream::Context) {
    join_with(url, dir, origin, &Tasks::default()).await
}

async fn join_with(url: &str, dir: &Path, origin: &str, tasks: &Tasks) -> (Store, async_nats::jetstream::Context) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    troupe_store::streams::ensure_streams(&js, 1 << 24, 1, true).await.unwrap();
    let store = Store::open(dir).unwrap();
    let r = store.replicate(js.clone(), origin.to_string(), tasks);
    r.catch_up(&js, Duration::from_secs(10)).await.unwrap();
    (store, js)
}

fn flow(id: &str, name: &str) -> Flow {
    serde_json::from_value(serde_json::json!({
        "id": id, "created": "2026-11-28T00:00:00Z", "updated": "2026-11-28T00:00:00Z",
        "projectId": "p", "folderId": null, "status": "DISABLED", "publishedVersionId": null,
        "externalId": name, "latestVersionId": "v"
    }))
    .unwrap_or_else(|e| panic!("flow json: {e}"))
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_travel_deletes_travel_and_conflicts_converge() {
    let n = NatsServer::start().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = join(&n.url, da.path(), "a").await;
    let (b, _) = join(&n.url, db.path(), "b").await;

    // a write on A: durable in the cluster when flush returns, then applied on B
    a.put_flow(&flow("f1", "one")).unwrap();
    a.flush().await.unwrap();
    let got = until("B applies A's flow", || b.get_flow("f1").unwrap()).await;
    assert_eq!(got.external_id.clone().unwrap(), "one");
    assert_eq!(got.status, FlowStatus::Disabled);

    // a removal on B reaches A
    b.delete_flow("f1").unwrap();
    b.flush().await.unwrap();
    until("A applies B's removal and its marker", || {
        (a.get_flow("f1").unwrap().is_none() && a.flow_was_deleted("f1").unwrap()).then_some(())
    })
    .await;

    // both write one key at once, many times: both copies end with the same value
    for i in 0..50 {
        a.put_flow(&flow("f2", &format!("a{i}"))).unwrap();
        b.put_flow(&flow("f2", &format!("b{i}"))).unwrap();
    }
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let position = a.replication().unwrap().position().max(b.replication().unwrap().position());
    assert!(a.replication().unwrap().wait_applied(position, Duration::from_secs(10)).await);
    assert!(b.replication().unwrap().wait_applied(position, Duration::from_secs(10)).await);
    let (fa, fb) = (a.get_flow("f2").unwrap().unwrap(), b.get_flow("f2").unwrap().unwrap());
    assert_eq!(fa.external_id, fb.external_id, "the copies diverged");
    let last = fa.external_id.unwrap();
    assert!(last == "a49" || last == "b49", "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_was_away_catches_up_and_a_new_one_starts_from_the_last_values() {
    let n = NatsServer::start().await;
    let (da, db, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = join(&n.url, da.path(), "a").await;
    {
        let (b, _) = join(&n.url, db.path(), "b-1").await;
        a.put_flow(&flow("f1", "before")).unwrap();
        a.flush().await.unwrap();
        until("B applies f1", || b.get_flow("f1").unwrap()).await;
        b.flush().await.unwrap();
        // B goes away (its position stays in its sled)
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..100 {
        a.put_flow(&flow(&format!("g{i}"), "while away")).unwrap();
    }
    a.put_flow(&flow("f1", "after")).unwrap();
    a.delete_flow("g7").unwrap();
    a.flush().await.unwrap();

    let (b, _) = join(&n.url, db.path(), "b-2").await;
    assert_eq!(b.get_flow("f1").unwrap().unwrap().external_id.clone().unwrap(), "after");
    assert!(b.get_flow("g99").unwrap().is_some());
    assert!(b.get_flow("g7").unwrap().is_none(), "the removal made while away was applied");

    // a brand-new store gets the same state from the last value of each key
    let (c, _) = join(&n.url, dc.path(), "c").await;
    assert_eq!(c.get_flow("f1").unwrap().unwrap().external_id.clone().unwrap(), "after");
    assert!(c.get_flow("g7").unwrap().is_none());
    let present = (0..100).filter(|i| c.get_flow(&format!("g{i}")).unwrap().is_some()).count();
    assert_eq!(present, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_jetstream_has_not_acknowledged_hold_new_work_back() {
    let n = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _js) = join(&n.url, dir.path(), "a").await;
    store.put_flow(&flow("f0", "x")).unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.replication_backlog(), 0);
    assert!(store.room(Duration::from_millis(10)).await, "room while JetStream keeps up");
    // JetStream gone: nothing is acknowledged any more, and the queue may not grow without end
    drop(n);
    let mut i = 0;
    while store.replication_backlog() <= troupe_store::db::MAX_REPLICATION_BACKLOG {
        i += 1;
        store.put_flow(&flow(&format!("f{i}"), "x")).unwrap();
    }
    assert!(!store.room(Duration::from_millis(200)).await, "no room: new work waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_applier_starts_again_and_a_panicking_publisher_stops_the_process() {
    use troupe_store::metric_definitions::TASK_RESTARTS;
    let n = NatsServer::start().await;
    let (da, db, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = join(&n.url, da.path(), "a").await;

    // the applier reads where it was from the store: started again, it goes on applying
    let tasks = Tasks::default();
    tasks.inject_panic("replication applier");
    let (b, _) = join_with(&n.url, db.path(), "b", &tasks).await;
    a.put_flow(&flow("f1", "one")).unwrap();
    a.flush().await.unwrap();
    until("B's restarted applier applies A's flow", || b.get_flow("f1").unwrap()).await;
    assert_eq!(TASK_RESTARTS.with_label_values(&["replication applier"]).get(), 1);
    assert!(tasks.failure().is_none(), "a restartable task does not stop the process");

    // the publisher holds the writes not yet in JetStream: its panic stops the process, and
    // no flush claims a durability the cluster does not have
    let tasks = Tasks::default();
    tasks.inject_panic("replication publisher");
    let (c, _) = join_with(&n.url, dc.path(), "c", &tasks).await;
    let why = tokio::time::timeout(Duration::from_secs(5), tasks.failed()).await.expect("the process is told to stop");
    assert!(why.contains("replication publisher"), "{why}");
    c.put_flow(&flow("f2", "two")).unwrap();
    let flushed = tokio::time::timeout(Duration::from_secs(2), c.flush()).await.expect("flush answers at once");
    assert!(flushed.is_err(), "a write no publisher will send was called durable");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.get_flow("f2").unwrap().is_none());
}
