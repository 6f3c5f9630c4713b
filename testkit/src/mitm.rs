//! An HTTPS-intercepting proxy on loopback, so that a test can point a real program at a local
//! fake: the program is given `HTTPS_PROXY=<proxy_url>` and trusts [`Mitm::ca_file`]
//! (`NODE_EXTRA_CA_CERTS`, `curl --cacert`, reqwest's `add_root_certificate`), believes it talks
//! to `slack.com`, and reaches the test's handler instead. Every request is recorded, so the test
//! can assert what the program sent.
//!
//! A client opens a tunnel with `CONNECT host:443`; the proxy answers 200 and ends TLS itself,
//! with a leaf for that host signed by a CA made at start (one leaf per host, kept). Plain-HTTP
//! proxy requests (`GET http://host/path`) reach the handler too. HTTP/1.1 only, outside and
//! inside the tunnel. Nothing is ever forwarded to a real host, and it listens on 127.0.0.1 only.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::uri::Authority;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One request as the program sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// As the program named it: `slack.com`, with `:port` only when the port is not the
    /// scheme's default.
    pub host: String,
    pub method: String,
    /// Path and query: `/api/chat.postMessage?pretty=1`.
    pub path: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, naming the request, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("the body of {} {}{} is not JSON ({e}): {}", self.method, self.host, self.path, self.text())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the handler answers. `content-length` and `transfer-encoding` in `headers` are ignored:
/// the proxy frames the body itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `value` as an `application/json` body.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).expect("a JSON value serializes"),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("transfer-encoding") {
                builder = builder.header(name, value);
            }
        }
        builder.body(Full::new(Bytes::from(self.body))).unwrap_or_else(|e| {
            text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("the handler's reply is not valid HTTP: {e}"))
        })
    }
}

/// The proxy; it stops (closes its port and every connection) when dropped.
pub struct Mitm {
    port: u16,
    ca_pem: String,
    ca_file: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
    accept: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Mitm {
    /// Listens on a free loopback port; every request, to any host, is answered by `handler`.
    /// The handler runs on the runtime's threads: it must not block.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Mitm {
        let ca_key = KeyPair::generate().expect("a key pair for the test CA");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "Troupe test CA (testkit::mitm)");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = params.self_signed(&ca_key).expect("the test CA signs itself");
        let ca_pem = ca.pem();
        let dir = tempfile::tempdir().expect("a temp dir for the CA file");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("writes the CA file");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let proxy = Arc::new(Proxy {
            handler: Box::new(handler),
            ca,
            ca_key,
            crypto: Arc::new(rustls::crypto::ring::default_provider()),
            leaves: Mutex::new(HashMap::new()),
            seen: seen.clone(),
        });
        let accept = tokio::spawn(accept_connections(listener, proxy));
        Mitm { port, ca_pem, ca_file, seen, accept, _dir: dir }
    }

    /// `http://127.0.0.1:<port>`: the value of `HTTPS_PROXY` (and `HTTP_PROXY`).
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CA that signs every leaf, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The same CA in a file (for `NODE_EXTRA_CA_CERTS` or `curl --cacert`), removed on drop.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Proxy {
    handler: Box<dyn Fn(&Request) -> Reply + Send + Sync>,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    crypto: Arc<CryptoProvider>,
    /// The TLS config with the leaf of each host met so far.
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
    seen: Arc<Mutex<Vec<Request>>>,
}

/// A `CONNECT` the proxy said yes to: after the 200, the connection is TLS for `host`.
struct Tunnel {
    host: String,
    tls: Arc<ServerConfig>,
    upgrade: hyper::upgrade::OnUpgrade,
}

async fn accept_connections(listener: TcpListener, proxy: Arc<Proxy>) {
    // Connections live in this set, so aborting this task (dropping the `Mitm`) ends them too.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(stream, proxy.clone()));
            }
            // Out of file descriptors, most likely: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Plain HTTP/1.1 proxy requests until a `CONNECT`, then HTTP/1.1 inside TLS for its host.
