//! Installing npm pieces through the API: real packages from the npm registry (cached under
//! the target directory between runs), refusals with the reason.

use crate::support::*;
use serde_json::{json, Value};

/// Every test's troupe shares one npm cache, so that a package is fetched once per machine.
fn npm_cache() -> String {
    std::path::Path::new(BUILD.tmpdir).join("npm-cache").display().to_string()
}

async fn start() -> Troupe {
    Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache())]).await
}

/// A troupe whose HTTPS goes through `fake` (trusting its CA), with `env` added.
async fn behind(fake: &troupe_testkit::mitm::Mitm, env: &[(&str, &str)]) -> Troupe {
    let (ca, proxy) = (fake.ca_file().display().to_string(), fake.proxy_url());
    let mut all = vec![
        ("NPM_CONFIG_CACHE", npm_cache()),
        ("HTTPS_PROXY", proxy),
        ("NO_PROXY", "registry.npmjs.org".to_string()),
        ("NODE_EXTRA_CA_CERTS", ca),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Troupe::start_with(&env).await
}

/// Fills the `prop` dropdown of `piece`'s `owner` (an action or trigger) with `connection`.
async fn dropdown(t: &Troupe, piece: &str, version: &str, owner: &str, prop: &str, connection: &str) -> (u16, Value) {
    let body = json!({"pieceName": piece, "pieceVersion": version, "actionOrTriggerName": owner, "propertyName": prop,
        "input": {"auth": format!("{{{{connections['{connection}']}}}}")}});
    t.post("/pieces/options", body).await
}

/// A `.tgz` as `npm pack` makes it, with these files under `package/`.
fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    troupe_testkit::npm::pack(&files.iter().map(|(p, t)| (*p, t.as_bytes())).collect::<Vec<_>>())
}
#[tokio::test]
async fn a_registry_piece_installs_lists_and_is_removed() {
    let t = start().await;
    let (status, body) = t
        .post("/pieces", json!({"pieceName": "@activepieces/piece-slack", "pieceVersion": "0.17.9", "packageType": "REGISTRY", "scope": "PLATFORM"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["version"].as_str()), (Some("@activepieces/piece-slack"), Some("0.17.9")));
    assert_eq!(body["packageType"], "REGISTRY");
    let (_, list) = t.get("/pieces").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (status, one) = t.get("/pieces/@activepieces/piece-slack").await;
    assert_eq!((status, one["id"].clone()), (200, body["id"].clone()));
    let (status, _) = t.get("/pieces/@activepieces/piece-slack?version=0.1.0").await;
    assert_eq!(status, 404);
    let id = body["id"].as_str().unwrap();
    let (status, _) = t.api(reqwest::Method::DELETE, &format!("/pieces/{id}"), None).await;
    assert_eq!(status, 204);
    let (_, list) = t.get("/pieces").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn packages_that_cannot_run_in_the_sandbox_are_refused_with_the_reason() {
    let t = start().await;
    let (status, body) = t.post("/pieces", json!({"pieceName": "sharp", "pieceVersion": "0.33.5"})).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("native addon of @img/sharp-linux-x64@") && message.contains(".node"), "{message}");
    let (status, body) =
        t.post("/pieces", json!({"pieceName": "@activepieces/piece-delay", "pieceVersion": "99.0.0"})).await;
    assert_eq!(
        (status, body["message"].clone()),
        (400, Value::from("@activepieces/piece-delay@99.0.0: no version satisfies it"))
    );
    let (status, body) = t.post("/pieces", json!({"pieceVersion": "1.0.0"})).await;
    assert_eq!((status, body["message"].clone()), (400, Value::from("pieceName is required")));
    let (_, list) = t.get("/pieces").await;
    assert_eq!(list, json!([]), "nothing was kept");
    // importing a flow whose piece cannot be installed says which step, package and why
    let (_, created) = t.post("/flows", json!({"displayName": "needs sharp"})).await;
    let id = created["id"].as_str().unwrap();
    let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "Resize",
        "settings": {"pieceName": "@activepieces/piece-image-helper", "pieceVersion": "~0.1.0", "actionName": "resize", "input": {}}});
    let (status, body) =
        t.post(&format!("/flows/{id}"), json!({"type": "IMPORT_FLOW", "request": webhook_flow(step)})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["step"], "step_1", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("@activepieces/piece-image-helper") && message.contains("could not be installed"),
        "{message}"
    );
}

/// A piece written for these tests, without the framework: its own `Piece` class (the engine
/// finds a piece by that name, as Activepieces' does), actions that probe the sandbox, and a
/// dependency from the registry.
const SANDBOX_PIECE: &str = r#"
const ms = require('ms');
class Piece {
  constructor(actions, triggers, auth) { this.displayName = 'Sandbox probe'; this.authors = []; this._actions = actions; this._triggers = triggers; this.auth = auth; }
  metadata() { return { displayName: this.displayName, logoUrl: '', description: '', categories: [], actions: this._actions, triggers: this._triggers, auth: this.auth }; }
  getAction(name) { return this._actions[name]; }
  getTrigger(name) { return this._triggers[name]; }
}
// a polling trigger as pieces-common's pollingHelper makes them: onEnable records where the
// feed stands, run returns what is newer and moves the mark
const newest = async (ctx) => { const r = await fetch(ctx.propsValue.url); return r.json(); };
const newItem = {
  name: 'new_item', displayName: 'New item', description: '', type: 'POLLING', requireAuth: false, sampleData: {},
  props: { url: { type: 'SHORT_TEXT', displayName: 'URL', required: true }, cron: { type: 'SHORT_TEXT', displayName: 'Cron', required: false } },
  onEnable: async (ctx) => {
    if (ctx.propsValue.cron) ctx.setSchedule({ cronExpression: ctx.propsValue.cron, timezone: 'UTC' });
    const items = await newest(ctx); await ctx.store.put('mark', Math.max(0, ...items.map((i) => i.id)));
  },
  onDisable: async (ctx) => { await ctx.store.delete('mark'); await fetch(`${ctx.propsValue.url}?disabled=${ctx.flows.current.id}`); },
  run: async (ctx) => {
    const mark = (await ctx.store.get('mark')) || 0;
    const fresh = (await newest(ctx)).filter((i) => i.id > mark);
    if (fresh.length) await ctx.store.put('mark', Math.max(...fresh.map((i) => i.id)));
    return fresh;
  },
  test: async (ctx) => (await newest(ctx)).slice(-2).reverse(),
};
const action = (name, run, props = {}) => ({ name, displayName: name, description: '', props, requireAuth: false, run });
const url = { type: 'SHORT_TEXT', displayName: 'URL', required: true };
exports.probe = new Piece({
  ms: action('ms', async (ctx) => ({ ms: ms(ctx.propsValue.text) }), { text: { type: 'SHORT_TEXT', displayName: 'Text', required: true } }),
  net: action('net', async () => { require('net').connect(5432, 'db.example.com'); return 'connected'; }),
  fetch: action('fetch', async (ctx) => { const r = await fetch(ctx.propsValue.url); return { status: r.status, body: await r.text() }; }, { url }),
  memory: action('memory', async () => { const keep = []; for (;;) keep.push(new Array(1 << 20).fill(keep.length)); }),
  conn: action('conn', async (ctx) => ({ read: await ctx.connections.get('probe-secret') })),
  tag: action('tag', async (ctx) => { await ctx.tags.add({ name: 'vip' }); return 'tagged'; }),
  whoami: { ...action('whoami', async (ctx) => ({ type: ctx.auth.type, tokenEnds: ctx.auth.access_token.slice(-2) })), requireAuth: true },
  remote: { ...action('remote', async (ctx) => {
    const r = await fetch(ctx.propsValue.url, { headers: { authorization: `Bearer ${ctx.auth.access_token}` } });
    if (r.status === 401) throw new Error('the service answered 401 Unauthorized');
    return r.json();
  }, { url }), requireAuth: true },
  callback: action('callback', async (ctx) => {
    const headers = { authorization: `Bearer ${ctx.server.token}`, 'content-type': 'application/json' };
    const put = await fetch(`${ctx.server.apiUrl}v1/store-entries`, { method: 'POST', headers, body: JSON.stringify({ key: 'greeting', value: { hi: 'there' } }) });
    const got = await fetch(`${ctx.server.apiUrl}v1/store-entries?key=greeting`, { headers });
    const forged = await fetch(`${ctx.server.apiUrl}v1/store-entries?key=greeting`, { headers: { authorization: 'Bearer forged' } });
    return { put: put.status, got: await got.json(), forged: forged.status };
  }),
}, { new_item: newItem, events: {
  name: 'events', displayName: 'Events', description: '', type: 'WEBHOOK', requireAuth: false, sampleData: {},
  props: { remote: { type: 'SHORT_TEXT', displayName: 'Remote', required: true } },
  onEnable: async (ctx) => { await fetch(`${ctx.propsValue.remote}?register=${encodeURIComponent(ctx.webhookUrl)}`); await ctx.store.put('hook', 'h-1'); },
  onDisable: async (ctx) => { await fetch(`${ctx.propsValue.remote}?unregister=${await ctx.store.get('hook')}`); },
  run: async (ctx) => ctx.payload.body.events || [],
  handshakeConfiguration: { strategy: 'BODY_PARAM_PRESENT', paramName: 'challenge' },
  onHandshake: async (ctx) => ({ status: 200, body: { challenge: ctx.payload.body.challenge }, headers: {} }),
  renewConfiguration: { strategy: 'CRON', cronExpression: '* * * * * *' },
  onRenew: async (ctx) => { await fetch(`${ctx.propsValue.remote}?renew=${await ctx.store.get('hook')}`); },
} }, { type: 'OAUTH2', displayName: 'Connection', required: true, authUrl: `http://127.0.0.1:${process.env.OAUTH_PORT || 1}/authorize`,
  tokenUrl: 'http://oauth.invalid/token', scope: ['read', 'write'], pkce: true });
