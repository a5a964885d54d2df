//! `defrag [--cluster]`, `alarm list|disarm` and `move-leader`.

use clap::{ArgMatches, Command};

use super::endpoint::endpoints;
use super::error::{parse_uint, CtlError, Exit};
use super::global::{bool_flag, Globals};
use super::kv::{args_of, fields_header, positional};
use super::output::{header, Format, Object, Out};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, MoveLeaderRequest, StatusRequest,
};

pub fn defrag_command() -> Command {
    Command::new("defrag")
        .about("Defragments the storage of the etcd members with given endpoints")
        .arg(bool_flag("cluster", "use all endpoints from the cluster member list"))
}

pub fn alarm_command() -> Command {
    Command::new("alarm")
        .about("Alarm related commands")
        .subcommand_required(true)
        .subcommand(Command::new("disarm").about("Disarms all alarms"))
        .subcommand(Command::new("list").about("Lists all alarms"))
}

pub fn move_leader_command() -> Command {
    Command::new("move-leader")
        .about("Transfers leadership to another etcd cluster member.")
        .arg(positional("args").value_name("TRANSFEREE_MEMBER_ID"))
}

pub async fn run(name: &str, m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    match name {
        "defrag" => defrag(globals, out, *m.get_one::<bool>("cluster").expect("defaulted")).await,
        "alarm" => {
            let client = globals.connect().await?;
            let response = match m.subcommand().expect("required").0 {
                "list" => {
                    globals
                        .timed(client.maintenance().alarm(alarm_request(AlarmAction::Get, None)))
                        .await?
                }
                _ => {
                    // As etcd's client: disarm each listed alarm, answer with them all.
                    let listed = globals
                        .timed(client.maintenance().alarm(alarm_request(AlarmAction::Get, None)))
                        .await?;
                    let mut disarmed = AlarmResponse::default();
                    for alarm in &listed.alarms {
                        let request = alarm_request(AlarmAction::Deactivate, Some(alarm));
                        disarmed
                            .alarms
                            .extend(globals.timed(client.maintenance().alarm(request)).await?.alarms);
                    }
                    disarmed
                }
            };
            print_alarms(out, &response)
        }
        "move-leader" => move_leader(m, globals, out).await,
        _ => unreachable!("maintenance command {name}"),
    }
}

fn alarm_request(action: AlarmAction, alarm: Option<&AlarmMember>) -> AlarmRequest {
    AlarmRequest {
        action: action as i32,
        member_id: alarm.map_or(0, |a| a.member_id),
        alarm: alarm.map_or(AlarmType::None as i32, |a| a.alarm),
    }
}

fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("NONE", |a| a.as_str_name())
}

fn print_alarms(out: &mut Out<'_>, r: &AlarmResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            for alarm in &r.alarms {
                out.line(&format!(
                    "memberID:{} alarm:{} ",
                    alarm.member_id,
                    alarm_name(alarm.alarm)
                ))?;
            }
        }
        Format::Json => out.json(
            Object::new()
                .object("header", header(&r.header))
                .array(
                    "alarms",
                    r.alarms
                        .iter()
                        .map(|a| {
                            Object::new()
                                .uint("memberID", a.member_id)
                                .int("alarm", a.alarm as i64)
                                .build()
                        })
                        .collect(),
                )
                .build(),
        )?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            for alarm in &r.alarms {
                out.line(&format!("\"MemberID\" : {}", alarm.member_id))?;
                out.line(&format!("\"AlarmType\" : {}", alarm_name(alarm.alarm)))?;
                out.line("")?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

async fn defrag(globals: &Globals, out: &mut Out<'_>, cluster: bool) -> Result<(), CtlError> {
    let mut failures = 0;
    for endpoint in endpoints(globals, cluster).await? {
        let result = match globals.connect_to(&endpoint, true).await {
            Ok(client) => globals
                .timed(client.maintenance().defragment(DefragmentRequest {}))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => out.line(&format!("Finished defragmenting etcd member[{endpoint}]"))?,
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{endpoint}] ({})", e.message);
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CtlError::silent(Exit::Error));
    }
    Ok(())
}

/// Finds the leader among `--endpoints` and asks it to hand over to the
/// given member.
async fn move_leader(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let args = args_of(m, "args");
    let [target] = args.as_slice() else {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    };
    let target = parse_uint(&String::from_utf8_lossy(target), 16).map_err(CtlError::bad_args)?;
    let mut leader = None;
    for endpoint in &globals.endpoints {
        let client = globals.connect_to(endpoint, true).await?;
        let status = globals.timed(client.maintenance().status(StatusRequest {})).await?;
        if status.header.as_ref().is_some_and(|h| h.member_id == status.leader) {
            leader = Some((client, status.leader));
            break;
        }
    }
    let Some((client, leader_id)) = leader else {
        return Err(CtlError::bad_args(format!(
            "no leader endpoint given at [{}]",
            globals.endpoints.join(" ")
        )));
    };
    let request = MoveLeaderRequest { target_id: target };
    let response = globals.timed(client.maintenance().move_leader(request)).await?;
    match out.format {
        Format::Simple => out.line(&format!("Leadership transferred from {leader_id:x} to {target:x}"))?,
        Format::Json => out.json(Object::new().object("header", header(&response.header)).build())?,
        Format::Fields | Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_print_as_etcdctl() {
        let response = AlarmResponse {
            header: None,
            alarms: vec![AlarmMember {
                member_id: 3402162624949581042,
                alarm: AlarmType::Nospace as i32,
            }],
        };
        let mut buffer = Vec::new();
        let mut out = Out {
            write: &mut buffer,
            format: Format::Simple,
            hex: false,
        };
        print_alarms(&mut out, &response).unwrap();
        out.format = Format::Json;
        print_alarms(&mut out, &AlarmResponse::default()).unwrap();
        print_alarms(&mut out, &response).unwrap();
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            "memberID:3402162624949581042 alarm:NOSPACE \n{}\n{\"alarms\":[{\"memberID\":3402162624949581042,\"alarm\":1}]}\n"
        );
    }
}
