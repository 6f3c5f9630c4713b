//! App connections (credentials a flow uses) and their encryption at rest.
//!
//! Values are encrypted with AES-256-GCM under the key from `AP_ENCRYPTION_KEY`, a fresh 96-bit
//! nonce per value; only `nonce ‖ ciphertext ‖ tag` (base64) reaches sled. The key is either
//! 64 hex characters (a 256-bit key), or 32 characters used as the 32 bytes of the key, as
//! Activepieces does with its 32-hex-character keys. A check value encrypted at first start
//! makes a wrong key fail at start instead of yielding garbage.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `SECRET_TEXT`, `BASIC_AUTH`, `CUSTOM_AUTH`, `OAUTH2`, `NO_AUTH`, as in `@activepieces/shared`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionType {
    SecretText,
    BasicAuth,
    CustomAuth,
    #[serde(rename = "OAUTH2")]
    OAuth2,
    /// A connection that carries nothing (a piece whose auth is optional).
    NoAuth,
}

impl ConnectionType {
    /// Checks a connection value's shape; the error names the missing field.
    pub fn check_value(self, value: &Value) -> Result<(), ConnectionValueError> {
        let obj = value.as_object().ok_or(ConnectionValueError::NotAnObject)?;
        let need_str = |field: &'static str| match obj.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(()),
            _ => Err(ConnectionValueError::MissingField { field, kind: self }),
        };
        match self {
            ConnectionType::SecretText => need_str("secret_text"),
            ConnectionType::BasicAuth => need_str("username").and(need_str("password")),
            ConnectionType::CustomAuth => match obj.get("props") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(ConnectionValueError::MissingProps),
            },
            ConnectionType::OAuth2 => need_str("access_token"),
            ConnectionType::NoAuth => Ok(()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::SecretText => "SECRET_TEXT",
            ConnectionType::BasicAuth => "BASIC_AUTH",
            ConnectionType::CustomAuth => "CUSTOM_AUTH",
            ConnectionType::OAuth2 => "OAUTH2",
            ConnectionType::NoAuth => "NO_AUTH",
        }
    }

    /// What `{{connections['name']}}` resolves to, as the Activepieces engine hands it to
    /// pieces: the secret text itself, the props of a custom auth, or the whole value.
    pub fn resolved(self, value: &Value) -> Value {
        match self {
            ConnectionType::SecretText => value.get("secret_text").cloned().unwrap_or(Value::Null),
            ConnectionType::CustomAuth => value.get("props").cloned().unwrap_or(Value::Null),
            ConnectionType::BasicAuth | ConnectionType::OAuth2 | ConnectionType::NoAuth => {
                let mut v = value.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("type");
                }
                v
            }
        }
    }
}

/// What a connection value lacks for its type.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionValueError {
    #[error("value must be an object")]
    NotAnObject,
    #[error("value.{field} is required for {} connections", .kind.as_str())]
    MissingField { field: &'static str, kind: ConnectionType },
    #[error("value.props (an object) is required for CUSTOM_AUTH connections")]
    MissingProps,
}

/// A connection as stored: metadata in clear, the value sealed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub external_id: String,
    pub display_name: String,
    pub piece_name: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub kind: ConnectionType,
    pub status: String,
    pub created_micros: u64,
    /// base64 of `nonce ‖ AES-256-GCM ciphertext`; never leaves the store in clear.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sealed_value: String,
    /// The piece version the client made it for (Activepieces' `pieceVersion`).
    #[serde(default)]
    pub piece_version: String,
}

impl Connection {
    /// The metadata the API shows: everything but the value.
    pub fn public(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("serializes");
        if let Some(m) = v.as_object_mut() {
            m.remove("sealedValue");
            m.remove("createdMicros");
            m.insert("scope".into(), Value::String("PROJECT".into()));
            // the rest of Activepieces' shape
            m.insert("projectIds".into(), Value::Array(vec![Value::String(self.project_id.clone())]));
            m.insert("preSelectForNewProjects".into(), Value::Bool(false));
            m.insert("usingSecretManager".into(), Value::Bool(false));
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("AP_ENCRYPTION_KEY must be 32 characters (as in Activepieces) or 64 hex characters (a 256-bit key); got {0} characters")]
    Format(usize),
    #[error("AP_ENCRYPTION_KEY is not the key this data was encrypted with; start with the original key (connections cannot be decrypted otherwise)")]
    Wrong,
    #[error("a sealed value is damaged: {0}")]
    Damaged(String),
}

/// The encryption key, ready to seal and open values.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(**REDACTED**)")
    }
}

impl Cipher {
    pub fn from_key(key: &str) -> Result<Cipher, KeyError> {
        let key = key.trim();
        let bytes: Vec<u8> = match key.len() {
            64 => hex::decode(key).map_err(|_| KeyError::Format(key.len()))?,
            32 => key.as_bytes().to_vec(),
            n => return Err(KeyError::Format(n)),
        };
        Ok(Cipher(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))))
    }

    /// A new random key, 64 hex characters.
    pub fn generate_key() -> String {
        hex::encode(Aes256Gcm::generate_key(OsRng))
    }

    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(self.0.encrypt(&nonce, plain).expect("AES-GCM encryption does not fail"));
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let raw =
            base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|e| KeyError::Damaged(e.to_string()))?;
        if raw.len() < 12 {
            return Err(KeyError::Damaged("too short".into()));
        }
        let (nonce, data) = raw.split_at(12);
        self.0.decrypt(Nonce::from_slice(nonce), data).map_err(|_| KeyError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_uses_fresh_nonces_and_refuses_another_key() {
        let c = Cipher::from_key(&Cipher::generate_key()).unwrap();
        let a = c.seal(b"hunter2");
        let b = c.seal(b"hunter2");
        assert_ne!(a, b);
        assert!(!a.contains("hunter2"));
        assert_eq!(c.open(&a).unwrap(), b"hunter2");
        let other = Cipher::from_key("0123456789abcdef0123456789abcdef").unwrap();
        assert!(matches!(other.open(&a), Err(KeyError::Wrong)));
        assert!(matches!(Cipher::from_key("short"), Err(KeyError::Format(5))));
    }

    #[test]
    fn values_are_checked_and_resolved_by_type() {
        let v = serde_json::json!({"type": "SECRET_TEXT", "secret_text": "s3"});
        assert!(ConnectionType::SecretText.check_value(&v).is_ok());
        assert_eq!(ConnectionType::SecretText.resolved(&v), "s3");
        let basic = serde_json::json!({"type": "BASIC_AUTH", "username": "u"});
        assert!(ConnectionType::BasicAuth.check_value(&basic).unwrap_err().to_string().contains("password"));
        let custom = serde_json::json!({"type": "CUSTOM_AUTH", "props": {"k": 1}});
        assert_eq!(ConnectionType::CustomAuth.resolved(&custom), serde_json::json!({"k": 1}));
    }
}
