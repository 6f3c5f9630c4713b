//! `troupe-loadtest`: an open-loop load generator for a running Troupe, over HTTP only.
//!
//! It creates and publishes its own flow for the scenario, drives load for a bounded time
//! (a fixed arrival rate, or as fast as N connections go), records latency in an HDR
//! histogram (measured from the *intended* send time, so queueing is not hidden), prints a
//! progress line each second, then checks through the API that every accepted webhook made
//! exactly one finished run. It prints a summary and can write JSON and a markdown row.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    /// Async webhooks to a one-step flow: 200 only after the JetStream ack.
    Ingress,
    /// Sync webhooks to a 3-step flow (data mapper → JavaScript code step → return_response).
    Sync3,
    /// Sync webhooks to a store-heavy flow (put → append → get → return_response).
    Store,
    /// Async webhooks to a flow that pauses on a delay (`--pause-seconds`), then one step:
    /// every run must resume on time. Reports the timer fire lag.
    Pauses,
}

#[derive(Parser, Debug)]
#[command(name = "troupe-loadtest", about = "Open-loop load generator for Troupe")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    #[arg(long, env = "AP_API_KEY")]
    api_key: String,
    #[arg(long, value_enum, default_value = "ingress")]
    scenario: Scenario,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections (and requests in flight at most).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Arrivals per second; 0 runs as fast as the connections go.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Append a markdown table row here.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// The scenario's name in the markdown row (its own name by default).
    #[arg(long)]
    label: Option<String>,
    /// Skip the check that every accepted webhook made one run.
    #[arg(long)]
    no_verify: bool,
    /// Seconds the check waits for the runs to finish.
    #[arg(long, default_value_t = 120)]
    verify_timeout: u64,
    /// For `pauses`: how long each run waits.
    #[arg(long, default_value_t = 20)]
    pause_seconds: u64,
    /// For `pauses`: how many webhooks (sent as fast as the connections go).
    #[arg(long, default_value_t = 10_000)]
    count: u64,
}

struct Target {
    host: String,
    port: u16,
}

fn parse_base(url: &str) -> anyhow::Result<Target> {
    let rest = url.strip_prefix("http://").context("only http:// base URLs are supported (loopback load)")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').map(|(h, p)| (h, p.parse().unwrap_or(80))).unwrap_or((hostport, 80));
    Ok(Target { host: host.to_string(), port })
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}

fn request(method: &str, host: &str, path: &str, key: Option<&str>, body: &Value) -> Request<Full<Bytes>> {
    let mut b =
        Request::builder().method(method).uri(path).header("host", host).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let bytes = if body.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(body).unwrap()) };
    b.body(Full::new(bytes)).unwrap()
}

struct Api {
    target: Target,
    key: String,
    sender: Sender,
}

impl Api {
    async fn call(&mut self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let host = format!("{}:{}", self.target.host, self.target.port);
        let (status, _, bytes) = send(&mut self.sender, request(method, &host, path, Some(&self.key), &body)).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 300 {
            bail!("{method} {path} answered {status}: {v}");
        }
        Ok(v)
    }
}

fn step(name: &str, piece: &str, action: &str, input: Value) -> Value {
    json!({"name": name, "type": "PIECE", "displayName": name, "valid": true,
        "settings": {"pieceName": format!("@activepieces/piece-{piece}"), "pieceVersion": "~0.1.0", "actionName": action, "input": input}})
}

fn chain(mut steps: Vec<Value>) -> Value {
    let mut next: Option<Value> = None;
    while let Some(mut s) = steps.pop() {
        if let Some(n) = next.take() {
            s["nextAction"] = n;
        }
        next = Some(s);
    }
    next.unwrap()
}

