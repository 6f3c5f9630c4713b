//! Fidelity to Activepieces: older exports import (schema migrations), both template dialects
//! resolve, templates behave as Activepieces' engine.

use crate::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn an_export_from_before_routers_imports_with_its_branch_as_a_router_and_runs() {
    let t = Troupe::start().await;
    // an Activepieces export of the BRANCH era: no schemaVersion
    let export = json!({
        "displayName": "old branch",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.3", "triggerName": "catch_webhook",
                "input": {}, "inputUiInfo": {}},
            "nextAction": {"name": "step_1", "type": "BRANCH", "valid": true, "displayName": "Big?",
                "settings": {"conditions": [[{"operator": "NUMBER_IS_GREATER_THAN", "firstValue": "{{trigger.body.n}}", "secondValue": "10"}]], "inputUiInfo": {}},
                "onSuccessAction": respond(json!({"size": "big"})),
                "onFailureAction": piece("small", "webhook", "return_response",
                    json!({"responseType": "json", "respond": "stop", "fields": {"status": 200, "body": {"size": "small"}}}))}}
    });
    let id = t.publish(export).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["trigger"]["nextAction"]["type"], "ROUTER", "{flow}");
    assert_eq!(flow["version"]["schemaVersion"], "21", "{flow}");
    for (n, size) in [(50, "big"), (5, "small")] {
        let r = t.webhook(&id, "/sync", json!({"n": n})).await;
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"size": size}), "n={n}");
    }
}

#[tokio::test]
async fn a_flow_of_todays_activepieces_reads_step_outputs_under_output() {
    let t = Troupe::start().await;
    // schema 22 and later write `step_1['output']`, in paths and in expressions
    let export = json!({
        "displayName": "nested",
        "schemaVersion": "22",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "0.1.29", "triggerName": "catch_webhook", "input": {}},
            "nextAction": chain(vec![
                piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"name": "{{trigger['output'].body.name}}", "n": "{{trigger['output']['body']['n']}}"}})),
                respond(json!({"hello": "{{step_1['output'].name}}", "next": "{{ step_1['output'].n + 1 }}", "flat": "{{step_1.name}}"})),
            ])}
    });
    let id = t.publish(export).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["schemaVersion"], troupe_store::migrate::LATEST);
    let r = t.webhook(&id, "/sync", json!({"name": "Ada", "n": 41})).await;
    // the old dialect's path means nothing here: an empty string, as in Activepieces
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"hello": "Ada", "next": 42, "flat": ""}));
}

#[tokio::test]
async fn a_run_whose_log_passes_the_limit_ends_log_size_exceeded() {
    let t = Troupe::start_with(&[("AP_MAX_FLOW_RUN_LOG_SIZE_MB", "1")]).await;
    let flow = webhook_flow(chain(vec![
        code("big", "export const code = async () => 'x'.repeat(1536 * 1024);", json!({})),
        piece("after", "data-mapper", "advanced_mapping", json!({"mapping": {"ran": true}})),
    ]));
    let id = t.publish(flow).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "LOG_SIZE_EXCEEDED", "{}", run["failedStep"]);
    assert!(
        run["failedStep"]["message"].as_str().unwrap().contains("AP_MAX_FLOW_RUN_LOG_SIZE_MB"),
        "{}",
        run["failedStep"]
    );
    assert!(run["steps"].get("after").is_none(), "no step runs after the limit");
}

