//! The harness of `troupe_testkit::troupe`, bound to this package's `troupe` binary. The
//! harness is compiled once, in testkit, which cannot name the binary: Cargo tells its path only
//! to this package's tests (`CARGO_BIN_EXE_troupe`), at compile time. So `StartTroupe` passes
//! it in, and each test reads as before: `Troupe::start().await`.

use std::future::Future;
pub use troupe_testkit::troupe::*;

/// The binary under test, and the folder every test's troupe shares its compiled sandbox
/// modules in.
pub const BUILD: Build = Build { exe: env!("CARGO_BIN_EXE_troupe"), tmpdir: env!("CARGO_TARGET_TMPDIR") };

/// Starts a troupe of [`BUILD`] on a free port, and waits until it listens.
pub trait StartTroupe: Sized {
    fn start() -> impl Future<Output = Self> + Send;
    /// With `env` added to its environment.
    fn start_with(env: &[(&str, &str)]) -> impl Future<Output = Self> + Send;
    /// Like `start_with`, with troupe's stderr (its logs) kept in `self.log`.
    fn start_logged(env: &[(&str, &str)]) -> impl Future<Output = Self> + Send;
}

impl StartTroupe for Troupe {
    async fn start() -> Troupe {
        Troupe::launch(BUILD, &[], false).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Troupe {
        Troupe::launch(BUILD, env, false).await
    }

    async fn start_logged(env: &[(&str, &str)]) -> Troupe {
        Troupe::launch(BUILD, env, true).await
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files in `dir`:
/// (certificate path, key path, certificate PEM).
pub fn self_signed_tls(dir: &std::path::Path) -> (String, String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path.display().to_string(), key_path.display().to_string(), cert.cert.pem())
}
