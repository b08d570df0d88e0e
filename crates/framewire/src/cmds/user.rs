//! `framewire user`: the web UI's users and API tokens, in the controller's
//! state directory (docs/web.md). Works with the controller stopped or
//! running (a running controller picks up the changed file on its next
//! request).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use framewire_web::auth::{Role, USERS_FILE, UsersFile};

/// The web UI's users: add the first admin here, then manage the rest in the UI.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire user add ada --role admin          (asks for the password twice)\n  \
echo \"$PASSWORD\" | framewire user add otto --role operator\n  \
framewire user token ada                     (prints a bearer token for `framewire graph` and scripts)\n\n\
Roles: viewer (see the graph and previews), operator (also wire edges and set camera\n\
controls), admin (also users and tokens).")]
pub struct Args {
    #[command(subcommand)]
    cmd: UserCmd,
    /// The controller's state directory (users.json lives there).
    #[arg(long, global = true, env = "FRAMEWIRE_STATE_DIR", default_value = "framewire-state")]
    state_dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum UserCmd {
    /// Add a user. The password is asked on the terminal, or read as the first line of stdin.
    Add {
        /// Login name: letters, digits, '.', '_', '-'.
        name: String,
        /// viewer, operator or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Remove a user and its API tokens.
    Remove {
        /// Login name.
        name: String,
    },
    /// List users and their roles.
    List,
    /// Create an API token acting as a user and print it (shown once).
    Token {
        /// Login name.
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: framewire_web::auth::AuthError| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = args.state_dir.join(USERS_FILE);
    let mut file = UsersFile::load(&path)?;
    match args.cmd {
        UserCmd::Add { name, role } => {
            let password = read_password()?;
            file.add_user(&name, role, &password)?;
            file.save(&path)?;
            println!("added {name} ({role}) to {}", path.display());
        }
        UserCmd::Remove { name } => {
            file.remove_user(&name)?;
            file.save(&path)?;
            println!("removed {name}");
        }
        UserCmd::List => {
            if file.users.is_empty() {
                println!("no users in {} (the web UI runs open, loopback only)", path.display());
            }
            for u in &file.users {
                let tokens = file.tokens.iter().filter(|t| t.user == u.name).count();
                println!("{:<24} {:<9} {tokens} token(s)", u.name, u.role);
            }
        }
        UserCmd::Token { name } => {
            let token = file.add_token(&name)?;
            file.save(&path)?;
            eprintln!("a token acting as {name}; it is shown only now:");
            println!("{token}");
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!p.is_empty(), "no password on stdin (give it as the first line)");
        return Ok(p);
    }
    let first = prompt_hidden("password: ")?;
    let again = prompt_hidden("again: ")?;
    anyhow::ensure!(first == again, "the passwords differ");
    Ok(first)
}

/// Reads a line from the terminal with echo off.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled, termios.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            anyhow::bail!("cannot read the terminal settings");
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        saved
    };
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &saved);
    }
    eprintln!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
