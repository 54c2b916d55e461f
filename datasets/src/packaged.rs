//! Real data sets shipped inside PyPI packages (CDNOW in `lifetimes`, the
//! labelled Yahoo series in `sktime`), found in the virtual environment
//! `scripts/test.sh` installs: nothing is downloaded at run time.

use std::path::PathBuf;

/// The folder `subdir` of the installed Python package `package`, in the
/// workspace's `.venv`, or where the environment variable `override_var`
/// points. The error says how to get it.
pub fn package_data(package: &str, subdir: &str, override_var: &str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(override_var) {
        return Ok(dir.into());
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages").join(package).join(subdir))
            .find(|p| p.is_dir())
    });
    found.ok_or_else(|| {
        format!(
            "the {package} data sets were not found under {}: run scripts/test.sh (it installs \
             them into .venv) or set {override_var}",
            venv.display()
        )
    })
}
