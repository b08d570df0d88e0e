//! Names of nodes, streams and edges: what they may hold.
//!
//! A name travels in HELLO, SUBSCRIBE, CONNECT and STREAM_OPEN, is shown in
//! logs and the web UI, and becomes part of URLs (`/api/edges/NODE/LOCAL`,
//! `/stream/NODE/STREAM.mjpeg`) and of an edge's id (`node/local_name`).
//! So a name is a name and never a path: it is 1 to [`MAX_NAME_LEN`] bytes
//! of UTF-8 with no `/`, no `..` and no control characters. Every place a
//! name enters (the node's command line and config, CONNECT, the
//! controller's API and wanted-graph files) checks it with [`check`].
//!
//! ```
//! use framewire_proto::names::{check, NameKind};
//! assert!(check(NameKind::Stream, "bars").is_ok());
//! assert!(check(NameKind::Node, "lab:cam@2").is_ok());
//! assert!(check(NameKind::Stream, "../../users/alice").is_err());
//! ```

use std::fmt;

/// The longest name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// What a name names (for the error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A node (`--name`, HELLO).
    Node,
    /// A stream (a source's name, SUBSCRIBE, STREAM_OPEN).
    Stream,
    /// The name a pulled edge serves its stream under on the downstream node.
    LocalName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Node => "node name",
            NameKind::Stream => "stream name",
            NameKind::LocalName => "local_name",
        })
    }
}

/// Why a name was refused. The name itself is shown escaped (`{:?}`), so a
/// name with control characters cannot forge a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Nothing in it.
    #[error("{0} must not be empty")]
    Empty(NameKind),
    /// Over [`MAX_NAME_LEN`] bytes.
    #[error("{kind} is {len} bytes long; at most {MAX_NAME_LEN}")]
    TooLong {
        /// Which name.
        kind: NameKind,
        /// Its length.
        len: usize,
    },
    /// A `/` or a `..`: names are not paths.
    #[error("{kind} {name:?} must not contain '/' or '..' (names are not paths)")]
    Path {
        /// Which name.
        kind: NameKind,
        /// The name (escaped when shown).
        name: String,
    },
    /// A control character (newline, escape, ...).
    #[error("{kind} {name:?} must not contain control characters")]
    Control {
        /// Which name.
        kind: NameKind,
        /// The name (escaped when shown).
        name: String,
    },
}

/// Checks a name (see the module doc for the rule).
pub fn check(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(kind));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { kind, len: name.len() });
    }
    if name.contains('/') || name.contains("..") {
        return Err(NameError::Path {
            kind,
            name: name.to_owned(),
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// A name as it may be shown in a log line or message: at most `max` bytes
/// (cut at a character boundary, with `…`), every control character
/// escaped. For names that have not been checked (a peer's HELLO).
pub fn display(name: &str, max: usize) -> String {
    let mut out = String::with_capacity(name.len().min(max) + 4);
    for c in name.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_pass_and_names_that_do_not() {
        for ok in [
            "bars",
            "lab:cam",
            "pat@1:lab:cam",
            "a.b-c_d",
            "caméra 2",
            &"x".repeat(255),
        ] {
            assert_eq!(check(NameKind::Stream, ok), Ok(()), "{ok}");
        }
        type IsExpected = fn(&NameError) -> bool;
        let long = "x".repeat(256);
        let cases: [(&str, IsExpected); 8] = [
            ("", |e| matches!(e, NameError::Empty(_))),
            (&long, |e| matches!(e, NameError::TooLong { len: 256, .. })),
            ("a/b", |e| matches!(e, NameError::Path { .. })),
            ("../../users/alice", |e| matches!(e, NameError::Path { .. })),
            ("..", |e| matches!(e, NameError::Path { .. })),
            ("a\nINFO forged", |e| matches!(e, NameError::Control { .. })),
            ("esc\x1b[31m", |e| matches!(e, NameError::Control { .. })),
            ("del\x7f", |e| matches!(e, NameError::Control { .. })),
        ];
        for (name, want) in cases {
            let e = check(NameKind::LocalName, name).unwrap_err();
            assert!(want(&e), "{name:?}: {e:?}");
            assert!(!e.to_string().contains('\n'), "the message is one line: {e}");
        }
    }

    #[test]
    fn display_escapes_and_cuts() {
        assert_eq!(display("a\nb", 10), "a\\nb");
        assert_eq!(display("abcdef", 3), "abc…");
        assert_eq!(display("ééé", 3), "éé…");
    }
}
