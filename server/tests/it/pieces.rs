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
}

#[tokio::test]
async fn an_uploaded_archive_installs_with_its_dependencies() {
    let t = start().await;
    let archive = tgz(&[
        (
            "package.json",
            r#"{"name":"@me/piece-hello","version":"0.1.0","main":"index.js","dependencies":{"ms":"^2.1.0"}}"#,
        ),
        ("index.js", "module.exports = {}"),
    ]);
    let boundary = "troupe-test-boundary";
    let mut form = Vec::new();
    for (name, value) in [("packageType", "ARCHIVE"), ("scope", "PROJECT"), ("pieceName", "@me/piece-hello")] {
        form.extend(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    form.extend(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"pieceArchive\"; filename=\"p.tgz\"\r\ncontent-type: application/gzip\r\n\r\n").bytes());
    form.extend(&archive);
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
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["packageType"].as_str()), (Some("@me/piece-hello"), Some("ARCHIVE")));
    assert!(body["projectId"].is_string(), "scope PROJECT: {body}");
    assert!(body["dependencies"]["ms"].as_str().unwrap().starts_with("ms@2."), "{body}");
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