"#;

fn sandbox_piece() -> Vec<u8> {
    tgz(&[
        (
            "package.json",
            r#"{"name":"@me/piece-probe","version":"0.1.0","main":"index.js","dependencies":{"ms":"^2.1.0"}}"#,
        ),
        ("index.js", SANDBOX_PIECE),
    ])
}

/// A flow started by the probe piece's `trigger` (with `input`), then `next`.
fn probe_trigger_flow(trigger: &str, input: Value, next: Value) -> Value {
    json!({
        "displayName": trigger,
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": trigger,
            "settings": {"pieceName": "@me/piece-probe", "pieceVersion": "0.1.0", "triggerName": trigger, "input": input},
            "nextAction": next}
    })
}

/// Uploads `archive` as Activepieces' clients do (multipart, `pieceArchive`).
async fn upload(t: &Troupe, archive: &[u8], scope: &str) -> (u16, Value) {
    let boundary = "troupe-test-boundary";
    let mut form = Vec::new();
    for (name, value) in [("packageType", "ARCHIVE"), ("scope", scope), ("pieceName", "@me/piece-probe")] {
        form.extend(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    form.extend(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"pieceArchive\"; filename=\"p.tgz\"\r\ncontent-type: application/gzip\r\n\r\n").bytes());
    form.extend(archive);
    form.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let resp = t
        .client
        .post(t.url("/api/v1/pieces"))
        .bearer_auth(KEY)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn an_uploaded_archive_installs_with_its_dependencies() {
    let t = start().await;
    let (status, body) = upload(&t, &sandbox_piece(), "PROJECT").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["packageType"].as_str()), (Some("@me/piece-probe"), Some("ARCHIVE")));
    assert!(body["projectId"].is_string(), "scope PROJECT: {body}");
    assert!(body["dependencies"]["ms"].as_str().unwrap().starts_with("ms@2."), "{body}");
    // loading it in the sandbox gave its metadata
    assert_eq!(body["displayName"], "Sandbox probe");
    assert_eq!(body["actions"]["ms"]["props"]["text"]["type"], "SHORT_TEXT", "{body}");
    // a package that loads but exports no piece is refused, and not kept
    let (status, body) = upload(
        &t,
        &tgz(&[
            ("package.json", r#"{"name":"@me/piece-empty","version":"0.1.0","main":"index.js"}"#),
            ("index.js", "module.exports = {}"),
        ]),
        "PLATFORM",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("exports no piece"), "{body}");
    let (_, list) = t.get("/pieces").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn a_piece_runs_in_the_sandbox_and_what_it_must_not_do_fails_its_step_with_the_reason() {
    let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_SSRF_ALLOW_LIST", "")]).await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    async fn run_of(t: &Troupe, action: &str, input: Value) -> Value {
        let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": action,
            "settings": {"pieceName": "@me/piece-probe", "pieceVersion": "0.1.0", "actionName": action, "input": input}});
        let id = t.publish(webhook_flow(step)).await;
        t.webhook(&id, "", json!({})).await;
        let run = t.wait_runs(&id, 1).await.remove(0);
        t.run(run["id"].as_str().unwrap()).await
    }
    // its dependency from the registry works
    let run = run_of(&t, "ms", json!({"text": "2 days"})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["steps"]["step_1"]["output"], json!({"ms": 172800000}), "{run}");
    // sockets do not exist in the sandbox
    let run = run_of(&t, "net", json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let message = run["failedStep"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("net.connect is not available in Troupe's sandbox"), "{run}");
    // internal addresses are refused after resolution, the cloud metadata one too
    for url in ["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/"] {
        let run = run_of(&t, "fetch", json!({"url": url})).await;
        assert_eq!(run["status"], "FAILED", "{run}");
        let message = run["failedStep"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("fetch failed") && message.contains("AP_SSRF_ALLOW_LIST"), "{url}: {message}");
    }
    // a piece calls back into Troupe with its engine token, as pieces call Activepieces'
    // engine API; the entry is the one the store piece sees
    let run = run_of(&t, "callback", json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let out = &run["steps"]["step_1"]["output"];
    assert_eq!((out["put"].as_u64(), out["forged"].as_u64()), (Some(200), Some(401)), "{out}");
    assert_eq!(out["got"]["value"], json!({"hi": "there"}), "{out}");
    let get = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "get",
        "settings": {"pieceName": "@activepieces/piece-store", "pieceVersion": "~0.5.0", "actionName": "get",
            "input": {"key": "greeting", "store_scope": "COLLECTION"}}});
    let id = t.publish(webhook_flow(get)).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["steps"]["step_1"]["output"], json!({"hi": "there"}), "{run}");
    // a connection a piece reads itself is redacted from what the run keeps, like any other
    let (status, body) = t
        .post(
            "/app-connections",
            json!({"externalId": "probe-secret", "displayName": "p", "pieceName": "@me/piece-probe", "type": "SECRET_TEXT",
                "value": {"type": "SECRET_TEXT", "secret_text": "s3cr3t-value"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run = run_of(&t, "conn", json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert!(!run["steps"]["step_1"]["output"]["read"].is_null(), "{run}");
    assert!(!run.to_string().contains("s3cr3t-value"), "{run}");
    // a piece that eats memory ends its run with MEMORY_LIMIT_EXCEEDED; troupe carries on
    let run = run_of(&t, "memory", json!({})).await;
    assert_eq!(run["status"], "MEMORY_LIMIT_EXCEEDED", "{run}");
    let run = run_of(&t, "ms", json!({"text": "1h"})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
}

/// The Slack piece's `send_channel_message`, unchanged from npm, against a local fake of
/// slack.com reached through an HTTPS-intercepting proxy.
#[tokio::test]
async fn an_exported_slack_flow_publishes_installs_and_runs_against_a_fake_slack() {
    let fake = troupe_testkit::mitm::Mitm::start(|r| {
        use troupe_testkit::mitm::Reply;
        let authorized = r.header("authorization").is_some_and(|a| a.contains("xoxb-test-token") || a.contains("xoxb-good"));
        if r.host != "slack.com" {
            Reply::json(404, &json!({"ok": false, "error": "unknown_host"}))
        } else if !authorized {
            Reply::json(200, &json!({"ok": false, "error": "invalid_auth"}))
        } else if r.path.starts_with("/api/chat.postMessage") {
            Reply::json(
                200,
                &json!({"ok": true, "channel": "C0123", "ts": "1700000000.000100", "message": {"text": "from the fake"}}),
            )
        } else if r.path.starts_with("/api/conversations.list") {
            Reply::json(200, &json!({"ok": true, "channels": [{"id": "C0123", "name": "general"}, {"id": "C0456", "name": "random"}], "response_metadata": {"next_cursor": ""}}))
        } else if r.path.starts_with("/api/auth.test") {
            Reply::json(200, &json!({"ok": true, "team_id": "T1", "user_id": "U1"}))
        } else {
            troupe_testkit::mitm::Reply::json(404, &json!({"ok": false, "error": "unknown_method"}))
        }
    })
    .await;
    let t = behind(
        &fake,
        &[("AP_APP_WEBHOOK_SECRETS", r#"{"@activepieces/piece-slack": {"webhookSecret": "slack-signing-secret"}}"#)],
    )
    .await;
    let (status, body) = t
        .post(
            "/app-connections",
            json!({"externalId": "slack", "displayName": "Slack", "pieceName": "@activepieces/piece-slack", "projectId": null,
                "type": "OAUTH2", "value": {"type": "OAUTH2", "access_token": "xoxb-test-token", "data": {"bot_user_id": "U1", "team_id": "T1"}}}),
        )
        .await;
    assert!(status == 201 || status == 200, "{body}");
    let flow = webhook_flow(chain(vec![
        json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "Send message to a channel",
            "settings": {"pieceName": "@activepieces/piece-slack", "pieceVersion": "0.17.9", "actionName": "send_channel_message",
                "input": {"auth": "{{connections['slack']}}", "channel": "C0123", "text": "Hello {{trigger.body.name}}", "sendAsBot": true}}}),
        respond(json!({"sent": "{{step_1}}"})),
    ]));
    // publishing installs the piece from the registry, as Activepieces does
    let id = t.publish(flow).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["trigger"]["nextAction"]["settings"]["pieceVersion"], "0.17.9");
    let resp = t.webhook(&id, "/sync", json!({"name": "Ada"})).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent"]["ok"], true, "{body}");
    assert_eq!(body["sent"]["ts"], "1700000000.000100", "{body}");
    let sent =
        fake.requests().into_iter().find(|r| r.path.starts_with("/api/chat.postMessage")).expect("slack was called");
    assert_eq!(sent.header("authorization"), Some("Bearer xoxb-test-token"));
    let text = String::from_utf8_lossy(&sent.body);
    // @slack/web-api posts a form
    assert!(text.contains("channel=C0123") && text.contains("text=Hello%20Ada"), "{text}");
    // the token is nowhere in the run
    let runs = t.wait_runs(&id, 1).await;
    let run = t.run(runs[0]["id"].as_str().unwrap()).await;
    assert!(!run.to_string().contains("xoxb-test-token"), "{run}");

    // a dropdown is filled from the fake's data, with the connection the client names
    let (status, options) =
        dropdown(&t, "@activepieces/piece-slack", "0.17.9", "send_channel_message", "channel", "slack").await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["disabled"], false, "{options}");
    assert_eq!(
        options["options"],
        json!([{"label": "general", "value": "C0123"}, {"label": "random", "value": "C0456"}])
    );
    // the piece's auth.validate runs on upsert: a token the fake refuses is a 400 with the piece's reason
    let custom = |token: &str| {
        json!({"externalId": "bot", "displayName": "Bot", "pieceName": "@activepieces/piece-slack", "pieceVersion": "0.17.9",
            "projectIds": [], "scope": "PROJECT", "metadata": {}, "type": "CUSTOM_AUTH", "value": {"type": "CUSTOM_AUTH", "props": {"botToken": token}}})
    };
    let (status, body) = t.post("/app-connections", custom("xoxb-bad")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("invalid_auth"), "{body}");
    let (status, body) = t.post("/app-connections", custom("xoxb-good")).await;
    assert_eq!(status, 201, "{body}");

    // Slack's own trigger, an app webhook: events of the whole app come to one URL, signed
    let listening = json!({
        "displayName": "listen",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "New message",
            "settings": {"pieceName": "@activepieces/piece-slack", "pieceVersion": "0.17.9", "triggerName": "new-message-in-channel",
                "input": {"auth": "{{connections['slack']}}", "channel": "C0123", "ignoreBots": true}},
            "nextAction": piece("said", "data-mapper", "advanced_mapping", json!({"mapping": {"text": "{{trigger.text}}"}}))}
    });
    let listener = t.publish(listening).await;
    let (status, body) =
        slack_event(&t, "slack-signing-secret", json!({"type": "url_verification", "challenge": "3eZbrw1aB"})).await;
    assert_eq!((status, body.as_str()), (200, "3eZbrw1aB"), "Slack's url_verification is answered with its challenge");
    let (status, body) = slack_event(&t, "not-the-secret", json!({"type": "url_verification", "challenge": "x"})).await;
    assert_eq!(status, 401, "a request not signed with the app's secret is refused: {body}");
    let message = |team: &str, channel: &str, text: &str| {
        json!({"type": "event_callback", "team_id": team, "event_id": format!("Ev-{text}"),
            "event": {"type": "message", "channel": channel, "channel_type": "channel", "text": text, "user": "U2"}})
    };
    for (team, channel, text) in [("T1", "C0123", "hello"), ("T1", "C0456", "elsewhere"), ("T2", "C0123", "other team")]
    {
        let (status, body) = slack_event(&t, "slack-signing-secret", message(team, channel, text)).await;
        assert_eq!(status, 200, "{body}");
    }
    // Slack retries an event it thinks was lost: the same event makes no second run
    slack_event(&t, "slack-signing-secret", message("T1", "C0123", "hello")).await;
    let runs = t.wait_runs(&listener, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let runs_after = t.all_runs(&listener).await;
    assert_eq!(runs_after.len(), 1, "only the message of the channel and team listened to runs: {runs:?}");
    let run = t.run(runs_after[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["steps"]["said"]["output"], json!({"text": "hello"}), "{run}");
    // disabled, the flow listens no more
    let (status, body) = t
        .post(&format!("/flows/{listener}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    slack_event(&t, "slack-signing-secret", message("T1", "C0123", "after")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(t.all_runs(&listener).await.len(), 1);
}

/// Posts `body` to Troupe's Slack app webhook URL, signed as Slack signs with `secret`.
async fn slack_event(t: &Troupe, secret: &str, body: Value) -> (u16, String) {
    use hmac::Mac;
    let raw = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{raw}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let resp = t
        .client
        .post(t.url("/api/v1/app-events/slack"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature)
        .body(raw)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_command_line_installs_through_the_running_troupe() {
    let t = start().await;
    let run = |spec: &str| {
        std::process::Command::new(BUILD.exe)
            .args(["pieces", "add", spec])
            .env("AP_PORT", t.port.to_string())
            .env("AP_API_KEY", KEY)
            .env("AP_CONFIG_PATH", t.dir.path())
            .output()
            .unwrap()
    };
    let out = run("@activepieces/piece-slack@0.17.9");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "installed @activepieces/piece-slack@0.17.9 (1 package)");
    let (_, list) = t.get("/pieces").await;
    assert_eq!(list[0]["name"], "@activepieces/piece-slack");
    let out = run("sharp@0.33.5");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run in the sandbox"));
}

/// The core pieces a troupe runs from npm instead of natively.
const NPM_DELAY_AND_MAPPER: &str = "webhook,http,store,text-helper,math-helper,date-helper,approval,schedule,rss";

#[tokio::test]
async fn the_npm_and_native_data_mapper_give_the_same_output() {
    let mapper = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "Map",
        "settings": {"pieceName": "@activepieces/piece-data-mapper", "pieceVersion": "0.3.15", "actionName": "advanced_mapping",
            "input": {"mapping": {"who": "{{trigger.body.name}}", "n": "{{trigger.body.n}}", "nested": {"list": "{{trigger.body.list}}", "text": "n is {{trigger.body.n}}"}}}}});
    let body = json!({"name": "Ada", "n": 3, "list": [1, {"a": null}]});
    let mut outputs = Vec::new();
    for native in ["all", NPM_DELAY_AND_MAPPER] {
        let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", native)]).await;
        let id = t.publish(webhook_flow(mapper.clone())).await;
        t.webhook(&id, "", body.clone()).await;
        let run = t.wait_runs(&id, 1).await.remove(0);
        let run = t.run(run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "AP_NATIVE_PIECES={native}: {run}");
        let (_, pieces) = t.get("/pieces").await;
        let installed = pieces.as_array().unwrap().iter().any(|p| p["name"] == "@activepieces/piece-data-mapper");
        assert_eq!(installed, native != "all", "only the npm run installs the package: {pieces}");
        outputs.push(run["steps"]["step_1"]["output"].clone());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[1]["nested"]["text"], "n is 3", "{}", outputs[1]);
}

#[tokio::test]
async fn the_npm_delay_pauses_durably_and_resumes_after_a_restart() {
    let mut t =
        Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", NPM_DELAY_AND_MAPPER)]).await;
    let delay = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "Delay",
        "settings": {"pieceName": "@activepieces/piece-delay", "pieceVersion": "~0.3.0", "actionName": "delayFor",
            "input": {"unit": "seconds", "delayFor": 12}}});
    let id = t.publish(webhook_flow(delay)).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    let locked = flow["version"]["trigger"]["nextAction"]["settings"]["pieceVersion"].as_str().unwrap().to_string();
    assert!(locked.starts_with("0.3.") && !locked.starts_with('~'), "publishing locks the exact version: {locked}");
    let started = std::time::Instant::now();
    t.webhook(&id, "", json!({})).await;
    let run_id = crate::pauses::only_run(&t, &id).await;
    t.wait_status(&run_id, "PAUSED", std::time::Duration::from_secs(30)).await;
    t.terminate();
    t.spawn().await;
    t.wait_status(&run_id, "SUCCEEDED", std::time::Duration::from_secs(60)).await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(12), "resumed early: {:?}", started.elapsed());
    let run = t.run(&run_id).await;
    assert_eq!(run["steps"]["step_1"]["output"], json!({"delayForInMs": 12000, "success": true}), "{run}");
}

#[tokio::test]
async fn the_npm_webhook_piece_answers_the_sync_webhook_with_run_stop() {
    let natives = "http,store,data-mapper,text-helper,math-helper,date-helper,delay,approval,schedule,rss";
    let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", natives)]).await;
    let id = t.publish(webhook_flow(respond(json!({"hello": "{{trigger.body.name}}"})))).await;
    let resp = t.webhook(&id, "/sync", json!({"name": "Ada"})).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, body), (200, json!({"hello": "Ada"})));
    let (_, pieces) = t.get("/pieces").await;
    assert_eq!(pieces[0]["name"], "@activepieces/piece-webhook", "the action ran from npm: {pieces}");
}

