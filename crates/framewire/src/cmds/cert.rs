//! `framewire cert`: a small deployment CA and the certificates it issues
//! (docs/security.md, "TLS").

use std::path::PathBuf;

use anyhow::Context;
use framewire_tls::ca;

/// Certificates for HTTPS and TLS between nodes.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: CertCmd,
}

#[derive(Debug, clap::Subcommand)]
enum CertCmd {
    /// Make a deployment CA in DIR: ca.pem (give it to every client) and
    /// ca.key (mode 0600; keep it off the nodes).
    #[command(after_help = "Example:\n  \
framewire cert init --dir /etc/framewire/ca")]
    Init {
        /// The CA's directory (made, mode 0700, when missing).
        #[arg(long, default_value = "framewire-ca")]
        dir: PathBuf,
        /// The CA's name, in its certificate.
        #[arg(long, default_value = "framewire deployment CA")]
        name: String,
        /// Days it is valid.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Replace an existing CA (every certificate it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate and key for NAME (a node, or a web server),
    /// signed by the CA in DIR: DIR/NAME.pem and DIR/NAME.key (mode 0600).
    /// Give every address and DNS name it is reached by with --host.
    #[command(after_help = "Examples:\n  \
framewire cert issue lab:gw --dir /etc/framewire/ca --host 10.0.0.5 --host gw.lab.example\n  \
framewire node --controller --web 10.0.0.5:7480 \\\n    \
--web-tls-cert /etc/framewire/ca/lab_gw.pem --web-tls-key /etc/framewire/ca/lab_gw.key")]
    Issue {
        /// Who holds it (its common name; the files are named after it).
        name: String,
        /// The CA's directory.
        #[arg(long, default_value = "framewire-ca")]
        dir: PathBuf,
        /// An IP address or DNS name it is reached by (repeatable).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Days it is valid.
        #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Replace its existing files.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        CertCmd::Init { dir, name, days, force } => {
            let cert = ca::init(&dir, &name, days, force).context("cannot make the CA")?;
            eprintln!(
                "framewire: made the CA `{name}` in {} (valid {days} days): give {} to every client, keep {} private",
                dir.display(),
                cert.display(),
                dir.join(ca::CA_KEY).display()
            );
        }
        CertCmd::Issue {
            name,
            dir,
            hosts,
            days,
            force,
        } => {
            if hosts.is_empty() {
                eprintln!(
                    "framewire: no --host given: the certificate proves a client's identity but no server's address"
                );
            }
            let out = ca::issue(&dir, &name, &hosts, days, force).context("cannot issue the certificate")?;
            eprintln!(
                "framewire: issued `{name}` for {} (valid {days} days): {} and {} (mode 0600)",
                if hosts.is_empty() {
                    "no host".to_owned()
                } else {
                    hosts.join(", ")
                },
                out.cert.display(),
                out.key.display()
            );
        }
    }
    Ok(())
}
