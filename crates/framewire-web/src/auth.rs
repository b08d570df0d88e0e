//! Users, roles, browser sessions and API tokens.
//!
//! - Users live in one JSON file in the controller's state directory
//!   (`users.json`): a name, a role and an argon2id PHC string per user.
//! - A browser logs in with name and password and gets a session cookie
//!   (`HttpOnly; SameSite=Strict`, `Secure` when configured); every
//!   state-changing request made with that cookie must carry the session's
//!   CSRF token in the `x-csrf-token` header.
//! - Programs (the CLI) send `Authorization: Bearer TOKEN`. A token is
//!   `fw_ID_SECRET`; the file keeps only the SHA-256 of the secret. A token
//!   may have an expiry.
//! - Every user has an *epoch*, a random value that changes whenever the
//!   credential does: the user is (re-)added, its password or its role
//!   changes. Sessions and tokens carry the epoch they were made in and
//!   stop working when it is no longer the user's.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::cell::RefCell;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{self, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the users file inside the state directory.
pub const USERS_FILE: &str = "users.json";

/// How long a browser session lives after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// What a user may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the graph and previews.
    Viewer,
    /// Also wires and unwires edges and sets camera controls.
    Operator,
    /// Also manages users and API tokens.
    Admin,
}

impl Role {
    /// The role's name as written in the users file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Role, AuthError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::BadRole(other.to_owned())),
        }
    }
}

/// What can go wrong with users and tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not one of viewer, operator, admin.
    #[error("unknown role {0:?}: use viewer, operator or admin")]
    BadRole(String),
    /// User names are 1-64 characters of letters, digits, `.`, `_`, `-`.
    #[error("bad user name {0:?}: use 1-64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// Passwords need at least 8 characters.
    #[error("password too short: at least 8 characters")]
    ShortPassword,
    /// The user exists already.
    #[error("user {0:?} exists already")]
    Exists(String),
    /// No such user.
    #[error("no user {0:?}")]
    NoUser(String),
    /// No such token.
    #[error("no token {0:?}")]
    NoToken(String),
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a users file.
    #[error("{path}: not a users file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password: String,
    /// Changes with the credential (add, password, role): sessions and
    /// tokens of another epoch are void. Empty in files written before it.
    #[serde(default)]
    pub epoch: String,
    /// MD5(name:framewire:password), which RTSP Digest needs (a node's
    /// RTSP server checks players with it): kept only for users given RTSP
    /// access (`framewire user add|passwd --rtsp`), and dropped when the
    /// password is set without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_ha1: Option<String>,
}

/// One API token as stored (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public id, the middle part of `fw_ID_SECRET`.
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// The user's epoch when the token was made.
    #[serde(default)]
    pub epoch: String,
    /// When the token stops working, ms since the Unix epoch (none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// The users file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Users.
    #[serde(default)]
    pub users: Vec<UserRecord>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenRecord>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex(&b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadName(name.to_owned()))
    }
}

thread_local! {
    /// argon2's working memory (19 MiB at the default parameters), kept by
    /// each thread that hashes and reused by every hash it computes.
    /// Allocating and freeing it per check made glibc's heaps grow by that
    /// much with every login.
    static ARGON2_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The most working memory a stored hash may ask for (a sane bound on a
/// users file's parameters): 256 MiB.
const MAX_ARGON2_BLOCKS: usize = 256 * 1024;

/// argon2 of `password` and `salt` into `out`, in this thread's memory.
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let n = params.block_count();
    if n > MAX_ARGON2_BLOCKS {
        return Err(format!("argon2 memory of {n} KiB is over the bound"));
    }
    let a = Argon2::new(algorithm, version, params.clone());
    ARGON2_MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < n {
            *m = vec![Block::default(); n];
        }
        a.hash_password_into_with_memory(password, salt, out, &mut m[..n])
            .map_err(|e| e.to_string())
    })
}