/// A JSON list on loopback whose items the test changes.
async fn json_feed(
    items: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (items, seen) = (items.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
                seen.lock().unwrap().push(line);
                let list: Vec<Value> =
                    items.lock().unwrap().iter().map(|id| json!({"id": id, "title": format!("Item {id}")})).collect();
                let body = Value::Array(list).to_string();
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/items")
}

#[tokio::test]
async fn an_npm_polling_trigger_makes_one_run_per_new_item_and_none_again_after_a_restart() {
    use std::time::Duration;
    let items = std::sync::Arc::new(std::sync::Mutex::new(vec![1u64, 2]));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = json_feed(items.clone(), seen.clone()).await;
    let mut t =
        Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_TRIGGER_DEFAULT_POLL_INTERVAL", "0.005")]).await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    let flow = probe_trigger_flow(
        "new_item",
        json!({"url": url}),
        piece("seen", "data-mapper", "advanced_mapping", json!({"mapping": {"title": "{{trigger.title}}"}})),
    );
    let id = t.import(flow).await;
    // testing the trigger (its test hook) keeps its items as trigger events, the first as the
    // trigger's sample data, and makes no run
    let (status, tested) = t.post("/test-trigger", json!({"flowId": id, "testStrategy": "TEST_FUNCTION"})).await;
    assert_eq!(status, 200, "{tested}");
    let titles: Vec<&Value> = tested["data"].as_array().unwrap().iter().map(|e| &e["payload"]["title"]).collect();
    assert_eq!(titles, [&json!("Item 2"), &json!("Item 1")], "{tested}");
    let (_, sample) = t.get(&format!("/sample-data?flowId={id}&stepName=trigger")).await;
    assert_eq!(sample["title"], "Item 2", "{sample}");
    let (status, body) = t.post(&format!("/flows/{id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(t.all_runs(&id).await.is_empty(), "items present before enabling are not new");
    items.lock().unwrap().extend([3, 4]);
    let runs = t.wait_runs(&id, 2).await;
    let mut titles: Vec<&str> = runs.iter().map(|r| r["triggerOutput"]["title"].as_str().unwrap()).collect();
    titles.sort();
    assert_eq!(titles, ["Item 3", "Item 4"]);
    // across a restart, what was seen stays seen; what is new runs once
    t.terminate();
    t.spawn().await;
    items.lock().unwrap().push(5);
    t.wait_runs(&id, 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let runs = t.all_runs(&id).await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().any(|r| r["triggerOutput"]["title"] == "Item 5"));
    // disabling the flow calls the trigger's onDisable
    let (status, body) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    assert_eq!(status, 200, "{body}");
    let wanted = format!("GET /items?disabled={id} ");
    assert!(seen.lock().unwrap().iter().any(|l| l.starts_with(&wanted)), "{:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn an_npm_webhook_trigger_registers_its_url_and_turns_one_webhook_into_its_items() {
    use std::time::Duration;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let remote = json_feed(std::sync::Arc::default(), seen.clone()).await;
    let t = start().await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    let flow = probe_trigger_flow(
        "events",
        json!({"remote": remote}),
        piece("seen", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.n}}"}})),
    );
    let id = t.publish(flow).await;
    // onEnable gave the service the flow's webhook URL
    let registered = format!("register=http%3A%2F%2F127.0.0.1%3A{}%2Fapi%2Fv1%2Fwebhooks%2F{id}", t.port);
    assert!(seen.lock().unwrap().iter().any(|l| l.contains(&registered)), "{:?}", seen.lock().unwrap());
    // the renewal its renewConfiguration asks for (every second here) calls onRenew
    let renewed = || seen.lock().unwrap().iter().any(|l| l.contains("renew=h-1"));
    for _ in 0..100 {
        if renewed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed(), "{:?}", seen.lock().unwrap());
    // a handshake (Slack's url_verification) is answered by the trigger at once, without a run
    let r = t.webhook(&id, "", json!({"type": "url_verification", "challenge": "3eZbrw1aB"})).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"challenge": "3eZbrw1aB"}));
    // one webhook with three events makes three runs; one with none makes none
    let r = t.webhook(&id, "", json!({"events": [{"n": 1}, {"n": 2}, {"n": 3}]})).await;
    assert_eq!(r.status().as_u16(), 200);
    t.webhook(&id, "", json!({"events": []})).await;
    let runs = t.wait_runs(&id, 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let runs_after = t.all_runs(&id).await;
    assert_eq!(runs_after.len(), 3, "{runs:?}");
    let mut ns: Vec<u64> = runs_after.iter().map(|r| r["triggerOutput"]["n"].as_u64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, [1, 2, 3]);
    // disabling calls onDisable with what onEnable kept
    let (status, body) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(seen.lock().unwrap().iter().any(|l| l.contains("unregister=h-1")), "{:?}", seen.lock().unwrap());
    // and ends its renewals
    let renewals = || seen.lock().unwrap().iter().filter(|l| l.contains("renew=h-1")).count();
    let before = renewals();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(renewals(), before, "no renewal after the flow was disabled");
}

