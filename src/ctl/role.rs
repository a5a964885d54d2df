//! `role add|get|list|delete|grant-permission|revoke-permission` as etcdctl
//! 3.4 reads and prints them, the role printer `user get --detail` shares,
//! and the printer of the management calls that answer with a header only.

use clap::{ArgMatches, Command};

use super::error::{go_quote, go_quote_bytes, CtlError};
use super::global::{bool_flag, Client, Globals};
use super::kv::{args_of, fields_header, positional, prefix_end};
use super::output::{header, Format, Json, Object, Out};
use crate::proto::authpb::{permission::Type as PermType, Permission};
use crate::proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleGrantPermissionRequest,
    AuthRoleListRequest, AuthRoleRevokePermissionRequest, ResponseHeader,
};

pub fn command() -> Command {
    let sub = |name: &'static str, about: &'static str, args: &'static str| {
        Command::new(name).about(about).arg(positional("args").value_name(args))
    };
    Command::new("role")
        .about("Role related commands")
        .subcommand_required(true)
        .subcommand(sub("add", "Adds a new role", "ROLE"))
        .subcommand(sub("delete", "Deletes a role", "ROLE"))
        .subcommand(sub("get", "Gets detailed information of a role", "ROLE"))
        .subcommand(
            sub(
                "grant-permission",
                "Grants a key to a role",
                "ROLE PERMISSION_TYPE KEY [END_KEY]",
            )
            .arg(bool_flag("prefix", "grant a prefix permission"))
            .arg(bool_flag(
                "from-key",
                "grant a permission of keys that are greater than or equal to the given key using byte compare",
            )),
        )
        .subcommand(Command::new("list").about("Lists all roles").arg(positional("args")))
        .subcommand(
            sub("revoke-permission", "Revokes a key from a role", "ROLE KEY [END_KEY]")
                .arg(bool_flag("prefix", "revoke a prefix permission"))
                .arg(bool_flag(
                    "from-key",
                    "revoke a permission of keys that are greater than or equal to the given key using byte compare",
                )),
        )
}