async fn serve_connection(stream: TcpStream, proxy: Arc<Proxy>) {
    let _ = stream.set_nodelay(true);
    let tunnel: Arc<Mutex<Option<Tunnel>>> = Arc::default();
    let outside = {
        let (proxy, tunnel) = (proxy.clone(), tunnel.clone());
        service_fn(move |req| {
            let (proxy, tunnel) = (proxy.clone(), tunnel.clone());
            async move { Ok::<_, Infallible>(proxy.answer_outside(req, &tunnel).await) }
        })
    };
    if http1::Builder::new().serve_connection(TokioIo::new(stream), outside).with_upgrades().await.is_err() {
        return;
    }
    let Some(Tunnel { host, tls, upgrade }) = tunnel.lock().unwrap().take() else { return };
    let Ok(upgraded) = upgrade.await else { return };
    let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(TokioIo::new(upgraded)).await else { return };
    let inside = service_fn(move |req| {
        let (proxy, host) = (proxy.clone(), host.clone());
        async move { Ok::<_, Infallible>(proxy.answer(host, req).await) }
    });
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), inside).await;
}

impl Proxy {
    async fn answer_outside(
        &self,
        req: hyper::Request<Incoming>,
        tunnel: &Mutex<Option<Tunnel>>,
    ) -> Response<Full<Bytes>> {
        if req.method() == Method::CONNECT {
            let Some(authority) = req.uri().authority().cloned() else {
                return text_response(StatusCode::BAD_REQUEST, "CONNECT needs host:port".into());
            };
            let tls = match self.leaf(authority.host().trim_start_matches('[').trim_end_matches(']')) {
                Ok(tls) => tls,
                Err(e) => return text_response(StatusCode::BAD_GATEWAY, e),
            };
            let host = host_name(&authority, 443);
            *tunnel.lock().unwrap() = Some(Tunnel { host, tls, upgrade: hyper::upgrade::on(req) });
            return Response::new(Full::default());
        }
        // Absolute-form (`GET http://host/path`) from a proxy client, else the Host header.
        let authority = req
            .uri()
            .authority()
            .cloned()
            .or_else(|| req.headers().get(hyper::header::HOST)?.to_str().ok()?.parse::<Authority>().ok());
        match authority {
            Some(authority) => {
                // axios, told of a proxy, sends even `GET https://host/path` in the clear.
                let default_port = if req.uri().scheme() == Some(&hyper::http::uri::Scheme::HTTPS) { 443 } else { 80 };
                self.answer(host_name(&authority, default_port), req).await
            }
            None => text_response(StatusCode::BAD_REQUEST, "the request names no host".into()),
        }
    }

    /// Records the request, then asks the handler.
    async fn answer(&self, host: String, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let request = Request {
            host,
            method: parts.method.to_string(),
            path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body,
        };
        self.seen.lock().unwrap().push(request.clone());
        (self.handler)(&request).into_response()
    }

    /// The TLS config for `host`, its leaf made and signed on first use.
    fn leaf(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        let mut leaves = self.leaves.lock().unwrap();
        if let Some(tls) = leaves.get(host) {
            return Ok(tls.clone());
        }
        let tls = Arc::new(self.make_leaf(host).map_err(|e| format!("no certificate for {host:?}: {e}"))?);
        leaves.insert(host.to_string(), tls.clone());
        Ok(tls)
    }

    fn make_leaf(&self, host: &str) -> Result<ServerConfig, Box<dyn std::error::Error>> {
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca, &self.ca_key)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut tls = ServerConfig::builder_with_provider(self.crypto.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)?;
        // Clients that offer h2 too must settle on HTTP/1.1, the only one served.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tls)
    }
}

/// `host`, or `host:port` when the port is not `default_port`.
fn host_name(authority: &Authority, default_port: u16) -> String {
    match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    }
}

