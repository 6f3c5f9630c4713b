//! Egress: the one HTTP client through which steps and triggers reach the outside (the native
//! http piece, code steps' `fetch`, the RSS polling trigger; npm pieces' requests next). One per
//! process, made at start. It applies the policy in one place:
//!
//! - **SSRF protection** (`AP_SSRF_PROTECTION_ENABLED`, on by default): no loopback, private,
//!   link-local (cloud metadata at 169.254.169.254 among them), carrier-grade NAT, unspecified,
//!   multicast or broadcast address, unless `AP_SSRF_ALLOW_LIST` (IPs and CIDRs, comma
//!   separated) allows it. Checked after name resolution (a resolver that drops what is not
//!   allowed, so a name that points inside is refused too) and on every redirect; an address
//!   written in the URL is checked before the request.
//! - **Proxies** from `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (through a proxy the name is
//!   resolved by the proxy; an address written in the URL is still checked here).
//! - **Extra trusted CAs** from the PEM file `NODE_EXTRA_CA_CERTS` (Node's name), beside the
//!   system's and the bundled roots.
//! - A timeout (the run's) and a response size cap (`AP_MAX_FILE_SIZE_MB`).
//!
//! Requests are counted in `troupe_egress_requests_total` by outcome.

use crate::metric_definitions::EGRESS_REQUESTS;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use troupe_store::Config;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("NODE_EXTRA_CA_CERTS ({path}): {message}")]
    ExtraCa { path: String, message: String },
    #[error("AP_SSRF_ALLOW_LIST: {0:?} is not an IP address or a CIDR range")]
    AllowList(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why an address may not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "SSRF protection: {host} is {address}, a {kind} address; Troupe does not send requests there unless AP_SSRF_ALLOW_LIST allows it"
)]
pub struct Blocked {
    pub host: String,
    pub address: IpAddr,
    pub kind: &'static str,
}

/// Which addresses steps may reach.
#[derive(Debug, Clone, Default)]
pub struct SsrfPolicy {
    enabled: bool,
    allow: Vec<IpNet>,
}

impl SsrfPolicy {
    pub fn new(enabled: bool, allow_list: &str) -> Result<SsrfPolicy, EgressError> {
        let allow = allow_list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| EgressError::AllowList(s.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(SsrfPolicy { enabled, allow })
    }

    /// `Err` when `address` (reached as `host`) is off limits.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Blocked> {
        if !self.enabled || self.allow.iter().any(|n| n.contains(&address)) {
            return Ok(());
        }
        match internal_kind(address) {
            Some(kind) => Err(Blocked { host: host.to_string(), address, kind }),
            None => Ok(()),
        }
    }

    /// Checks a URL whose host is an address (names are checked when they are resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Blocked> {
        let address = match url.host() {
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
            _ => return Ok(()),
        };
        self.check(url.host_str().unwrap_or_default(), address)
    }
}

/// What kind of internal address `a` is, if it is one.
fn internal_kind(a: IpAddr) -> Option<&'static str> {
    let a = match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    };
    match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata)")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("carrier-grade NAT")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
    }
}

