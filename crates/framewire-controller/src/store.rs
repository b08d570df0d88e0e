//! The wanted graph on disk: TOML or JSON by extension, written atomically
//! and privately ([`write_private`], which the users file shares).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::WantedGraph;

/// The wanted graph's file name inside the state directory.
pub const WANTED_FILE: &str = "wanted.toml";

/// The format of a wanted-graph document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    /// `[[edge]]` tables.
    Toml,
    /// `{"edge": [...]}`.
    Json,
}

impl DocFormat {
    /// By extension: `.json` is JSON, anything else TOML.
    pub fn of(path: &Path) -> DocFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => DocFormat::Json,
            _ => DocFormat::Toml,
        }
    }
}

/// Parses a wanted-graph document. Its names are checked here (names, not
/// paths: [`framewire_proto::names`]); the rest is checked against the
/// nodes when the graph is applied.
pub fn parse(text: &str, format: DocFormat) -> Result<WantedGraph, String> {
    let wanted: WantedGraph = match format {
        DocFormat::Toml => toml::from_str(text).map_err(|e| e.to_string())?,
        DocFormat::Json => serde_json::from_str(text).map_err(|e| e.to_string())?,
    };
    for (i, e) in wanted.edges.iter().enumerate() {
        crate::core::check_names(e).map_err(|reason| format!("edge {i}: {reason}"))?;
    }
    Ok(wanted)
}

/// Renders a wanted-graph document.
pub fn render(wanted: &WantedGraph, format: DocFormat) -> Result<String, String> {
    match format {
        DocFormat::Toml => toml::to_string(wanted).map_err(|e| e.to_string()),
        DocFormat::Json => serde_json::to_string_pretty(wanted)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
    }
}

/// Reads the wanted graph from `path`; a missing file is an empty graph.
pub fn load(path: &Path) -> Result<WantedGraph, String> {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text, DocFormat::of(path)).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WantedGraph::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the wanted graph to `path` atomically ([`write_private`]).
/// Creates the directory if needed.
pub fn save(path: &Path, wanted: &WantedGraph) -> Result<(), String> {
    let text = render(wanted, DocFormat::of(path))?;
    write_private(path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes a state file atomically and privately: into a new temporary
/// file beside it (random name, `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, so
/// a planted file or symlink there is never written through), flushed to
/// disk, renamed over `path`, then the directory is synced. After a crash
/// `path` holds the old content or the new one, never a mix; the new file
/// is readable by its owner only, whatever was there before.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    // RandomState is seeded from the OS once per process and stepped per
    // instance: a name nobody can guess in advance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", h.finish()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Whether a state file can be read by others than its owner (mode bits
/// for group or other). `None` when it does not exist.
pub fn readable_by_others(path: &Path) -> Option<bool> {
    use std::os::unix::fs::PermissionsExt;
    let m = fs::symlink_metadata(path).ok()?;
    Some(m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, stream: &str, to: &str) -> crate::WantedEdge {
        crate::WantedEdge::new(from, stream, to)
    }

    #[test]
    fn toml_and_json_round_trip_through_files() {
        let dir = std::env::temp_dir().join(format!("fw-store-{}", std::process::id()));
        let g = WantedGraph {
            edges: vec![
                edge("lab:cam", "bars", "lab:relay"),
                edge("lab:relay", "bars", "lab:view"),
            ],
            sources: vec![crate::WantedSource::new(
                "lab:cam",
                toml::from_str("kind = \"v4l2\"\nname = \"cam\"\ndevice = \"/dev/video0\"\nfps = 30\n").unwrap(),
            )],
        };
        for name in ["w.toml", "w.json"] {
            let p = dir.join(name);
            save(&p, &g).unwrap();
            assert_eq!(load(&p).unwrap(), g);
            // No temporary file is left behind.
            let left: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                .collect();
            assert!(left.is_empty());
        }
        assert!(fs::read_to_string(dir.join("w.json")).unwrap().contains("\"edge\""));
        assert!(fs::read_to_string(dir.join("w.toml")).unwrap().contains("[[edge]]"));
        assert!(fs::read_to_string(dir.join("w.toml")).unwrap().contains("[[source]]"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_empty_and_bad_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fw-store-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir.join("none.toml")).unwrap(), WantedGraph::default());
        let bad = dir.join("bad.toml");
        fs::write(&bad, "[[edge]]\nfrom = \"a\"\nbogus = 1\n").unwrap();
        let err = load(&bad).unwrap_err();
        assert!(err.contains("bad.toml"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wanted_file_with_a_path_for_a_name_is_refused() {
        let text = "[[edge]]\nfrom = \"a\"\nstream = \"s\"\nto = \"b\"\nlocal_name = \"../../users/alice\"\n";
        let err = parse(text, DocFormat::Toml).unwrap_err();
        assert!(err.contains("edge 0") && err.contains("not paths"), "{err}");
        let ok = "[[edge]]\nfrom = \"2/lab:cam\"\nstream = \"s\"\nto = \"b\"\n";
        assert!(
            parse(ok, DocFormat::Toml).is_ok(),
            "a node of another site is SITE/name"
        );
    }

    #[test]
    fn state_files_are_private_whatever_was_planted_beside_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fw-store-private-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.json");
        // A stale temporary file of the old fixed name, readable by all, and
        // a symlink planted where a predictable temporary name would be.
        let stale = dir.join("users.json.tmp");
        fs::write(&stale, "stale").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "victim").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".users.json.tmp")).unwrap();
        // The target itself exists and is readable by all.
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(readable_by_others(&path), Some(true));

        write_private(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the state file is the owner's only");
        assert_eq!(readable_by_others(&path), Some(false));
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "victim",
            "nothing written through a symlink"
        );
        assert_eq!(fs::read_to_string(&stale).unwrap(), "stale");

        // A symlink in place of the file is replaced, not followed.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_private(&path, b"newer").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        let _ = fs::remove_dir_all(&dir);
    }
}