/// Hashes a password into an argon2id PHC string (slow on purpose).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < 8 {
        return Err(AuthError::ShortPassword);
    }
    let hash_err = |e: password_hash::Error| AuthError::Hash(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_buf).map_err(hash_err)?;
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        &params,
        password.as_bytes(),
        salt_raw,
        &mut out,
    )
    .map_err(AuthError::Hash)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: password_hash::ParamsString::try_from(&params).map_err(hash_err)?,
        salt: Some(salt.as_salt()),
        hash: Some(password_hash::Output::new(&out).map_err(hash_err)?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a PHC string (constant-time comparison).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(h.algorithm), Params::try_from(&h)) else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(algorithm, version, &params, password.as_bytes(), salt_raw, &mut out).is_err() {
        return false;
    }
    // Output compares in constant time.
    password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

impl UsersFile {
    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<UsersFile, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(s) => serde_json::from_str(&s).map_err(|e| AuthError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(source) => Err(AuthError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the file atomically and privately (mode 0600, through a new
    /// temporary file that nothing planted can redirect).
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        // Serialising plain strings and enums cannot fail.
        let text = serde_json::to_string_pretty(self).expect("users file serialises");
        framewire_controller::store::write_private(path, text.as_bytes()).map_err(|source| AuthError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Adds a user (name checked, password hashed), without RTSP access.
    pub fn add_user(&mut self, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
        self.add_user_with(name, role, password, false)
    }

    /// Adds a user; with `rtsp`, players may log in as it over RTSP
    /// (which keeps an MD5 digest of the password: RTSP Digest needs it).
    pub fn add_user_with(&mut self, name: &str, role: Role, password: &str, rtsp: bool) -> Result<(), AuthError> {
        check_name(name)?;
        if self.users.iter().any(|u| u.name == name) {
            return Err(AuthError::Exists(name.to_owned()));
        }
        let rtsp_ha1 = rtsp.then(|| framewire_rtsp::auth::ha1(name, password));
        let password = hash_password(password)?;
        self.users.push(UserRecord {
            name: name.to_owned(),
            role,
            password,
            epoch: random_hex(8),
            rtsp_ha1,
        });
        Ok(())
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut UserRecord, AuthError> {
        self.users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AuthError::NoUser(name.to_owned()))
    }

    /// Sets a new password; the user's sessions and tokens end, and so does
    /// its RTSP access.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), AuthError> {
        self.set_password_with(name, password, false)
    }

    /// Sets a new password, with or without RTSP access (see
    /// [`UsersFile::add_user_with`]).
    pub fn set_password_with(&mut self, name: &str, password: &str, rtsp: bool) -> Result<(), AuthError> {
        let hash = hash_password(password)?;
        let u = self.user_mut(name)?;
        u.password = hash;
        u.rtsp_ha1 = rtsp.then(|| framewire_rtsp::auth::ha1(name, password));
        u.epoch = random_hex(8);
        Ok(())
    }

    /// Gives a user another role; its sessions and tokens end.
    pub fn set_role(&mut self, name: &str, role: Role) -> Result<(), AuthError> {
        let u = self.user_mut(name)?;
        u.role = role;
        u.epoch = random_hex(8);
        Ok(())
    }

    /// Removes a user and its tokens.
    pub fn remove_user(&mut self, name: &str) -> Result<(), AuthError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(AuthError::NoUser(name.to_owned()));
        }
        self.tokens.retain(|t| t.user != name);
        Ok(())
    }

    /// Creates an API token for a user, valid for `ttl` (none: until
    /// revoked or the user's credential changes); returns the whole token
    /// (shown once).
    pub fn add_token(&mut self, user: &str, ttl: Option<Duration>) -> Result<String, AuthError> {
        let epoch = match self.users.iter().find(|u| u.name == user) {
            Some(u) => u.epoch.clone(),
            None => return Err(AuthError::NoUser(user.to_owned())),
        };
        let id = random_hex(6);
        let secret = random_hex(24);
        let created_ms = now_ms();
        self.tokens.push(TokenRecord {
            id: id.clone(),
            user: user.to_owned(),
            sha256: sha256_hex(&secret),
            created_ms,
            epoch,
            expires_ms: ttl.map(|t| created_ms.saturating_add(t.as_millis() as u64)),
        });
        Ok(format!("fw_{id}_{secret}"))
    }

    /// Revokes a token by id.
    pub fn remove_token(&mut self, id: &str) -> Result<(), AuthError> {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.id != id);
        if self.tokens.len() == before {
            return Err(AuthError::NoToken(id.to_owned()));
        }
        Ok(())
    }