fn flow_for(scenario: Scenario, pause_seconds: u64) -> Value {
    let respond = |body: Value| {
        step(
            "respond",
            "webhook",
            "return_response",
            json!({"responseType": "json", "respond": "stop", "fields": {"status": 200, "body": body}}),
        )
    };
    let steps = match scenario {
        Scenario::Ingress => {
            chain(vec![step("map", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}}))])
        }
        Scenario::Sync3 => chain(vec![
            step(
                "map",
                "data-mapper",
                "advanced_mapping",
                json!({"mapping": {"n": "{{trigger.body.n}}", "who": "{{trigger.body.who}}"}}),
            ),
            json!({"name": "greet", "type": "CODE", "valid": true, "displayName": "greet", "settings": {
                "input": {"who": "{{map.who}}"},
                "sourceCode": {"packageJson": "{}",
                    "code": "export const code = async (inputs) => { return `hello ${inputs.who}`; };"}}}),
            respond(json!({"n": "{{map.n}}", "greeting": "{{greet}}"})),
        ]),
        Scenario::Pauses => chain(vec![
            step("wait", "delay", "delayFor", json!({"unit": "seconds", "delayFor": pause_seconds})),
            step("map", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}})),
        ]),
        Scenario::Store => chain(vec![
            step("put", "store", "put", json!({"key": "last", "value": "{{trigger.body.n}}", "store_scope": "FLOW"})),
            step(
                "add",
                "store",
                "append",
                json!({"key": "run_log", "value": "{{trigger.body.n}}", "separator": ",", "store_scope": "RUN"}),
            ),
            step("get", "store", "get", json!({"key": "run_log", "store_scope": "RUN"})),
            respond(json!({"n": "{{trigger.body.n}}", "log": "{{get}}"})),
        ]),
    };
    json!({"displayName": format!("loadtest {scenario:?}"), "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true,
        "displayName": "Catch Webhook", "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.25",
        "triggerName": "catch_webhook", "input": {}}, "nextAction": steps}})
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Outcome {
    hist: Histogram<u64>,
    ids: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = parse_base(&args.base_url)?;
    let host = format!("{}:{}", target.host, target.port);
    let mut api = Api {
        sender: connect(&target).await.context("connecting to troupe")?,
        target: parse_base(&args.base_url)?,
        key: args.api_key.clone(),
    };
    let flow = api.call("POST", "/api/v1/flows", json!({"displayName": "loadtest"})).await?;
    let flow_id = flow["id"].as_str().context("flow id")?.to_string();
    api.call(
        "POST",
        &format!("/api/v1/flows/{flow_id}"),
        json!({"type": "IMPORT_FLOW", "request": flow_for(args.scenario, args.pause_seconds)}),
    )
    .await?;
    api.call("POST", &format!("/api/v1/flows/{flow_id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await?;
    let sync = !matches!(args.scenario, Scenario::Ingress | Scenario::Pauses);
    let path = format!("/api/v1/webhooks/{flow_id}{}", if sync { "/sync" } else { "" });

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let end = started + Duration::from_secs(if args.scenario == Scenario::Pauses { 600 } else { args.duration });
    // open loop: a pacer hands out intended send times; connections take them as they can
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(args.connections * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    if args.rate > 0 {
        let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
        tokio::spawn(async move {
            let mut next = Instant::now();
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                if tx.send(next).await.is_err() {
                    return;
                }
                next += interval;
            }
        });
    } else {
        drop(tx);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (rx, tally, counter, path, host) = (rx.clone(), tally.clone(), counter.clone(), path.clone(), host.clone());
        let target = parse_base(&args.base_url)?;
        let paced = args.rate > 0;
        let limit = if args.scenario == Scenario::Pauses { args.count } else { u64::MAX };
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut ids = Vec::new();
            let mut sender = match connect(&target).await {
                Ok(s) => s,
                Err(_) => return Outcome { hist, ids },
            };
            loop {
                let intended = if paced {
                    match rx.lock().await.recv().await {
                        Some(t) => t,
                        None => break,
                    }
                } else {
                    if Instant::now() >= end || counter.load(Ordering::Relaxed) >= limit {
                        break;
                    }
                    Instant::now()
                };
                let n = counter.fetch_add(1, Ordering::Relaxed);
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let body = json!({"n": n, "who": "load"});
                match send(&mut sender, request("POST", &host, &path, None, &body)).await {
                    Ok((status, headers, _)) if status < 300 => {
                        hist.saturating_record(intended.elapsed().as_micros() as u64);
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        let id = if sync { headers.get("x-run-id") } else { headers.get("x-webhook-id") };
                        if let Some(id) = id.and_then(|v| v.to_str().ok()) {
                            ids.push(id.to_string());
                        }
                    }
                    Ok(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        match connect(&target).await {
                            Ok(s) => sender = s,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
            }
            Outcome { hist, ids }
        }));
    }
    let progress_tally = tally.clone();
    let progress = tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ok = progress_tally.ok.load(Ordering::Relaxed);
            eprintln!(
                "[{:>3}s] sent {} ok {} failed {} rate {}/s",
                started.elapsed().as_secs(),
                progress_tally.sent.load(Ordering::Relaxed),
                ok,
                progress_tally.failed.load(Ordering::Relaxed),
                ok - last
            );
            last = ok;
        }
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut ids = Vec::new();
    for t in tasks {
        let o = t.await?;
        hist.add(&o.hist)?;
        ids.extend(o.ids);
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.abort();
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let throughput = ok as f64 / elapsed;

    let verification = if args.no_verify {
        json!({"checked": false})
    } else {
        verify(&mut api, &flow_id, &ids, sync, Duration::from_secs(args.verify_timeout)).await?
    };
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let result = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "connections": args.connections, "rate": args.rate, "durationSeconds": elapsed,
        "sent": tally.sent.load(Ordering::Relaxed), "accepted": ok, "failed": failed,
        "throughputPerSecond": throughput,
        "latencyMs": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0},
        "verification": verification,
        "timerFireLagMs": if args.scenario == Scenario::Pauses { fire_lag_ms(&mut api).await? } else { Value::Null },
    });
    println!("scenario     {}", result["scenario"].as_str().unwrap());
    println!(
        "load         {} connections, {}",
        args.connections,
        if args.rate > 0 { format!("{} /s arrival rate", args.rate) } else { "max throughput".into() }
    );
    println!("accepted     {ok} of {} ({failed} failed) in {elapsed:.1} s", tally.sent.load(Ordering::Relaxed));
    println!("throughput   {throughput:.0} /s");
    println!(
        "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1000.0
    );
    println!("verified     {verification}");
    if !result["timerFireLagMs"].is_null() {
        println!("timer lag    {}", result["timerFireLagMs"]);
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&result)?)?;
    }
    if let Some(p) = &args.markdown {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
        writeln!(
            f,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            args.label.as_deref().unwrap_or(result["scenario"].as_str().unwrap()),
            args.connections,
            if args.rate > 0 { args.rate.to_string() } else { "max".into() },
            throughput,
            ms(0.5),
            ms(0.99),
            hist.max() as f64 / 1000.0,
            verification["summary"].as_str().unwrap_or("not checked")
        )?;
    }
    if verification["ok"] == false {
        bail!("verification failed: {verification}");
    }
    Ok(())
}