/// A local OAuth2 token endpoint: a code gives a token that expires at once, a refresh a new
/// one; every form it was sent is kept.
async fn token_server(
    forms: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    revoked: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> String {
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (forms, refuse, revoked, issued) = (forms.clone(), refuse.clone(), revoked.clone(), issued.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let mut n = 0;
                // headers, then the body by content-length
                loop {
                    let Ok(k) = sock.read(&mut buf[n..]).await else { return };
                    if k == 0 {
                        break;
                    }
                    n += k;
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if let Some(at) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if n >= at + 4 + len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                use std::sync::atomic::Ordering::SeqCst;
                let (status, body) = if text.starts_with("GET /resource") {
                    // the newest token is good until it is revoked
                    let newest = format!("authorization: bearer at-{:02}", issued.load(SeqCst));
                    let good = !revoked.load(SeqCst) && text.to_ascii_lowercase().contains(&newest);
                    if good {
                        ("200 OK", json!({"tokenEnds": format!("{:02}", issued.load(SeqCst))}))
                    } else {
                        ("401 Unauthorized", json!({"error": "invalid_token"}))
                    }
                } else {
                    let form = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
                    forms.lock().unwrap().push(form.clone());
                    let body = if form.contains("grant_type=authorization_code") && form.contains("code=good-code") {
                        issued.store(1, SeqCst);
                        json!({"access_token": "at-01", "refresh_token": "rt-1", "expires_in": 1, "token_type": "bearer"})
                    } else if form.contains("grant_type=refresh_token")
                        && form.contains("refresh_token=rt-1")
                        && !refuse.load(SeqCst)
                    {
                        let n = issued.fetch_add(1, SeqCst) + 1;
                        revoked.store(false, SeqCst);
                        json!({"access_token": format!("at-{n:02}"), "expires_in": 3600, "token_type": "bearer"})
                    } else {
                        json!({"error": "invalid_grant"})
                    };
                    (if body.get("error").is_some() { "400 Bad Request" } else { "200 OK" }, body)
                };
                let body = body.to_string();
                let resp = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/token")
}

#[tokio::test]
async fn an_oauth2_connection_is_made_from_a_code_and_refreshed_when_it_expires() {
    let forms = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let token_url = token_server(forms.clone(), refuse.clone(), revoked.clone()).await;
    let resource = token_url.replace("/token", "/resource");
    let t = start().await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    // where to send the user: the piece's authUrl with client, redirect, scope and PKCE
    let (status, auth) = t
        .post(
            "/app-connections/oauth2/authorization-url",
            json!({"pieceName": "@me/piece-probe", "clientId": "client-1", "redirectUrl": "https://troupe.example/redirect"}),
        )
        .await;
    assert_eq!(status, 200, "{auth}");
    let url = auth["authorizationUrl"].as_str().unwrap();
    assert!(
        url.contains("client_id=client-1")
            && url.contains("scope=read+write")
            && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let verifier = auth["codeVerifier"].as_str().unwrap().to_string();
    // the code is exchanged on upsert; a bad one is a 400 with the server's answer
    let upsert = |code: &str| {
        json!({"externalId": "oauth", "displayName": "OAuth", "pieceName": "@me/piece-probe", "type": "OAUTH2",
            "value": {"type": "OAUTH2", "code": code, "client_id": "client-1", "client_secret": "shh", "redirect_url": "https://troupe.example/redirect",
                "code_verifier": verifier, "token_url": token_url}})
    };
    let (status, body) = t.post("/app-connections", upsert("bad-code")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("invalid_grant"), "{body}");
    let (status, body) = t.post("/app-connections", upsert("good-code")).await;
    assert_eq!(status, 201, "{body}");
    assert!(forms.lock().unwrap().iter().any(|f| f.contains("code_verifier=")), "PKCE verifier sent");
    // the token expired at once: the step refreshes it first and sees the new one
    let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "whoami",
        "settings": {"pieceName": "@me/piece-probe", "pieceVersion": "0.1.0", "actionName": "whoami", "input": {"auth": "{{connections['oauth']}}"}}});
    let id = t.publish(webhook_flow(step)).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["steps"]["step_1"]["output"], json!({"type": "OAUTH2", "tokenEnds": "02"}), "{run}");
    assert!(forms.lock().unwrap().iter().any(|f| f.contains("grant_type=refresh_token")));
    assert!(!run.to_string().contains("at-02") && !run.to_string().contains("rt-1"), "{run}");
    // a token the service stops taking (401) is refreshed once and the step tried again
    let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "remote",
        "settings": {"pieceName": "@me/piece-probe", "pieceVersion": "0.1.0", "actionName": "remote", "input": {"auth": "{{connections['oauth']}}", "url": resource}}});
    let remote = t.publish(webhook_flow(step)).await;
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    t.webhook(&remote, "", json!({})).await;
    let run = t.wait_runs(&remote, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["steps"]["step_1"]["output"], json!({"tokenEnds": "03"}), "{run}");
    assert!(!run.to_string().contains("at-03"), "{run}");
    // a refresh the server refuses fails the step and marks the connection ERROR
    refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = t.post("/app-connections", upsert("good-code")).await;
    assert_eq!(status, 201, "{body}");
    t.webhook(&id, "", json!({})).await;
    let runs = t.wait_runs(&id, 2).await;
    let failed = runs.iter().find(|r| r["status"] == "FAILED").expect("the second run failed");
    let failed = t.run(failed["id"].as_str().unwrap()).await;
    let message = failed["failedStep"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not be refreshed") && message.contains("invalid_grant"), "{failed}");
    let (_, conn) = t.get(&format!("/app-connections/{}", body["id"].as_str().unwrap())).await;
    assert_eq!(conn["status"], "ERROR", "{conn}");
}