#[tokio::test]
async fn an_activepieces_client_edits_flows_and_folders_with_activepieces_operations() {
    let t = Troupe::start().await;
    let op = |kind: &str, request: Value| json!({"type": kind, "request": request});
    // folders: create, rename, list with their flow counts
    let (status, folder) = t.post("/folders", json!({"displayName": "Sales"})).await;
    assert_eq!(status, 201, "{folder}");
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let (status, _) = t.post("/folders", json!({"displayName": "sales"})).await;
    assert_eq!(status, 409, "names are unique per project");
    let flow = webhook_flow(chain(vec![
        piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"a": 1}})),
        piece("step_2", "data-mapper", "advanced_mapping", json!({"mapping": {"b": "{{step_1.a}}"}})),
        respond(json!({"one": "{{step_1}}", "two": "{{step_2}}", "three": "{{step_3}}"})),
    ]));
    let id = t.import(flow).await;
    let path = format!("/flows/{id}");
    for (kind, request) in [
        ("CHANGE_FOLDER", json!({"folderId": folder_id})),
        ("UPDATE_METADATA", json!({"metadata": {"team": "growth"}})),
        ("DUPLICATE_ACTION", json!({"stepName": "step_2"})),
        ("SET_SKIP_ACTION", json!({"names": ["step_1"], "skip": true})),
        (
            "ADD_NOTE",
            json!({"id": "n1", "content": "hi", "color": "blue", "position": {"x": 0, "y": 0}, "size": {"width": 1, "height": 1}}),
        ),
    ] {
        let (status, body) = t.post(&path, op(kind, request)).await;
        assert_eq!(status, 200, "{kind}: {body}");
    }
    let (status, body) = t.post(&path, op("MOVE_ACTION", json!({"name": "step_9", "newParentStep": "trigger"}))).await;
    assert_eq!(status, 400, "an unknown step is named: {body}");
    assert!(body["message"].as_str().unwrap().contains("step_9"), "{body}");
    let (_, flow) = t.get(&path).await;
    assert_eq!((&flow["folderId"], &flow["metadata"]["team"]), (&json!(folder_id), &json!("growth")));
    let second = &flow["version"]["trigger"]["nextAction"]["nextAction"];
    assert_eq!(
        (&second["nextAction"]["name"], &second["nextAction"]["displayName"]),
        (&json!("step_3"), &json!("step_2 Copy"))
    );
    assert_eq!(flow["version"]["notes"][0]["id"], "n1");
    let (_, folders) = t.get("/folders").await;
    assert_eq!(folders["data"][0]["numberOfFlows"], 1, "{folders}");
    // the skipped step does not run; the copy reads step_1 (empty: skipped)
    t.post(&path, json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    let r = t.webhook(&id, "/sync", json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"one": "", "two": {"b": ""}, "three": {"b": ""}}));
    // deleting the folder leaves its flow uncategorized
    let (status, _) = t.api(reqwest::Method::DELETE, &format!("/folders/{folder_id}"), None).await;
    assert_eq!(status, 204);
    let (_, flow) = t.get(&path).await;
    assert!(flow["folderId"].is_null(), "{flow}");
    let (status, _) = t.post(&path, op("CHANGE_FOLDER", json!({"folderId": folder_id}))).await;
    assert_eq!(status, 404, "a folder that does not exist");
}

