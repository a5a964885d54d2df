//! `lease grant|revoke|timetolive|list|keep-alive` and their printers.

use std::time::Duration;

use clap::{ArgMatches, Command};
use tokio_stream::StreamExt;

use super::error::{go_quote_bytes, parse_int, CtlError, Exit};
use super::global::{bool_flag, Globals};
use super::kv::{args_of, fields_header, positional};
use super::output::{header, Format, Json, Object, Out};
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

pub fn command() -> Command {
    let sub = |name: &'static str, about: &'static str| Command::new(name).about(about);
    Command::new("lease")
        .about("Lease related commands")
        .subcommand_required(true)
        .subcommand(sub("grant", "Creates leases").arg(positional("args").value_name("TTL")))
        .subcommand(sub("revoke", "Revokes leases").arg(positional("args").value_name("LEASE_ID")))
        .subcommand(
            sub("timetolive", "Get lease information")
                .arg(positional("args").value_name("LEASE_ID"))
                .arg(bool_flag("keys", "Get keys attached to this lease")),
        )
        .subcommand(Command::new("list").about("List all active leases"))
        .subcommand(
            sub("keep-alive", "Keeps leases alive (renew)")
                .arg(positional("args").value_name("LEASE_ID"))
                .arg(bool_flag(
                    "once",
                    "Resets the keep-alive time to its original value and exits immediately",
                )),
        )
}

fn one_arg(m: &ArgMatches, missing: &str) -> Result<String, CtlError> {
    match args_of(m, "args").as_slice() {
        [arg] => Ok(String::from_utf8_lossy(arg).into_owned()),
        _ => Err(CtlError::bad_args(missing)),
    }
}

fn lease_id(arg: &str) -> Result<i64, CtlError> {
    parse_int(arg, 16).map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (name, m) = m.subcommand().expect("required");
    match name {
        "grant" => {
            let arg = one_arg(m, "lease grant command needs TTL argument")?;
            let ttl = parse_int(&arg, 10).map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))?;
            let client = globals.connect().await?;
            let response = globals
                .timed(client.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
                .await
                .map_err(|e| e.wrap("failed to grant lease"))?;
            print_grant(out, &response)
        }
        "revoke" => {
            let id = lease_id(&one_arg(m, "lease revoke command needs 1 argument")?)?;
            let client = globals.connect().await?;
            let response = globals
                .timed(client.lease().lease_revoke(LeaseRevokeRequest { id }))
                .await
                .map_err(|e| e.wrap("failed to revoke lease"))?;
            print_revoke(out, id, &response)
        }
        "timetolive" => {
            let id = lease_id(&one_arg(m, "lease timetolive command needs lease ID as argument")?)?;
            let keys = *m.get_one::<bool>("keys").expect("defaulted");
            let client = globals.connect().await?;
            let request = LeaseTimeToLiveRequest { id, keys };
            let response = client
                .lease()
                .lease_time_to_live(request)
                .await
                .map_err(|e| CtlError::from(e).with_exit(Exit::BadConnection))?
                .into_inner();
            print_time_to_live(out, &response, keys)
        }
        "list" => {
            let client = globals.connect().await?;
            let response = client
                .lease()
                .lease_leases(LeaseLeasesRequest {})
                .await
                .map_err(|e| CtlError::from(e).with_exit(Exit::BadConnection))?
                .into_inner();
            print_leases(out, &response)
        }
        "keep-alive" => {
            let id = lease_id(&one_arg(m, "lease keep-alive command needs lease ID as argument")?)?;
            let once = *m.get_one::<bool>("once").expect("defaulted");
            keep_alive(globals, out, id, once).await
        }
        _ => unreachable!("lease command {name}"),
    }
}

/// Renews the lease at a third of its TTL until it is gone (or once).
async fn keep_alive(globals: &Globals, out: &mut Out<'_>, id: i64, once: bool) -> Result<(), CtlError> {
    let client = globals.connect().await?;
    let (requests, queue) = tokio::sync::mpsc::channel(1);
    let bad = |e: tonic::Status| CtlError::from(e).with_exit(Exit::BadConnection);
    let mut responses = client
        .lease()
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(queue))
        .await
        .map_err(bad)?
        .into_inner();
    loop {
        requests
            .send(LeaseKeepAliveRequest { id })
            .await
            .expect("receiver alive");
        let response = match responses.next().await {
            Some(response) => response.map_err(bad)?,
            None => break,
        };
        if response.ttl <= 0 {
            if once {
                return Err(CtlError::new(
                    Exit::BadConnection,
                    "etcdserver: requested lease not found",
                ));
            }
            break;
        }
        print_keep_alive(out, &response)?;
        if once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs((response.ttl as u64 / 3).max(1))).await;
    }
    if out.format == Format::Simple {
        out.line(&format!("lease {id:016x} expired or revoked."))?;
    }
    Ok(())
}