fn text_response(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fake the tests talk to: Slack's API on `slack.com`, nothing anywhere else.
    async fn fake_slack() -> Mitm {
        Mitm::start(|req: &Request| match req.host.as_str() {
            "slack.com" => Reply::json(200, &json!({"ok": true})),
            _ => Reply::json(404, &json!({"ok": false, "error": format!("no fake for {}", req.host)})),
        })
        .await
    }

    fn client_through(mitm: &Mitm, trust_ca: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(mitm.proxy_url()).unwrap())
            .timeout(Duration::from_secs(10));
        if trust_ca {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(mitm.ca_pem().as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }

    #[tokio::test]
    async fn https_through_connect_reaches_the_handler_and_is_recorded() {
        let mitm = fake_slack().await;
        let client = client_through(&mitm, true);
        let message = json!({"channel": "C042", "text": "hello from a test"});

        let reply = client.post("https://slack.com/api/chat.postMessage").json(&message).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.json::<serde_json::Value>().await.unwrap(), json!({"ok": true}));
        // The same client again (kept alive), and another host with a leaf of its own.
        let again = client.get("https://slack.com/api/auth.test?pretty=1").send().await.unwrap();
        assert_eq!(again.status(), 200);
        let elsewhere = client.get("https://hooks.slack.com/services/T/B/X").send().await.unwrap();
        assert_eq!(elsewhere.status(), 404);

        let seen = mitm.requests();
        let summary: Vec<_> = seen.iter().map(|r| (r.method.as_str(), r.host.as_str(), r.path.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("POST", "slack.com", "/api/chat.postMessage"),
                ("GET", "slack.com", "/api/auth.test?pretty=1"),
                ("GET", "hooks.slack.com", "/services/T/B/X"),
            ]
        );
        assert_eq!(seen[0].json(), message);
        assert_eq!(seen[0].header("Content-Type"), Some("application/json"));
    }

    #[tokio::test]
    async fn plain_http_proxy_requests_reach_the_handler() {
        let mitm = fake_slack().await;
        let client = client_through(&mitm, false);
        let reply = client.get("http://slack.com/health?deep=1").send().await.unwrap();
        assert_eq!(reply.status(), 200);
        let elsewhere = client.get("http://fake.test:8080/status").send().await.unwrap();
        assert_eq!(elsewhere.status(), 404);
        let seen = mitm.requests();
        let summary: Vec<_> = seen.iter().map(|r| (r.host.as_str(), r.path.as_str())).collect();
        assert_eq!(summary, [("slack.com", "/health?deep=1"), ("fake.test:8080", "/status")]);
    }

    #[tokio::test]
    async fn an_https_url_sent_in_the_clear_to_the_proxy_reaches_the_handler() {
        // What axios does with a proxy and no proxy agent: no CONNECT, the https URL in the clear.
        let mitm = fake_slack().await;
        let mut stream = TcpStream::connect(("127.0.0.1", mitm.port)).await.unwrap();
        let request =
            "GET https://slack.com:443/api/auth.test HTTP/1.1\r\nhost: slack.com\r\nconnection: close\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let seen = mitm.requests();
        assert_eq!((seen[0].host.as_str(), seen[0].path.as_str()), ("slack.com", "/api/auth.test"));
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_ca_refuses_the_leaf() {
        let mitm = fake_slack().await;
        let result = client_through(&mitm, false).get("https://slack.com/api/auth.test").send().await;
        let error = result.expect_err("the leaf is signed by the test CA only, yet the client accepted it");
        assert!(format!("{error:?}").contains("UnknownIssuer"), "not refused for its issuer: {error:?}");
        assert!(mitm.requests().is_empty());
    }

    #[tokio::test]
    async fn curl_through_the_proxy_reaches_the_handler() {
        if std::process::Command::new("curl").arg("--version").output().is_err() {
            eprintln!("curl is not installed: skipped");
            return;
        }
        let mitm = fake_slack().await;
        let output = tokio::process::Command::new("curl")
            .arg("-q") // no ~/.curlrc
            .args(["--silent", "--show-error", "--max-time", "10", "--proxy", &mitm.proxy_url(), "--cacert"])
            .arg(mitm.ca_file())
            .args(["-H", "content-type: application/json", "--data", r#"{"channel":"C042"}"#])
            .arg("https://slack.com/api/chat.postMessage")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap(), json!({"ok": true}));
        let seen = mitm.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].host.as_str(), seen[0].path.as_str()), ("slack.com", "/api/chat.postMessage"));
        assert_eq!(seen[0].json(), json!({"channel": "C042"}));
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_port() {
        let mitm = fake_slack().await;
        let port = mitm.port;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_ok());
        drop(mitm);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("port {port} still accepts connections after the proxy was dropped");
    }
}
