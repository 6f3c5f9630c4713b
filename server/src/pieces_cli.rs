//! `troupe pieces add <name>[@<version>]`: installs a piece through the running Troupe's API,
//! as `POST /api/v1/pieces` does, so that the piece lands where every process of the cluster
//! sees it. The API key is `AP_API_KEY`, else the one saved in `$AP_CONFIG_PATH/api-key`.

use anyhow::{bail, Context};
use troupe_store::Config;

/// Splits `name@version` (`@scope/name@version` keeps its leading `@`); no version means the
/// latest.
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.char_indices().skip(1).find(|(_, c)| *c == '@') {
        Some((i, _)) => (&spec[..i], &spec[i + 1..]),
        None => (spec, "latest"),
    }
}

pub async fn add(config: &Config, spec: &str) -> anyhow::Result<()> {
    let (name, version) = split_spec(spec);
    let key = match &config.api_key {
        Some(k) => k.clone(),
        None => std::fs::read_to_string(config.config_path.join("api-key"))
            .map(|k| k.trim().to_string())
            .context("no API key: set AP_API_KEY, or run this where $AP_CONFIG_PATH/api-key is")?,
    };
    let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{}/api/v1/pieces", config.port);
    let body =
        serde_json::json!({"pieceName": name, "pieceVersion": version, "packageType": "REGISTRY", "scope": "PLATFORM"});
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build()?;
    let resp = client.post(&url).bearer_auth(key).json(&body).send().await.with_context(|| {
        format!("Troupe does not answer at {url}: start it with `troupe serve` (or set AP_PORT to where it listens)")
    })?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", answer["message"].as_str().unwrap_or(status.as_str()));
    }
    let packages = answer["packages"].as_u64().unwrap_or(1);
    println!(
        "installed {}@{} ({packages} package{})",
        answer["name"].as_str().unwrap_or(name),
        answer["version"].as_str().unwrap_or(version),
        if packages == 1 { "" } else { "s" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_spec;

    #[test]
    fn specs_split_at_the_version_not_the_scope() {
        assert_eq!(split_spec("@activepieces/piece-slack@0.17.9"), ("@activepieces/piece-slack", "0.17.9"));
        assert_eq!(split_spec("@activepieces/piece-slack"), ("@activepieces/piece-slack", "latest"));
        assert_eq!(split_spec("left-pad@^1"), ("left-pad", "^1"));
    }
}