#[tokio::test]
async fn the_npm_store_piece_keeps_its_values_in_troupes_store_through_context_store() {
    let natives = "webhook,http,data-mapper,text-helper,math-helper,date-helper,delay,approval,schedule,rss";
    let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", natives)]).await;
    let store = |name: &str, action: &str, input: Value| {
        json!({"name": name, "type": "PIECE", "valid": true, "displayName": name,
            "settings": {"pieceName": "@activepieces/piece-store", "pieceVersion": "0.6.20", "actionName": action, "input": input}})
    };
    let flow = webhook_flow(chain(vec![
        store("put", "put", json!({"key": "greeting", "value": "{{trigger.body.v}}", "store_scope": "COLLECTION"})),
        store("get", "get", json!({"key": "greeting", "store_scope": "COLLECTION"})),
        respond(json!({"got": "{{get}}"})),
    ]));
    let id = t.publish(flow).await;
    let resp = t.webhook(&id, "/sync", json!({"v": "hello"})).await;
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"got": "hello"}));
    // a second flow reads what the first one kept (the project scope)
    let id2 = t
        .publish(webhook_flow(chain(vec![
            store("get", "get", json!({"key": "greeting", "store_scope": "COLLECTION"})),
            respond(json!({"got": "{{get}}"})),
        ])))
        .await;
    let resp = t.webhook(&id2, "/sync", json!({})).await;
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"got": "hello"}));
}

