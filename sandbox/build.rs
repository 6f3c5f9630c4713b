//! Builds the sandbox's guests for wasm32-wasip1: the QuickJS engine (`guests/js`), embedded in
//! the host, and the WASI example step (`guests/wasi-example`), used by tests and docs.
//!
//! QuickJS is C: rquickjs compiles it with a WASI C toolchain. We point it (through `WASI_SDK`)
//! at a folder of links to Debian's `clang-19`, `llvm-ar` and `wasi-libc`, so nothing is
//! downloaded. `just toolchain` installs those packages and the Rust target.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let sdk = wasi_sdk(&out);
    for (dir, artifact, env) in [
        ("js", "troupe_guest_js.wasm", "TROUPE_GUEST_JS"),
        ("wasi-example", "troupe-wasi-example.wasm", "TROUPE_WASI_EXAMPLE"),
    ] {
        let guest = manifest.join("guests").join(dir);
        println!("cargo:rerun-if-changed={}", guest.join("src").display());
        println!("cargo:rerun-if-changed={}", guest.join("Cargo.toml").display());
        println!("cargo:rerun-if-changed={}", guest.join("Cargo.lock").display());
        let target_dir = out.join("guest-target");
        build(&guest, &target_dir, &sdk);
        let wasm = target_dir.join(TARGET).join("release").join(artifact);
        println!("cargo:rustc-env={env}={}", wasm.display());
    }
}

fn build(guest: &Path, target_dir: &Path, sdk: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guest)
        .args(["build", "--release", "--locked", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .env("WASI_SDK", sdk);
    // what the outer build set for itself must not leak into the guest's build
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || matches!(
                key.as_str(),
                "RUSTFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC"
                    | "RUSTDOC"
            )
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("run cargo for the sandbox guests");
    if !status.success() {
        panic!(
            "building the sandbox guest {} for {TARGET} failed. It needs `rustup target add {TARGET}` and \
             Debian's clang-19, wasi-libc and libclang-rt-19-dev-wasm32: `just toolchain` installs them.",
            guest.display()
        );
    }
}

/// A folder laid out as rquickjs expects a wasi-sdk, made of links to the system's tools.
fn wasi_sdk(out: &Path) -> PathBuf {
    if let Ok(sdk) = std::env::var("WASI_SDK") {
        return PathBuf::from(sdk);
    }
    let sdk = out.join("wasi-sdk");
    let find = |names: &[&str]| -> PathBuf {
        names
            .iter()
            .map(|n| Path::new("/usr/bin").join(n))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("none of {names:?} is installed; `just toolchain` installs them"))
    };
    let links = [
        ("bin/clang", find(&["clang-19", "clang-20", "clang-18"])),
        ("bin/ar", find(&["llvm-ar-19", "llvm-ar-20", "llvm-ar-18", "llvm-ar-14", "llvm-ar"])),
        ("share/wasi-sysroot/include", PathBuf::from("/usr/include/wasm32-wasi")),
        ("lib/wasm32-wasi", PathBuf::from("/usr/lib/wasm32-wasi")),
        ("lib/wasm32-wasip1", PathBuf::from("/usr/lib/wasm32-wasi")),
    ];
    for (link, to) in links {
        let link = sdk.join(link);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&to, &link).unwrap();
    }
    sdk
}
