//! `/metrics` and the Grafana dashboard over it.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashSet;

async fn metrics_text(t: &Troupe) -> String {
    let r = t.client.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn exported_names(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .unwrap_or_else(|| panic!("no series {series}"))
}

#[tokio::test]
async fn metrics_count_webhooks_runs_and_rejections() {
    let t = Troupe::start().await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    for _ in 0..3 {
        assert_eq!(t.webhook(&id, "/sync", json!({"name": "a", "items": [1]})).await.status(), 201);
    }
    assert_eq!(t.webhook("nope", "", json!({})).await.status(), 404);
    let text = metrics_text(&t).await;
    assert_eq!(value(&text, "troupe_webhooks_received_total"), 4.0);
    assert_eq!(value(&text, "troupe_webhooks_accepted_total"), 3.0);
    assert_eq!(value(&text, "troupe_webhooks_rejected_total{reason=\"not_found\"}"), 1.0);
    assert_eq!(value(&text, "troupe_runs_finished_total{status=\"SUCCEEDED\"}"), 3.0);
    assert_eq!(value(&text, "troupe_ingress_latency_seconds_count"), 4.0);
    assert_eq!(value(&text, "troupe_owned_shards"), 4.0);
    assert!(text.contains(
        "troupe_step_duration_seconds_count{action=\"advanced_mapping\",piece=\"@activepieces/piece-data-mapper\"} 3"
    ));
}

#[tokio::test]
async fn every_dashboard_expression_names_an_exported_metric() {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/grafana/troupe-dashboard.json"))
        .unwrap();
    let dashboard: Value = serde_json::from_str(&raw).expect("the dashboard is valid JSON");
    let t = Troupe::start().await;
    let exported = exported_names(&metrics_text(&t).await);
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("troupe_"))
                .collect();
            assert!(!names.is_empty(), "expression without a troupe metric: {expr}");
            for name in names {
                assert!(exported.contains(name), "dashboard uses {name}, which /metrics does not export");
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "the dashboard covers the metrics ({checked} references)");
}
