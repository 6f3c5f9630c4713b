//! Secret redaction: the values of the connections a run resolved stay in its memory only, and
//! everything it writes (journal records, logs, the response, the failed step's message, retry
//! log lines) passes through [`Secrets::redact`] first.

use serde_json::Value;
use troupe_store::connection::ConnectionType;

pub const REDACTED: &str = "**REDACTED**";

/// The secret values a run has seen, longest first (so that a secret inside another is not
/// half-redacted).
#[derive(Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Adds the secret parts of a connection value of `kind`.
    pub fn add_connection(&mut self, kind: ConnectionType, value: &Value) {
        for s in secrets_of(kind, value) {
            if !self.0.contains(&s) {
                self.0.push(s);
            }
        }
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every secret inside the strings of `v`.
    pub fn redact(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.redact_str(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.redact(x)),
            _ => {}
        }
    }

    pub fn redact_str(&self, s: &mut String) {
        for secret in &self.0 {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), REDACTED);
            }
        }
    }
}

/// The parts of a connection value that are secret (and the forms they travel in).
fn secrets_of(kind: ConnectionType, value: &Value) -> Vec<String> {
    use ConnectionType as T;
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(String::from);
    let mut out: Vec<String> = match kind {
        T::SecretText => text("secret_text").into_iter().collect(),
        T::BasicAuth => {
            let user = text("username").unwrap_or_default();
            let pass = text("password").unwrap_or_default();
            use base64::Engine as _;
            vec![base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")), pass]
        }
        T::OAuth2 => {
            ["access_token", "refresh_token", "client_secret", "id_token"].iter().filter_map(|k| text(k)).collect()
        }
        T::NoAuth => Vec::new(),
        T::CustomAuth => {
            fn leaves(v: &Value, out: &mut Vec<String>) {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
                    Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
                    _ => {}
                }
            }
            let mut out = Vec::new();
            leaves(value.get("props").unwrap_or(&Value::Null), &mut out);
            out
        }
    };
    // very short values would redact ordinary words; they are not secrets worth the name
    out.retain(|s| s.len() >= 4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn basic_auth_redacts_the_password_and_the_header_form() {
        let mut s = Secrets::default();
        s.add_connection(ConnectionType::BasicAuth, &json!({"username": "ada", "password": "hunter22"}));
        let mut v = json!({"h": "Basic YWRhOmh1bnRlcjIy", "list": ["pw=hunter22"], "n": 1});
        s.redact(&mut v);
        assert_eq!(v, json!({"h": "Basic **REDACTED**", "list": ["pw=**REDACTED**"], "n": 1}));
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        let mut s = Secrets::default();
        s.add_connection(ConnectionType::SecretText, &json!({"secret_text": "abc"}));
        assert!(s.is_empty());
    }
}
