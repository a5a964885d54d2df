//! `auth enable|disable` and `user add|get|list|delete|passwd|grant-role|revoke-role`,
//! with etcdctl 3.4's argument checks, password prompts and printers (the
//! `role` commands are in [`super::role`]).
//!
//! As in etcdctl, a printer runs after the call: a format a command has no
//! printer for (`table` everywhere, `fields` for `user get` and `user list`)
//! fails only once the change is made. `auth enable` and `auth disable`
//! print the same line in every format.

use std::io::BufRead;

use clap::{Arg, ArgMatches, Command};

use super::error::CtlError;
use super::global::{ask_password, bool_flag, Globals};
use super::kv::positional;
use super::output::{header, Format, Object, Out};
use super::role::{self, exactly, flag, print_change};
use crate::proto::authpb::UserAddOptions;
use crate::proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest,
    AuthUserRevokeRoleRequest,
};

/// What etcd answers `auth enable` while user root lacks role root (etcdctl
/// then creates the role, grants it and tries again).
const ROOT_ROLE_MISSING: &str = "etcdserver: root user does not have root role";

pub fn auth_command() -> Command {
    Command::new("auth")
        .about("Enable or disable authentication")
        .subcommand_required(true)
        .subcommand(
            Command::new("enable")
                .about("Enables authentication")
                .arg(positional("args")),
        )
        .subcommand(
            Command::new("disable")
                .about("Disables authentication")
                .arg(positional("args")),
        )
}

fn interactive_flag(help: &'static str) -> Arg {
    bool_flag("interactive", help).default_value("true")
}

pub fn user_command() -> Command {
    let sub = |name: &'static str, about: &'static str, args: &'static str| {
        Command::new(name).about(about).arg(positional("args").value_name(args))
    };
    Command::new("user")
        .about("User related commands")
        .subcommand_required(true)
        .subcommand(
            sub("add", "Adds a new user", "USER[:PASSWORD]")
                .arg(bool_flag(
                    "no-password",
                    "Create a user without password (CN based auth only)",
                ))
                .arg(interactive_flag(
                    "Read password from stdin instead of interactive terminal",
                ))
                .arg(
                    Arg::new("new-user-password")
                        .long("new-user-password")
                        .default_value("")
                        .help("Supply password from the command line flag"),
                ),
        )
        .subcommand(sub("delete", "Deletes a user", "USER"))
        .subcommand(
            sub("get", "Gets detailed information of a user", "USER")
                .arg(bool_flag("detail", "Show permissions of roles granted to the user")),
        )
        .subcommand(sub("grant-role", "Grants a role to a user", "USER ROLE"))
        .subcommand(Command::new("list").about("Lists all users").arg(positional("args")))
        .subcommand(sub("passwd", "Changes password of user", "USER").arg(interactive_flag(
            "If true, read password from stdin instead of interactive terminal",
        )))
        .subcommand(sub("revoke-role", "Revokes a role from a user", "USER ROLE"))
}

pub async fn run(group: &str, m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (name, m) = m.subcommand().expect("required");
    match (group, name) {
        ("auth", "enable") => auth_enable(m, globals, out).await,
        ("auth", "disable") => {
            exactly::<0>(m, "auth disable command does not accept any arguments")?;
            let client = globals.connect().await?;
            globals.timed(client.auth().auth_disable(AuthDisableRequest {})).await?;
            Ok(out.line("Authentication Disabled")?)
        }
        ("user", _) => user(name, m, globals, out).await,
        _ => unreachable!("{group} command {name}"),
    }
}