/// A loopback server for the http piece: `/redirect` (302 to `/target`), `/target`,
/// `/flaky` (503 twice, then 200), `/bad` (400), `/echo` (the request's content type and
/// body), `/bin` (four bytes).
async fn http_fixture() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flaky = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let flaky = flaky.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head, body) = loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..at]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0usize);
                    if buf.len() >= at + 4 + len {
                        break (head, buf[at + 4..at + 4 + len].to_vec());
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
                    "/redirect" => ("302 Found", "location: /target\r\n".into(), b"{}".to_vec()),
                    "/target" => ("200 OK", String::new(), br#"{"ok": true}"#.to_vec()),
                    "/flaky" if flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 => {
                        ("503 Service Unavailable", String::new(), br#"{"busy": true}"#.to_vec())
                    }
                    "/flaky" => ("200 OK", String::new(), br#"{"fine": true}"#.to_vec()),
                    "/bad" => ("400 Bad Request", String::new(), br#"{"error": "bad"}"#.to_vec()),
                    "/echo" => {
                        let echoed = json!({"type": header("content-type"), "accept": header("accept"), "body": String::from_utf8_lossy(&body)});
                        ("200 OK", String::new(), echoed.to_string().into_bytes())
                    }
                    "/bin" => ("200 OK", String::new(), vec![0, 1, 2, 255]),
                    _ => ("404 Not Found", String::new(), Vec::new()),
                };
                let head =
                    format!("HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_http_piece_behaves_as_todays_package() {
    let base = http_fixture().await;
    let t = Troupe::start().await;
    let send = |name: &str, input: Value| piece(name, "http", "send_request", input);
    let get = |path: &str, more: Value| {
        let mut input = json!({"method": "GET", "url": format!("{base}{path}")});
        input.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        input
    };
    let flow = webhook_flow(chain(vec![
        send("manual", get("/redirect", json!({"followRedirects": false}))),
        send("followed", get("/redirect", json!({"followRedirects": true}))),
        send("retried", get("/flaky", json!({"failureMode": "retry_5xx"}))),
        send("carried", get("/bad", json!({"failureMode": "continue_4xx"}))),
        send("binary", get("/bin", json!({"response_is_binary": true}))),
        send(
            "form",
            json!({"method": "POST", "url": format!("{base}/echo"), "body_type": "form_data", "body": {"data": [
            {"fieldName": "name", "fieldType": "text", "textFieldValue": "Ada"},
            {"fieldName": "empty", "fieldType": "text", "textFieldValue": ""},
            {"fieldName": "doc", "fieldType": "file", "fileFieldValue": "data:text/plain;base64,aGVsbG8="}]}}),
        ),
        send(
            "json",
            json!({"method": "POST", "url": format!("{base}/echo"), "body_type": "json", "body": {"data": {"a": 1}}}),
        ),
        piece("parsed", "http", "parse_url", json!({"url": "https://ex.com:8443/a/b?x=1&x=2&y=3#top"})),
        send("strict", get("/bad", json!({}))),
    ]));
    let id = t.publish(flow).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    let out = |step: &str| run["steps"][step]["output"].clone();
    assert_eq!(
        (out("manual")["status"].clone(), out("manual")["headers"]["location"].clone()),
        (json!(302), json!("/target"))
    );
    assert_eq!(out("followed")["body"], json!({"ok": true}));
    assert_eq!(out("retried")["body"], json!({"fine": true}), "two 503s retried");
    assert_eq!(
        out("carried"),
        json!({"response": {"status": 400, "body": {"error": "bad"}}, "request": {"body": null}})
    );
    assert_eq!(out("binary")["body"], "AAEC/w==");
    let form = out("form")["body"].clone();
    assert!(form["type"].as_str().unwrap().starts_with("multipart/form-data; boundary="), "{form}");
    let text = form["body"].as_str().unwrap();
    assert!(
        text.contains("name=\"name\"\r\n\r\nAda") && text.contains("filename=\"file\"") && text.contains("hello"),
        "{text}"
    );
    assert!(!text.contains("name=\"empty\""), "empty text fields are left out: {text}");
    assert_eq!(
        out("json")["body"],
        json!({"type": "application/json", "accept": "application/json", "body": "{\"a\":1}"})
    );
    assert_eq!(
        out("parsed"),
        json!({"base_url": "https://ex.com:8443", "domain": "ex.com", "path": "/a/b", "query_parameters": {"x": ["1", "2"], "y": ["3"]}, "hash": "top"})
    );
    // continue_none (the default) fails the step with the failure as its message
    assert_eq!(run["status"], "FAILED");
    let message = run["failedStep"]["message"].as_str().unwrap();
    let failure: Value = serde_json::from_str(message).unwrap_or_else(|_| panic!("{message}"));
    assert_eq!(failure["response"]["status"], 400);
}

#[tokio::test]
async fn text_helper_replace_has_javascripts_regular_expressions() {
    let t = Troupe::start().await;
    let replace = |name: &str, search: &str, with: &str, first: bool| {
        piece(
            name,
            "text-helper",
            "replace",
            json!({"text": "{{trigger.body.text}}", "searchValue": search, "replaceValue": with, "replaceOnlyFirst": first}),
        )
    };
    let flow = webhook_flow(chain(vec![
        replace("groups", r"(\w+)@(\w+)\.com", "$2 at $1", false),
        replace("named", r"(?<user>\w+)@", "[$<user>]", true),
        replace("lookahead", r"\d+(?=€)", "#", false),
        replace("backref", r"(o)\1", "0", false),
        replace("literal", "$", "USD", false),
        piece("found", "text-helper", "find", json!({"text": "{{trigger.body.text}}", "expression": r"(\d+)€"})),
        piece("absent", "text-helper", "find", json!({"text": "{{trigger.body.text}}", "expression": "zzz"})),
        respond(
            json!({"groups": "{{groups}}", "named": "{{named}}", "lookahead": "{{lookahead}}", "backref": "{{backref}}",
            "literal": "{{literal}}", "found": "{{found}}", "absent": "{{absent}}"}),
        ),
    ]));
    let id = t.publish(flow).await;
    let r = t.webhook(&id, "/sync", json!({"text": "ada@example.com paid 12€ and 3$, good boon"})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({
            "groups": "example at ada paid 12€ and 3$, good boon",
            "named": "[ada]example.com paid 12€ and 3$, good boon",
            "lookahead": "ada@example.com paid #€ and 3$, good boon",
            "backref": "ada@example.com paid 12€ and 3$, g0d b0n",
            "literal": "ada@example.com paid 12€ and 3$, good boonUSD",
            "found": ["12€", "12"],
            "absent": "",
        })
    );
}

#[tokio::test]
async fn code_steps_in_typescript_run_as_activepieces_stores_them() {
    let t = Troupe::start().await;
    let ts = r#"
interface Inputs { names: string[]; greeting?: string }
enum Mood { Happy = "happy", Calm = "calm" }
function shout<T extends string>(s: T): string { return s.toUpperCase(); }
export const code = async (inputs: Inputs): Promise<{ text: string; mood: Mood }> => {
  const names = inputs.names as string[];
  const text: string = names.map((n) => `${inputs.greeting ?? "hi"} ${shout(n)}`).join(", ");
  return { text, mood: Mood.Happy };
};
"#;
    let flow = webhook_flow(chain(vec![
        code("typed", ts, json!({"names": "{{trigger.body.names}}"})),
        respond(json!("{{typed}}")),
    ]));
    let id = t.publish(flow).await;
    let r = t.webhook(&id, "/sync", json!({"names": ["ada", "alan"]})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"text": "hi ADA, hi ALAN", "mood": "happy"}));
    // code that does not parse is refused at publish, naming the step and field
    let broken = webhook_flow(code("broken", "export const code = async (inputs: => {", json!({})));
    let body = t.publish_refused(broken).await;
    assert_eq!(
        (&body["problems"][0]["step"], &body["problems"][0]["field"]),
        (&json!("broken"), &json!("settings.sourceCode.code")),
        "{body}"
    );
}

#[tokio::test]
async fn flows_are_listed_counted_and_their_versions_read_as_activepieces_answers() {
    let t = Troupe::start().await;
    let mut flow = webhook_flow(respond(json!({"ok": true})));
    flow["displayName"] = json!("Invoices to Slack");
    let published = t.publish(flow.clone()).await;
    flow["displayName"] = json!("Leads");
    t.import(flow).await;
    // a new draft of the published flow: two versions, newest first
    let (status, _) = t
        .post(&format!("/flows/{published}"), json!({"type": "CHANGE_NAME", "request": {"displayName": "Invoices v2"}}))
        .await;
    assert_eq!(status, 200);
    let (_, versions) = t.get(&format!("/flows/{published}/versions")).await;
    let states: Vec<&Value> = versions["data"].as_array().unwrap().iter().map(|v| &v["state"]).collect();
    assert_eq!(states, [&json!("DRAFT"), &json!("LOCKED")], "{versions}");
    assert!(versions["data"][0].get("trigger").is_none(), "versions are listed without their steps");
    let locked = versions["data"][1]["id"].as_str().unwrap();
    let (_, old) = t.get(&format!("/flows/{published}?versionId={locked}")).await;
    assert_eq!(old["version"]["displayName"], "Invoices to Slack", "{old}");
    // filters and count
    let (_, by_name) = t.get("/flows?name=invoices").await;
    assert_eq!(by_name["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["data"][0]["id"], published.as_str());
    let (_, drafts) = t.get("/flows?versionState=DRAFT").await;
    assert_eq!(drafts["data"].as_array().unwrap().len(), 2, "both newest versions are drafts");
    let (_, count) = t.get("/flows/count").await;
    assert_eq!(count, json!(2));
    let (_, count) = t.get("/flows/count?status=ENABLED").await;
    assert_eq!(count, json!(2), "status is not a count filter in Activepieces; both count");
    let (_, none) = t.get("/flows?folderId=NULL").await;
    assert_eq!(none["data"].as_array().unwrap().len(), 2, "uncategorized");
    let (status, _) = t.get("/flows?versionState=SOMETIMES").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn runs_are_filtered_counted_archived_retried_and_canceled_in_bulk() {
    let t = Troupe::start().await;
    let flow = webhook_flow(code(
        "boom",
        "export const code = async (inputs) => { if (inputs.fail) throw new Error('boom!'); return 1; };",
        json!({"fail": "{{trigger.body.fail}}"}),
    ));
    let id = t.publish(flow).await;
    for fail in [true, true, false] {
        t.webhook(&id, "", json!({"fail": fail})).await;
    }
    let runs = t.wait_runs(&id, 3).await;
    let failed: Vec<String> =
        runs.iter().filter(|r| r["status"] == "FAILED").map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(runs[0]["failParentOnFailure"], true, "{}", runs[0]);
    let (_, counts) = t.get("/flow-runs/count-by-status").await;
    let count = |counts: &Value, status: &str| {
        counts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == status)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!((count(&counts, "FAILED"), count(&counts, "SUCCEEDED")), (2, 1), "{counts}");
    let (_, by_step) = t.get(&format!("/flow-runs?flowId={id}&failedStepName=boom")).await;
    assert_eq!(by_step["data"].as_array().unwrap().len(), 2);
    // archived runs leave the list unless asked for
    let (status, _) = t.post("/flow-runs/archive", json!({"flowRunIds": [failed[0]]})).await;
    assert_eq!(status, 204);
    let (_, listed) = t.get(&format!("/flow-runs?flowId={id}")).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let (_, all) = t.get(&format!("/flow-runs?flowId={id}&includeArchived=true")).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    assert!(all["data"].as_array().unwrap().iter().any(|r| r["archivedAt"].is_string()));
    // bulk retry: the failed runs of the flow run again (and fail again)
    let (status, retried) =
        t.post("/flow-runs/retry", json!({"flowId": [id], "status": ["FAILED"], "strategy": "FROM_FAILED_STEP"})).await;
    assert_eq!((status, retried.as_array().map(Vec::len)), (200, Some(2)), "{retried}");
    // bulk cancel: a paused run ends CANCELED
    let paused =
        t.publish(webhook_flow(piece("wait", "delay", "delayFor", json!({"unit": "hours", "delayFor": 1})))).await;
    t.webhook(&paused, "", json!({})).await;
    let run = loop {
        let runs = t.all_runs(&paused).await;
        if let Some(r) = runs.into_iter().find(|r| r["status"] == "PAUSED") {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (status, canceled) = t.post("/flow-runs/cancel", json!({"flowId": [paused], "status": ["PAUSED"]})).await;
    assert_eq!((status, canceled[0]["id"].clone()), (200, run["id"].clone()), "{canceled}");
    assert_eq!(t.run(run["id"].as_str().unwrap()).await["status"], "CANCELED");
}

#[tokio::test]
async fn projects_are_read_updated_and_deleted_with_their_external_ids() {
    let t = Troupe::start().await;
    let (status, project) =
        t.post("/projects", json!({"displayName": "Acme", "externalId": "acme-1", "metadata": {"plan": "pro"}})).await;
    assert_eq!(status, 201, "an Activepieces body with fields Troupe does not use is accepted: {project}");
    let id = project["id"].as_str().unwrap();
    assert_eq!(project["externalId"], "acme-1");
    let (status, updated) = t.post(&format!("/projects/{id}"), json!({"displayName": "Acme Inc"})).await;
    assert_eq!((status, &updated["displayName"], &updated["externalId"]), (200, &json!("Acme Inc"), &json!("acme-1")));
    let (_, got) = t.get(&format!("/projects/{id}")).await;
    assert_eq!(got["displayName"], "Acme Inc");
    // a project goes with what it holds: flows (their webhooks answer 410), folders, keys
    let (_, created) = t.post("/flows", json!({"displayName": "in Acme", "projectId": id})).await;
    let flow_id = created["id"].as_str().unwrap().to_string();
    let import = json!({"type": "IMPORT_FLOW", "request": webhook_flow(respond(json!({"ok": true})))});
    assert_eq!(t.post(&format!("/flows/{flow_id}"), import).await.0, 200);
    assert_eq!(t.post(&format!("/flows/{flow_id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await.0, 200);
    assert_eq!(t.webhook(&flow_id, "/sync", json!({})).await.status(), 200);
    let (_, folder) = t.post("/folders", json!({"displayName": "F", "projectId": id})).await;
    let (_, key) = t.post("/api-keys", json!({"displayName": "k", "projectId": id})).await;
    let (status, _) = t.api(reqwest::Method::DELETE, &format!("/projects/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = t.get(&format!("/projects/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = t.get(&format!("/flows/{flow_id}")).await;
    assert_eq!(status, 410, "a deleted flow is gone");
    assert_eq!(t.webhook(&flow_id, "/sync", json!({})).await.status(), 410, "the flow is gone");
    let (status, _) = t.get(&format!("/folders/{}", folder["id"].as_str().unwrap())).await;
    assert_eq!(status, 404);
    let (_, keys) = t.get("/api-keys").await;
    assert!(!keys.to_string().contains(key["id"].as_str().unwrap()), "{keys}");
}

/// `@activepieces/shared` (the version its clients use) installed once per machine under the
/// target directory, for its zod schemas.
pub(crate) fn shared_schemas() -> std::path::PathBuf {
    npm_installed("ap-shared-0.96.2-v2", &["@activepieces/shared@0.96.2"])
}

#[tokio::test]
async fn what_troupe_answers_validates_against_activepieces_own_schemas() {
    let t = Troupe::start().await;
    let (_, folder) = t.post("/folders", json!({"displayName": "Ops"})).await;
    let (_, conn) = t
        .post(
            "/app-connections",
            json!({"externalId": "k", "displayName": "Key", "pieceName": "@activepieces/piece-http",
            "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": "s3cret-value"}}),
        )
        .await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    t.webhook(&id, "/sync", json!({"name": "Ada", "items": [1]})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let (_, run) = t.get(&format!("/flow-runs/{}", run["id"].as_str().unwrap())).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    let (_, projects) = t.get("/projects").await;
    // the lists a client pages through, and the counts it asks for
    let t = &t;
    let list = |path: String| async move { t.get(&path).await.1 };
    let objects = json!([
        ["PopulatedFlow", flow],
        ["FlowVersion", flow["version"]],
        ["FlowRun", run],
        ["AppConnectionWithoutSensitiveData", conn],
        ["Folder", folder],
        ["Project", projects["data"][0]],
        ["SeekPage<PopulatedFlow>", list("/flows?limit=10".into()).await],
        ["SeekPage<FlowVersionMetadata>", list(format!("/flows/{id}/versions")).await],
        ["SeekPage<FlowRun>", list(format!("/flow-runs?flowId={id}&status=SUCCEEDED")).await],
        ["SeekPage<Folder>", list("/folders".into()).await],
        ["SeekPage<AppConnectionWithoutSensitiveData>", list("/app-connections".into()).await],
        ["SeekPage<Project>", projects],
        ["CountFlowRunsByStatusResponse", list("/flow-runs/count-by-status".into()).await],
    ]);
    let file = t.dir.path().join("objects.json");
    std::fs::write(&file, objects.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/validate-shapes.js");
    let out =
        std::process::Command::new("node").arg(script).arg(shared_schemas()).arg(&file).output().expect("node runs");
    let problems = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Troupe's answers fail @activepieces/shared's schemas:\n{problems}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
