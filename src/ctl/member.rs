//! `member list|add|remove|update|promote`, including the
//! `ETCD_NAME`/`ETCD_INITIAL_CLUSTER`/`ETCD_INITIAL_CLUSTER_STATE` block that
//! `member add` prints for starting the new member.

use clap::{Arg, ArgMatches, Command};

use super::error::{go_quote, parse_uint, CtlError};
use super::global::{bool_flag, Globals};
use super::kv::{args_of, fields_header, positional};
use super::output::{header, Format, Json, Object, Out};
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    ResponseHeader,
};

fn peer_urls_flag(help: &'static str) -> Arg {
    Arg::new("peer-urls").long("peer-urls").default_value("").help(help)
}

pub fn command() -> Command {
    Command::new("member")
        .about("Membership related commands")
        .subcommand_required(true)
        .subcommand(
            Command::new("add")
                .about("Adds a member into the cluster")
                .arg(positional("args").value_name("NAME PEER_URLS"))
                .arg(peer_urls_flag("comma separated peer URLs for the new member."))
                .arg(bool_flag("learner", "indicates if the new member is raft learner")),
        )
        .subcommand(Command::new("list").about("Lists all members in the cluster"))
        .subcommand(
            Command::new("remove")
                .about("Removes a member from the cluster")
                .arg(positional("args").value_name("MEMBER_ID")),
        )
        .subcommand(
            Command::new("update")
                .about("Updates a member in the cluster")
                .arg(positional("args").value_name("MEMBER_ID"))
                .arg(peer_urls_flag("comma separated peer URLs for the updated member.")),
        )
        .subcommand(
            Command::new("promote")
                .about("Promotes a non-voting member in the cluster")
                .arg(positional("args").value_name("MEMBER_ID")),
        )
}

/// The member ID argument of remove, update and promote.
fn member_id(m: &ArgMatches) -> Result<u64, CtlError> {
    let args = args_of(m, "args");
    let [arg] = args.as_slice() else {
        return Err(CtlError::bad_args("member ID is not provided"));
    };
    parse_uint(&String::from_utf8_lossy(arg), 16)
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

/// clientv3's check before a membership change: every URL is
/// `http(s)://host:port` (or unix) without a path.
pub fn check_peer_urls(urls: &[String]) -> Result<(), CtlError> {
    if urls.is_empty() {
        return Err(CtlError::error("no valid URLs given"));
    }
    for given in urls {
        let given = given.trim();
        let scheme_error = || CtlError::error(format!("URL scheme must be http, https, unix, or unixs: {given}"));
        let url = url::Url::parse(given).map_err(|_| scheme_error())?;
        match url.scheme() {
            "http" | "https" => {
                if url.host_str().is_none() || !has_port(given) {
                    return Err(CtlError::error(format!(
                        "URL address does not have the form \"host:port\": {given}"
                    )));
                }
            }
            "unix" | "unixs" => {}
            _ => return Err(scheme_error()),
        }
        if !matches!(url.path(), "" | "/") || given.ends_with('/') {
            return Err(CtlError::error(format!("URL must not contain a path: {given}")));
        }
    }
    Ok(())
}

/// Whether the authority of `scheme://authority[/...]` names a port.
fn has_port(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    match host_port.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && !port.contains(']'),
        None => false,
    }
}

fn split_urls(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (name, m) = m.subcommand().expect("required");
    match name {
        "list" => {
            let client = globals.connect().await?;
            let response = globals
                .timed(client.cluster().member_list(MemberListRequest::default()))
                .await?;
            print_list(out, &response.header, &response.members)
        }
        "add" => add(m, globals, out).await,
        "remove" => {
            let id = member_id(m)?;
            let client = globals.connect().await?;
            let response = globals
                .timed(client.cluster().member_remove(MemberRemoveRequest { id }))
                .await?;
            print_change(out, "removed from", id, &response.header, &response.members)
        }
        "update" => {
            let id = member_id(m)?;
            let urls = m.get_one::<String>("peer-urls").expect("defaulted");
            if urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            let peer_ur_ls = split_urls(urls);
            check_peer_urls(&peer_ur_ls)?;
            let client = globals.connect().await?;
            let request = MemberUpdateRequest { id, peer_ur_ls };
            let response = globals.timed(client.cluster().member_update(request)).await?;
            print_change(out, "updated in", id, &response.header, &response.members)
        }
        "promote" => {
            let id = member_id(m)?;
            let client = globals.connect().await?;
            let response = globals
                .timed(client.cluster().member_promote(MemberPromoteRequest { id }))
                .await?;
            print_change(out, "promoted in", id, &response.header, &response.members)
        }
        _ => unreachable!("member command {name}"),
    }
}