/// Resolves names, then keeps only the addresses the policy allows.
struct CheckingResolver(Arc<SsrfPolicy>);

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(b) => {
                        blocked.get_or_insert(b);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), blocked) {
                (true, Some(b)) => Err(Box::new(b) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The client and its policy.
pub struct Egress {
    client: reqwest::Client,
    /// The same, answering 3xx as they are (`redirect: 'manual'`, the http piece's
    /// `followRedirects` off).
    manual: reqwest::Client,
    config: Config,
    /// For Troupe's own API only (a piece calling back with `server.token`): no SSRF policy,
    /// no proxy, since Troupe's address is usually loopback or private.
    own: reqwest::Client,
    policy: Arc<SsrfPolicy>,
    max_response_bytes: usize,
}

impl Egress {
    pub fn new(config: &Config) -> Result<Egress, EgressError> {
        let policy = Arc::new(SsrfPolicy::new(config.ssrf_protection, &config.ssrf_allow_list)?);
        let own = reqwest::Client::builder().timeout(config.flow_timeout).no_proxy().build()?;
        Ok(Egress {
            client: Self::builder(config, &policy, true)?.build()?,
            manual: Self::builder(config, &policy, false)?.build()?,
            config: config.clone(),
            own,
            policy,
            max_response_bytes: (config.max_file_size_mb as usize) << 20,
        })
    }

    /// A client under the policy: names resolved through it, every redirect checked (or none
    /// followed), the extra CAs trusted.
    fn builder(config: &Config, policy: &Arc<SsrfPolicy>, follow: bool) -> Result<reqwest::ClientBuilder, EgressError> {
        let redirects = policy.clone();
        let redirect = if follow {
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("more than 10 redirects");
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(b) => attempt.error(b),
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .timeout(config.flow_timeout)
            .dns_resolver(Arc::new(CheckingResolver(policy.clone())))
            .redirect(redirect);
        if let Some(path) = &config.extra_ca_certs {
            let fail = |message: String| EgressError::ExtraCa { path: path.display().to_string(), message };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(e.to_string()))?;
            if certs.is_empty() {
                return Err(fail("no certificate in the file".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(builder)
    }

    /// Sends `req` as [`Egress::send`] does, answering 3xx as they are unless `follow`, and
    /// through `proxy` (an `http://[user:pass@]host:port` URL, itself under the policy) when
    /// given.
    pub async fn send_with(
        &self,
        req: reqwest::RequestBuilder,
        follow: bool,
        proxy: Option<&str>,
    ) -> Result<Response, EgressFailure> {
        let req = req.build().map_err(|e| EgressFailure::Failed(crate::with_causes(&e)))?;
        if let Err(b) = self.policy.check_url(req.url()) {
            EGRESS_REQUESTS.with_label_values(&["blocked"]).inc();
            return Err(EgressFailure::Blocked(b));
        }
        let Some(proxy) = proxy else {
            let client = if follow { &self.client } else { &self.manual };
            return self.read(client.execute(req).await).await;
        };
        let bad = |e: &dyn std::fmt::Display| EgressFailure::Failed(format!("proxy {proxy:?}: {e}"));
        let proxy_url = reqwest::Url::parse(proxy).map_err(|e| bad(&e))?;
        self.policy.check_url(&proxy_url).map_err(EgressFailure::Blocked)?;
        let client = Self::builder(&self.config, &self.policy, follow)
            .map_err(|e| bad(&e))?
            .proxy(reqwest::Proxy::all(proxy_url).map_err(|e| bad(&e))?)
            .build()
            .map_err(|e| bad(&e))?;
        self.read(client.execute(req).await).await
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `req` under the policy and reads the whole response, up to the size cap.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Response, EgressFailure> {
        let req = req.build().map_err(|e| EgressFailure::Failed(crate::with_causes(&e)))?;
        if let Err(b) = self.policy.check_url(req.url()) {
            EGRESS_REQUESTS.with_label_values(&["blocked"]).inc();
            return Err(EgressFailure::Blocked(b));
        }
        self.read(self.client.execute(req).await).await
    }

    /// Sends a request to Troupe's own API (built with the `own` client), outside the policy.
    async fn send_own(&self, req: reqwest::RequestBuilder) -> Result<Response, EgressFailure> {
        let req = req.build().map_err(|e| EgressFailure::Failed(crate::with_causes(&e)))?;
        self.read(self.own.execute(req).await).await
    }

    /// Reads a response whole, up to the size cap.
    async fn read(&self, result: reqwest::Result<reqwest::Response>) -> Result<Response, EgressFailure> {
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                let blocked = find_blocked(&e);
                EGRESS_REQUESTS.with_label_values(&[if blocked.is_some() { "blocked" } else { "error" }]).inc();
                return Err(blocked
                    .map(EgressFailure::Blocked)
                    .unwrap_or_else(|| EgressFailure::Failed(crate::with_causes(&e))));
            }
        };
        let (status, headers) = (resp.status(), resp.headers().clone());
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > self.max_response_bytes {
                        EGRESS_REQUESTS.with_label_values(&["too_large"]).inc();
                        return Err(EgressFailure::TooLarge(self.max_response_bytes));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    EGRESS_REQUESTS.with_label_values(&["error"]).inc();
                    return Err(EgressFailure::Failed(crate::with_causes(&e)));
                }
            }
        }
        EGRESS_REQUESTS.with_label_values(&["ok"]).inc();
        Ok(Response { status, headers, body })
    }
}

/// Answers a sandboxed code step's `fetch` (`{"op":"fetch","url","method","headers","body"}`)
/// through `egress`, on the calling (blocking) thread, until `deadline`: `{"ok":true,"status",
/// "statusText","headers","body"}` or `{"ok":false,"error"}`.
pub fn fetch_handler(egress: Arc<Egress>, deadline: std::time::Instant) -> troupe_sandbox::HostHandler {
    fetch_handler_for(egress, deadline, None)
}

/// [`fetch_handler`]; requests under `own_api` (Troupe's own `/api/`, where pieces call back
/// with their engine token) skip the SSRF policy and the proxy.
pub fn fetch_handler_for(
    egress: Arc<Egress>,
    deadline: std::time::Instant,
    own_api: Option<String>,
) -> troupe_sandbox::HostHandler {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |request: &[u8]| {
        let reply = match serde_json::from_slice::<serde_json::Value>(request) {
            Ok(r) if r["op"] == "fetch" => {
                let own = own_api.as_deref().is_some_and(|base| r["url"].as_str().is_some_and(|u| u.starts_with(base)));
                runtime.block_on(fetch(&egress, &r, deadline, own))
            }
            Ok(r) => serde_json::json!({"ok": false, "error": format!("unknown host call {}", r["op"])}),
            Err(e) => serde_json::json!({"ok": false, "error": format!("unreadable host call: {e}")}),
        };
        serde_json::to_vec(&reply).expect("a reply serializes")
    })
}

async fn fetch(egress: &Egress, r: &serde_json::Value, deadline: std::time::Instant, own: bool) -> serde_json::Value {
    use serde_json::json;
    let method = r["method"].as_str().unwrap_or("GET");
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return json!({"ok": false, "error": format!("{method:?} is not an HTTP method")});
    };
    let url = r["url"].as_str().unwrap_or_default();
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let client = if own { &egress.own } else { egress.client() };
    let mut req = client.request(method, url).timeout(left);
    if let Some(headers) = r["headers"].as_object() {
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    if let Some(body) = r["body"].as_str() {
        req = req.body(body.to_string());
    } else if let Some(b64) = r["bodyBase64"].as_str() {
        use base64::Engine as _;
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(bytes) => req = req.body(bytes),
            Err(e) => return json!({"ok": false, "error": format!("the request body is not base64: {e}")}),
        }
    }
    // the Node layer of pieces asks for bytes; a code step's fetch for text
    let binary = r["binary"] == true;
    // `redirect: 'manual'` (Node's http module, fetch callers that ask) answers a 3xx as it is
    let sent = if own {
        egress.send_own(req).await
    } else if r["redirect"] == "manual" {
        egress.send_with(req, false, None).await
    } else {
        egress.send(req).await
    };
    match sent {
        Ok(resp) => {
            let mut reply = json!({
                "ok": true,
                "status": resp.status.as_u16(),
                "statusText": resp.status.canonical_reason().unwrap_or_default(),
                "headers": resp.headers_json(),
            });
            reply[if binary { "bodyBase64" } else { "body" }] = if binary {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&resp.body).into()
            } else {
                String::from_utf8_lossy(&resp.body).into()
            };
            reply
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// A response read whole.
pub struct Response {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The headers as a JSON object of strings (what steps see).
    pub fn headers_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned().into()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EgressFailure {
    #[error(transparent)]
    Blocked(Blocked),
    #[error("the response is larger than {} MiB (AP_MAX_FILE_SIZE_MB)", .0 >> 20)]
    TooLarge(usize),
    #[error("{0}")]
    Failed(String),
}

/// The SSRF refusal inside a client error (from the resolver or a redirect), if that is why.
fn find_blocked(e: &(dyn std::error::Error + 'static)) -> Option<Blocked> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(b) = err.downcast_ref::<Blocked>() {
            return Some(b.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let p = SsrfPolicy::new(true, "").unwrap();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(p.check("h", a.parse().unwrap()).is_err(), "{a} should be refused");
        }
        for a in ["93.184.215.14", "2606:4700::1111", "8.8.8.8"] {
            assert!(p.check("h", a.parse().unwrap()).is_ok(), "{a} should be allowed");
        }
        let msg = p.check("metadata", "169.254.169.254".parse().unwrap()).unwrap_err().to_string();
        assert!(msg.contains("169.254.169.254, a link-local (cloud metadata) address"), "{msg}");
        let allowed = SsrfPolicy::new(true, "127.0.0.1, 10.0.0.0/8").unwrap();
        assert!(allowed.check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowed.check("h", "10.9.9.9".parse().unwrap()).is_ok());
        assert!(allowed.check("h", "192.168.0.1".parse().unwrap()).is_err());
        assert!(SsrfPolicy::new(false, "").unwrap().check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(matches!(SsrfPolicy::new(true, "localhost"), Err(EgressError::AllowList(_))));
    }
}
