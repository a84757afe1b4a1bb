//! Small filesystem helpers shared by the stages.

use std::path::{Path, PathBuf};

/// Regular files under `dir`, as (`/`-separated relative path, full path),
/// sorted by relative path.
pub fn relative_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let ty = e.file_type()?;
            let p = e.path();
            if ty.is_dir() {
                walk(root, &p, out)?;
            } else if ty.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, p));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Set a file's Unix permission bits.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
