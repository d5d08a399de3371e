//! What to scan: the crate or workspace at a path, its `.rs` files, and the settings of
//! `[workspace.metadata.ops-scan]` / `[package.metadata.ops-scan]` in its `Cargo.toml`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a path cannot be scanned at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanError {
    /// The path does not exist.
    Missing(PathBuf),
    /// The path is a directory without a `Cargo.toml`, or a file that is not Rust.
    NotACrate(PathBuf),
    /// The `Cargo.toml` cannot be read or parsed, or its `ops-scan` settings are wrong.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Missing(path) => write!(
                f,
                "`{}` does not exist; pass the directory of a crate or workspace",
                path.display()
            ),
            ScanError::NotACrate(path) => write!(
                f,
                "`{}` is not a crate: it has no Cargo.toml and is not a .rs file; pass the \
                 directory of a crate or workspace",
                path.display()
            ),
            ScanError::Manifest { path, detail } => {
                write!(f, "cannot read `{}`: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for ScanError {}

/// The root and the files to scan.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) root: PathBuf,
    pub(crate) files: Vec<PathBuf>,
}

/// Finds the files to scan under `path`.
pub(crate) fn discover(path: &Path) -> Result<Target, ScanError> {
    if !path.exists() {
        return Err(ScanError::Missing(path.to_owned()));
    }
    if path.is_file() {
        if path.extension().is_some_and(|ext| ext == "rs") {
            return Ok(Target {
                root: path.to_owned(),
                files: vec![path.to_owned()],
            });
        }
        return Err(ScanError::NotACrate(path.to_owned()));
    }
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(ScanError::NotACrate(path.to_owned()));
    }
    let excluded = excludes(&manifest)?;
    let mut files = Vec::new();
    walk(path, path, &excluded, &mut files).map_err(|err| ScanError::Manifest {
        path: path.to_owned(),
        detail: format!("cannot list the directory: {err}"),
    })?;
    files.sort();
    Ok(Target {
        root: path.to_owned(),
        files,
    })
}

/// The `exclude` paths of the manifest's `ops-scan` metadata, relative to the root.
fn excludes(manifest: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let fail = |detail: String| ScanError::Manifest {
        path: manifest.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(manifest).map_err(|err| fail(err.to_string()))?;
    let value: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| fail(format!("{}; fix the TOML syntax", err.message())))?;
    let mut excluded = Vec::new();
    for section in ["workspace", "package"] {
        let settings = value
            .get(section)
            .and_then(|s| s.get("metadata"))
            .and_then(|m| m.get("ops-scan"));
        let Some(settings) = settings else { continue };
        let Some(table) = settings.as_table() else {
            return Err(fail(format!(
                "`[{section}.metadata.ops-scan]` must be a table, e.g. `exclude = [\"tests/fixtures\"]`"
            )));
        };
        for (key, value) in table {
            match key.as_str() {
                "exclude" => {
                    let list = value.as_array().ok_or_else(|| {
                        fail(format!(
                            "`{section}.metadata.ops-scan.exclude` must be a list of paths, \
                             e.g. `exclude = [\"tests/fixtures\"]`"
                        ))
                    })?;
                    for entry in list {
                        let entry = entry.as_str().ok_or_else(|| {
                            fail(format!(
                                "`{section}.metadata.ops-scan.exclude` holds `{entry}`, which is \
                                 not a path string"
                            ))
                        })?;
                        excluded.push(PathBuf::from(entry));
                    }
                }
                other => {
                    return Err(fail(format!(
                        "unknown key `{other}` in `[{section}.metadata.ops-scan]`; the only key \
                         is `exclude`"
                    )));
                }
            }
        }
    }
    Ok(excluded)
}

/// Collects the `.rs` files under `dir`, skipping build output, hidden directories and
/// excluded paths.
fn walk(
    root: &Path,
    dir: &Path,
    excluded: &[PathBuf],
    files: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if excluded.iter().any(|ex| relative.starts_with(ex)) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name.starts_with('.') || name == "target" {
                continue;
            }
            walk(root, &path, excluded, files)?;
        } else if kind.is_file() && name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}
