//! A local fake of slack.com for the README's walkthrough: an HTTPS-intercepting proxy on
//! loopback that answers `chat.postMessage` and prints what it was sent. Start troupe with the
//! two variables it prints, and the Slack piece, unchanged, talks to this instead of Slack.
//!
//! `cargo run -p troupe-testkit --features mitm --example fake_slack`

use serde_json::json;
use troupe_testkit::mitm::{Mitm, Reply};

#[tokio::main]
async fn main() {
    let fake = Mitm::start(|r| {
        println!("{} https://{}{} {}", r.method, r.host, r.path, String::from_utf8_lossy(&r.body));
        if r.host == "slack.com" && r.path.starts_with("/api/chat.postMessage") {
            Reply::json(200, &json!({"ok": true, "channel": "C0123", "ts": "1700000000.000100"}))
        } else {
            Reply::json(404, &json!({"ok": false, "error": "unknown_method"}))
        }
    })
    .await;
    println!("fake slack.com ready; start troupe with:");
    println!(
        "  HTTPS_PROXY={} NO_PROXY=registry.npmjs.org NODE_EXTRA_CA_CERTS={}",
        fake.proxy_url(),
        fake.ca_file().display()
    );
    tokio::signal::ctrl_c().await.expect("wait for ctrl-c");
}
