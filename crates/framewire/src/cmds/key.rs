//! `framewire key`: make deployment keys.

use std::path::PathBuf;

use anyhow::Context;
use framewire_net::DeploymentKey;

/// Deployment keys (docs/security.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCmd {
    /// Write a fresh random 32-byte key as hex text to FILE (mode 0600), or
    /// print it when no FILE is given. Give the same file to every node and
    /// tool of the deployment with --key-file.
    #[command(after_help = "Examples:\n  \
framewire key gen /etc/framewire/key\n  \
framewire --key-file /etc/framewire/key node --name lab:cam --source test-pattern:bars")]
    Gen {
        /// Where to write the key; an existing file is refused unless --force.
        file: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the RTSP password of the key's user `framewire`: players log
    /// in with it to a node with this key (rtsp://framewire:PASSWORD@HOST/STREAM).
    /// Derived from the key, so the key itself never goes into a player's URL.
    #[command(after_help = "Example:\n  \
ffplay rtsp://framewire:$(framewire --key-file /etc/framewire/key key rtsp-password)@10.0.0.5:8554/cam")]
    RtspPassword,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        KeyCmd::Gen { file, force } => {
            let key = DeploymentKey::generate()?;
            match file {
                Some(path) => {
                    key.write_new(&path, force).with_context(|| {
                        if path.exists() && !force {
                            "the file exists; pass --force to replace it".to_owned()
                        } else {
                            "cannot write the key".to_owned()
                        }
                    })?;
                    eprintln!(
                        "framewire: wrote a new deployment key to {} (mode 0600)",
                        path.display()
                    );
                }
                None => println!("{}", key.to_hex()),
            }
            Ok(())
        }
        KeyCmd::RtspPassword => {
            let path = crate::util::key_file()
                .context("give the deployment key with --key-file PATH (or FRAMEWIRE_KEY_FILE)")?;
            println!("{}", DeploymentKey::load(path)?.rtsp_password());
            Ok(())
        }
    }
}
