//! `endpoint health|status|hashkv [--cluster]` and `cluster-health`
//! (etcdctl v2's report, which deployment guides still use).
//!
//! An endpoint is healthy when a linearizable read through it succeeds (or
//! is refused for permissions, which still took a round through Raft), as
//! etcdctl 3.4 decides; `cluster-health` applies the same check to every
//! client URL that the member list publishes.

use std::future::Future;
use std::time::Instant;

use clap::{Arg, ArgMatches, Command};

use super::error::{go_quote, CtlError, Exit};
use super::global::{bool_flag, Client, Globals};
use super::kv::fields_header;
use super::output::{go_duration, header, human_bytes, Format, Json, Object, Out};
use crate::proto::etcdserverpb::{
    HashKvRequest, HashKvResponse, MemberListRequest, RangeRequest, StatusRequest, StatusResponse,
};

pub fn command() -> Command {
    Command::new("endpoint")
        .about("Endpoint related commands")
        .subcommand_required(true)
        .arg(bool_flag("cluster", "use all endpoints from the cluster member list").global(true))
        .subcommand(Command::new("health").about("Checks the healthiness of endpoints specified in `--endpoints` flag"))
        .subcommand(Command::new("status").about("Prints out the status of endpoints specified in `--endpoints` flag"))
        .subcommand(
            Command::new("hashkv")
                .about("Prints the KV history hash for each endpoint in --endpoints")
                .arg(
                    Arg::new("rev")
                        .long("rev")
                        .default_value("0")
                        .value_parser(clap::value_parser!(i64))
                        .help("maximum revision to hash (default: all revisions)"),
                ),
        )
}

pub fn cluster_health_command() -> Command {
    Command::new("cluster-health").about("Checks the health of every member, as etcdctl v2 reports it")
}

