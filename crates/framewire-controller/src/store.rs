//! The wanted graph on disk: TOML or JSON by extension, written atomically.
//!
//! A write goes to a temporary file beside the target, is flushed to disk
//! (`fsync`), renamed over the target, and the directory is synced, so
//! after a crash the file holds either the old document or the new one,
//! never a mix.

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

/// Parses a wanted-graph document.
pub fn parse(text: &str, format: DocFormat) -> Result<WantedGraph, String> {
    match format {
        DocFormat::Toml => toml::from_str(text).map_err(|e| e.to_string()),
        DocFormat::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
    }
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

/// Writes the wanted graph to `path` atomically (temp file, fsync, rename,
/// fsync of the directory). Creates the directory if needed.
pub fn save(path: &Path, wanted: &WantedGraph) -> Result<(), String> {
    let text = render(wanted, DocFormat::of(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("wanted");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
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
}
