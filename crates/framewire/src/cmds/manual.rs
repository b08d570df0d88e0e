//! `framewire completions SHELL` and `framewire man DIR`: shell
//! completions and man pages, generated from the command line's own
//! definition (the Debian package ships both).

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

/// Print shell completions for framewire.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire completions bash > ~/.local/share/bash-completion/completions/framewire\n  \
framewire completions zsh > ~/.zfunc/_framewire\n  \
framewire completions fish > ~/.config/fish/completions/framewire.fish")]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Write man pages: framewire.1 and framewire-COMMAND.1 for each command.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write them into (made if missing).
    dir: PathBuf,
}

pub fn completions(a: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = crate::Cli::command();
    // Made whole first: a reader that goes early (`| head`) is no error.
    let mut text = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "framewire", &mut text);
    match std::io::Write::write_all(&mut std::io::stdout(), &text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn man(a: &ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("cannot make {}", a.dir.display()))?;
    let cmd = crate::Cli::command();
    let write = |name: &str, c: clap::Command| -> anyhow::Result<()> {
        let path = a.dir.join(format!("{name}.1"));
        let mut out = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        clap_mangen::Man::new(c).render(&mut out)?;
        Ok(())
    };
    let mut n = 1;
    write("framewire", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("framewire-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
        n += 1;
    }
    eprintln!("framewire: {n} man pages in {}", a.dir.display());
    Ok(())
}
