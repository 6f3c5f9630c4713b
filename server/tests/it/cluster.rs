//! A cluster on loopback: one nats-server, one APP and three WORKER processes. Shards spread
//! over the workers through leases; a worker killed with -9 under load loses its shards to the
//! others, and every accepted webhook still has exactly one run, which succeeds; a worker
//! started again gets its share back.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const SHARDS: u16 = 16;
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn start(nats: &NatsServer, role: &str) -> Troupe {
    start_faulty(nats, role, "").await
}

/// A process of the cluster whose tasks named in `faults` panic (`TROUPE_FAULT_TASK_PANIC`).
async fn start_faulty(nats: &NatsServer, role: &str, faults: &str) -> Troupe {
    Troupe::start_logged(&[
        ("TROUPE_FAULT_TASK_PANIC", faults),
        ("AP_CONTAINER_TYPE", role),
        ("AP_NATS_URL", &nats.url),
        ("AP_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ("AP_SHARDS", &SHARDS.to_string()),
        ("TROUPE_DEBUG_PIECES", "1"),
        ("RUST_LOG", "info,sled=warn,async_nats=warn"),
    ])
    .await
}

/// The shards a process owns now, from its `/metrics`; `None` when it does not answer.
async fn owned(t: &Troupe) -> Option<BTreeSet<u16>> {
    let resp = t.client.get(t.url("/metrics")).timeout(Duration::from_secs(2)).send().await.ok()?;
    let text = resp.text().await.ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("troupe_shard_owned{shard=\""))
            .filter_map(|l| l.split_once("\"} "))
            .filter(|(_, v)| v.trim() == "1")
            .filter_map(|(s, _)| s.parse().ok())
            .collect(),
    )
}

