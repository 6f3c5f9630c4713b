//! Installs real packages from the npm registry (cached under the target directory between
//! runs), and checks what must be refused against a local fake registry on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use troupe_pieces::install::{install, install_archive, InstallError};
use troupe_pieces::integrity::Integrity;
use troupe_pieces::registry::{Registry, DEFAULT_REGISTRY};

fn cache() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npm-cache"))
}

fn npm() -> Registry {
    Registry::new(DEFAULT_REGISTRY, cache())
}

#[tokio::test]
async fn a_compiled_piece_installs_with_its_whole_closure_at_the_pinned_versions() {
    let installed = install(&npm(), "@activepieces/piece-delay", "0.3.26").await.unwrap();
    let lock = &installed.lock;
    assert_eq!(lock.root, "@activepieces/piece-delay@0.3.26");
    let root = lock.root();
    // exact pins are kept, and every dependency of every package resolves inside the lock
    assert_eq!(root.dependencies["@activepieces/pieces-framework"], "@activepieces/pieces-framework@0.25.4");
    assert_eq!(root.dependencies["axios"], "axios@1.13.5");
    for p in lock.packages.values() {
        for (name, target) in &p.dependencies {
            assert!(lock.packages.contains_key(target), "{}@{} needs {name} → {target}", p.name, p.version);
        }
        Integrity::parse(&p.integrity)
            .unwrap()
            .verify(&installed.tarballs[&format!("{}@{}", p.name, p.version)])
            .unwrap();
    }
    assert!(lock.packages.len() > 20, "the closure has {} packages", lock.packages.len());
    assert!(installed.root_files().files.contains_key("src/index.js"));
}

#[tokio::test]
async fn a_bundled_piece_is_one_package() {
    let installed = install(&npm(), "@activepieces/piece-slack", "0.17.9").await.unwrap();
    assert_eq!(installed.lock.packages.len(), 1);
    assert!(installed.root_files().files["src/index.js"].len() > 100_000);
}

#[tokio::test]
async fn a_package_that_needs_a_native_addon_is_refused_and_the_message_says_which() {
    let err = install(&npm(), "sharp", "0.33.5").await.err().expect("sharp must be refused");
    let InstallError::NativeCode { root, package, evidence } = &err else { panic!("{err}") };
    assert_eq!(root, "sharp@0.33.5");
    assert!(package.starts_with("@img/sharp-linux-x64@"), "{package}");
    assert!(evidence.ends_with(".node"), "{evidence}");
    assert!(err.to_string().contains("cannot run in the sandbox"), "{err}");
}

#[tokio::test]
async fn a_missing_package_or_version_says_so() {
    let err = install(&npm(), "@activepieces/piece-delay", "99.0.0").await.err().unwrap();
    assert_eq!(err.to_string(), "@activepieces/piece-delay@99.0.0: no version satisfies it");
    let err = install(&npm(), "@troupe-test/no-such-package-at-all", "1.0.0").await.err().unwrap();
    assert_eq!(err.to_string(), "package @troupe-test/no-such-package-at-all does not exist in the registry");
}

/// A fake registry on 127.0.0.1 that serves fixed bodies by path (`routes` gets its base URL).
async fn fake_registry(routes: impl FnOnce(&str) -> BTreeMap<String, Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = routes(&format!("http://{addr}"));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match routes.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"{}".to_vec()),
                };
                let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    troupe_testkit::npm::pack(&files.iter().map(|(p, t)| (*p, t.as_bytes())).collect::<Vec<_>>())
}
#[tokio::test]
async fn a_tarball_that_does_not_match_its_integrity_is_refused() {
    let claimed = Integrity::sha512_of(b"something else");
    let base = fake_registry(|base| {
        let doc = serde_json::json!({
            "name": "left-pad-ish", "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {"name": "left-pad-ish", "version": "1.0.0",
                "dist": {"tarball": format!("{base}/left-pad-ish.tgz"), "integrity": claimed.to_string()}}}
        });
        BTreeMap::from([
            ("/left-pad-ish".to_string(), serde_json::to_vec(&doc).unwrap()),
            ("/left-pad-ish.tgz".to_string(), tgz(&[("package.json", r#"{"name":"left-pad-ish","version":"1.0.0"}"#)])),
        ])
    })
    .await;
    let err = install(&Registry::new(&base, None), "left-pad-ish", "^1").await.err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("tarball {base}/left-pad-ish.tgz does not match its integrity: expected {claimed}")),
        "{msg}"
    );
}

#[tokio::test]
async fn an_uploaded_archive_installs_with_its_dependencies_from_the_registry() {
    let archive = tgz(&[
        (
            "package.json",
            r#"{"name":"@me/piece-hello","version":"0.1.0","main":"index.js","dependencies":{"ms":"^2.1.0"}}"#,
        ),
        ("index.js", "module.exports = {}"),
    ]);
    let installed = install_archive(&npm(), archive).await.unwrap();
    assert_eq!(installed.lock.root, "@me/piece-hello@0.1.0");
    assert!(installed.lock.root().dependencies["ms"].starts_with("ms@2."));
    assert_eq!(installed.lock.packages.len(), 2);
}

#[tokio::test]
async fn an_installed_piece_is_kept_by_digest_and_loads_back() {
    use troupe_pieces::installed::InstalledPieces;
    let dir = tempfile::tempdir().unwrap();
    let store = troupe_store::Store::open(dir.path()).unwrap();
    let pieces = InstalledPieces::new(store.clone(), npm());
    let first = pieces.add("@activepieces/piece-slack", "0.17.9", None).await.unwrap();
    let again = pieces.add("@activepieces/piece-slack", "~0.17.9", None).await.unwrap();
    assert_eq!(first.id, again.id, "installing an installed version keeps it");
    assert_eq!(store.piece_versions("@activepieces/piece-slack").unwrap().len(), 1);
    let files = pieces.files(&first).await.unwrap();
    assert!(files["@activepieces/piece-slack@0.17.9"].files.contains_key("src/index.js"));
    assert!(store.delete_piece("@activepieces/piece-slack", "0.17.9").unwrap());
    assert!(store.list_pieces().unwrap().is_empty());
}
