//! Users and project roles: sign-up closed (the first admin from AP_ADMIN_EMAIL, the rest
//! invited), sessions, and the seed's permission table applied to every endpoint of the API:
//! every role × every endpoint, allowed or 403.

use crate::support::*;
use serde_json::{json, Value};

const ADMIN_EMAIL: &str = "root@example.com";
const ADMIN_PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug, PartialEq)]
enum P {
    ReadFlow,
    WriteFlow,
    FlowStatus,
    ReadRun,
    WriteRun,
    ReadConnection,
    WriteConnection,
    ReadFolder,
    WriteFolder,
    ReadMember,
    WriteMember,
    ReadInvitation,
    WriteInvitation,
    ReadProject,
    /// Any signed-in principal.
    Anyone,
    /// The platform's admin only.
    Platform,
}

/// The seed's "Project Permissions", written out here on their own (not read from Troupe).
fn role_allows(role: &str, p: P) -> bool {
    use P::*;
    let listed: &[P] = match role {
        "Admin" => &[
            ReadFlow,
            WriteFlow,
            FlowStatus,
            ReadRun,
            WriteRun,
            ReadConnection,
            WriteConnection,
            ReadFolder,
            WriteFolder,
            ReadMember,
            WriteMember,
            ReadInvitation,
            WriteInvitation,
            ReadProject,
        ],
        "Editor" => &[
            ReadFlow,
            WriteFlow,
            FlowStatus,
            ReadRun,
            WriteRun,
            ReadConnection,
            WriteConnection,
            ReadFolder,
            WriteFolder,
            ReadMember,
            ReadProject,
        ],
        "Operator" => &[
            FlowStatus,
            ReadFlow,
            ReadFolder,
            ReadRun,
            WriteRun,
            ReadConnection,
            WriteConnection,
            ReadMember,
            ReadProject,
        ],
        "Viewer" => &[ReadFlow, ReadFolder, ReadRun, ReadConnection, ReadMember, ReadProject],
        _ => &[],
    };
    p == Anyone || listed.contains(&p)
}