#[tokio::test]
async fn registry_pieces_register_their_webhooks_fill_dropdowns_and_use_oauth2_tokens_against_fakes() {
    use troupe_testkit::mitm::{Mitm, Reply};
    // Drip's API and Webflow's, faked behind the HTTPS-intercepting proxy
    let fake = Mitm::start(|r| {
        let path = r.path.split('?').next().unwrap_or_default();
        let drip_key = format!("Basic {}", {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("drip-key-123")
        });
        match (r.method.as_str(), r.host.as_str(), path) {
            (_, "api.getdrip.com", _) if r.header("authorization") != Some(drip_key.as_str()) => {
                Reply::json(401, &json!({"errors": [{"code": "authorization_error"}]}))
            }
            ("GET", "api.getdrip.com", "/v2/accounts") => {
                Reply::json(200, &json!({"accounts": [{"id": "9001", "name": "Shop"}, {"id": "9002", "name": "Blog"}]}))
            }
            ("POST", "api.getdrip.com", "/v2/9001/webhooks") => Reply::json(
                201,
                &json!({"webhooks": [{"id": "wh-7", "post_url": r.json()["webhooks"][0]["post_url"], "events": ["subscriber.created"]}]}),
            ),
            ("DELETE", "api.getdrip.com", "/v2/9001/webhooks/wh-7") => Reply::json(204, &json!({})),
            ("POST", "api.webflow.com", "/oauth/access_token") => {
                let form = String::from_utf8_lossy(&r.body).to_string();
                if form.contains("code=wf-code") && form.contains("grant_type=authorization_code") {
                    Reply::json(200, &json!({"access_token": "wf-token-1", "token_type": "bearer"}))
                } else {
                    Reply::json(400, &json!({"error": "invalid_grant"}))
                }
            }
            ("GET", "api.webflow.com", "/sites") if r.header("authorization") == Some("Bearer wf-token-1") => {
                Reply::json(200, &json!([{"_id": "site-1", "name": "Shop site"}]))
            }
            _ => Reply::json(404, &json!({"error": format!("no {} {}{}", r.method, r.host, r.path)})),
        }
    })
    .await;
    let t = behind(&fake, &[]).await;
    for (name, version) in [("@activepieces/piece-drip", "0.4.7"), ("@activepieces/piece-webflow", "0.3.0")] {
        let (status, body) = t
            .post(
                "/pieces",
                json!({"pieceName": name, "pieceVersion": version, "packageType": "REGISTRY", "scope": "PLATFORM"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = t
        .post(
            "/app-connections",
            json!({"externalId": "drip", "displayName": "Drip", "pieceName": "@activepieces/piece-drip", "projectId": null,
                "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": "drip-key-123"}}),
        )
        .await;
    assert!(status == 201 || status == 200, "{body}");

    // the trigger's account dropdown, filled from Drip
    let (status, options) =
        dropdown(&t, "@activepieces/piece-drip", "0.4.7", "new_subscriber", "account_id", "drip").await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(
        options["options"],
        json!([{"label": "Shop", "value": "9001"}, {"label": "Blog", "value": "9002"}]),
        "{options}"
    );

    // enabling registers the flow's webhook URL with Drip; a delivery makes a run
    let flow = json!({
        "displayName": "new subscribers",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "New subscriber",
            "settings": {"pieceName": "@activepieces/piece-drip", "pieceVersion": "0.4.7", "triggerName": "new_subscriber",
                "input": {"auth": "{{connections['drip']}}", "account_id": "9001"}},
            "nextAction": piece("who", "data-mapper", "advanced_mapping", json!({"mapping": {"email": "{{trigger.data.email}}"}}))}
    });
    let id = t.publish(flow).await;
    let registered = fake.requests().into_iter().find(|r| r.method == "POST" && r.path == "/v2/9001/webhooks");
    let registered = registered.expect("onEnable registered the webhook").json();
    assert_eq!(
        registered["webhooks"][0]["post_url"],
        format!("http://127.0.0.1:{}/api/v1/webhooks/{id}", t.port),
        "{registered}"
    );
    t.webhook(&id, "", json!({"event": "subscriber.created", "data": {"email": "ada@example.com"}})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["steps"]["who"]["output"], json!({"email": "ada@example.com"}), "{run}");
    // disabling removes it, with what onEnable kept
    let (status, body) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        fake.requests().iter().any(|r| r.method == "DELETE" && r.path == "/v2/9001/webhooks/wh-7"),
        "onDisable deleted the webhook"
    );

    // an OAuth2 connection made from a code at Webflow's token URL (the piece's tokenUrl); its
    // token reaches Webflow and appears in no run
    let upsert = |code: &str| {
        json!({"externalId": "webflow", "displayName": "Webflow", "pieceName": "@activepieces/piece-webflow", "type": "OAUTH2",
            "value": {"type": "OAUTH2", "code": code, "client_id": "wf-client", "client_secret": "wf-secret",
                "redirect_url": "https://troupe.example/redirect"}})
    };
    let (status, body) = t.post("/app-connections", upsert("not-the-code")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = t.post("/app-connections", upsert("wf-code")).await;
    assert_eq!(status, 201, "{body}");
    let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "List sites",
        "settings": {"pieceName": "@activepieces/piece-webflow", "pieceVersion": "0.3.0", "actionName": "list_sites", "input": {"auth": "{{connections['webflow']}}"}}});
    let sites = t.publish(webhook_flow(step)).await;
    t.webhook(&sites, "", json!({})).await;
    let run = t.wait_runs(&sites, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["steps"]["step_1"]["output"], json!([{"_id": "site-1", "name": "Shop site"}]), "{run}");
    assert!(!run.to_string().contains("wf-token-1"), "{run}");
}

