//! Configuration: every limit and its default, read once from the environment.
//!
//! Names follow Activepieces where the meaning is the same (`AP_FLOW_TIMEOUT_SECONDS`, ...).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub config_path: PathBuf,
    pub port: u16,
    pub frontend_url: Option<String>,
    pub nats_url: Option<String>,
    /// `AP_NATS_CREDS`: a NATS `.creds` file (JWT and seed) to connect to an external cluster.
    pub nats_creds: Option<PathBuf>,
    /// `AP_NATS_USER` and `AP_NATS_PASSWORD`: a user of an external cluster.
    pub nats_user: Option<(String, String)>,
    /// `AP_ADMIN_EMAIL` and `AP_ADMIN_PASSWORD`: the platform's first admin user, made at
    /// start when no user has that email.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub shards: u16,
    pub flow_timeout: Duration,
    pub webhook_timeout: Duration,
    pub max_file_size_mb: u64,
    pub paused_flow_timeout_days: u64,
    pub execution_data_retention_days: u64,
    /// `AP_TRIGGER_DEFAULT_POLL_INTERVAL`, in minutes (fractions allowed).
    pub trigger_default_poll_interval: Duration,
    pub max_concurrent_jobs_per_project: usize,
    pub sandbox_memory_limit_mb: u64,
    /// Wasm instructions one sandbox execution may run (`AP_SANDBOX_FUEL`): a guard behind the
    /// deadline against tight loops.
    pub sandbox_fuel: u64,
    /// Sandbox executions at once (`AP_SANDBOX_CONCURRENCY`); more wait for a slot.
    pub sandbox_concurrency: usize,
    /// Compiled sandbox modules (`AP_SANDBOX_CACHE_DIR`, default `$AP_CONFIG_PATH/sandbox-cache`).
    pub sandbox_cache_dir: PathBuf,
    pub api_key: Option<String>,
    pub encryption_key: Option<String>,
    pub container_type: ContainerType,
    /// True when `AP_CONTAINER_TYPE` is set: the process joins a cluster (shard leases, state
    /// replicated through JetStream). Unset, one process owns everything (the embedded default).
    pub cluster: bool,
    /// `AP_NATS_REPLICAS`: replicas of Troupe's streams and buckets (3 on a 3-node NATS cluster).
    pub nats_replicas: usize,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest webhook body accepted (5 MB, as Activepieces).
    pub webhook_body_limit: usize,
    /// Largest API request body accepted.
    pub api_body_limit: usize,
    /// Store keys up to this many characters.
    pub store_key_max_chars: usize,
    /// Store values up to this many bytes of JSON.
    pub store_value_max_bytes: usize,
    /// JetStream webhook stream size cap.
    pub webhook_stream_max_bytes: i64,
    /// The npm registry pieces install from (`NPM_CONFIG_REGISTRY`, npm's own name; default
    /// the public registry): a mirror, or a test's fake.
    pub npm_registry: String,
    /// `AP_SSRF_PROTECTION_ENABLED` (default true): steps may not reach internal addresses.
    pub ssrf_protection: bool,
    /// `AP_SSRF_ALLOW_LIST`: IPs and CIDR ranges steps may reach all the same, comma separated.
    pub ssrf_allow_list: String,
    /// `NODE_EXTRA_CA_CERTS` (Node's name): a PEM file of CAs steps' HTTPS also trusts.
    pub extra_ca_certs: Option<PathBuf>,
    /// `AP_NATIVE_PIECES`: the core pieces Troupe runs natively, comma separated (package
    /// names, `@activepieces/piece-delay`, or short ones, `delay`). `None` (unset, or `all`):
    /// every native piece; empty: none. A core piece left out runs from its npm package instead.
    pub native_pieces: Option<Vec<String>>,
    /// Where fetched package documents and tarballs are cached (`NPM_CONFIG_CACHE`, default
    /// `$AP_CONFIG_PATH/npm-cache`).
    pub npm_cache_dir: PathBuf,
    /// `AP_ENABLE_FLOW_ON_PUBLISH` (default true): publishing enables the flow.
    pub enable_flow_on_publish: bool,
    /// `AP_TRIGGER_TIMEOUT_SECONDS` (default 60): how long one call of a trigger's hook (a
    /// poll, onEnable, onDisable, a handshake) may take.
    pub trigger_timeout: Duration,
    /// `AP_TRIGGER_FAILURE_THRESHOLD`: polls failing in a row before the flow is disabled
    /// (default 5; Activepieces' is 576, two days of 5-minute polls).
    pub trigger_failure_threshold: u32,
    /// `AP_MAX_FLOW_RUN_LOG_SIZE_MB` (default 10): a run whose journal grows past this ends
    /// `LOG_SIZE_EXCEEDED`.
    pub max_run_log_bytes: usize,
    /// `AP_APP_WEBHOOK_SECRETS`: the signing secrets of app webhooks, by piece, as
    /// Activepieces (`{"@activepieces/piece-slack": {"webhookSecret": "..."}}`).
    pub app_webhook_secrets: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerType {
    /// Gateway, scheduler and workers in one process: the embedded default.
    WorkerAndApp,
    App,
    Worker,
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    /// Where this Troupe is reachable from outside: `AP_FRONTEND_URL` without its trailing
    /// slash, else loopback on `AP_PORT`.
    pub fn public_url(&self) -> String {
        match &self.frontend_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// True when `piece` (a package name) runs natively: it is one of Troupe's native pieces
    /// and `AP_NATIVE_PIECES` does not leave it out.
    pub fn runs_natively(&self, piece: &str) -> bool {
        self.native_pieces.as_ref().is_none_or(|list| list.iter().any(|p| p == piece))
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        fn num<T: std::str::FromStr>(name: &'static str, raw: Option<String>, default: T) -> Result<T, ConfigError> {
            match raw {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ConfigError {
                    name,
                    value: v.clone(),
                    reason: "expected a non-negative whole number".into(),
                }),
            }
        }
        let config_path = match get("AP_CONFIG_PATH") {
            Some(p) => PathBuf::from(p),
            None => {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
                home.join(".troupe")
            }
        };
        let container_type = match get("AP_CONTAINER_TYPE").as_deref() {
            None | Some("WORKER_AND_APP") => ContainerType::WorkerAndApp,
            Some("APP") => ContainerType::App,
            Some("WORKER") => ContainerType::Worker,
            Some(other) => {
                return Err(ConfigError {
                    name: "AP_CONTAINER_TYPE",
                    value: other.into(),
                    reason: "expected APP, WORKER or WORKER_AND_APP".into(),
                })
            }
        };
        let shards: u16 = num("AP_SHARDS", get("AP_SHARDS"), 16)?;
        if shards == 0 {
            return Err(ConfigError {
                name: "AP_SHARDS",
                value: "0".into(),
                reason: "at least one shard is needed".into(),
            });
        }
        let sandbox_cache_dir =
            get("AP_SANDBOX_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| config_path.join("sandbox-cache"));
        let npm_cache_dir = get("NPM_CONFIG_CACHE").map(PathBuf::from).unwrap_or_else(|| config_path.join("npm-cache"));
        Ok(Config {
            config_path,
            port: num("AP_PORT", get("AP_PORT"), 8080)?,
            frontend_url: get("AP_FRONTEND_URL"),
            nats_url: get("AP_NATS_URL"),
            nats_creds: get("AP_NATS_CREDS").map(PathBuf::from),
            nats_user: get("AP_NATS_USER").map(|u| (u, lookup("AP_NATS_PASSWORD").unwrap_or_default())),
            admin_email: get("AP_ADMIN_EMAIL"),
            admin_password: get("AP_ADMIN_PASSWORD"),
            shards,
            flow_timeout: Duration::from_secs(num("AP_FLOW_TIMEOUT_SECONDS", get("AP_FLOW_TIMEOUT_SECONDS"), 600)?),
            webhook_timeout: Duration::from_secs(num(
                "AP_WEBHOOK_TIMEOUT_SECONDS",
                get("AP_WEBHOOK_TIMEOUT_SECONDS"),
                30,
            )?),
            max_file_size_mb: num("AP_MAX_FILE_SIZE_MB", get("AP_MAX_FILE_SIZE_MB"), 10)?,
            paused_flow_timeout_days: num("AP_PAUSED_FLOW_TIMEOUT_DAYS", get("AP_PAUSED_FLOW_TIMEOUT_DAYS"), 30)?,
            execution_data_retention_days: num(
                "AP_EXECUTION_DATA_RETENTION_DAYS",
                get("AP_EXECUTION_DATA_RETENTION_DAYS"),
                30,
            )?,
            trigger_default_poll_interval: {
                let minutes: f64 = match get("AP_TRIGGER_DEFAULT_POLL_INTERVAL") {
                    None => 5.0,
                    Some(v) => v.trim().parse().ok().filter(|m: &f64| *m > 0.0).ok_or_else(|| ConfigError {
                        name: "AP_TRIGGER_DEFAULT_POLL_INTERVAL",
                        value: v.clone(),
                        reason: "expected a positive number of minutes".into(),
                    })?,
                };
                Duration::from_secs_f64(minutes * 60.0)
            },
            max_concurrent_jobs_per_project: match get("AP_PROJECT_RATE_LIMITER_ENABLED").as_deref().map(str::trim) {
                Some("false") | Some("0") => usize::MAX,
                _ => match get("AP_MAX_CONCURRENT_JOBS_PER_PROJECT") {
                    Some(v) => num("AP_MAX_CONCURRENT_JOBS_PER_PROJECT", Some(v), 100)?,
                    None => num("AP_DEFAULT_CONCURRENT_JOBS_LIMIT", get("AP_DEFAULT_CONCURRENT_JOBS_LIMIT"), 100)?,
                },
            },
            // Activepieces' AP_SANDBOX_MEMORY_LIMIT is in kilobytes; _MB wins when both are set
            sandbox_memory_limit_mb: match (get("AP_SANDBOX_MEMORY_LIMIT_MB"), get("AP_SANDBOX_MEMORY_LIMIT")) {
                (None, Some(kb)) => num::<u64>("AP_SANDBOX_MEMORY_LIMIT", Some(kb), 0)?.div_ceil(1024).max(1),
                (mb, _) => num("AP_SANDBOX_MEMORY_LIMIT_MB", mb, 128)?,
            },
            sandbox_fuel: num("AP_SANDBOX_FUEL", get("AP_SANDBOX_FUEL"), 1_000_000_000_000)?,
            // Activepieces' worker concurrency names stand in when Troupe's own is not set
            sandbox_concurrency: match get("AP_SANDBOX_CONCURRENCY") {
                Some(v) => num("AP_SANDBOX_CONCURRENCY", Some(v), 64)?,
                None => match get("AP_WORKER_CONCURRENCY") {
                    Some(v) => num("AP_WORKER_CONCURRENCY", Some(v), 64)?,
                    None => num("AP_FLOW_WORKER_CONCURRENCY", get("AP_FLOW_WORKER_CONCURRENCY"), 64)?,
                },
            }
            .max(1),
            sandbox_cache_dir,
            api_key: get("AP_API_KEY"),
            encryption_key: get("AP_ENCRYPTION_KEY"),
            container_type,
            cluster: get("AP_CONTAINER_TYPE").is_some(),
            nats_replicas: num("AP_NATS_REPLICAS", get("AP_NATS_REPLICAS"), 1)?.clamp(1, 5),
            tls_cert: get("AP_TLS_CERT").map(PathBuf::from),
            tls_key: get("AP_TLS_KEY").map(PathBuf::from),
            webhook_body_limit: num::<usize>(
                "AP_MAX_WEBHOOK_PAYLOAD_SIZE_MB",
                get("AP_MAX_WEBHOOK_PAYLOAD_SIZE_MB"),
                5,
            )? * 1024
                * 1024,
            api_body_limit: 10 * 1024 * 1024,
            store_key_max_chars: 128,
            store_value_max_bytes: num::<usize>(
                "AP_MAX_STORE_ENTRY_VALUE_SIZE_KB",
                get("AP_MAX_STORE_ENTRY_VALUE_SIZE_KB"),
                512,
            )? * 1024,
            enable_flow_on_publish: match get("AP_ENABLE_FLOW_ON_PUBLISH").as_deref().map(str::trim) {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(other) => {
                    return Err(ConfigError {
                        name: "AP_ENABLE_FLOW_ON_PUBLISH",
                        value: other.into(),
                        reason: "expected true or false".into(),
                    })
                }
            },
            trigger_timeout: Duration::from_secs(
                num("AP_TRIGGER_TIMEOUT_SECONDS", get("AP_TRIGGER_TIMEOUT_SECONDS"), 60)?.max(1),
            ),
            trigger_failure_threshold: num("AP_TRIGGER_FAILURE_THRESHOLD", get("AP_TRIGGER_FAILURE_THRESHOLD"), 5)?
                .max(1),
            max_run_log_bytes: num::<usize>("AP_MAX_FLOW_RUN_LOG_SIZE_MB", get("AP_MAX_FLOW_RUN_LOG_SIZE_MB"), 10)?
                * 1024
                * 1024,
            webhook_stream_max_bytes: num(
                "AP_WEBHOOK_STREAM_MAX_BYTES",
                get("AP_WEBHOOK_STREAM_MAX_BYTES"),
                1024 * 1024 * 1024,
            )?,
            npm_registry: get("NPM_CONFIG_REGISTRY").unwrap_or_else(|| "https://registry.npmjs.org".into()),
            npm_cache_dir,
            ssrf_protection: match get("AP_SSRF_PROTECTION_ENABLED").as_deref().map(str::trim) {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(other) => {
                    return Err(ConfigError {
                        name: "AP_SSRF_PROTECTION_ENABLED",
                        value: other.into(),
                        reason: "expected true or false".into(),
                    })
                }
            },
            ssrf_allow_list: get("AP_SSRF_ALLOW_LIST").unwrap_or_default(),
            extra_ca_certs: get("NODE_EXTRA_CA_CERTS").map(PathBuf::from),
            app_webhook_secrets: match get("AP_APP_WEBHOOK_SECRETS") {
                None => serde_json::Map::new(),
                Some(v) => serde_json::from_str(&v).map_err(|e| ConfigError {
                    name: "AP_APP_WEBHOOK_SECRETS",
                    value: "(hidden)".into(),
                    reason: format!("expected a JSON object of pieces' secrets: {e}"),
                })?,
            },
            native_pieces: get("AP_NATIVE_PIECES").filter(|v| v.trim() != "all").map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| if s.starts_with('@') { s.to_string() } else { format!("@activepieces/piece-{s}") })
                    .collect()
            }),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config_path.join("data")
    }

    pub fn nats_store_dir(&self) -> PathBuf {
        self.config_path.join("nats")
    }

    pub fn api_key_file(&self) -> PathBuf {
        self.config_path.join("api-key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.shards, 16);
        assert_eq!(c.flow_timeout, Duration::from_secs(600));
        assert_eq!(c.webhook_timeout, Duration::from_secs(30));
        assert_eq!(c.max_concurrent_jobs_per_project, 100);
        assert_eq!(c.container_type, ContainerType::WorkerAndApp);
    }

    #[test]
    fn activepieces_names_are_read_with_their_units() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap()
        };
        let c = env(&[
            ("AP_SANDBOX_MEMORY_LIMIT", "262144"),
            ("AP_MAX_WEBHOOK_PAYLOAD_SIZE_MB", "2"),
            ("AP_MAX_STORE_ENTRY_VALUE_SIZE_KB", "64"),
            ("AP_DEFAULT_CONCURRENT_JOBS_LIMIT", "7"),
            ("AP_ENABLE_FLOW_ON_PUBLISH", "false"),
            ("AP_TRIGGER_TIMEOUT_SECONDS", "30"),
            ("AP_WORKER_CONCURRENCY", "3"),
            ("AP_MAX_FLOW_RUN_LOG_SIZE_MB", "1"),
        ]);
        assert_eq!(c.sandbox_memory_limit_mb, 256, "kilobytes");
        assert_eq!(c.webhook_body_limit, 2 * 1024 * 1024);
        assert_eq!(c.store_value_max_bytes, 64 * 1024);
        assert_eq!(c.max_concurrent_jobs_per_project, 7);
        assert!(!c.enable_flow_on_publish);
        assert_eq!(c.trigger_timeout, Duration::from_secs(30));
        assert_eq!(c.sandbox_concurrency, 3);
        assert_eq!(c.max_run_log_bytes, 1024 * 1024);
        // Troupe's own names win where both are set; the limiter can be turned off
        let c = env(&[
            ("AP_SANDBOX_MEMORY_LIMIT", "262144"),
            ("AP_SANDBOX_MEMORY_LIMIT_MB", "64"),
            ("AP_PROJECT_RATE_LIMITER_ENABLED", "false"),
        ]);
        assert_eq!(c.sandbox_memory_limit_mb, 64);
        assert_eq!(c.max_concurrent_jobs_per_project, usize::MAX);
    }

    #[test]
    fn a_bad_number_names_the_variable() {
        let err = Config::from_lookup(|k| (k == "AP_PORT").then(|| "eighty".to_string())).unwrap_err().to_string();
        assert!(err.contains("AP_PORT"), "{err}");
    }
}