async fn call(t: &Troupe, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = t.client.request(method, t.url(&format!("/api/v1{path}"))).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn sign(t: &Troupe, action: &str, email: &str, password: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": password, "firstName": "F", "lastName": "L"});
    let resp = t.client.post(t.url(&format!("/api/v1/authentication/{action}"))).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_role_meets_the_permission_table_on_every_endpoint() {
    let t = Troupe::start_with(&[("AP_ADMIN_EMAIL", ADMIN_EMAIL), ("AP_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
    // sign-up is closed; the first admin signs in
    assert_eq!(sign(&t, "sign-up", "stranger@example.com", "password123").await.0, 403);
    assert_eq!(sign(&t, "sign-in", ADMIN_EMAIL, "wrong password").await.0, 401);
    let (status, admin) = sign(&t, "sign-in", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{admin}");
    let root = admin["token"].as_str().unwrap().to_string();
    assert_eq!(admin["platformRole"], "ADMIN");

    // the platform's admin makes a project with a flow, a run, a connection and a folder
    let (_, project) = call(&t, &root, "POST", "/projects", Some(json!({"displayName": "Acme"}))).await;
    let p = project["id"].as_str().unwrap().to_string();
    let (_, flow) = call(&t, &root, "POST", "/flows", Some(json!({"displayName": "f", "projectId": p}))).await;
    let f = flow["id"].as_str().unwrap().to_string();
    let import = json!({"type": "IMPORT_FLOW", "request": webhook_flow(respond(json!({"ok": true})))});
    assert_eq!(call(&t, &root, "POST", &format!("/flows/{f}"), Some(import)).await.0, 200);
    assert_eq!(
        call(&t, &root, "POST", &format!("/flows/{f}"), Some(json!({"type": "LOCK_AND_PUBLISH", "request": {}})))
            .await
            .0,
        200
    );
    t.webhook(&f, "/sync", json!({})).await;
    let (_, runs) = call(&t, &root, "GET", &format!("/flow-runs?projectId={p}"), None).await;
    let r = runs["data"][0]["id"].as_str().unwrap().to_string();
    let secret = json!({"externalId": "c", "displayName": "c", "pieceName": "@activepieces/piece-http", "projectId": p,
        "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": "s"}});
    let (_, conn) = call(&t, &root, "POST", "/app-connections", Some(secret)).await;
    let c = conn["id"].as_str().unwrap().to_string();
    let (_, folder) = call(&t, &root, "POST", "/folders", Some(json!({"displayName": "D", "projectId": p}))).await;
    let d = folder["id"].as_str().unwrap().to_string();

    // one member per role, invited, signed up
    let mut tokens = Vec::new();
    for role in ["Admin", "Editor", "Operator", "Viewer"] {
        let email = format!("{}@example.com", role.to_lowercase());
        let invite = json!({"email": email, "type": "PROJECT", "projectId": p, "projectRole": role});
        let (status, invitation) = call(&t, &root, "POST", "/user-invitations", Some(invite)).await;
        assert_eq!((status, &invitation["status"]), (201, &json!("PENDING")), "{invitation}");
        assert_eq!(sign(&t, "sign-up", &email, "short").await.0, 400, "a password has 8 characters at least");
        let (status, user) = sign(&t, "sign-up", &email, "password-of-8").await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(user["projectId"], p.as_str());
        tokens.push((role, user["token"].as_str().unwrap().to_string()));
    }

    let endpoints: Vec<(&str, String, Option<Value>, P)> = vec![
        ("GET", format!("/flows?projectId={p}"), None, P::ReadFlow),
        ("GET", "/flows/count".into(), None, P::ReadFlow),
        ("GET", format!("/flows/{f}"), None, P::ReadFlow),
        ("GET", format!("/flows/{f}/versions"), None, P::ReadFlow),
        ("POST", "/flows".into(), Some(json!({"displayName": "new", "projectId": p})), P::WriteFlow),
        (
            "POST",
            format!("/flows/{f}"),
            Some(json!({"type": "CHANGE_NAME", "request": {"displayName": "renamed"}})),
            P::WriteFlow,
        ),
        (
            "POST",
            format!("/flows/{f}"),
            Some(json!({"type": "CHANGE_STATUS", "request": {"status": "ENABLED"}})),
            P::FlowStatus,
        ),
        ("POST", format!("/flows/{f}"), Some(json!({"type": "LOCK_AND_PUBLISH", "request": {}})), P::FlowStatus),
        ("DELETE", "/flows/missing".into(), None, P::WriteFlow),
        ("GET", format!("/folders?projectId={p}"), None, P::ReadFolder),
        ("GET", format!("/folders/{d}"), None, P::ReadFolder),
        ("POST", "/folders".into(), Some(json!({"displayName": "any", "projectId": p})), P::WriteFolder),
        ("POST", format!("/folders/{d}"), Some(json!({"displayName": "D"})), P::WriteFolder),
        ("DELETE", "/folders/missing".into(), None, P::WriteFolder),
        ("GET", format!("/flow-runs?projectId={p}"), None, P::ReadRun),
        ("GET", format!("/flow-runs/{r}"), None, P::ReadRun),
        ("GET", format!("/flow-runs/count-by-status?projectId={p}"), None, P::ReadRun),
        ("POST", format!("/flow-runs/{r}/retry"), Some(json!({"strategy": "FROM_FAILED_STEP"})), P::WriteRun),
        ("POST", "/flow-runs/missing/cancel".into(), Some(json!({})), P::WriteRun),
        ("POST", "/flow-runs/cancel".into(), Some(json!({"projectId": p, "flowRunIds": []})), P::WriteRun),
        (
            "POST",
            "/flow-runs/retry".into(),
            Some(json!({"projectId": p, "flowRunIds": [], "strategy": "FROM_FAILED_STEP"})),
            P::WriteRun,
        ),
        ("POST", "/flow-runs/archive".into(), Some(json!({"projectId": p, "flowRunIds": []})), P::WriteRun),
        ("GET", format!("/app-connections?projectId={p}"), None, P::ReadConnection),
        ("GET", format!("/app-connections/{c}"), None, P::ReadConnection),
        (
            "POST",
            "/app-connections".into(),
            Some(json!({"externalId": "x", "displayName": "x", "pieceName": "@activepieces/piece-http",
            "projectId": p, "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": "x"}})),
            P::WriteConnection,
        ),
        ("POST", format!("/app-connections/{c}"), Some(json!({"displayName": "c2"})), P::WriteConnection),
        (
            "POST",
            "/app-connections/replace".into(),
            Some(json!({"sourceAppConnectionId": "a", "targetAppConnectionId": "b"})),
            P::WriteConnection,
        ),
        ("POST", "/app-connections/oauth2/authorization-url".into(), Some(json!({})), P::WriteConnection),
        ("DELETE", "/app-connections/missing".into(), None, P::WriteConnection),
        ("GET", format!("/project-members?projectId={p}"), None, P::ReadMember),
        ("POST", "/project-members/missing".into(), Some(json!({"role": "Viewer"})), P::WriteMember),
        ("DELETE", "/project-members/missing".into(), None, P::WriteMember),
        ("GET", format!("/user-invitations?projectId={p}"), None, P::ReadInvitation),
        (
            "POST",
            "/user-invitations".into(),
            Some(json!({"email": "z@example.com", "projectId": p, "projectRole": "Viewer"})),
            P::WriteInvitation,
        ),
        ("DELETE", "/user-invitations/missing".into(), None, P::WriteInvitation),
        ("GET", "/audit-events".into(), None, P::WriteMember),
        ("GET", format!("/sample-data?flowId={f}&stepName=trigger&type=OUTPUT"), None, P::ReadFlow),
        ("POST", "/sample-data".into(), Some(json!({})), P::WriteFlow),
        ("POST", "/step-run".into(), Some(json!({})), P::WriteFlow),
        ("POST", "/sample-data/test-step".into(), Some(json!({})), P::WriteFlow),
        ("POST", "/test-trigger".into(), Some(json!({})), P::WriteFlow),
        ("GET", format!("/trigger-events?flowId={f}"), None, P::ReadFlow),
        ("POST", "/trigger-events".into(), Some(json!({})), P::WriteFlow),
        ("POST", "/pieces/options".into(), Some(json!({})), P::WriteFlow),
        ("GET", "/pieces".into(), None, P::Anyone),
        ("GET", "/pieces/@activepieces/piece-webhook".into(), None, P::Anyone),
        ("POST", "/pieces".into(), Some(json!({})), P::Platform),
        ("DELETE", "/pieces/missing".into(), None, P::Platform),
        ("GET", "/projects".into(), None, P::Anyone),
        ("GET", format!("/projects/{p}"), None, P::ReadProject),
        ("POST", "/projects".into(), Some(json!({"displayName": "new"})), P::Platform),
        ("POST", format!("/projects/{p}"), Some(json!({"displayName": "Acme"})), P::Platform),
        ("DELETE", "/projects/missing".into(), None, P::Platform),
        ("GET", "/api-keys".into(), None, P::Platform),
        ("POST", "/api-keys".into(), Some(json!({"displayName": "k", "projectId": p})), P::Platform),
        ("DELETE", "/api-keys/missing".into(), None, P::Platform),
        ("POST", "/wasm-modules".into(), Some(json!({})), P::Platform),
        ("GET", "/wasm-modules/missing".into(), None, P::ReadFlow),
    ];
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (method, path, body, need) in &endpoints {
        for (role, token) in &tokens {
            let allowed = need != &P::Platform && role_allows(role, *need);
            let (status, answer) = call(&t, token, method, path, body.clone()).await;
            checked += 1;
            let ok = if allowed { status != 403 && status != 401 } else { status == 403 };
            if !ok {
                wrong.push(format!(
                    "{role} {method} {path}: {status} ({}) {answer}",
                    if allowed { "allowed" } else { "denied" }
                ));
            }
        }
        // the platform's admin may do everything
        let (status, answer) = call(&t, &root, method, path, body.clone()).await;
        if status == 403 || status == 401 {
            wrong.push(format!("platform admin {method} {path}: {status} {answer}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {checked} answers break the table:\n{}", wrong.len(), wrong.join("\n"));

    // a project's key has a role too; a member of another project sees nothing of this one
    let (_, key) =
        call(&t, &root, "POST", "/api-keys", Some(json!({"displayName": "ro", "projectId": p, "role": "Viewer"})))
            .await;
    let viewer_key = key["value"].as_str().unwrap();
    assert_eq!(call(&t, viewer_key, "GET", &format!("/flows/{f}"), None).await.0, 200);
    assert_eq!(call(&t, viewer_key, "POST", "/flows", Some(json!({"displayName": "x", "projectId": p}))).await.0, 403);
    let (_, other) = call(&t, &root, "POST", "/projects", Some(json!({"displayName": "Other"}))).await;
    let q = other["id"].as_str().unwrap();
    call(
        &t,
        &root,
        "POST",
        "/user-invitations",
        Some(json!({"email": "o@example.com", "projectId": q, "projectRole": "Admin"})),
    )
    .await;
    let (_, outsider) = sign(&t, "sign-up", "o@example.com", "password-of-8").await;
    let outsider = outsider["token"].as_str().unwrap();
    assert_eq!(
        call(&t, outsider, "GET", &format!("/flows/{f}"), None).await.0,
        404,
        "another project's flow does not exist for it"
    );
    // roles change and sessions end
    let (_, members) = call(&t, &root, "GET", &format!("/project-members?projectId={p}"), None).await;
    let viewer = members["data"].as_array().unwrap().iter().find(|m| m["projectRole"]["name"] == "Viewer").unwrap();
    let viewer_token = &tokens[3].1;
    assert_eq!(
        call(&t, viewer_token, "POST", "/flows", Some(json!({"displayName": "x", "projectId": p}))).await.0,
        403
    );
    let member = viewer["id"].as_str().unwrap();
    assert_eq!(
        call(&t, &root, "POST", &format!("/project-members/{member}"), Some(json!({"role": "Editor"}))).await.0,
        200
    );
    assert_eq!(
        call(&t, viewer_token, "POST", "/flows", Some(json!({"displayName": "x", "projectId": p}))).await.0,
        201
    );
    let out = t.client.post(t.url("/api/v1/authentication/sign-out")).bearer_auth(viewer_token).send().await.unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(call(&t, viewer_token, "GET", "/flows/count", None).await.0, 401, "a session that ended");
    // who signed in and up is in the audit log, a failed attempt too
    let (_, events) =
        call(&t, &root, "GET", "/audit-events?action=user.signed.in&action=user.signed.up&limit=100", None).await;
    let text = events.to_string();
    assert!(text.contains("\"FAILED\"") && text.contains("editor@example.com"), "{events}");
    assert!(!text.contains("password-of-8") && !text.contains(ADMIN_PASSWORD), "no password in any event");
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_email_out_for_a_while() {
    let t = Troupe::start_with(&[("AP_ADMIN_EMAIL", ADMIN_EMAIL), ("AP_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
    for _ in 0..5 {
        assert_eq!(sign(&t, "sign-in", ADMIN_EMAIL, "not the password").await.0, 401);
    }
    let (status, body) = sign(&t, "sign-in", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "even the right password waits out the lockout: {body}");
    assert_eq!(body["code"], "TOO_MANY_SIGN_IN_ATTEMPTS");
    assert_eq!(sign(&t, "sign-in", "other@example.com", "whatever-1").await.0, 401, "other emails are not locked");
}
