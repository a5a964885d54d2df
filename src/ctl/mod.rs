//! ferrocdctl: an etcdctl 3.4-compatible command-line client for ferrocd
//! (and etcd), speaking the v3 gRPC API through the clients generated from
//! ferrocd's own protos.
//!
//! # Layout
//!
//! - [`global`]: global flags and `ETCDCTL_*` variables, TLS, auth, the
//!   connection.
//! - [`output`]: the simple, table and json printers' shared pieces.
//! - [`error`]: the one map from failures to etcdctl's exit codes.
//! - one module per command group: [`kv`] (put get del compaction),
//!   [`txn`], [`watch`], [`lease`], [`member`], [`endpoint`] (and
//!   cluster-health), [`maintenance`] (defrag alarm move-leader),
//!   [`snapshot`], [`auth`] (auth and user), [`role`].

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod global;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod member;
pub mod output;
pub mod role;
pub mod snapshot;
pub mod txn;
pub mod watch;

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{ArgMatches, Command};

use error::CtlError;
use global::Globals;

/// The API level the commands speak.
const API_VERSION: &str = "3.4";

/// The whole command line (also used to generate man pages and shell
/// completions).
pub fn command() -> Command {
    Command::new("ferrocdctl")
        .about("A simple command line client for ferrocd and etcd3 (etcdctl 3.4 compatible).")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .args(global::args())
        .subcommand(kv::get_command())
        .subcommand(kv::put_command())
        .subcommand(kv::del_command())
        .subcommand(txn::command())
        .subcommand(kv::compaction_command())
        .subcommand(watch::command())
        .subcommand(lease::command())
        .subcommand(member::command())
        .subcommand(endpoint::command())
        .subcommand(endpoint::cluster_health_command())
        .subcommand(maintenance::alarm_command())
        .subcommand(maintenance::defrag_command())
        .subcommand(maintenance::move_leader_command())
        .subcommand(snapshot::command())
        .subcommand(auth::auth_command())
        .subcommand(auth::user_command())
        .subcommand(role::command())
        .subcommand(Command::new("version").about("Prints the version of ferrocdctl"))
}

/// Runs the parsed command, printing to stdout.
pub async fn run(matches: &ArgMatches) -> Result<(), CtlError> {
    let globals = Globals::from_matches(matches)?;
    let mut stdout = std::io::stdout();
    let mut out = globals.out(&mut stdout);
    let (name, m) = matches.subcommand().expect("a subcommand is required");
    match name {
        "put" | "get" | "del" | "compaction" => kv::run(name, m, &globals, &mut out).await,
        "txn" => txn::run(m, &globals, &mut out).await,
        "watch" => watch::run(m, &globals, &mut out).await,
        "lease" => lease::run(m, &globals, &mut out).await,
        "member" => member::run(m, &globals, &mut out).await,
        "endpoint" => endpoint::run(m, &globals, &mut out).await,
        "cluster-health" => endpoint::cluster_health(&globals, &mut out).await,
        "alarm" | "defrag" | "move-leader" => maintenance::run(name, m, &globals, &mut out).await,
        "snapshot" => snapshot::run(m, &globals, &mut out).await,
        "auth" | "user" => auth::run(name, m, &globals, &mut out).await,
        "role" => role::run(m, &globals, &mut out).await,
        "version" => {
            out.line(&format!("ferrocdctl version: {}", env!("CARGO_PKG_VERSION")))?;
            out.line(&format!("API version: {API_VERSION}"))?;
            Ok(())
        }
        other => unreachable!("unknown command {other}"),
    }
}

/// Parses `args`, runs the command and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let matches = match command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => return usage_error(e),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&matches)) {
        Ok(()) => 0,
        Err(e) => e.report(),
    }
}

/// Help and version go to stdout with status 0; bad flags and unknown
/// commands are `Error: ...` with status 1, as cobra reports them for
/// etcdctl.
fn usage_error(e: clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let _ = e.print();
            1
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
            eprintln!("Error: {first}");
            if let Some(usage) = text.lines().find(|l| l.starts_with("Usage:")) {
                eprintln!("{usage}");
            }
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn global_flags_parse_anywhere_as_etcdctl_accepts_them() {
        let m = command()
            .try_get_matches_from(["ferrocdctl", "get", "foo", "-w", "json", "--endpoints=a:1,b:2", "--hex"])
            .unwrap();
        let globals = Globals::from_matches(&m).unwrap();
        assert_eq!(globals.endpoints, vec!["a:1", "b:2"]);
        assert_eq!((globals.format, globals.hex), (output::Format::Json, true));
        let m = command()
            .try_get_matches_from(["ferrocdctl", "--endpoints=a:1", "--endpoints=b:2", "get", "x"])
            .unwrap();
        assert_eq!(Globals::from_matches(&m).unwrap().endpoints, vec!["a:1", "b:2"]);
        let m = command()
            .try_get_matches_from(["ferrocdctl", "-w", "xml", "get", "x"])
            .unwrap();
        let err = Globals::from_matches(&m).unwrap_err();
        assert_eq!(
            (err.exit, err.message.as_str()),
            (error::Exit::BadFeature, "unsupported output format")
        );
    }

    #[test]
    fn bool_flags_take_go_values_but_never_the_next_argument() {
        let m = command()
            .try_get_matches_from(["ferrocdctl", "get", "--prefix", "k"])
            .unwrap();
        let (_, get) = m.subcommand().unwrap();
        assert!(*get.get_one::<bool>("prefix").unwrap());
        assert_eq!(kv::args_of(get, "args"), vec![b"k".to_vec()]);
        let m = command()
            .try_get_matches_from(["ferrocdctl", "get", "--prefix=false", "k"])
            .unwrap();
        assert!(!*m.subcommand().unwrap().1.get_one::<bool>("prefix").unwrap());
    }
}
