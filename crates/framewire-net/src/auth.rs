//! Node-to-node authentication with a shared deployment key.
//!
//! When a deployment key is configured, every TCP connection runs the
//! challenge-response of docs/protocol.md ("HELLO and AUTH") before any
//! stream or control message: each side sends a fresh 16-byte nonce from the
//! operating system's random generator, and each proves it holds the key
//! with an HMAC-SHA-256 over both nonces. The key itself never crosses the
//! wire, and a recorded exchange is useless on a later connection because
//! the other side's nonce differs.
//!
//! # Key files
//!
//! A key file holds either hex text (64 or more hex digits, i.e. at least
//! 32 bytes; surrounding whitespace is ignored) or at least 32 raw bytes.
//! It must not be readable or writable by group or others (`chmod 600`).
//! `framewire key gen FILE` writes a fresh one.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Length of the nonce each side sends with HMAC-SHA-256.
pub const NONCE_LEN: usize = 16;
/// Length of a proof (an HMAC-SHA-256 tag).
pub const PROOF_LEN: usize = 32;
/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Longest key file read, in bytes.
pub const MAX_KEY_FILE_LEN: u64 = 4096;
/// Environment variable the command-line tools read a key file path from.
pub const KEY_FILE_ENV: &str = "FRAMEWIRE_KEY_FILE";

/// Context string of the responder's proof.
const RESPONDER_CONTEXT: &[u8] = b"framewire-v1 responder";
/// Context string of the requester's proof.
const REQUESTER_CONTEXT: &[u8] = b"framewire-v1 requester";

type HmacSha256 = Hmac<Sha256>;

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read or write the file.
    #[error(
        "key file {path} is accessible to group or others (mode {mode:03o}); \
         restrict it with `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is shorter than [`MIN_KEY_LEN`].
    #[error("{what} holds a {len}-byte key; at least {MIN_KEY_LEN} bytes are needed (`framewire key gen` makes one)")]
    TooShort {
        /// The file, or "the key".
        what: String,
        /// Bytes found.
        len: usize,
    },
    /// The file is larger than [`MAX_KEY_FILE_LEN`].
    #[error("key file {path} is {len} bytes; a key file holds at most {MAX_KEY_FILE_LEN}")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// The operating system's random generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

/// A deployment key shared by every node and tool of one deployment.
///
/// Cheap to clone; its `Debug` form never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct DeploymentKey(Arc<[u8]>);

/// The RTSP user whose password derives from the deployment key
/// ([`DeploymentKey::rtsp_password`]).
pub const RTSP_KEY_USER: &str = "framewire";

impl fmt::Debug for DeploymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeploymentKey({} bytes, redacted)", self.0.len())
    }
}