/// Quantiles of `troupe_timer_fire_lag_seconds` (bucket upper bounds) from `/metrics`.
async fn fire_lag_ms(api: &mut Api) -> anyhow::Result<Value> {
    let host = format!("{}:{}", api.target.host, api.target.port);
    let (_, _, body) = send(&mut api.sender, request("GET", &host, "/metrics", None, &Value::Null)).await?;
    let text = String::from_utf8_lossy(&body);
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("troupe_timer_fire_lag_seconds_bucket{"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    let q = |p: f64| buckets.iter().find(|(_, c)| *c >= p * total).map(|(le, _)| le * 1000.0).unwrap_or(f64::NAN);
    Ok(json!({"timersFired": total, "p50AtMost": q(0.5), "p99AtMost": q(0.99), "maxAtMost": q(1.0)}))
}

/// Every accepted request made exactly one finished run: waits (bounded) for the runs to end.
async fn verify(api: &mut Api, flow_id: &str, ids: &[String], sync: bool, wait: Duration) -> anyhow::Result<Value> {
    let expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + wait;
    loop {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/flow-runs?flowId={flow_id}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = api.call("GET", &path, Value::Null).await?;
            for r in page["data"].as_array().into_iter().flatten() {
                let key = if sync { r["id"].as_str() } else { r["webhookId"].as_str() };
                runs.push((key.unwrap_or_default().to_string(), r["status"].as_str().unwrap_or_default().to_string()));
            }
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unfinished = runs.iter().filter(|(_, s)| matches!(s.as_str(), "QUEUED" | "RUNNING" | "PAUSED")).count();
        let keys: Vec<&str> = runs.iter().map(|(k, _)| k.as_str()).collect();
        let unique: HashSet<&str> = keys.iter().copied().collect();
        let duplicates = keys.len() - unique.len();
        let missing = expected.iter().filter(|k| !unique.contains(*k)).count();
        let succeeded = runs.iter().filter(|(_, s)| s == "SUCCEEDED").count();
        if (unfinished == 0 && missing == 0) || Instant::now() > deadline {
            let ok = unfinished == 0 && missing == 0 && duplicates == 0;
            let summary = format!(
                "{} runs, {succeeded} succeeded, {duplicates} duplicates, {missing} missing, {unfinished} unfinished",
                runs.len()
            );
            return Ok(
                json!({"checked": true, "ok": ok, "runs": runs.len(), "succeeded": succeeded, "duplicates": duplicates,
                "missing": missing, "unfinished": unfinished, "summary": summary}),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
