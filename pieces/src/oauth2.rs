//! OAuth2 for connections, as Activepieces does it for a piece whose auth is `OAUTH2`: the
//! authorization URL a client sends the user to (with PKCE when the piece asks for it), the
//! exchange of the code for tokens, and their refresh. Token requests go out through the
//! [`Egress`] like any step's.

use crate::egress::Egress;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the token endpoint {url} answered {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("the token endpoint {url} could not be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the token endpoint {url} answered without an access_token")]
    NoToken { url: String },
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The URL that asks the user to authorize `client_id` for `auth` (a piece's `OAUTH2` auth
/// prop: `authUrl`, `scope`, `pkce`, `extra`), and the PKCE verifier to send with the code.
pub fn authorization_url(auth: &Value, client_id: &str, redirect_url: &str, state: &str) -> (String, Option<String>) {
    let mut url = url::Url::parse(auth["authUrl"].as_str().unwrap_or_default())
        .unwrap_or_else(|_| url::Url::parse("http://invalid.invalid/").expect("a URL"));
    let scope: Vec<&str> = auth["scope"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let verifier = (auth["pkce"] == true).then(|| {
        let bytes: [u8; 32] = rand_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    });
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_url)
            .append_pair("access_type", "offline")
            .append_pair("state", state)
            .append_pair("prompt", "consent");
        if !scope.is_empty() {
            q.append_pair("scope", &scope.join(" "));
        }
        if let Some(v) = &verifier {
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()));
            q.append_pair("code_challenge", &challenge).append_pair("code_challenge_method", "S256");
        }
        for (k, v) in auth["extra"].as_object().into_iter().flatten() {
            q.append_pair(k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).as_str());
        }
    }
    (url.to_string(), verifier)
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

/// Exchanges an authorization code: `value` is what the client sent (`code`, `client_id`,
/// `client_secret`, `redirect_url`, `code_verifier`, `props`); the answer is the connection
/// value Activepieces stores (tokens, when they were claimed, the token URL and client).
pub async fn exchange_code(egress: &Egress, token_url: &str, value: &Map<String, Value>) -> Result<Value, OAuthError> {
    let s = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", s("code")),
        ("redirect_uri", s("redirect_url")),
        ("client_id", s("client_id")),
        ("client_secret", s("client_secret")),
    ];
    if !s("code_verifier").is_empty() {
        form.push(("code_verifier", s("code_verifier")));
    }
    let tokens = token_request(egress, token_url, &form).await?;
    let mut out = connection_value(&tokens, token_url);
    for k in ["client_id", "client_secret", "redirect_url", "props"] {
        if let Some(v) = value.get(k) {
            out[k] = v.clone();
        }
    }
    Ok(out)
}

/// Refreshes the tokens of a stored OAuth2 connection `value`; the answer is the new value
/// (the refresh token kept when the server does not send a new one).
pub async fn refresh(egress: &Egress, value: &Value) -> Result<Value, OAuthError> {
    let s = |k: &str| value[k].as_str().unwrap_or_default().to_string();
    let token_url = s("token_url");
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", s("refresh_token")),
        ("client_id", s("client_id")),
        ("client_secret", s("client_secret")),
    ];
    let tokens = token_request(egress, &token_url, &form).await?;
    let mut out = value.clone();
    let fresh = connection_value(&tokens, &token_url);
    for (k, v) in fresh.as_object().expect("an object") {
        if k == "refresh_token" && v.is_null() {
            continue;
        }
        out[k] = v.clone();
    }
    Ok(out)
}

/// Whether a stored OAuth2 value expires within `margin_secs` (and can be refreshed).
pub fn expiring(value: &Value, margin_secs: u64) -> bool {
    let (Some(claimed), Some(expires)) = (value["claimed_at"].as_u64(), value["expires_in"].as_u64()) else {
        return false;
    };
    value["refresh_token"].as_str().is_some_and(|t| !t.is_empty()) && claimed + expires <= now_secs() + margin_secs
}

fn connection_value(tokens: &Value, token_url: &str) -> Value {
    json!({
        "type": "OAUTH2",
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "token_type": tokens["token_type"],
        "expires_in": tokens["expires_in"],
        "scope": tokens["scope"],
        "claimed_at": now_secs(),
        "token_url": token_url,
        "data": tokens,
    })
}

async fn token_request(egress: &Egress, url: &str, form: &[(&str, String)]) -> Result<Value, OAuthError> {
    let req = egress.client().post(url).header("accept", "application/json").form(form);
    let resp =
        egress.send(req).await.map_err(|e| OAuthError::Unreachable { url: url.to_string(), message: e.to_string() })?;
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    if !resp.status.is_success() {
        return Err(OAuthError::Refused { url: url.to_string(), status: resp.status.as_u16(), body });
    }
    let tokens: Value = serde_json::from_str(&body).unwrap_or_else(|_| {
        // some servers answer a form
        Value::Object(
            url::form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
                .collect(),
        )
    });
    if tokens["access_token"].as_str().is_none_or(str::is_empty) {
        return Err(OAuthError::NoToken { url: url.to_string() });
    }
    Ok(tokens)
}