/// `--endpoints`, or with `--cluster` every client URL of the member list
/// (asked without authenticating, as etcdctl does).
pub async fn endpoints(globals: &Globals, cluster: bool) -> Result<Vec<String>, CtlError> {
    if !cluster {
        return Ok(globals.endpoints.clone());
    }
    let fetch = async {
        let client = globals.connect_unauthenticated().await?;
        globals
            .timed(client.cluster().member_list(MemberListRequest::default()))
            .await
    };
    let members = fetch.await.map_err(|e| {
        CtlError::error(format!(
            "failed to fetch endpoints from etcd cluster member list: {}",
            e.message
        ))
    })?;
    Ok(members.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let cluster = *m.get_one::<bool>("cluster").expect("defaulted");
    let (name, sub) = m.subcommand().expect("required");
    let endpoints = endpoints(globals, cluster).await?;
    match name {
        "health" => health(globals, out, &endpoints).await,
        "status" => status(globals, out, &endpoints).await,
        "hashkv" => hashkv(globals, out, &endpoints, *sub.get_one::<i64>("rev").expect("defaulted")).await,
        _ => unreachable!("endpoint command {name}"),
    }
}

/// One endpoint's health check.
struct Health {
    endpoint: String,
    healthy: bool,
    took: String,
    error: String,
}

/// A linearizable read through `endpoint`.
async fn check(globals: &Globals, endpoint: &str) -> Health {
    let mut health = Health {
        endpoint: endpoint.to_string(),
        healthy: false,
        took: String::new(),
        error: String::new(),
    };
    let client = match globals.connect_to(endpoint, true).await {
        Ok(client) => client,
        Err(e) => {
            health.error = e.message;
            return health;
        }
    };
    let started = Instant::now();
    let request = RangeRequest {
        key: b"health".to_vec(),
        ..Default::default()
    };
    let result = globals.timed(client.kv().range(request)).await;
    health.took = go_duration(started.elapsed());
    match result {
        Ok(_) => health.healthy = true,
        Err(e) if e.message == "etcdserver: permission denied" => health.healthy = true,
        Err(e) => health.error = e.message,
    }
    health
}

async fn health(globals: &Globals, out: &mut Out<'_>, endpoints: &[String]) -> Result<(), CtlError> {
    let checks = futures::future::join_all(endpoints.iter().map(|e| check(globals, e))).await;
    match out.format {
        Format::Simple => {
            for h in &checks {
                if h.healthy {
                    eprintln!(
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.endpoint, h.took
                    );
                } else {
                    eprintln!("{} is unhealthy: failed to commit proposal: {}", h.endpoint, h.error);
                }
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|h| {
                    vec![
                        h.endpoint.clone(),
                        h.healthy.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            out.table(&["endpoint", "health", "took", "error"], &rows)?;
        }
        Format::Json => out.json(Json::Array(
            checks
                .iter()
                .map(|h| {
                    Object::new()
                        .field("endpoint", Json::Str(h.endpoint.clone()))
                        .field("health", Json::Bool(h.healthy))
                        .field("took", Json::Str(h.took.clone()))
                        .string("error", &h.error)
                        .build()
                })
                .collect(),
        ))?,
        Format::Fields => {
            for h in &checks {
                out.line(&format!("\"Endpoint\" : {}", go_quote(&h.endpoint)))?;
                out.line(&format!("\"Health\" : {}", h.healthy))?;
                out.line(&format!("\"Took\" : {}", h.took))?;
                out.line(&format!("\"Error\" : {}", h.error))?;
                out.line("")?;
            }
        }
    }
    if checks.iter().any(|h| !h.error.is_empty()) {
        return Err(CtlError::error("unhealthy cluster"));
    }
    Ok(())
}

/// Asks each endpoint in turn; failures are reported on stderr and make the
/// command fail after printing the others.
async fn each<T, F: Future<Output = Result<T, CtlError>>>(
    globals: &Globals,
    endpoints: &[String],
    what: &str,
    call: impl Fn(Client) -> F,
) -> (Vec<(String, T)>, bool) {
    let mut answers = Vec::new();
    let mut failed = false;
    for endpoint in endpoints {
        let result = match globals.connect_to(endpoint, true).await {
            Ok(client) => call(client).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(answer) => answers.push((endpoint.clone(), answer)),
            Err(e) => {
                eprintln!("Failed to get the {what} of endpoint {endpoint} ({})", e.message);
                failed = true;
            }
        }
    }
    (answers, failed)
}

fn status_json(r: &StatusResponse) -> Json {
    Object::new()
        .object("header", header(&r.header))
        .string("version", &r.version)
        .int("dbSize", r.db_size)
        .uint("leader", r.leader)
        .uint("raftIndex", r.raft_index)
        .uint("raftTerm", r.raft_term)
        .uint("raftAppliedIndex", r.raft_applied_index)
        .strings("errors", &r.errors)
        .int("dbSizeInUse", r.db_size_in_use)
        .boolean("isLearner", r.is_learner)
        .build()
}

async fn status(globals: &Globals, out: &mut Out<'_>, endpoints: &[String]) -> Result<(), CtlError> {
    let (answers, failed) = each(globals, endpoints, "status", |client| async move {
        globals.timed(client.maintenance().status(StatusRequest {})).await
    })
    .await;
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(endpoint, r)| {
            let member_id = r.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                endpoint.clone(),
                format!("{member_id:x}"),
                r.version.clone(),
                human_bytes(r.db_size.max(0) as u64),
                (r.leader == member_id).to_string(),
                r.is_learner.to_string(),
                r.raft_term.to_string(),
                r.raft_index.to_string(),
                r.raft_applied_index.to_string(),
                r.errors.join(", "),
            ]
        })
        .collect();
    match out.format {
        Format::Simple => {
            for row in &rows {
                out.line(&row.join(", "))?;
            }
        }
        Format::Table => out.table(
            &[
                "endpoint",
                "ID",
                "version",
                "db size",
                "is leader",
                "is learner",
                "raft term",
                "raft index",
                "raft applied index",
                "errors",
            ],
            &rows,
        )?,
        Format::Json => out.json(Json::Array(
            answers
                .iter()
                .map(|(endpoint, r)| {
                    Object::new()
                        .field("Endpoint", Json::Str(endpoint.clone()))
                        .field("Status", status_json(r))
                        .build()
                })
                .collect(),
        ))?,
        Format::Fields => {
            for (endpoint, r) in &answers {
                fields_header(out, &r.header)?;
                out.line(&format!("\"Version\" : {}", go_quote(&r.version)))?;
                out.line(&format!("\"DBSize\" : {}", r.db_size))?;
                out.line(&format!("\"Leader\" : {}", r.leader))?;
                out.line(&format!("\"IsLearner\" : {}", r.is_learner))?;
                out.line(&format!("\"RaftIndex\" : {}", r.raft_index))?;
                out.line(&format!("\"RaftTerm\" : {}", r.raft_term))?;
                out.line(&format!("\"RaftAppliedIndex\" : {}", r.raft_applied_index))?;
                out.line(&format!("\"Errors\" : [{}]", r.errors.join(" ")))?;
                out.line(&format!("\"Endpoint\" : {}", go_quote(endpoint)))?;
                out.line("")?;
            }
        }
    }
    if failed {
        return Err(CtlError::silent(Exit::Error));
    }
    Ok(())
}

async fn hashkv(globals: &Globals, out: &mut Out<'_>, endpoints: &[String], revision: i64) -> Result<(), CtlError> {
    let (answers, failed) = each(globals, endpoints, "hash", |client| async move {
        globals
            .timed(client.maintenance().hash_kv(HashKvRequest { revision }))
            .await
    })
    .await;
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(e, r)| vec![e.clone(), r.hash.to_string()])
        .collect();
    match out.format {
        Format::Simple => {
            for row in &rows {
                out.line(&row.join(", "))?;
            }
        }
        Format::Table => out.table(&["endpoint", "hash"], &rows)?,
        Format::Json => out.json(Json::Array(
            answers
                .iter()
                .map(|(endpoint, r): &(String, HashKvResponse)| {
                    let hash = Object::new()
                        .object("header", header(&r.header))
                        .uint("hash", r.hash as u64)
                        .int("compact_revision", r.compact_revision);
                    Object::new()
                        .field("Endpoint", Json::Str(endpoint.clone()))
                        .field("HashKV", hash.build())
                        .build()
                })
                .collect(),
        ))?,
        Format::Fields => {
            for (endpoint, r) in &answers {
                fields_header(out, &r.header)?;
                out.line(&format!("\"Endpoint\" : {}", go_quote(endpoint)))?;
                out.line(&format!("\"Hash\" : {}", r.hash))?;
                out.line("")?;
            }
        }
    }
    if failed {
        return Err(CtlError::silent(Exit::Error));
    }
    Ok(())
}

/// etcdctl v2's `cluster-health`: one line per member, then the verdict;
/// exit status 5 unless every member is healthy.
pub async fn cluster_health(globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let client = globals.connect().await.inspect_err(|_| {
        println!("cluster may be unhealthy: failed to list members");
    })?;
    let members = globals
        .timed(client.cluster().member_list(MemberListRequest::default()))
        .await
        .inspect_err(|_| println!("cluster may be unhealthy: failed to list members"))?
        .members;
    let mut healthy = 0;
    for member in &members {
        if member.client_ur_ls.is_empty() {
            out.line(&format!(
                "member {:x} is unreachable: no available published client urls",
                member.id
            ))?;
            continue;
        }
        let mut checked = false;
        for url in &member.client_ur_ls {
            let health = check(globals, url).await;
            if health.healthy {
                healthy += 1;
                out.line(&format!(
                    "member {:x} is healthy: got healthy result from {url}",
                    member.id
                ))?;
            } else if health.took.is_empty() {
                out.line(&format!(
                    "failed to check the health of member {:x} on {url}: {}",
                    member.id, health.error
                ))?;
                continue;
            } else {
                out.line(&format!(
                    "member {:x} is unhealthy: got unhealthy result from {url}",
                    member.id
                ))?;
            }
            checked = true;
            break;
        }
        if !checked {
            out.line(&format!(
                "member {:x} is unreachable: [{}] are all unreachable",
                member.id,
                member.client_ur_ls.join(" ")
            ))?;
        }
    }
    let verdict = match healthy {
        n if n == members.len() => "cluster is healthy",
        0 => "cluster is unavailable",
        _ => "cluster is degraded",
    };
    out.line(verdict)?;
    if healthy == members.len() {
        Ok(())
    } else {
        Err(CtlError::silent(Exit::Interrupted))
    }
}
