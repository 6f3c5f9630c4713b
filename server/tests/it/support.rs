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

/// `packages` installed with npm under the build's temporary folder, once per machine: the
/// install goes to a folder of this process and is renamed into place when complete, so tests
/// running at once (nextest runs each in its own process) never see a half-made one.
pub fn npm_installed(name: &str, packages: &[&str]) -> std::path::PathBuf {
    let dir = std::path::Path::new(BUILD.tmpdir).join(name);
    if dir.join(".complete").exists() {
        return dir;
    }
    let tmp = std::path::Path::new(BUILD.tmpdir).join(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&tmp)
        .args(packages)
        .output()
        .expect("npm runs");
    assert!(out.status.success(), "npm install {packages:?}: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(tmp.join(".complete"), b"").unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        // another test finished first: use its folder
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(dir.join(".complete").exists(), "{} is there but incomplete", dir.display());
    }
    dir
}

/// Copies `from` into `dir` under the same name, atomically (a reader sees the old file or the
/// new one, never half of it).
pub fn copy_atomically(from: &std::path::Path, dir: &std::path::Path) {
    let name = from.file_name().unwrap();
    let tmp = dir.join(format!("{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A deterministic generator (a linear congruential sequence).
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn choose<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// 0 to `max` characters of `alphabet`.
    pub fn text(&mut self, alphabet: &str, max: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(&chars)).collect()
    }
}

/// The sum of a metric's samples (from `/metrics`) whose labels contain `labels`.
pub async fn metric(t: &Troupe, name: &str, labels: &str) -> f64 {
    let text = t.client.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