/// clientv3's lease responses embed the header: its fields come first.
fn inline_header(h: &Option<crate::proto::etcdserverpb::ResponseHeader>) -> Object {
    Object::new().inline(header(h))
}

fn print_grant(out: &mut Out<'_>, r: &LeaseGrantResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => out.line(&format!("lease {:016x} granted with TTL({}s)", r.id, r.ttl))?,
        Format::Json => out.json(
            inline_header(&r.header)
                .field("ID", Json::Int(r.id))
                .field("TTL", Json::Int(r.ttl))
                .field("Error", Json::Str(r.error.clone()))
                .build(),
        )?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            out.line(&format!("\"ID\" : {}", r.id))?;
            out.line(&format!("\"TTL\" : {}", r.ttl))?;
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

fn print_revoke(out: &mut Out<'_>, id: i64, r: &LeaseRevokeResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => out.line(&format!("lease {id:016x} revoked"))?,
        Format::Json => out.json(Object::new().object("header", header(&r.header)).build())?,
        Format::Fields => fields_header(out, &r.header)?,
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

fn print_keep_alive(out: &mut Out<'_>, r: &LeaseKeepAliveResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => out.line(&format!("lease {:016x} keepalived with TTL({})", r.id, r.ttl))?,
        Format::Json => out.json(
            inline_header(&r.header)
                .field("ID", Json::Int(r.id))
                .field("TTL", Json::Int(r.ttl))
                .build(),
        )?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            out.line(&format!("\"ID\" : {}", r.id))?;
            out.line(&format!("\"TTL\" : {}", r.ttl))?;
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    out.write.flush()?;
    Ok(())
}

fn print_time_to_live(out: &mut Out<'_>, r: &LeaseTimeToLiveResponse, keys: bool) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            if r.granted_ttl == 0 && r.ttl == -1 {
                out.line(&format!("lease {:016x} already expired", r.id))?;
                return Ok(());
            }
            let mut text = format!(
                "lease {:016x} granted with TTL({}s), remaining({}s)",
                r.id, r.granted_ttl, r.ttl
            );
            if keys {
                let names: Vec<String> = r.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
                text.push_str(&format!(", attached keys([{}])", names.join(" ")));
            }
            out.line(&text)?;
        }
        Format::Json => out.json(
            inline_header(&r.header)
                .field("id", Json::Int(r.id))
                .field("ttl", Json::Int(r.ttl))
                .field("granted-ttl", Json::Int(r.granted_ttl))
                .field(
                    "keys",
                    if r.keys.is_empty() {
                        Json::Null
                    } else {
                        Json::Array(r.keys.iter().map(|k| Json::Bytes(k.clone())).collect())
                    },
                )
                .build(),
        )?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            out.line(&format!("\"ID\" : {}", r.id))?;
            out.line(&format!("\"TTL\" : {}", r.ttl))?;
            out.line(&format!("\"GrantedTTL\" : {}", r.granted_ttl))?;
            for key in &r.keys {
                out.line(&format!("\"Key\" : {}", go_quote_bytes(key)))?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

fn print_leases(out: &mut Out<'_>, r: &LeaseLeasesResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            out.line(&format!("found {} leases", r.leases.len()))?;
            for lease in &r.leases {
                out.line(&format!("{:016x}", lease.id))?;
            }
        }
        Format::Json => out.json(
            inline_header(&r.header)
                .field(
                    "leases",
                    Json::Array(
                        r.leases
                            .iter()
                            .map(|l| Object::new().field("id", Json::Int(l.id)).build())
                            .collect(),
                    ),
                )
                .build(),
        )?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            for lease in &r.leases {
                out.line(&format!("\"ID\" : {}", lease.id))?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}