#[tokio::test]
async fn an_npm_polling_trigger_polls_on_the_schedule_it_asks_for() {
    let items = std::sync::Arc::new(std::sync::Mutex::new(vec![1u64]));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = json_feed(items.clone(), seen.clone()).await;
    // the default interval is an hour: only the trigger's own schedule (every second) polls
    let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_TRIGGER_DEFAULT_POLL_INTERVAL", "60")]).await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    let flow = probe_trigger_flow(
        "new_item",
        json!({"url": url, "cron": "* * * * * *"}),
        piece("seen", "data-mapper", "advanced_mapping", json!({"mapping": {"title": "{{trigger.title}}"}})),
    );
    let id = t.publish(flow).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    items.lock().unwrap().push(2);
    let runs = t.wait_runs(&id, 1).await;
    assert_eq!(runs[0]["triggerOutput"]["title"], "Item 2", "{runs:?}");
}

#[tokio::test]
async fn a_registry_polling_trigger_makes_one_run_per_new_record_and_none_again_after_a_restart() {
    use std::sync::{Arc, Mutex};
    use troupe_testkit::mitm::{Mitm, Reply};
    // Airtable's records API, faked: the table's records are what the test puts in it
    let records: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = |n: u32| json!({"id": format!("rec{n}"), "createdTime": format!("2026-01-0{n}T00:00:00.000Z"), "fields": {"Name": format!("Row {n}")}});
    records.lock().unwrap().extend([record(1), record(2)]);
    let table = records.clone();
    let fake = Mitm::start(move |r| {
        if r.host == "api.airtable.com" && r.path.starts_with("/v0/appBase1/tblTable1") {
            if r.header("authorization") != Some("Bearer pat-123") {
                return Reply::json(401, &json!({"error": {"type": "AUTHENTICATION_REQUIRED"}}));
            }
            Reply::json(200, &json!({"records": *table.lock().unwrap()}))
        } else {
            Reply::json(404, &json!({"error": "NOT_FOUND"}))
        }
    })
    .await;
    let mut t = behind(&fake, &[("AP_TRIGGER_DEFAULT_POLL_INTERVAL", "0.005")]).await;
    let flow = json!({
        "displayName": "new rows",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "New record",
            "settings": {"pieceName": "@activepieces/piece-airtable", "pieceVersion": "0.2.0", "triggerName": "new_record",
                "input": {"authentication": "pat-123", "base": "appBase1", "tableId": "tblTable1"}},
            "nextAction": piece("row", "data-mapper", "advanced_mapping", json!({"mapping": {"name": "{{trigger.fields.Name}}"}}))}
    });
    let id = t.publish(flow).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(t.all_runs(&id).await.is_empty(), "records there before enabling are not new");
    records.lock().unwrap().push(record(3));
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["steps"]["row"]["output"], json!({"name": "Row 3"}), "{run}");
    // across a restart, what was seen stays seen
    t.terminate();
    t.spawn().await;
    records.lock().unwrap().push(record(4));
    t.wait_runs(&id, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let runs = t.all_runs(&id).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[tokio::test]
async fn tags_an_npm_piece_adds_are_the_runs_and_filter_the_run_list() {
    let t = start().await;
    let (status, body) = upload(&t, &sandbox_piece(), "PLATFORM").await;
    assert_eq!(status, 201, "{body}");
    let step = json!({"name": "step_1", "type": "PIECE", "valid": true, "displayName": "tag",
        "settings": {"pieceName": "@me/piece-probe", "pieceVersion": "0.1.0", "actionName": "tag", "input": {}}});
    let id = t.publish(webhook_flow(step)).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    assert_eq!(t.run(run["id"].as_str().unwrap()).await["tags"], json!(["vip"]));
    let (_, tagged) = t.get("/flow-runs?tags=vip").await;
    assert_eq!(tagged["data"].as_array().unwrap().len(), 1);
    let (_, other) = t.get("/flow-runs?tags=other").await;
    assert!(other["data"].as_array().unwrap().is_empty());
}

/// Asserts that what the native piece gave (`native`) is what the package gave (`npm`),
/// case by case; the message lists every case that differs (`name` names it).
fn assert_agree<T: PartialEq + std::fmt::Debug>(native: &[T], npm: &[T], name: impl Fn(usize) -> String) {
    let differ: Vec<String> = native
        .iter()
        .zip(npm)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("{}: native {a:?} npm {b:?}", name(i)))
        .collect();
    assert!(differ.is_empty(), "{} of {} cases differ:\n{}", differ.len(), native.len(), differ.join("\n"));
}

/// Generated JSON values (a fixed seed: the same cases every run): nested objects and lists,
/// numbers (whole, fractional, negative, large), strings (empty, unicode, JSON-looking),
/// booleans and nulls.
fn generated(seed: &mut u64, depth: u32) -> Value {
    fn next(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }
    let pick = next(seed) % if depth == 0 { 6 } else { 8 };
    match pick {
        0 => Value::Null,
        1 => json!(next(seed).is_multiple_of(2)),
        2 => json!(next(seed) as i64 - (1 << 30)),
        3 => json!((next(seed) as f64) / 1024.0 - 1000.0),
        4 => json!(["", "ü ñ 漢字", "{\"a\":1}", "  padded  ", "0", "true"][(next(seed) % 6) as usize]),
        5 => json!(9_007_199_254_740_000u64 + (next(seed) % 100) as u64),
        6 => {
            let n = next(seed) % 4;
            Value::Array((0..n).map(|_| generated(seed, depth - 1)).collect())
        }
        _ => {
            let n = next(seed) % 4;
            let mut m = serde_json::Map::new();
            for i in 0..n {
                let key = format!("k{i}_{}", next(seed) % 10);
                m.insert(key, generated(seed, depth - 1));
            }
            Value::Object(m)
        }
    }
}