/// The positional arguments as text (names, passwords, permission types).
pub(super) fn text_args(m: &ArgMatches) -> Vec<String> {
    args_of(m, "args")
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

pub(super) fn flag(m: &ArgMatches, name: &str) -> bool {
    *m.get_one::<bool>(name).expect("defaulted")
}

/// `args` when there are exactly `N` of them, etcdctl's usage error otherwise.
pub(super) fn exactly<const N: usize>(m: &ArgMatches, usage: &str) -> Result<[String; N], CtlError> {
    text_args(m).try_into().map_err(|_| CtlError::bad_args(usage))
}

pub(super) async fn get(client: &Client, globals: &Globals, role: &str) -> Result<AuthRoleGetResponse, CtlError> {
    let request = AuthRoleGetRequest { role: role.to_string() };
    globals.timed(client.auth().role_get(request)).await
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (name, m) = m.subcommand().expect("required");
    match name {
        "add" => {
            let [role] = exactly(m, "role add command requires role name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthRoleAddRequest { name: role.clone() };
            let response = globals.timed(client.auth().role_add(request)).await?;
            print_change(out, &response.header, &format!("Role {role} created"))
        }
        "get" => {
            let [role] = exactly(m, "role get command requires role name as its argument")?;
            let client = globals.connect().await?;
            let response = get(&client, globals, &role).await?;
            print_role(out, &role, &response)
        }
        "list" => {
            exactly::<0>(m, "role list command requires no arguments")?;
            let client = globals.connect().await?;
            let response = globals.timed(client.auth().role_list(AuthRoleListRequest {})).await?;
            match out.format {
                Format::Simple => {
                    for role in &response.roles {
                        out.line(role)?;
                    }
                }
                Format::Json => out.json(
                    Object::new()
                        .object("header", header(&response.header))
                        .strings("roles", &response.roles)
                        .build(),
                )?,
                Format::Fields => {
                    fields_header(out, &response.header)?;
                    let roles: String = response.roles.iter().map(|r| format!(" {}", go_quote(r))).collect();
                    out.line(&format!("\"Roles\" :{roles}"))?;
                }
                Format::Table => return Err(out.format.unsupported()),
            }
            Ok(())
        }
        "delete" => {
            let [role] = exactly(m, "role delete command requires role name as its argument")?;
            let client = globals.connect().await?;
            let request = AuthRoleDeleteRequest { role: role.clone() };
            let response = globals.timed(client.auth().role_delete(request)).await?;
            print_change(out, &response.header, &format!("Role {role} deleted"))
        }
        "grant-permission" => {
            let args = args_of(m, "args");
            if args.len() < 3 {
                return Err(CtlError::bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let role = String::from_utf8_lossy(&args[0]).into_owned();
            let perm_type = permission_type(&String::from_utf8_lossy(&args[1]))?;
            let (key, range_end) = permission_range(m, &args[2..])?;
            let client = globals.connect().await?;
            let request = AuthRoleGrantPermissionRequest {
                name: role.clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key,
                    range_end,
                }),
            };
            let response = globals.timed(client.auth().role_grant_permission(request)).await?;
            print_change(out, &response.header, &format!("Role {role} updated"))
        }
        "revoke-permission" => {
            let args = args_of(m, "args");
            if args.len() < 2 {
                return Err(CtlError::bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let role = String::from_utf8_lossy(&args[0]).into_owned();
            let (key, range_end) = permission_range(m, &args[1..])?;
            let client = globals.connect().await?;
            let request = AuthRoleRevokePermissionRequest {
                role: role.clone(),
                key,
                range_end: range_end.clone(),
            };
            let response = globals.timed(client.auth().role_revoke_permission(request)).await?;
            // etcdctl names the key as given (an empty key stays empty).
            let mut text = match range_end.as_slice() {
                [] => [b"Permission of key ", args[1].as_slice()].concat(),
                [0] => [b"Permission of range [", args[1].as_slice(), b", <open ended>"].concat(),
                end => [b"Permission of range [", args[1].as_slice(), b", ", end, b")"].concat(),
            };
            text.extend_from_slice(format!(" is revoked from role {role}").as_bytes());
            match out.format {
                Format::Simple => out.bytes_line(&text)?,
                _ => print_change(out, &response.header, "")?,
            }
            Ok(())
        }
        _ => unreachable!("role command {name}"),
    }
}

/// clientv3's StrToPermissionType: the name, in any case.
fn permission_type(given: &str) -> Result<PermType, CtlError> {
    PermType::from_str_name(&given.to_uppercase())
        .ok_or_else(|| CtlError::bad_args(format!("invalid permission type: {given}")))
}

/// The key and range end of a permission, from `KEY [END_KEY]`, `--prefix`
/// and `--from-key` as etcdctl reads them: an empty key is `\0`, which with
/// `--prefix` or `--from-key` covers every key.
fn permission_range(m: &ArgMatches, args: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    let (prefix, from_key) = (flag(m, "prefix"), flag(m, "from-key"));
    let exclusive = || CtlError::bad_args("--from-key and --prefix flags are mutually exclusive");
    let key = &args[0];
    if key.is_empty() {
        if prefix && from_key {
            return Err(exclusive());
        }
        let range_end = if prefix || from_key { vec![0] } else { vec![] };
        return Ok((vec![0], range_end));
    }
    let range_end = match (args.get(1), prefix, from_key) {
        (None, true, true) => return Err(exclusive()),
        (None, true, false) => prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => vec![],
        (Some(_), true, _) => return Err(CtlError::bad_args("unexpected endkey argument with --prefix flag")),
        (Some(_), false, true) => return Err(CtlError::bad_args("unexpected endkey argument with --from-key flag")),
        (Some(end), false, false) => end.clone(),
    };
    Ok((key.clone(), range_end))
}

/// The answer to a change: a line in simple, the header in json and fields.
pub(super) fn print_change(out: &mut Out<'_>, header_: &Option<ResponseHeader>, simple: &str) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => out.line(simple)?,
        Format::Json => out.json(Object::new().object("header", header(header_)).build())?,
        Format::Fields => fields_header(out, header_)?,
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

/// Go's String() of the permission type: its name, or the number.
fn perm_type_name(value: i32) -> String {
    PermType::try_from(value).map_or_else(|_| value.to_string(), |t| t.as_str_name().to_string())
}

pub(super) fn print_role(out: &mut Out<'_>, role: &str, response: &AuthRoleGetResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            out.line(&format!("Role {role}"))?;
            for (title, kinds) in [
                ("KV Read:", [PermType::Read, PermType::Readwrite]),
                ("KV Write:", [PermType::Write, PermType::Readwrite]),
            ] {
                out.line(title)?;
                for perm in &response.perm {
                    if kinds.iter().any(|k| *k as i32 == perm.perm_type) {
                        out.bytes_line(&permission_text(perm))?;
                    }
                }
            }
        }
        Format::Json => {
            let perms = response.perm.iter().map(permission_json).collect();
            out.json(
                Object::new()
                    .object("header", header(&response.header))
                    .array("perm", perms)
                    .build(),
            )?
        }
        Format::Fields => {
            fields_header(out, &response.header)?;
            for perm in &response.perm {
                out.line(&format!("\"PermType\" :  {}", perm_type_name(perm.perm_type)))?;
                out.line(&format!("\"Key\" : {}", go_quote_bytes(&perm.key)))?;
                out.line(&format!("\"RangeEnd\" : {}", go_quote_bytes(&perm.range_end)))?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

/// One permission in `role get`: a tab, then the key, `[key, end)` or
/// `[key, <open ended>`, noting a prefix.
fn permission_text(perm: &Permission) -> Vec<u8> {
    let (key, end) = (perm.key.as_slice(), perm.range_end.as_slice());
    let mut text = b"\t".to_vec();
    if end.is_empty() {
        text.extend_from_slice(key);
        return text;
    }
    text.push(b'[');
    text.extend_from_slice(key);
    if end == [0] {
        text.extend_from_slice(b", <open ended>");
    } else {
        text.extend_from_slice(b", ");
        text.extend_from_slice(end);
        text.push(b')');
    }
    if !key.is_empty() && prefix_end(key) == end {
        text.extend_from_slice(b" (prefix ");
        text.extend_from_slice(key);
        text.push(b')');
    }
    text
}

/// authpb.Permission as Go's encoding/json writes it (the type as a number).
fn permission_json(perm: &Permission) -> Json {
    Object::new()
        .int("permType", perm.perm_type.into())
        .bytes("key", &perm.key)
        .bytes("range_end", &perm.range_end)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(perm_type: PermType, key: &[u8], range_end: &[u8]) -> Permission {
        Permission {
            perm_type: perm_type as i32,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    #[test]
    fn role_get_prints_ranges_as_etcdctl_does() {
        let response = AuthRoleGetResponse {
            header: None,
            perm: vec![
                permission(PermType::Write, b"\0", b""),
                permission(PermType::Write, b"\0", b"\0"),
                permission(PermType::Readwrite, b"a", b"b"),
                permission(PermType::Read, b"k3", b"k1"),
                permission(PermType::Read, b"x", b"\0"),
                permission(PermType::Read, b"\xff", b"\0"),
            ],
        };
        let mut buffer = Vec::new();
        let mut out = Out {
            write: &mut buffer,
            format: Format::Simple,
            hex: false,
        };
        print_role(&mut out, "r1", &response).unwrap();
        out.format = Format::Fields;
        print_role(&mut out, "r1", &response).unwrap();
        let expected: &[u8] = b"Role r1\nKV Read:\n\t[a, b) (prefix a)\n\t[k3, k1)\n\t[x, <open ended>\n\
            \t[\xff, <open ended> (prefix \xff)\nKV Write:\n\t\0\n\t[\0, <open ended>\n\t[a, b) (prefix a)\n\
            \"ClusterID\" : 0\n\"MemberID\" : 0\n\"Revision\" : 0\n\"RaftTerm\" : 0\n\
            \"PermType\" :  WRITE\n\"Key\" : \"\\x00\"\n\"RangeEnd\" : \"\"\n";
        assert_eq!(&buffer[..expected.len()], expected);
        assert_eq!(
            permission_json(&response.perm[3]).render(),
            r#"{"key":"azM=","range_end":"azE="}"#
        );
        assert_eq!(
            permission_json(&response.perm[2]).render(),
            r#"{"permType":2,"key":"YQ==","range_end":"Yg=="}"#
        );
        assert_eq!(perm_type_name(7), "7");
    }

    #[test]
    fn permission_types_and_ranges_read_as_etcdctl_reads_them() {
        assert_eq!(permission_type("readWrite").unwrap(), PermType::Readwrite);
        assert_eq!(permission_type("READ").unwrap(), PermType::Read);
        let bad = permission_type("sideways").unwrap_err();
        assert_eq!(
            (bad.exit, bad.message.as_str()),
            (super::super::error::Exit::BadArgs, "invalid permission type: sideways")
        );
        let command = command();
        let range = |args: &[&str]| {
            let mut argv = vec!["role", "revoke-permission"];
            argv.extend_from_slice(args);
            let m = command.clone().try_get_matches_from(argv).unwrap();
            let (_, m) = m.subcommand().unwrap();
            let args = args_of(m, "args");
            permission_range(m, &args[1..]).map_err(|e| e.message)
        };
        assert_eq!(range(&["r", "a"]), Ok((b"a".to_vec(), vec![])));
        assert_eq!(range(&["r", "a", "c", "ignored"]), Ok((b"a".to_vec(), b"c".to_vec())));
        assert_eq!(range(&["--prefix", "r", "a"]), Ok((b"a".to_vec(), b"b".to_vec())));
        assert_eq!(range(&["--from-key", "r", "a"]), Ok((b"a".to_vec(), vec![0])));
        assert_eq!(range(&["--prefix", "r", ""]), Ok((vec![0], vec![0])));
        assert_eq!(range(&["r", "", "z"]), Ok((vec![0], vec![])));
        assert_eq!(
            range(&["--prefix", "--from-key", "r", "a"]),
            Err("--from-key and --prefix flags are mutually exclusive".into())
        );
        assert_eq!(
            range(&["--prefix", "r", "a", "b"]),
            Err("unexpected endkey argument with --prefix flag".into())
        );
    }
}
