//! A small deployment CA: `framewire cert init` makes its certificate and
//! key, `framewire cert issue` a certificate and key for a node or a web
//! server, signed by it, for the addresses and names it is reached by.
//! Each certificate is good for serving and for showing as a client
//! (mutual authentication). Keys are ECDSA P-256 and written mode 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::{TlsError, write_private};

/// The CA's certificate in its directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in its directory.
pub const CA_KEY: &str = "ca.key";

/// A certificate and key made by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

fn serial() -> Result<SerialNumber, TlsError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| TlsError::Write {
        path: PathBuf::from("(random serial)"),
        source: std::io::Error::other(e.to_string()),
    })?;
    // Positive, as DER integers for serials must be.
    b[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&b))
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "framewire deployment");
    dn
}

/// Makes the files free to write: refused when one exists, unless `force`.
fn clear(paths: &[&Path], force: bool) -> Result<(), TlsError> {
    for p in paths {
        if p.exists() || p.is_symlink() {
            if !force {
                return Err(TlsError::Exists(p.to_path_buf()));
            }
            std::fs::remove_file(p).map_err(|source| TlsError::Write {
                path: p.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(())
}

fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Makes a CA named `cn` in `dir` (created, mode 0700), valid for `days`:
/// `ca.pem` and `ca.key`. Refuses to replace an existing CA unless `force`.
pub fn init(dir: &Path, cn: &str, days: u32, force: bool) -> Result<PathBuf, TlsError> {
    create_dir(dir)?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    clear(&[&cert_path, &key_path], force)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    // Two CAs of the same name stay apart: a certificate of the other is
    // then refused as of an unknown issuer, not as a bad signature.
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).map_err(|e| TlsError::Write {
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, format!("ca-{id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    params.serial_number = Some(serial()?);
    let cert = params.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(cert_path)
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// A file name for a holder's name (`lab:cam` → `lab_cam`).
pub fn file_stem(holder: &str) -> String {
    holder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Issues a certificate for `holder` (its common name), reachable as
/// `hosts` (IP addresses or DNS names), valid for `days`, signed by the CA
/// in `dir`: `dir/HOLDER.pem` and `dir/HOLDER.key`.
pub fn issue(dir: &Path, holder: &str, hosts: &[String], days: u32, force: bool) -> Result<Issued, TlsError> {
    let now = OffsetDateTime::now_utc();
    issue_valid(
        dir,
        holder,
        hosts,
        (now - Duration::hours(1), now + Duration::days(i64::from(days))),
        force,
    )
}

/// As [`issue`], valid from `valid.0` to `valid.1` (a test makes an
/// expired one with it).
pub fn issue_valid(
    dir: &Path,
    holder: &str,
    hosts: &[String],
    valid: (OffsetDateTime, OffsetDateTime),
    force: bool,
) -> Result<Issued, TlsError> {
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|source| TlsError::Read { path: p, source });
    let ca_key = KeyPair::from_pem(&read(dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(dir.join(CA_CERT))?, ca_key)?;
    for h in hosts {
        if h.parse::<std::net::IpAddr>().is_err() && crate::server_name(h).is_err() {
            return Err(TlsError::BadName(h.clone()));
        }
    }
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = name(holder);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = valid.0;
    params.not_after = valid.1;
    params.serial_number = Some(serial()?);
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let stem = file_stem(holder);
    let out = Issued {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    clear(&[&out.cert, &out.key], force)?;
    write_private(&out.key, key.serialize_pem().as_bytes())?;
    write_public(&out.cert, &cert.pem())?;
    Ok(out)
}