/// Waits until the live `workers` own every shard once, in fair shares; never sees a shard
/// owned twice meanwhile.
async fn wait_balanced(workers: &[&Troupe], within: Duration) -> Vec<BTreeSet<u16>> {
    let deadline = Instant::now() + within;
    loop {
        let mut sets = Vec::new();
        for w in workers {
            sets.push(owned(w).await.unwrap_or_default());
        }
        let mut seen = BTreeSet::new();
        for s in &sets {
            for shard in s {
                assert!(seen.insert(*shard), "shard {shard} has two owners: {sets:?}");
            }
        }
        let fair = SHARDS as usize / workers.len();
        if seen.len() == SHARDS as usize && sets.iter().all(|s| s.len() == fair || s.len() == fair + 1) {
            return sets;
        }
        assert!(Instant::now() < deadline, "shards did not settle within {within:?}: {sets:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to `within`) until every accepted webhook has exactly one run that succeeded
/// (its step echoes the webhook's `n`); on a timeout, prints what the workers logged of the
/// unfinished runs. Answers how many runs it checked.
pub(crate) async fn assert_exactly_once(
    app: &Troupe,
    flows: &[String],
    accepted: &HashMap<String, BTreeSet<u64>>,
    workers: &[&Troupe],
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    let mut checked = 0;
    let mut told = false;
    for id in flows {
        let want = accepted.get(id).cloned().unwrap_or_default();
        let runs = loop {
            let runs = app.all_runs(id).await;
            let done = runs.iter().filter(|r| r["status"] == "SUCCEEDED").count();
            if done >= want.len() {
                break runs;
            }
            let slow = !told && Instant::now() + within.mul_f64(0.8) >= deadline;
            if slow || Instant::now() >= deadline {
                told = true;
                for r in runs.iter().filter(|r| r["status"] != "SUCCEEDED") {
                    let rid = r["id"].as_str().unwrap();
                    eprintln!("unfinished run {rid} {}", r["status"]);
                    for (i, w) in workers.iter().enumerate() {
                        let log = std::fs::read_to_string(w.log.as_ref().unwrap()).unwrap_or_default();
                        for l in log
                            .lines()
                            .filter(|l| l.contains(rid) || l.contains("WARN") || l.contains("ERROR"))
                            .take(40)
                        {
                            eprintln!("  worker {i}: {l}");
                        }
                    }
                }
                if !slow {
                    panic!("flow {id}: {done} of {} runs succeeded", want.len());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(runs.len(), want.len(), "flow {id}: a webhook made more than one run");
        let mut seen = BTreeSet::new();
        for r in &runs {
            let run = app.run(r["id"].as_str().unwrap()).await;
            let n = run["steps"]["step_1"]["output"]["n"].as_u64().unwrap_or_else(|| panic!("{run}"));
            assert!(seen.insert(n), "webhook {n} of flow {id} ran twice");
            checked += 1;
        }
        assert_eq!(seen, want, "flow {id}: runs and accepted webhooks differ");
    }
    checked
}

fn sleepy_flow() -> Value {
    webhook_flow(chain(vec![
        debug("nap", "sleep", json!({"ms": 150})),
        piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}})),
    ]))
}

fn delayed_flow() -> Value {
    webhook_flow(chain(vec![
        piece("wait", "delay", "delayFor", json!({"unit": "seconds", "delayFor": 2})),
        piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}})),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_worker_under_load_moves_its_shards_and_loses_no_run() {
    let nats = NatsServer::start().await;
    let mut workers = [start(&nats, "WORKER").await, start(&nats, "WORKER").await, start(&nats, "WORKER").await];
    let app = start(&nats, "APP").await;
    let before = wait_balanced(&workers.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;

    // flows on many shards; each worker has some
    let mut flows: Vec<(String, bool)> = Vec::new();
    for i in 0..24 {
        let delayed = i % 6 == 5;
        let id = app.publish(if delayed { delayed_flow() } else { sleepy_flow() }).await;
        flows.push((id, delayed));
    }
    let shard_of = |id: &str| troupe_store::ids::shard_for_flow(id, SHARDS);
    // the victim: the owner of a delayed flow's shard, so that it dies with runs PAUSED as well
    // as RUNNING and QUEUED
    let (paused_flow, _) = flows.iter().find(|(_, delayed)| *delayed).unwrap();
    let victim = (0..3).find(|w| before[*w].contains(&shard_of(paused_flow))).unwrap();

    // open-loop load: 120 webhooks/s for 8 s, round robin over the flows; kill -9 at 3 s
    let mut accepted: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let started = Instant::now();
    let mut killed_at = None;
    let mut pending = Vec::new();
    for n in 0..960u64 {
        let due = started + Duration::from_micros(n * 1_000_000 / 120);
        tokio::time::sleep_until(due.into()).await;
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(3) {
            workers[victim].kill();
            killed_at = Some(Instant::now());
        }
        let (id, _) = &flows[n as usize % flows.len()];
        let (client, url) = (app.client.clone(), app.url(&format!("/api/v1/webhooks/{id}")));
        let id = id.clone();
        pending.push(tokio::spawn(async move {
            let status = client.post(url).json(&json!({"n": n})).send().await.map(|r| r.status().as_u16());
            (id, n, status)
        }));
    }
    for p in pending {
        let (id, n, status) = p.await.unwrap();
        match status {
            Ok(s) if (200..300).contains(&s) => {
                accepted.entry(id).or_default().insert(n);
            }
            other => panic!("webhook {n} was refused: {other:?}"),
        }
    }
    assert_eq!(accepted.values().map(BTreeSet::len).sum::<usize>(), 960);

    // the two survivors own everything
    let survivors: Vec<&Troupe> = workers.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, w)| w).collect();
    let after = wait_balanced(&survivors, Duration::from_secs(20)).await;
    let moved = killed_at.unwrap().elapsed();
    assert!(after.iter().all(|s| s.len() == 8), "{after:?}");

    // every accepted webhook: exactly one run, and it succeeded
    let ids: Vec<String> = flows.iter().map(|(id, _)| id.clone()).collect();
    assert_exactly_once(&app, &ids, &accepted, &workers.iter().collect::<Vec<_>>(), Duration::from_secs(120)).await;

    // the victim comes back (same data folder, same node id) and gets its share again
    workers[victim].spawn().await;
    let rebalanced = wait_balanced(&workers.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    assert!(rebalanced[victim].len() >= 5, "{rebalanced:?}");
    // and it serves: a sync webhook to one of its shards answers
    let on_victim = flows.iter().find(|(id, d)| !d && rebalanced[victim].contains(&shard_of(id)));
    if let Some((id, _)) = on_victim {
        let resp = app.webhook(id, "/sync", json!({"n": 5000})).await;
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    // a worker stopped gracefully hands its shards back at once, without waiting for expiry
    let leaving = (victim + 1) % 3;
    let status = workers[leaving].terminate();
    assert!(status.success(), "{status:?}");
    let stayed: Vec<&Troupe> = workers.iter().enumerate().filter(|(i, _)| *i != leaving).map(|(_, w)| w).collect();
    wait_balanced(&stayed, Duration::from_millis(4500)).await;

    // the survivors picked up what the victim had in flight
    let mut recovered = 0;
    for (i, w) in workers.iter().enumerate().filter(|(i, _)| *i != victim && *i != leaving) {
        let log = std::fs::read_to_string(w.log.as_ref().unwrap()).unwrap();
        recovered += log.matches("recovering run").count();
        assert!(log.contains("shard taken"), "worker {i} took no shard");
    }
    eprintln!("shards moved within {moved:?} of the kill (including the wait for balance); {recovered} runs recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_three_node_nats_cluster_with_r3_streams_a_worker_and_a_nats_node_can_die() {
    let mut nats = troupe_testkit::NatsCluster::start(None).await;
    let env = |role: &'static str, url: &str| -> Vec<(String, String)> {
        [
            ("AP_CONTAINER_TYPE", role),
            ("AP_NATS_URL", url),
            ("AP_NATS_REPLICAS", "3"),
            ("AP_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("AP_SHARDS", "8"),
            ("TROUPE_DEBUG_PIECES", "1"),
            ("RUST_LOG", "info,sled=warn,async_nats=warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let start_with = |env: Vec<(String, String)>| async move {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Troupe::start_logged(&pairs).await
    };
    let mut w0 = start_with(env("WORKER", &nats.url)).await;
    let w1 = start_with(env("WORKER", &nats.url)).await;
    let app = start_with(env("APP", &nats.url)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (owned(&w0).await.unwrap_or_default(), owned(&w1).await.unwrap_or_default());
        if a.len() == 4 && b.len() == 4 && a.is_disjoint(&b) {
            break;
        }
        assert!(Instant::now() < deadline, "shards did not settle: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut flows = Vec::new();
    for _ in 0..8 {
        flows.push(app.publish(sleepy_flow()).await);
    }

    // 60 webhooks/s for 14 s; a worker dies at 2 s, a NATS node at 4 s
    let mut accepted: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let mut refused = 0;
    let started = Instant::now();
    let mut pending = Vec::new();
    let (mut worker_killed, mut node_killed) = (false, false);
    for n in 0..840u64 {
        tokio::time::sleep_until((started + Duration::from_micros(n * 1_000_000 / 60)).into()).await;
        if !worker_killed && started.elapsed() > Duration::from_secs(2) {
            w0.kill();
            worker_killed = true;
        }
        if !node_killed && started.elapsed() > Duration::from_secs(4) {
            nats.kill(1);
            node_killed = true;
        }
        let id = flows[n as usize % flows.len()].clone();
        let (client, url) = (app.client.clone(), app.url(&format!("/api/v1/webhooks/{id}")));
        pending.push(tokio::spawn(async move {
            let resp = client.post(url).json(&json!({"n": n})).timeout(Duration::from_secs(20)).send().await;
            let status = match resp {
                Ok(r) if r.status() == 503 => {
                    let body = r.text().await.unwrap_or_default();
                    assert!(body.contains("UNAVAILABLE"), "{body}");
                    Ok(503)
                }
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(e),
            };
            (id, n, status)
        }));
    }
    for p in pending {
        let (id, n, status) = p.await.unwrap();
        match status {
            Ok(s) if (200..300).contains(&s) => {
                accepted.entry(id).or_default().insert(n);
            }
            // not accepted, and the client was told so: JetStream was electing a new leader
            Ok(503) => refused += 1,
            other => panic!("webhook {n}: {other:?}"),
        }
    }
    let total: usize = accepted.values().map(BTreeSet::len).sum();
    assert_eq!(total + refused, 840);
    // the election is over well before the end (it took up to 6 s here): serving again
    let late = accepted.values().flat_map(|ns| ns.iter()).filter(|n| **n >= 720).count();
    assert!(late >= 60, "only {late} of the last 120 webhooks were accepted");
    eprintln!("load done at {:?}", started.elapsed());

    // the survivor owns every shard; every accepted webhook has exactly one successful run
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned(&w1).await.unwrap_or_default().len() != 8 {
        assert!(Instant::now() < deadline, "the survivor did not take every shard");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("survivor owns all at {:?}", started.elapsed());
    assert_exactly_once(&app, &flows, &accepted, &[&w0, &w1], Duration::from_secs(120)).await;
    eprintln!("checked at {:?}", started.elapsed());
    eprintln!("{total} accepted, {refused} refused while a NATS node died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_cluster_panicking_tasks_start_again_and_a_worker_whose_lease_keeper_panics_stops_and_hands_over() {
    let nats = NatsServer::start().await;
    // restartable: the APP's scheduler lease and state applier, a worker's fence and applier;
    // essential: the other worker's lease keeper (it holds the leases), 10 s after it starts
    let steady = start_faulty(&nats, "WORKER", "lease fence,replication applier").await;
    let mut doomed = start_faulty(&nats, "WORKER", "lease keeper@10").await;
    let app = start_faulty(&nats, "APP", "lease scheduler,replication applier").await;
    // shards move one per tick: the doomed worker holds some when its keeper panics
    let deadline = Instant::now() + Duration::from_secs(8);
    while owned(&doomed).await.unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the second worker took no shard");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut flows = Vec::new();
    for i in 0..8 {
        flows.push(app.publish(if i % 4 == 3 { delayed_flow() } else { sleepy_flow() }).await);
    }
    // 40 webhooks/s for 6 s, round robin: the keeper panics meanwhile or just after
    let mut accepted: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let started = Instant::now();
    for n in 0..240u64 {
        tokio::time::sleep_until((started + Duration::from_millis(n * 25)).into()).await;
        let id = &flows[n as usize % flows.len()];
        let r = app.webhook(id, "", json!({"n": n})).await;
        assert!(r.status().is_success(), "webhook {n}: {}", r.status());
        accepted.entry(id.clone()).or_default().insert(n);
    }

    // the doomed worker stops by itself, with an error; the steady one takes every shard
    let status = doomed.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = std::fs::read_to_string(doomed.log.as_ref().unwrap()).unwrap();
    assert!(log.contains("an essential task panicked; stopping the process") && log.contains("lease keeper"));
    let owned = wait_balanced(&[&steady], Duration::from_secs(30)).await;
    assert_eq!(owned[0].len(), SHARDS as usize);
    assert_exactly_once(&app, &flows, &accepted, &[&steady, &doomed], Duration::from_secs(90)).await;

    // the restartable ones were started again once each, and their processes served on
    for (t, task) in [
        (&app, "lease scheduler"),
        (&app, "replication applier"),
        (&steady, "lease fence"),
        (&steady, "replication applier"),
    ] {
        let label = format!("task=\"{task}\"");
        assert_eq!(metric(t, "troupe_task_restarts_total", &label).await, 1.0, "{task}");
    }
}
