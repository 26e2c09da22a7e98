use crate::harness::*;

/// docs/man/sxsctl.1 is what `sxsctl generate-man` renders now.
#[test]
fn man_page_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    sxsctl_raw(&["generate-man", out]).expect(0);
    let fresh = std::fs::read_to_string(dir.path().join("sxsctl.1")).unwrap();
    let committed_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man/sxsctl.1");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        fresh == committed,
        "{} is stale: run `cargo run -p sxsctl -- generate-man docs/man` and commit it",
        committed_path.display()
    );
}
