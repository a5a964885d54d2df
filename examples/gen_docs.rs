//! Writes the man pages and the bash, zsh and fish completions of ferrocd's programs, generated
//! from their clap definitions, into a directory: `gen_docs DIR` writes `DIR/man/NAME.1` and
//! `DIR/completions/{NAME.bash,_NAME,NAME.fish}`. `packaging/build.sh` runs it and puts the
//! files where each package format wants them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;

/// One program: its clap command and what its man page says beyond clap's definitions (roff).
struct Program {
    command: Command,
    /// The SYNOPSIS section, when clap's (every flag in a row) says less than a few lines would.
    synopsis: Option<&'static str>,
    /// Sections after the options.
    sections: &'static str,
}

/// ferrocd has a hundred flags; its synopsis shows the forms of the command line instead.
const FERROCD_SYNOPSIS: &str = r#".SH SYNOPSIS
\fBferrocd\fR [\fIflags\fR]
.br
\fBferrocd check\-config\fR [\fIflags\fR]
.br
\fBferrocd \-\-version\fR
.br
\fBferrocd \-\-help\fR
"#;

/// What `ferrocd --help` does not say: the subcommand, the environment, the files of the
/// packages, and where to read on.
const FERROCD_SECTIONS: &str = r#".SH COMMANDS
.TP
\fBferrocd check\-config\fR [\fIflags\fR]
Resolves the configuration exactly as a start with the same flags and environment would,
prints every error and warning (with \fIfile\fR:\fIline\fR when a configuration file set the
value) and exits 0 only when the member would start. The packaged systemd unit runs it as
\fBExecStartPre=\fR.
.SH ENVIRONMENT
Every flag can be set as a variable: \fB\-\-my\-flag\fR is \fBETCD_MY_FLAG\fR. A flag given
both ways is an error. Under systemd the unit reads the variables from
\fI/etc/etcd/etcd.conf\fR.
.TP
\fBETCD_CONFIG_FILE\fR
The same as \fB\-\-config\-file\fR: an etcd.conf of \fBETCD_*\fR lines or etcd's YAML
configuration file, told apart by content.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd for a \fBType=notify\fR unit: ferrocd reports readiness, status lines and
watchdog pings there.
.SH FILES
.TP
\fI/etc/etcd/etcd.conf\fR
The member's settings as \fBETCD_*\fR lines under \fB[member]\fR and \fB[cluster]\fR
headers, read by the systemd unit.
.TP
\fI/var/lib/etcd\fR
The packaged data directory (owner etcd, mode 0700).
.TP
\fI/lib/systemd/system/etcd.service\fR
The systemd unit (also known as \fBferrocd.service\fR once enabled).
.SH SEE ALSO
\fBetcdctl\fR(1), \fBsystemctl\fR(1), \fBsystemd.exec\fR(5)
"#;

fn programs() -> Vec<Program> {
    vec![
        Program {
            command: ferrocd::config::command(),
            synopsis: Some(FERROCD_SYNOPSIS),
            sections: FERROCD_SECTIONS,
        },
        Program {
            command: ferrocd::ctl::command(),
            synopsis: None,
            sections: "",
        },
    ]
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        bail!("usage: gen_docs DIR");
    };
    let dir = PathBuf::from(dir);
    for program in programs() {
        write_man_page(&dir.join("man"), &program)?;
        write_completions(&dir.join("completions"), program.command)?;
    }
    Ok(())
}

fn write_man_page(dir: &Path, program: &Program) -> Result<()> {
    let name = program.command.get_name().to_string();
    let man = Man::new(program.command.clone())
        .source(format!("ferrocd {}", env!("CARGO_PKG_VERSION")))
        .manual("ferrocd manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    match program.synopsis {
        Some(synopsis) => page.extend_from_slice(synopsis.as_bytes()),
        None => man.render_synopsis_section(&mut page)?,
    }
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    if program.command.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    page.extend_from_slice(program.sections.as_bytes());
    fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))
}

fn write_completions(dir: &Path, mut command: Command) -> Result<()> {
    fs::create_dir_all(dir)?;
    let name = command.get_name().to_string();
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        let path = dir.join(file);
        fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