    /// The user a bearer token acts as, if it is valid: the secret
    /// matches, it has not expired, and its user's credential is the one
    /// it was made under.
    pub fn check_token(&self, token: &str) -> Option<&UserRecord> {
        let rest = token.strip_prefix("fw_")?;
        let (id, secret) = rest.split_once('_')?;
        let rec = self.tokens.iter().find(|t| t.id == id)?;
        if !same(&rec.sha256, &sha256_hex(secret)) {
            return None;
        }
        if rec.expires_ms.is_some_and(|e| now_ms() >= e) {
            return None;
        }
        self.users
            .iter()
            .find(|u| u.name == rec.user)
            .filter(|u| same(&u.epoch, &rec.epoch))
    }
}

/// The users file, in memory and on disk. Changes made to the file by
/// another process (`framewire user add`) are picked up on the next request.
#[derive(Debug)]
pub struct Users {
    path: Option<PathBuf>,
    data: RwLock<UsersFile>,
    /// Modification time and length of the file when last read.
    seen: Mutex<Option<(SystemTime, u64)>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Users {
    /// Loads `path` (missing: no users). `None`: in memory only. A file
    /// that others than its owner can read is used, with a warning.
    pub fn open(path: Option<PathBuf>) -> Result<Users, AuthError> {
        let (data, seen) = match &path {
            Some(p) => (UsersFile::load(p)?, stamp(p)),
            None => (UsersFile::default(), None),
        };
        if let Some(p) = &path
            && framewire_controller::store::readable_by_others(p) == Some(true)
        {
            tracing::warn!(
                path = %p.display(),
                "the users file (password hashes) is readable by group or others: chmod 600 it; it is rewritten 0600 on the next change"
            );
        }
        Ok(Users {
            path,
            data: RwLock::new(data),
            seen: Mutex::new(seen),
        })
    }

    /// Re-reads the file if it changed on disk. A file that no longer
    /// parses is logged and the users in memory are kept.
    pub fn refresh(&self) {
        let Some(path) = &self.path else { return };
        let now = stamp(path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return;
        }
        match UsersFile::load(path) {
            Ok(f) => {
                *self.data.write().unwrap_or_else(|e| e.into_inner()) = f;
                *seen = now;
                tracing::info!(path = %path.display(), "users file reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "users file changed but cannot be read; keeping the users in memory"),
        }
    }

    /// In memory, from a ready file (tests).
    pub fn from_file(data: UsersFile) -> Users {
        Users {
            path: None,
            data: RwLock::new(data),
            seen: Mutex::new(None),
        }
    }

    /// Whether no user is configured (then the server runs open on loopback).
    pub fn is_empty(&self) -> bool {
        self.read().users.is_empty()
    }

    /// A copy of the file.
    pub fn snapshot(&self) -> UsersFile {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, UsersFile> {
        // A poisoned lock only means a panic elsewhere; the data is still whole.
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the file and saves it; nothing changes if saving fails.
    pub fn modify<T>(&self, f: impl FnOnce(&mut UsersFile) -> Result<T, AuthError>) -> Result<T, AuthError> {
        let mut guard = self.data.write().unwrap_or_else(|e| e.into_inner());
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        if let Some(p) = &self.path {
            copy.save(p)?;
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamp(p);
        }
        *guard = copy;
        Ok(out)
    }

    /// Checks a login (slow on purpose: run it off the async workers);
    /// returns the user's role and epoch.
    pub fn login(&self, name: &str, password: &str) -> Option<(Role, String)> {
        let rec = self.read().users.iter().find(|u| u.name == name).cloned();
        match rec {
            Some(u) if verify_password(password, &u.password) => Some((u.role, u.epoch)),
            Some(_) => None,
            None => {
                // Spend the same time as a wrong password, so names cannot be probed.
                let _ = hash_password("not-a-user-password");
                None
            }
        }
    }

    /// The user and role of a bearer token.
    pub fn token(&self, token: &str) -> Option<(String, Role)> {
        self.read().check_token(token).map(|u| (u.name.clone(), u.role))
    }

    /// A user's RTSP Digest HA1 (every role may watch), re-reading the
    /// file if it changed.
    pub fn rtsp_ha1(&self, name: &str) -> Option<String> {
        self.refresh();
        self.read()
            .users
            .iter()
            .find(|u| u.name == name && u.role >= Role::Viewer)
            .and_then(|u| u.rtsp_ha1.clone())
    }

    /// The current role of a user (roles can change while a session lives).
    pub fn role_of(&self, name: &str) -> Option<Role> {
        self.read().users.iter().find(|u| u.name == name).map(|u| u.role)
    }

    /// The current role of a user whose credential is still of `epoch`.
    pub fn role_in_epoch(&self, name: &str, epoch: &str) -> Option<Role> {
        self.read()
            .users
            .iter()
            .find(|u| u.name == name && same(&u.epoch, epoch))
            .map(|u| u.role)
    }
}

/// One browser session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: String,
    /// The CSRF token the page must echo in `x-csrf-token`.
    pub csrf: String,
    /// The user's epoch at login: the session ends when it changes.
    pub epoch: String,
    expires: Instant,
}

/// Live browser sessions, in memory (a restart logs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (the cookie value) and the session.
    pub fn create(&self, user: &str, epoch: &str) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            user: user.to_owned(),
            csrf: random_hex(24),
            epoch: epoch.to_owned(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, v| v.expires > now);
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Ends every session of a user (removed or demoted).
    pub fn remove_user(&self, user: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.user != user);
    }
}

/// A fresh random token for the open (no users) mode's CSRF check.
pub fn random_csrf() -> String {
    random_hex(24)
}

/// Constant-time string equality, for tokens.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    same(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_roundtrip_and_rules() {
        let mut f = UsersFile::default();
        f.add_user("alice", Role::Admin, "correct horse").unwrap();
        assert!(f.users[0].password.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &f.users[0].password));
        assert!(!verify_password("wrong horse!", &f.users[0].password));
        assert!(matches!(
            f.add_user("alice", Role::Viewer, "whatever1"),
            Err(AuthError::Exists(_))
        ));
        assert!(matches!(
            f.add_user("bob", Role::Viewer, "short"),
            Err(AuthError::ShortPassword)
        ));
        assert!(matches!(
            f.add_user("b b", Role::Viewer, "longenough"),
            Err(AuthError::BadName(_))
        ));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_check_secret_and_follow_user() {
        let mut f = UsersFile::default();
        f.add_user("cli", Role::Operator, "password1").unwrap();
        let t = f.add_token("cli", None).unwrap();
        assert_eq!(f.check_token(&t).map(|u| u.name.as_str()), Some("cli"));
        let mut bad = t.clone();
        bad.pop();
        bad.push('x');
        assert!(f.check_token(&bad).is_none() || bad == t);
        assert!(f.check_token("fw_nope_nope").is_none());
        assert!(f.check_token("garbage").is_none());
        assert!(!f.tokens[0].sha256.contains(t.rsplit('_').next().unwrap()));
        f.remove_user("cli").unwrap();
        assert!(f.check_token(&t).is_none());
        assert!(f.tokens.is_empty());
    }

    #[test]
    fn changes_on_disk_are_picked_up() {
        let dir = std::env::temp_dir().join(format!("fw-users-reload-{}", std::process::id()));
        let path = dir.join(USERS_FILE);
        let users = Users::open(Some(path.clone())).unwrap();
        assert!(users.is_empty());
        let mut f = UsersFile::default();
        f.add_user("late", Role::Operator, "password1").unwrap();
        f.save(&path).unwrap();
        users.refresh();
        assert_eq!(users.role_of("late"), Some(Role::Operator));
        std::fs::write(&path, "{broken").unwrap();
        users.refresh();
        assert_eq!(
            users.role_of("late"),
            Some(Role::Operator),
            "a broken file keeps the users"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_load_roundtrip() {
        let dir = std::env::temp_dir().join(format!("fw-users-{}", std::process::id()));
        let path = dir.join(USERS_FILE);
        let mut f = UsersFile::default();
        f.add_user("alice", Role::Viewer, "password1").unwrap();
        f.save(&path).unwrap();
        assert_eq!(UsersFile::load(&path).unwrap(), f);
        std::fs::write(&path, "{not json").unwrap();
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a users file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
