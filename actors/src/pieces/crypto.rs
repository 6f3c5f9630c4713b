//! `@activepieces/piece-crypto`: `hash-text`, `hmac-signature`, `base64-encode`,
//! `base64-decode` and `generate-password`, as the package computes them with Node's `crypto`
//! and `Buffer` (lenient decoding included). Its `rsa-signature` and `openpgpEncrypt` are not
//! native (docs/compatibility.md).

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult};
use base64::Engine;
use hmac::Mac;
use rand::Rng;
use serde_json::{json, Map, Value};
use sha2::Digest;

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = match action {
        "hash-text" => {
            let text = required_text(input, "text")?;
            let method = required_text(input, "method")?.to_ascii_lowercase();
            let digest = match method.as_str() {
                "md5" => md5::Md5::digest(text.as_bytes()).to_vec(),
                "sha256" => sha2::Sha256::digest(text.as_bytes()).to_vec(),
                "sha512" => sha2::Sha512::digest(text.as_bytes()).to_vec(),
                "sha3-512" => sha3::Sha3_512::digest(text.as_bytes()).to_vec(),
                _ => return Err("Digest method not supported".into()),
            };
            hex::encode(digest)
        }
        "hmac-signature" => {
            let secret = required_text(input, "secretKey")?;
            let key = match text(input, "secretKeyEncoding").as_deref() {
                Some("hex") => lenient_hex(&secret),
                Some("base64") => lenient_base64(&secret),
                _ => secret.into_bytes(),
            };
            let message = required_text(input, "text")?;
            let signature = match required_text(input, "method")?.to_ascii_lowercase().as_str() {
                "md5" => hmac_of::<hmac::Hmac<md5::Md5>>(&key, &message),
                "sha256" => hmac_of::<hmac::Hmac<sha2::Sha256>>(&key, &message),
                "sha512" => hmac_of::<hmac::Hmac<sha2::Sha512>>(&key, &message),
                _ => return Err("Invalid digest".into()),
            };
            match text(input, "outputEncoding").as_deref() {
                Some("base64") => base64::engine::general_purpose::STANDARD.encode(signature),
                _ => hex::encode(signature),
            }
        }
        "base64-encode" => base64::engine::general_purpose::STANDARD.encode(required_text(input, "text")?),
        "base64-decode" => String::from_utf8_lossy(&lenient_base64(&required_text(input, "text")?)).into_owned(),
        "generate-password" => {
            let length = input.get("length").and_then(Value::as_f64).filter(|n| *n <= 256.0);
            let Some(length) = length else {
                let errors = json!({"errors": {"length": "Too big: expected number to be <=256"}});
                return Err(serde_json::to_string_pretty(&errors).expect("json").into());
            };
            const ALPHANUMERIC: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            const SYMBOLS: &str = "!@#$%^&*()_+~`|}{[]:;?><,./-=";
            let alphanumeric = text(input, "characterSet").is_none_or(|c| c == "alphanumeric");
            let charset: Vec<char> = if alphanumeric {
                ALPHANUMERIC.chars().collect()
            } else {
                ALPHANUMERIC.chars().chain(SYMBOLS.chars()).collect()
            };
            let mut rng = rand::rng();
            (0..length.max(0.0).ceil() as usize).map(|_| charset[rng.random_range(0..charset.len())]).collect()
        }
        other => return Err(unknown_action(catalog::CRYPTO, other)),
    };
    Ok(ActionResult::output(Value::String(out)))
}

fn hmac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `Buffer.from(text, 'hex')`: pairs of hex digits up to the first that is not one.
fn lenient_hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks_exact(2)
        .map_while(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// `Buffer.from(text, 'base64')`: both alphabets, characters outside them skipped, up to the
/// first `=`; a trailing partial byte dropped.
pub(crate) fn lenient_base64(text: &str) -> Vec<u8> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes().take_while(|c| *c != b'=') {
        let Some(v) = sextet(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(action: &str, input: Value) -> String {
        execute(action, input.as_object().unwrap()).unwrap().output.as_str().unwrap().to_string()
    }

    #[test]
    fn hashes_signatures_and_base64_as_node() {
        assert_eq!(run("hash-text", json!({"method": "md5", "text": "hello"})), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            run(
                "hmac-signature",
                json!({"secretKey": "6b6579", "secretKeyEncoding": "hex", "method": "sha256", "text": "x"})
            ),
            run(
                "hmac-signature",
                json!({"secretKey": "key", "secretKeyEncoding": "utf-8", "method": "sha256", "text": "x"})
            ),
        );
        assert_eq!(run("base64-encode", json!({"text": "hello"})), "aGVsbG8=");
        assert_eq!(run("base64-decode", json!({"text": "aGVs bG8"})), "hello", "Node skips what is not base64");
        assert_eq!(run("generate-password", json!({"length": 12, "characterSet": "alphanumeric"})).len(), 12);
        assert!(execute("generate-password", json!({"length": 300}).as_object().unwrap()).is_err());
    }
}
