//! V4L2 control values set remotely, kept in the node's state directory
//! (`STATE_DIR/v4l2-controls.toml`) so that they come back when the node
//! starts again: a table per device path, a control id → value each.
//!
//! ```toml
//! ["/dev/video0"]
//! 9963776 = 200     # brightness
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use framewire_proto::control::ControlValue;
use tracing::warn;

/// The file's name in the state directory.
pub(crate) const FILE: &str = "v4l2-controls.toml";

/// Values by device path.
pub(crate) type Saved = BTreeMap<PathBuf, Vec<ControlValue>>;

/// Reads `dir/FILE`; nothing when it is missing, a warning when it does
/// not parse (the node starts all the same).
pub(crate) fn load(dir: &Path) -> Saved {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Saved::new();
    };
    match parse(&text) {
        Ok(s) => s,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "saved camera controls not read");
            Saved::new()
        }
    }
}

fn parse(text: &str) -> Result<Saved, String> {
    let t: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut saved = Saved::new();
    for (device, values) in t {
        let toml::Value::Table(values) = values else {
            return Err(format!("`{device}` is not a table of control values"));
        };
        let mut v = Vec::new();
        for (id, value) in values {
            let id: u32 = id.parse().map_err(|_| format!("`{id}` is not a control id"))?;
            let toml::Value::Integer(value) = value else {
                return Err(format!("control {id} of `{device}` is not a number"));
            };
            v.push(ControlValue { id, value });
        }
        saved.insert(PathBuf::from(device), v);
    }
    Ok(saved)
}

fn render(saved: &Saved) -> String {
    let mut t = toml::Table::new();
    for (device, values) in saved {
        let v: toml::Table = values
            .iter()
            .map(|c| (c.id.to_string(), toml::Value::Integer(c.value)))
            .collect();
        t.insert(device.display().to_string(), toml::Value::Table(v));
    }
    toml::to_string(&t).unwrap_or_default()
}

/// Writes `dir/FILE` whole (through a temporary file, renamed).
pub(crate) fn store(dir: &Path, saved: &Saved) {
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, render(saved)))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "camera controls not saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_a_bad_file_is_refused() {
        let mut s = Saved::new();
        s.insert(
            PathBuf::from("/dev/video0"),
            vec![
                ControlValue {
                    id: 9_963_776,
                    value: 200,
                },
                ControlValue { id: 7, value: -3 },
            ],
        );
        let back = parse(&render(&s)).unwrap();
        let mut a = back[Path::new("/dev/video0")].clone();
        a.sort_by_key(|c| c.id);
        assert_eq!(
            a,
            [
                ControlValue { id: 7, value: -3 },
                ControlValue {
                    id: 9_963_776,
                    value: 200
                }
            ]
        );
        assert!(parse("x = 1").unwrap_err().contains("not a table"));
        assert!(
            parse("[\"/dev/v\"]\nbright = 1")
                .unwrap_err()
                .contains("not a control id")
        );
        let dir = std::env::temp_dir().join(format!("fw-v4l2-saved-{}", std::process::id()));
        store(&dir, &s);
        assert_eq!(load(&dir).len(), 1);
        std::fs::write(dir.join(FILE), "not toml [").unwrap();
        assert!(load(&dir).is_empty(), "a bad file starts the node with nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
