//! Egress: the http piece under SSRF protection (on by default): internal addresses are
//! refused with the reason, whether written in the URL, behind a name, or at a redirect.

use crate::support::*;
use serde_json::{json, Value};

fn get(url: &str) -> Value {
    piece("get", "http", "send_request", json!({"method": "GET", "url": url, "headers": {}, "queryParams": {}}))
}

async fn failure(t: &Troupe, url: &str) -> String {
    let id = t.publish(webhook_flow(get(url))).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED", "{url}: {r}");
    r["failedStep"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn internal_addresses_are_refused_without_the_allow_list() {
    // no allow list at all: the troupe's own loopback address is off limits too
    let t = Troupe::start_with(&[("AP_SSRF_ALLOW_LIST", "")]).await;
    let m = failure(&t, &t.url("/health")).await;
    assert!(m.contains("SSRF protection: 127.0.0.1 is 127.0.0.1, a loopback address"), "{m}");
    let m = failure(&t, "http://169.254.169.254/latest/meta-data/").await;
    assert!(m.contains("169.254.169.254, a link-local (cloud metadata) address"), "{m}");
    // a name is checked once resolved
    let m = failure(&t, &format!("http://localhost:{}/health", t.port)).await;
    assert!(m.contains("SSRF protection: localhost is ") && m.contains("loopback"), "{m}");
    let metrics = t.client.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let blocked = metrics
        .lines()
        .find(|l| l.starts_with("troupe_egress_requests_total{outcome=\"blocked\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    assert_eq!(blocked, Some(3.0), "{metrics}");
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_refused() {
    let t = Troupe::start_with(&[("AP_SSRF_ALLOW_LIST", "127.0.0.1")]).await;
    // a flow that answers with a redirect to another loopback address (not allowed)
    let fields = json!({"status": 302, "headers": {"location": "http://127.0.0.2:9/secret"}, "body": {}});
    let respond = piece(
        "respond",
        "webhook",
        "return_response",
        json!({"responseType": "json", "respond": "stop", "fields": fields}),
    );
    let redirect = webhook_flow(respond);
    let id = t.publish(redirect).await;
    let m = failure(&t, &t.url(&format!("/api/v1/webhooks/{id}/sync"))).await;
    assert!(m.contains("SSRF protection: 127.0.0.2 is 127.0.0.2, a loopback address"), "{m}");
}

#[tokio::test]
async fn with_protection_off_internal_addresses_are_reached() {
    let t = Troupe::start_with(&[("AP_SSRF_ALLOW_LIST", ""), ("AP_SSRF_PROTECTION_ENABLED", "false")]).await;
    let id = t.publish(webhook_flow(get(&t.url("/health")))).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
}

#[tokio::test]
async fn extra_trusted_cas_come_from_node_extra_ca_certs() {
    // a troupe serving HTTPS with a certificate no public CA signed
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path, _) = self_signed_tls(dir.path());
    let tls = Troupe::start_with(&[("AP_TLS_CERT", &cert_path), ("AP_TLS_KEY", &key_path)]).await;
    let url = format!("https://127.0.0.1:{}/health", tls.port);

    let untrusting = Troupe::start().await;
    let m = failure(&untrusting, &url).await;
    assert!(m.contains("certificate"), "{m}");

    let trusting = Troupe::start_with(&[("NODE_EXTRA_CA_CERTS", &cert_path)]).await;
    let id = trusting.publish(webhook_flow(get(&url))).await;
    let r: Value = trusting.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
}

#[tokio::test]
async fn a_code_step_fetches_through_the_host_under_the_same_policy() {
    let t = Troupe::start().await;
    let source = "export const code = async (inputs) => { const r = await fetch(inputs.url, {headers: {accept: 'application/json'}}); return {status: r.status, ok: r.ok, body: await r.json(), type: r.headers.get('content-type')}; }";
    let step = code("fetching", source, json!({"url": t.url("/health")}));
    let id = t.publish(webhook_flow(chain(vec![step, respond(json!({"got": "{{fetching}}"}))]))).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["got"]["status"], 200, "{r}");
    assert_eq!(r["got"]["ok"], true, "{r}");
    assert!(r["got"]["type"].as_str().unwrap_or_default().contains("json"), "{r}");

    let step = code("fetching", source, json!({"url": "http://169.254.169.254/latest/meta-data/"}));
    let id = t.publish(webhook_flow(step)).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED", "{r}");
    let m = r["failedStep"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("fetch failed: SSRF protection: 169.254.169.254"), "{m}");
}
