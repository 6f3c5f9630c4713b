//! The Helm chart `charts/troupe` renders under several sets of values (real Helm v4, as a
//! library), and every manifest is a valid Kubernetes object (strict OpenAPI validation);
//! APP and WORKER roles, the secrets, and a value for every AP_* setting are there.
//! `scripts/check_chart.py` does the work; `just chart-tools` installs what it needs.

use std::path::Path;
use std::process::Command;

#[test]
fn the_helm_chart_renders_valid_kubernetes_objects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run `just chart-tools`", python.display());
    let out = Command::new(&python)
        .arg(root.join("scripts/check_chart.py"))
        .arg(root.join("charts/troupe"))
        .arg(root.join("store/src/config.rs"))
        .output()
        .expect("run check_chart.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the chart check failed:\n{stdout}\n{stderr}\n(`just chart-tools` installs its tools)"
    );
    // three sets of values rendered, and the refusal of a missing natsUrl
    assert_eq!(stdout.matches("0 problems").count(), 3, "{stdout}");
    assert!(stdout.contains("refused as expected"), "{stdout}");
}
