//! `framewire user`: the web UI's users and API tokens, in the controller's
//! state directory (docs/web.md). Works with the controller stopped or
//! running (a running controller picks up the changed file on its next
//! request).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use framewire_web::auth::{Role, USERS_FILE, UsersFile};

/// The web UI's users: add the first admin here, then manage the rest in the UI.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire user add ada --role admin          (asks for the password twice)\n  \
echo \"$PASSWORD\" | framewire user add otto --role operator\n  \
framewire user token ada --expires 30d       (prints a bearer token for `framewire graph` and scripts)\n  \
framewire user passwd ada                    (a new password: ada's sessions and tokens end)\n\n\
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
        /// Players may also log in as this user over RTSP (a node's
        /// --rtsp-users). RTSP Digest needs an MD5 digest of the password,
        /// kept beside its argon2 hash: give it to users meant for players.
        #[arg(long)]
        rtsp: bool,
    },
    /// Remove a user and its API tokens.
    Remove {
        /// Login name.
        name: String,
    },
    /// Set a user's password. The user's browser sessions and API tokens end.
    Passwd {
        /// Login name.
        name: String,
        /// Keep (or give) RTSP access with the new password; without it
        /// RTSP access ends.
        #[arg(long)]
        rtsp: bool,
    },
    /// Give a user another role. The user's browser sessions and API tokens end.
    Role {
        /// Login name.
        name: String,
        /// viewer, operator or admin.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// List users and their roles.
    List,
    /// Create an API token acting as a user and print it (shown once).
    /// Keep it in a file (mode 600) and give it with FRAMEWIRE_TOKEN_FILE.
    Token {
        /// Login name.
        name: String,
        /// The token stops working after this long: 90s, 15m, 12h, 30d
        /// [default: never; it ends when revoked or the user's password or role changes].
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
    },
}

/// `90s`, `15m`, `12h`, `30d` (or plain seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: a number with s, m, h or d (e.g. 30d)"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
    };
    if n == 0 {
        return Err("a token that expires at once is no token: give more than 0".into());
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: framewire_web::auth::AuthError| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = args.state_dir.join(USERS_FILE);
    let mut file = UsersFile::load(&path)?;
    match args.cmd {
        UserCmd::Add { name, role, rtsp } => {
            let password = read_password()?;
            file.add_user_with(&name, role, &password, rtsp)?;
            file.save(&path)?;
            let also = if rtsp { ", may play over RTSP" } else { "" };
            println!("added {name} ({role}{also}) to {}", path.display());
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
        UserCmd::Passwd { name, rtsp } => {
            anyhow::ensure!(
                file.users.iter().any(|u| u.name == name),
                "no user {name:?} in {}",
                path.display()
            );
            let password = read_password()?;
            file.set_password_with(&name, &password, rtsp)?;
            file.save(&path)?;
            println!("new password for {name}; its sessions and API tokens have ended");
        }
        UserCmd::Role { name, role } => {
            file.set_role(&name, role)?;
            file.save(&path)?;
            println!("{name} is now {role}; its sessions and API tokens have ended");
        }
        UserCmd::Token { name, expires } => {
            let token = file.add_token(&name, expires)?;
            file.save(&path)?;
            match expires {
                Some(d) => eprintln!(
                    "a token acting as {name}, valid for {} s; it is shown only now:",
                    d.as_secs()
                ),
                None => eprintln!("a token acting as {name}; it is shown only now:"),
            }
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
