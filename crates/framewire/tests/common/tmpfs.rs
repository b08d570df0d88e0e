//! A small tmpfs for a test (a disk that fills up); unmounted when dropped.
//! Mounting needs root (CI runs the tests as root); without, the test
//! fails saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory; unmounted (lazily) when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// A tmpfs of `mb` MiB at a fresh temporary directory named for `name`.
    pub fn mount(name: &str, mb: u32) -> Tmpfs {
        Tmpfs::mount_at(&super::temp_dir(name), mb)
    }

    /// A tmpfs of `mb` MiB at `dir` (made if missing).
    pub fn mount_at(dir: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m,mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs the tests as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