/// Enables authentication; when user root lacks role root, creates the role,
/// grants it and tries again, as etcdctl does.
async fn auth_enable(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    exactly::<0>(m, "auth enable command does not accept any arguments")?;
    let client = globals.connect().await?;
    loop {
        match globals.timed(client.auth().auth_enable(AuthEnableRequest {})).await {
            Ok(_) => break,
            Err(e) if e.message == ROOT_ROLE_MISSING => {
                let role = AuthRoleAddRequest { name: "root".into() };
                globals.timed(client.auth().role_add(role)).await?;
                let grant = AuthUserGrantRoleRequest {
                    user: "root".into(),
                    role: "root".into(),
                };
                globals.timed(client.auth().user_grant_role(grant)).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out.line("Authentication Enabled")?)
}

/// etcdctl's password prompt: twice, both answers equal and not empty.
fn read_password_interactive(name: &str) -> Result<String, CtlError> {
    let first = ask_password(&format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let second = ask_password(&format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

/// Go's `fmt.Scanf("%s", &password)`, etcdctl's read with
/// `--interactive=false`: the first word of the first line of stdin, empty
/// when that line is blank or stdin is empty.
fn scan_password(input: &mut impl BufRead) -> Result<String, CtlError> {
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line)?;
    let line = String::from_utf8_lossy(&line);
    Ok(line.split_whitespace().next().unwrap_or("").to_string())
}

fn read_password(m: &ArgMatches, name: &str) -> Result<String, CtlError> {
    if flag(m, "interactive") {
        read_password_interactive(name)
    } else {
        scan_password(&mut std::io::stdin().lock())
    }
}

async fn user(name: &str, m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    match name {
        "add" => {
            let [arg] = exactly(m, "user add command requires user name as its argument")?;
            let flag_password = m.get_one::<String>("new-user-password").expect("defaulted");
            let no_password = flag(m, "no-password");
            let (user, password) = if no_password {
                (arg, String::new())
            } else if !flag_password.is_empty() {
                (arg, flag_password.clone())
            } else if let Some((user, password)) = arg.split_once(':') {
                if user.is_empty() {
                    return Err(CtlError::bad_args("empty user name is not allowed"));
                }
                (user.to_string(), password.to_string())
            } else {
                let password = read_password(m, &arg)?;
                (arg, password)
            };
            let client = globals.connect().await?;
            let request = AuthUserAddRequest {
                name: user.clone(),
                password,
                options: Some(UserAddOptions { no_password }),
                hashed_password: String::new(),
            };
            let response = globals.timed(client.auth().user_add(request)).await?;
            print_change(out, &response.header, &format!("User {user} created"))
        }
        "get" => {
            let [user] = exactly(m, "user get command requires user name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthUserGetRequest { name: user.clone() };
            let response = globals.timed(client.auth().user_get(request)).await?;
            if flag(m, "detail") {
                out.line(&format!("User: {user}"))?;
                for role in &response.roles {
                    out.line("")?;
                    let role_response = role::get(&client, globals, role).await?;
                    role::print_role(out, role, &role_response)?;
                }
                return Ok(());
            }
            match out.format {
                Format::Simple => {
                    let roles: String = response.roles.iter().map(|r| format!(" {r}")).collect();
                    out.line(&format!("User: {user}"))?;
                    out.line(&format!("Roles:{roles}"))?;
                }
                Format::Json => out.json(
                    Object::new()
                        .object("header", header(&response.header))
                        .strings("roles", &response.roles)
                        .build(),
                )?,
                Format::Fields | Format::Table => return Err(out.format.unsupported()),
            }
            Ok(())
        }
        "list" => {
            exactly::<0>(m, "user list command requires no arguments")?;
            let client = globals.connect().await?;
            let response = globals.timed(client.auth().user_list(AuthUserListRequest {})).await?;
            match out.format {
                Format::Simple => {
                    for user in &response.users {
                        out.line(user)?;
                    }
                }
                Format::Json => out.json(
                    Object::new()
                        .object("header", header(&response.header))
                        .strings("users", &response.users)
                        .build(),
                )?,
                Format::Fields | Format::Table => return Err(out.format.unsupported()),
            }
            Ok(())
        }
        "delete" => {
            let [user] = exactly(m, "user delete command requires user name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthUserDeleteRequest { name: user.clone() };
            let response = globals.timed(client.auth().user_delete(request)).await?;
            print_change(out, &response.header, &format!("User {user} deleted"))
        }
        "passwd" => {
            let [user] = exactly(m, "user passwd command requires user name as its argument")?;
            let password = read_password(m, &user)?;
            let client = globals.connect().await?;
            let request = AuthUserChangePasswordRequest {
                name: user,
                password,
                hashed_password: String::new(),
            };
            let response = globals.timed(client.auth().user_change_password(request)).await?;
            print_change(out, &response.header, "Password updated")
        }
        "grant-role" => {
            let [user, role] = exactly(m, "user grant command requires user name and role name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthUserGrantRoleRequest {
                user: user.clone(),
                role: role.clone(),
            };
            let response = globals.timed(client.auth().user_grant_role(request)).await?;
            print_change(out, &response.header, &format!("Role {role} is granted to user {user}"))
        }
        "revoke-role" => {
            let [user, role] = exactly(m, "user revoke-role requires user name and role name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthUserRevokeRoleRequest {
                name: user.clone(),
                role: role.clone(),
            };
            let response = globals.timed(client.auth().user_revoke_role(request)).await?;
            print_change(
                out,
                &response.header,
                &format!("Role {role} is revoked from user {user}"),
            )
        }
        _ => unreachable!("user command {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_interactive_passwords_read_as_gos_scanf() {
        let scan = |input: &[u8]| scan_password(&mut &input[..]).unwrap();
        assert_eq!(scan(b"pw\n"), "pw");
        assert_eq!(scan(b"  pw extra\r\nnext\n"), "pw");
        assert_eq!(scan(b"pw"), "pw");
        assert_eq!(scan(b"\nnext\n"), "");
        assert_eq!(scan(b""), "");
    }

    #[test]
    fn user_add_takes_etcdctls_flags() {
        let m = user_command()
            .try_get_matches_from(["user", "add", "a:b", "--no-password", "--interactive=false"])
            .unwrap();
        let (_, add) = m.subcommand().unwrap();
        assert_eq!(exactly::<1>(add, "usage").unwrap(), ["a:b".to_string()]);
        assert!(flag(add, "no-password") && !flag(add, "interactive"));
        let m = user_command().try_get_matches_from(["user", "passwd", "a"]).unwrap();
        assert!(flag(m.subcommand().unwrap().1, "interactive"));
    }
}