#[tokio::test]
async fn the_npm_and_native_data_mapper_agree_on_generated_mappings() {
    // one run loops over 150 generated mappings; the data mapper maps each
    let mut seed = 20261202u64;
    let cases: Vec<Value> = (0..150).map(|_| json!({"mapping": generated(&mut seed, 3), "n": 1})).collect();
    let step = json!({"name": "map", "type": "PIECE", "valid": true, "displayName": "Map",
        "settings": {"pieceName": "@activepieces/piece-data-mapper", "pieceVersion": "0.3.15", "actionName": "advanced_mapping",
            "input": {"mapping": "{{each.item.mapping}}"},
            "errorHandlingOptions": {"continueOnFailure": {"value": true}, "retryOnFailure": {"value": false}}}});
    let each = json!({"name": "each", "type": "LOOP_ON_ITEMS", "valid": true, "displayName": "Each",
        "settings": {"items": "{{trigger.body.cases}}"}, "firstLoopAction": step});
    let mut outputs = Vec::new();
    for native in ["all", NPM_DELAY_AND_MAPPER] {
        let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", native)]).await;
        let id = t.publish(webhook_flow(each.clone())).await;
        t.webhook(&id, "", json!({"cases": cases})).await;
        let run = t.wait_runs(&id, 1).await.remove(0);
        let run = t.run(run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "AP_NATIVE_PIECES={native}: {}", run["failedStep"]);
        let iterations = run["steps"]["each"]["output"]["iterations"].as_array().cloned().unwrap_or_default();
        assert_eq!(iterations.len(), cases.len(), "AP_NATIVE_PIECES={native}");
        // each case's status and output (a mapping the package refuses fails its step)
        outputs.push(
            iterations
                .into_iter()
                .map(|i| (i["map"]["status"].clone(), i["map"]["output"].clone()))
                .collect::<Vec<_>>(),
        );
    }
    assert_agree(&outputs[0], &outputs[1], |i| format!("case {i}: mapping {}", cases[i]["mapping"]));
    assert!(
        outputs[1].iter().any(|(s, _)| s == "SUCCEEDED") && outputs[1].iter().any(|(s, _)| s == "FAILED"),
        "both kinds of case"
    );
}

#[tokio::test]
async fn the_npm_and_native_webhook_responses_agree_on_generated_responses() {
    // each case a flow answering the sync webhook with a generated response
    let mut seed = 4242u64;
    let statuses = [200, 201, 202, 400, 404, 500];
    let cases: Vec<Value> = (0..24)
        .map(|i| {
            let kind = ["json", "raw"][i % 2];
            let body = match kind {
                "json" => generated(&mut seed, 2),
                _ => json!(format!("plain text {i} ü")),
            };
            json!({"responseType": kind, "respond": "stop",
                "fields": {"status": statuses[i % statuses.len()], "headers": {"x-case": format!("c{i}")}, "body": body}})
        })
        .collect();
    let mut answers = Vec::new();
    for native in ["all", "http,store,data-mapper,text-helper,math-helper,date-helper,delay,approval,schedule,rss"] {
        let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", native)]).await;
        let mut got = Vec::new();
        for case in &cases {
            let step = json!({"name": "respond", "type": "PIECE", "valid": true, "displayName": "Respond",
                "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "0.1.29", "actionName": "return_response", "input": case}});
            let id = t.publish(webhook_flow(step)).await;
            let r = t.webhook(&id, "/sync", json!({})).await;
            let status = r.status().as_u16();
            let header = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (case_header, content_type) = (header("x-case"), header("content-type"));
            let text = r.text().await.unwrap();
            let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            got.push(json!({"status": status, "xCase": case_header, "json": content_type.is_some_and(|c| c.contains("json")), "body": body}));
        }
        let (_, pieces) = t.get("/pieces").await;
        let from_npm = pieces.as_array().unwrap().iter().any(|p| p["name"] == "@activepieces/piece-webhook");
        assert_eq!(from_npm, native != "all", "only the second troupe runs the package: {pieces}");
        answers.push(got);
    }
    assert_agree(&answers[0], &answers[1], |i| format!("case {i} {}", cases[i]));
}

#[tokio::test]
async fn the_npm_and_native_store_pieces_agree_on_generated_operations() {
    // 40 generated operations on two keys, one step each, in one run per troupe
    let mut seed = 777u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    // (an empty value is refused at publish by both, as a required prop)
    let words = ["x", "y", "x y", "z", "1", "ü"];
    let steps: Vec<Value> = (0..40)
        .map(|i| {
            let key = ["a", "b"][next() % 2];
            let word = words[next() % words.len()];
            let (action, input) = match next() % 6 {
                0 => ("put", json!({"key": key, "value": word})),
                1 => ("get", json!({"key": key, "defaultValue": "none"})),
                2 => {
                    let separator = [",", ""][next() % 2];
                    ("append", json!({"key": key, "value": word, "separator": separator}))
                }
                3 => {
                    let (other, ignore) = (words[next() % words.len()], next() % 2 == 0);
                    ("add_to_list", json!({"key": key, "value": [word, other], "ignore_if_exists": ignore}))
                }
                4 => ("remove_from_list", json!({"key": key, "value": word})),
                _ => ("remove_value", json!({"key": key})),
            };
            let mut input = input;
            input["store_scope"] = json!("COLLECTION");
            json!({"name": format!("op_{i}"), "type": "PIECE", "valid": true, "displayName": action,
                "settings": {"pieceName": "@activepieces/piece-store", "pieceVersion": "0.6.20", "actionName": action, "input": input,
                    "errorHandlingOptions": {"continueOnFailure": {"value": true}, "retryOnFailure": {"value": false}}}})
        })
        .collect();
    let flow = webhook_flow(chain(steps));
    let mut results = Vec::new();
    for native in ["all", "webhook,http,data-mapper,text-helper,math-helper,date-helper,delay,approval,schedule,rss"] {
        let t = Troupe::start_with(&[("NPM_CONFIG_CACHE", &npm_cache()), ("AP_NATIVE_PIECES", native)]).await;
        let id = t.publish(flow.clone()).await;
        t.webhook(&id, "", json!({})).await;
        let run = t.wait_runs(&id, 1).await.remove(0);
        let run = t.run(run["id"].as_str().unwrap()).await;
        let ops: Vec<Value> = (0..40)
            .map(|i| {
                let s = &run["steps"][format!("op_{i}")];
                json!({"status": s["status"], "output": s["output"]})
            })
            .collect();
        let (_, pieces) = t.get("/pieces").await;
        let from_npm = pieces.as_array().unwrap().iter().any(|p| p["name"] == "@activepieces/piece-store");
        assert_eq!(from_npm, native != "all", "only the second troupe runs the package: {pieces}");
        results.push(ops);
    }
    assert_agree(&results[0], &results[1], |i| format!("op_{i}"));
}
