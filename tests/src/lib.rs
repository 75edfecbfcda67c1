//! Shared harness for slup's cross-crate tests: where the test data lives.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `../shared` beside the checkout (read-only data such as the JSONTestSuite), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let d = workspace_root().parent()?.join("shared");
    d.is_dir().then_some(d)
}

pub mod differential;
pub mod flash_image;