impl DeploymentKey {
    /// A key from its bytes (at least [`MIN_KEY_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<DeploymentKey, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                what: "the key".into(),
                len: bytes.len(),
            });
        }
        Ok(DeploymentKey(bytes.into()))
    }

    /// A fresh random key of 32 bytes.
    pub fn generate() -> Result<DeploymentKey, KeyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(DeploymentKey(k.as_slice().into()))
    }

    /// Parses a key file's contents: hex text (whitespace around it
    /// ignored) or raw bytes.
    pub fn parse(contents: &[u8], what: &str) -> Result<DeploymentKey, KeyError> {
        let trimmed = contents.trim_ascii();
        let bytes = match decode_hex(trimmed) {
            Some(b) => b,
            None => contents.to_vec(),
        };
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                what: what.to_owned(),
                len: bytes.len(),
            });
        }
        Ok(DeploymentKey(bytes.into()))
    }

    /// Reads a key file, refusing one that group or others can access.
    pub fn load(path: &Path) -> Result<DeploymentKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(KeyError::TooLong {
                path: path.to_owned(),
                len: meta.len(),
            });
        }
        let contents = std::fs::read(path).map_err(io)?;
        DeploymentKey::parse(&contents, &format!("key file {}", path.display()))
    }

    /// The key as lowercase hex text (what `framewire key gen` writes).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Writes the key as hex text to a new file with mode 0600. An
    /// existing file is left alone (an error) unless `overwrite`.
    pub fn write_new(&self, path: &Path, overwrite: bool) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if overwrite {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        #[cfg(unix)]
        {
            // An overwritten file keeps its old mode: tighten it.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        f.write_all(format!("{}\n", self.to_hex()).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    fn mac(&self, context: &[u8], first: &[u8], second: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(context);
        mac.update(first);
        mac.update(second);
        mac
    }

    /// The responder's proof: HMAC(K, "framewire-v1 responder" ‖ requester
    /// nonce ‖ responder nonce).
    pub fn responder_proof(&self, requester_nonce: &[u8], responder_nonce: &[u8]) -> Bytes {
        let tag = self
            .mac(RESPONDER_CONTEXT, requester_nonce, responder_nonce)
            .finalize()
            .into_bytes();
        Bytes::copy_from_slice(&tag)
    }

    /// The requester's proof: HMAC(K, "framewire-v1 requester" ‖ responder
    /// nonce ‖ requester nonce).
    pub fn requester_proof(&self, requester_nonce: &[u8], responder_nonce: &[u8]) -> Bytes {
        let tag = self
            .mac(REQUESTER_CONTEXT, responder_nonce, requester_nonce)
            .finalize()
            .into_bytes();
        Bytes::copy_from_slice(&tag)
    }

    /// Checks a responder's proof in constant time.
    pub fn verify_responder(&self, requester_nonce: &[u8], responder_nonce: &[u8], proof: &[u8]) -> bool {
        self.mac(RESPONDER_CONTEXT, requester_nonce, responder_nonce)
            .verify_slice(proof)
            .is_ok()
    }

    /// Checks a requester's proof in constant time.
    pub fn verify_requester(&self, requester_nonce: &[u8], responder_nonce: &[u8], proof: &[u8]) -> bool {
        self.mac(REQUESTER_CONTEXT, responder_nonce, requester_nonce)
            .verify_slice(proof)
            .is_ok()
    }

    /// The password of the RTSP user [`RTSP_KEY_USER`] on nodes with this
    /// key: HMAC(K, "framewire-v1 rtsp password"), 32 hex digits. Derived,
    /// so a player's URL never holds the key itself
    /// (`framewire key rtsp-password` prints it).
    pub fn rtsp_password(&self) -> String {
        let tag = self
            .mac(b"framewire-v1 rtsp password", &[], &[])
            .finalize()
            .into_bytes();
        tag.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The key's bytes (for tests that check it never appears on the wire).
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A fresh nonce from the operating system's random generator.
pub fn nonce() -> Result<Bytes, KeyError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(Bytes::copy_from_slice(&n))
}

/// Hex text to bytes; `None` if `s` is not (an even number of) hex digits.
fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DeploymentKey {
        DeploymentKey::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn proofs_match_the_documented_construction() {
        // HMAC-SHA-256 test vector (RFC 4231 case 2) through the same crate,
        // so the construction below is the documented one.
        let k = DeploymentKey(Arc::from(&b"Jefe"[..]));
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        let tag = m.finalize().into_bytes();
        assert_eq!(
            decode_hex(b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843").unwrap(),
            tag.to_vec()
        );
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"framewire-v1 responder");
        m.update(&[0x11; 16]);
        m.update(&[0x22; 16]);
        assert_eq!(
            k.responder_proof(&[0x11; 16], &[0x22; 16]).to_vec(),
            m.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn the_worked_example_of_docs_protocol_md() {
        let doc = include_str!("../../../docs/protocol.md");
        let k = key(0x0b);
        let r = k.responder_proof(&[0x11; 16], &[0x22; 16]);
        let q = k.requester_proof(&[0x11; 16], &[0x22; 16]);
        let (r, q) = (
            DeploymentKey(r.to_vec().into()).to_hex(),
            DeploymentKey(q.to_vec().into()).to_hex(),
        );
        assert_eq!(r, "6363bcfd5edd145ed67e133da87e4c8e860b97fef9c7372b6b5ad3b6ff60d179");
        assert_eq!(q, "23ddc557d3987f737efedb9cfb7161e7fc4bd32a8374dc4df83ef6494cf3741f");
        assert!(
            doc.contains(&format!("responder proof = `{r}`")),
            "docs/protocol.md shows {r}"
        );
        assert!(
            doc.contains(&format!("requester proof = `{q}`")),
            "docs/protocol.md shows {q}"
        );
    }

    #[test]
    fn both_proofs_verify_with_the_same_key_only() {
        let (q, r) = ([1u8; 16], [2u8; 16]);
        let a = key(7);
        let b = key(8);
        let rp = a.responder_proof(&q, &r);
        let qp = a.requester_proof(&q, &r);
        assert_eq!(rp.len(), PROOF_LEN);
        assert!(a.verify_responder(&q, &r, &rp));
        assert!(a.verify_requester(&q, &r, &qp));
        assert!(!b.verify_responder(&q, &r, &rp));
        assert!(!b.verify_requester(&q, &r, &qp));
        // The two directions differ: a reflected proof does not pass.
        assert_ne!(rp, qp);
        assert!(!a.verify_requester(&q, &r, &rp));
        // Other nonces: the recorded proof fails.
        assert!(!a.verify_requester(&q, &[3u8; 16], &qp));
        // Truncated proofs fail.
        assert!(!a.verify_requester(&q, &r, &qp[..16]));
        assert!(!a.verify_requester(&q, &r, &[]));
    }

    #[test]
    fn parses_hex_and_raw_and_refuses_short_keys() {
        let hex = "ab".repeat(32);
        let k = DeploymentKey::parse(format!("  {hex}\n").as_bytes(), "t").unwrap();
        assert_eq!(k.expose_bytes(), &[0xab; 32]);
        assert_eq!(k.to_hex(), hex);
        let raw = [0xfeu8; 40];
        assert_eq!(DeploymentKey::parse(&raw, "t").unwrap().expose_bytes(), &raw);
        let e = DeploymentKey::parse("ab".repeat(16).as_bytes(), "key file x").unwrap_err();
        assert!(e.to_string().contains("16-byte key"), "{e}");
        assert!(matches!(
            DeploymentKey::parse(b"", "t"),
            Err(KeyError::TooShort { len: 0, .. })
        ));
        assert!(format!("{k:?}").contains("redacted"));
        assert!(!format!("{k:?}").contains("ab"));
    }

    #[test]
    fn key_files_round_trip_and_refuse_loose_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fw-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let k = DeploymentKey::generate().unwrap();
        k.write_new(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(DeploymentKey::load(&path).unwrap(), k);
        // Not overwritten by accident.
        assert!(matches!(k.write_new(&path, false), Err(KeyError::Io { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = DeploymentKey::load(&path).unwrap_err();
        assert!(matches!(e, KeyError::Permissions { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        // Overwriting tightens the mode again.
        let k2 = DeploymentKey::generate().unwrap();
        k2.write_new(&path, true).unwrap();
        assert_eq!(DeploymentKey::load(&path).unwrap(), k2);
        assert_ne!(k, k2);
        let missing = DeploymentKey::load(&dir.join("none")).unwrap_err();
        assert!(missing.to_string().contains("none"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