/// `member add NAME --peer-urls=URLS` or, as etcdctl v2 and the deployment
/// guides have it, `member add NAME URLS`.
async fn add(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let args: Vec<String> = args_of(m, "args")
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let flag_urls = m.get_one::<String>("peer-urls").expect("defaulted");
    let (name, urls) = match args.as_slice() {
        [] => return Err(CtlError::bad_args("member name not provided")),
        [name] => (name.clone(), flag_urls.clone()),
        [name, urls] if flag_urls.is_empty() => (name.clone(), urls.clone()),
        _ => {
            let mut message = String::from("too many arguments");
            for arg in &args {
                if arg.to_lowercase().starts_with("http") {
                    message.push_str(&format!(", did you mean --peer-urls={arg}"));
                }
            }
            return Err(CtlError::bad_args(message));
        }
    };
    if urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let peer_ur_ls = split_urls(&urls);
    check_peer_urls(&peer_ur_ls)?;
    let is_learner = *m.get_one::<bool>("learner").expect("defaulted");
    let client = globals.connect().await?;
    let request = MemberAddRequest {
        peer_ur_ls: peer_ur_ls.clone(),
        is_learner,
    };
    let response = globals.timed(client.cluster().member_add(request)).await?;
    let added = response.member.clone().unwrap_or_default();
    let cluster_id = response.header.as_ref().map_or(0, |h| h.cluster_id);
    match out.format {
        Format::Simple => {
            // etcdctl 3.4.23 says "added to cluster" for learners too.
            out.line(&format!("Member {:16x} added to cluster {cluster_id:16x}", added.id))?;
        }
        Format::Json => out.json(
            Object::new()
                .object("header", header(&response.header))
                .object("member", response.member.as_ref().map(member_object))
                .array(
                    "members",
                    response.members.iter().map(|m| member_object(m).build()).collect(),
                )
                .build(),
        )?,
        Format::Fields => print_list(out, &response.header, &response.members)?,
        Format::Table => return Err(out.format.unsupported()),
    }
    if out.format != Format::Simple {
        return Ok(());
    }
    // The member list as the member that added it sees it now.
    let list = globals
        .timed(client.cluster().member_list(MemberListRequest::default()))
        .await?;
    let initial_cluster: Vec<String> = list
        .members
        .iter()
        .flat_map(|member| {
            let shown = if member.id == added.id {
                name.clone()
            } else {
                member.name.clone()
            };
            member.peer_ur_ls.iter().map(move |url| format!("{shown}={url}"))
        })
        .collect();
    out.line("")?;
    out.line(&format!("ETCD_NAME={}", go_quote(&name)))?;
    out.line(&format!(
        "ETCD_INITIAL_CLUSTER={}",
        go_quote(&initial_cluster.join(","))
    ))?;
    out.line(&format!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
        go_quote(&peer_ur_ls.join(","))
    ))?;
    out.line("ETCD_INITIAL_CLUSTER_STATE=\"existing\"")?;
    Ok(())
}

fn member_object(m: &Member) -> Object {
    Object::new()
        .uint("ID", m.id)
        .string("name", &m.name)
        .strings("peerURLs", &m.peer_ur_ls)
        .strings("clientURLs", &m.client_ur_ls)
        .boolean("isLearner", m.is_learner)
}

fn members_json(header_: &Option<ResponseHeader>, members: &[Member]) -> Json {
    Object::new()
        .object("header", header(header_))
        .array("members", members.iter().map(|m| member_object(m).build()).collect())
        .build()
}

/// ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
pub fn member_rows(members: &[Member]) -> Vec<Vec<String>> {
    members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() { "unstarted" } else { "started" }.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

pub fn print_list(out: &mut Out<'_>, header_: &Option<ResponseHeader>, members: &[Member]) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            for row in member_rows(members) {
                out.line(&row.join(", "))?;
            }
        }
        Format::Table => out.table(
            &["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"],
            &member_rows(members),
        )?,
        Format::Json => out.json(members_json(header_, members))?,
        Format::Fields => {
            fields_header(out, header_)?;
            for m in members {
                out.line(&format!("\"ID\" : {}", m.id))?;
                out.line(&format!("\"Name\" : {}", go_quote(&m.name)))?;
                for url in &m.peer_ur_ls {
                    out.line(&format!("\"PeerURL\" : {}", go_quote(url)))?;
                }
                for url in &m.client_ur_ls {
                    out.line(&format!("\"ClientURL\" : {}", go_quote(url)))?;
                }
                out.line(&format!("\"IsLearner\" : {}", m.is_learner))?;
                out.line("")?;
            }
        }
    }
    Ok(())
}

/// remove, update and promote: `Member <id> <what> cluster <cluster id>`.
fn print_change(
    out: &mut Out<'_>,
    what: &str,
    id: u64,
    header_: &Option<ResponseHeader>,
    members: &[Member],
) -> Result<(), CtlError> {
    let cluster_id = header_.as_ref().map_or(0, |h| h.cluster_id);
    match out.format {
        Format::Simple => out.line(&format!("Member {id:16x} {what} cluster {cluster_id:16x}"))?,
        Format::Json => out.json(members_json(header_, members))?,
        Format::Fields => print_list(out, header_, members)?,
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_as_clientv3_does() {
        let check = |url: &str| check_peer_urls(&[url.to_string()]).map_err(|e| e.message);
        assert_eq!(check("http://127.0.0.1:2380"), Ok(()));
        assert_eq!(check("https://[::1]:2380"), Ok(()));
        assert_eq!(
            check("bogus"),
            Err("URL scheme must be http, https, unix, or unixs: bogus".into())
        );
        assert_eq!(
            check("http://127.0.0.1"),
            Err("URL address does not have the form \"host:port\": http://127.0.0.1".into())
        );
        assert_eq!(
            check("http://a:1/x"),
            Err("URL must not contain a path: http://a:1/x".into())
        );
    }

    #[test]
    fn member_rows_and_table() {
        let members = vec![
            Member {
                id: 0x2f36e8e1c83af4f2,
                name: "c".into(),
                peer_ur_ls: vec!["http://127.0.0.1:23382".into()],
                client_ur_ls: vec!["http://127.0.0.1:23372".into()],
                is_learner: false,
            },
            Member {
                id: 0xbaf7f7a229e7ef7c,
                peer_ur_ls: vec!["http://127.0.0.1:23383".into()],
                is_learner: true,
                ..Default::default()
            },
        ];
        let mut buffer = Vec::new();
        let mut out = Out {
            write: &mut buffer,
            format: Format::Simple,
            hex: false,
        };
        print_list(&mut out, &None, &members).unwrap();
        out.format = Format::Table;
        print_list(&mut out, &None, &members).unwrap();
        let expected = "\
2f36e8e1c83af4f2, started, c, http://127.0.0.1:23382, http://127.0.0.1:23372, false
baf7f7a229e7ef7c, unstarted, , http://127.0.0.1:23383, , true
+------------------+-----------+------+------------------------+------------------------+------------+
|        ID        |  STATUS   | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+-----------+------+------------------------+------------------------+------------+
| 2f36e8e1c83af4f2 |   started |    c | http://127.0.0.1:23382 | http://127.0.0.1:23372 |      false |
| baf7f7a229e7ef7c | unstarted |      | http://127.0.0.1:23383 |                        |       true |
+------------------+-----------+------+------------------------+------------------------+------------+
";
        assert_eq!(String::from_utf8(buffer).unwrap(), expected);
    }
}
