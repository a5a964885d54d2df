//! `watch`: one watch from the arguments (or `ETCDCTL_WATCH_KEY` and
//! `ETCDCTL_WATCH_RANGE_END`), or `-i` watches read line by line from stdin;
//! events printed as they arrive, an optional command after `--` run for
//! each event with `ETCD_WATCH_*` variables.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::{value_parser, Arg, ArgMatches, Command};
use tokio::io::AsyncBufReadExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::{go_quote, go_quote_bytes, CtlError, Exit};
use super::global::{bool_flag, Client, Globals};
use super::kv::{args_of, fields_header, fields_kv, positional, prefix_end};
use super::output::{header, key_value, Format, Json, Object, Out};
use super::txn::argify;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::proto::mvccpb::event::EventType;

pub fn command() -> Command {
    Command::new("watch")
        .about("Watches events stream on keys or prefixes")
        .arg(positional("args").value_name("KEY RANGE_END"))
        .arg(
            Arg::new("exec")
                .last(true)
                .num_args(1..)
                .value_parser(value_parser!(OsString))
                .value_name("EXEC-COMMAND"),
        )
        .arg(bool_flag("interactive", "Interactive mode").short('i'))
        .arg(bool_flag("prefix", "Watch on a prefix if prefix is set"))
        .arg(
            Arg::new("rev")
                .long("rev")
                .default_value("0")
                .value_parser(value_parser!(i64))
                .help("Revision to start watching"),
        )
        .arg(bool_flag(
            "prev-kv",
            "get the previous key-value pair before the event happens",
        ))
}

/// What one watch asks for and runs.
#[derive(Debug, PartialEq)]
struct Watch {
    request: WatchCreateRequest,
    exec: Vec<OsString>,
}

fn flag(m: &ArgMatches, name: &str) -> bool {
    *m.get_one::<bool>(name).expect("defaulted")
}

/// The watch described by parsed arguments and the environment's key.
fn watch_from(m: &ArgMatches, env_key: &[u8], env_range_end: &[u8]) -> Result<Watch, CtlError> {
    let args = args_of(m, "args");
    if !env_key.is_empty() && !args.is_empty() {
        return Err(CtlError::bad_args(
            "bad number of arguments (found conflicting environment key)",
        ));
    }
    let (key, mut range_end) = match args.as_slice() {
        [] if env_key.is_empty() => return Err(CtlError::bad_args("bad number of arguments")),
        [] => (env_key.to_vec(), env_range_end.to_vec()),
        [key] => (key.clone(), Vec::new()),
        [key, end] => (key.clone(), end.clone()),
        _ => return Err(CtlError::bad_args("bad number of arguments")),
    };
    let mut key = key;
    if flag(m, "prefix") {
        if !range_end.is_empty() {
            return Err(CtlError::bad_args("`range_end` and `--prefix` are mutually exclusive"));
        }
        if key.is_empty() {
            (key, range_end) = (vec![0], vec![0]);
        } else {
            range_end = prefix_end(&key);
        }
    }
    Ok(Watch {
        request: WatchCreateRequest {
            key,
            range_end,
            start_revision: *m.get_one::<i64>("rev").expect("defaulted"),
            prev_kv: flag(m, "prev-kv"),
            ..Default::default()
        },
        exec: m
            .get_many::<OsString>("exec")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
    })
}

fn env_bytes(name: &str) -> Vec<u8> {
    std::env::var_os(name).map(|v| v.into_vec()).unwrap_or_default()
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (env_key, env_range_end) = (env_bytes("ETCDCTL_WATCH_KEY"), env_bytes("ETCDCTL_WATCH_RANGE_END"));
    if env_key.is_empty() && !env_range_end.is_empty() {
        return Err(CtlError::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            go_quote_bytes(&env_range_end)
        )));
    }
    if flag(m, "interactive") {
        return interactive(globals, &env_key, &env_range_end).await;
    }
    let watch = watch_from(m, &env_key, &env_range_end)?;
    let client = globals.connect().await?;
    follow(&client, watch, out).await?;
    Err(CtlError::new(Exit::Interrupted, "watch is canceled by the server"))
}

/// `watch -i`: each stdin line `watch [flags] key [range_end] [-- cmd]`
/// starts another watch; the end of stdin ends them all.
async fn interactive(globals: &Globals, env_key: &[u8], env_range_end: &[u8]) -> Result<(), CtlError> {
    let client = globals.connect().await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
    let (format, hex) = (globals.format, globals.hex);
    loop {
        let mut line = String::new();
        let read = lines.read_line(&mut line).await;
        if !matches!(read, Ok(n) if n > 0 && line.ends_with('\n')) {
            let why = read.err().map(|e| e.to_string()).unwrap_or_else(|| "EOF".into());
            return Err(CtlError::new(
                Exit::InvalidInput,
                format!("Error reading watch request line: {why}"),
            ));
        }
        let line = line.trim_end_matches('\n');
        let args = argify(line)?;
        if args.first().map(String::as_str) != Some("watch") {
            eprintln!("Invalid command {line} (only support watch)");
            continue;
        }
        let m = command()
            .try_get_matches_from(&args)
            .map_err(|e| CtlError::bad_args(e.kind().to_string()))?;
        let watch = match watch_from(&m, env_key, env_range_end) {
            Ok(watch) => watch,
            Err(e) if e.message.starts_with("`range_end`") => {
                eprintln!("Invalid command {line} ({})", e.message);
                continue;
            }
            Err(e) => return Err(e),
        };
        let client = client.clone();
        tokio::spawn(async move {
            let mut stdout = std::io::stdout();
            let mut out = Out {
                write: &mut stdout,
                format,
                hex,
            };
            if let Err(e) = follow(&client, watch, &mut out).await {
                eprintln!("Error: {e}");
            }
        });
    }
}

/// Runs one watch until the server cancels it, printing every response.
async fn follow(client: &Client, watch: Watch, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (requests, queue) = tokio::sync::mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(watch.request)),
    };
    requests.send(create).await.expect("receiver alive");
    let mut responses = client.watch().watch(ReceiverStream::new(queue)).await?.into_inner();
    let mut pending: Option<WatchResponse> = None;
    while let Some(response) = responses.next().await {
        let response = response?;
        // Fragments of one response are put back together first.
        let response = match pending.take() {
            Some(mut first) => {
                first.events.extend(response.events.iter().cloned());
                first.fragment = response.fragment;
                first
            }
            None => response,
        };
        if response.fragment {
            pending = Some(response);
            continue;
        }
        if response.created && !response.canceled {
            continue;
        }
        if response.canceled {
            let reason = if response.compact_revision != 0 {
                "etcdserver: mvcc: required revision has been compacted".to_string()
            } else {
                response.cancel_reason.clone()
            };
            eprintln!("watch was canceled ({reason})");
        }
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        if response.events.is_empty() && !response.canceled && response.compact_revision == 0 && revision != 0 {
            out.line(&format!("progress notify: {revision}"))?;
        }
        print(out, &response)?;
        out.write.flush()?;
        if !watch.exec.is_empty() {
            run_exec(&watch.exec, &response).await?;
        }
        if response.canceled {
            break;
        }
    }
    drop(requests);
    Ok(())
}

/// Runs the `-- command` once per event, as etcdctl does.
async fn run_exec(exec: &[OsString], response: &WatchResponse) -> Result<(), CtlError> {
    let revision = response.header.as_ref().map_or(0, |h| h.revision);
    for event in &response.events {
        let kv = event.kv.clone().unwrap_or_default();
        let status = tokio::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", go_quote(event_type(event.r#type)))
            .env("ETCD_WATCH_KEY", go_quote_bytes(&kv.key))
            .env("ETCD_WATCH_VALUE", go_quote_bytes(&kv.value))
            .status()
            .await;
        let failure = match status {
            Ok(status) if status.success() => continue,
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        };
        let words: Vec<String> = exec.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        eprintln!("command {} error ({failure})", go_quote(&format!("{words:?}")));
        return Err(CtlError::silent(Exit::Error));
    }
    Ok(())
}

fn event_type(value: i32) -> &'static str {
    match EventType::try_from(value) {
        Ok(EventType::Delete) => "DELETE",
        _ => "PUT",
    }
}

pub fn print(out: &mut Out<'_>, r: &WatchResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            for event in &r.events {
                out.line(event_type(event.r#type))?;
                if let Some(prev) = &event.prev_kv {
                    out.kv(prev, false)?;
                }
                out.kv(&event.kv.clone().unwrap_or_default(), false)?;
            }
        }
        Format::Json => out.json(json(r))?,
        Format::Fields => {
            fields_header(out, &Some(r.header.unwrap_or_default()))?;
            for event in &r.events {
                out.line(&format!("\"Type\" : {}", event_type(event.r#type)))?;
                if let Some(prev) = &event.prev_kv {
                    fields_kv(out, "Prev", prev)?;
                }
                fields_kv(out, "", &event.kv.clone().unwrap_or_default())?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

/// clientv3's WatchResponse struct: Go field names, header by value.
fn json(r: &WatchResponse) -> Json {
    let events = r
        .events
        .iter()
        .map(|e| {
            let object = Object::new().int("type", e.r#type as i64);
            let object = match &e.kv {
                Some(kv) => object.field("kv", key_value(kv)),
                None => object,
            };
            match &e.prev_kv {
                Some(kv) => object.field("prev_kv", key_value(kv)),
                None => object,
            }
            .build()
        })
        .collect();
    let header = header(&Some(r.header.unwrap_or_default())).expect("present");
    Object::new()
        .field("Header", header.build())
        .field(
            "Events",
            if r.events.is_empty() {
                Json::Null
            } else {
                Json::Array(events)
            },
        )
        .field("CompactRevision", Json::Int(r.compact_revision))
        .field("Canceled", Json::Bool(r.canceled))
        .field("Created", Json::Bool(r.created))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(args: &[&str]) -> Result<Watch, CtlError> {
        watch_from(&command().try_get_matches_from(args).unwrap(), b"", b"")
    }

    #[test]
    fn builds_watch_requests() {
        let w = watch(&["watch", "k", "--prefix", "--rev=3", "--prev-kv"]).unwrap();
        assert_eq!((w.request.key, w.request.range_end), (b"k".to_vec(), b"l".to_vec()));
        assert_eq!((w.request.start_revision, w.request.prev_kv), (3, true));
        let w = watch(&["watch", "a", "b", "--", "echo", "x"]).unwrap();
        assert_eq!(w.request.range_end, b"b");
        assert_eq!(w.exec, vec![OsString::from("echo"), OsString::from("x")]);
        assert_eq!(watch(&["watch"]).unwrap_err().message, "bad number of arguments");
        assert_eq!(watch(&["watch", "a", "b", "--prefix"]).unwrap_err().exit, Exit::BadArgs);
        let m = command().try_get_matches_from(["watch"]).unwrap();
        assert_eq!(watch_from(&m, b"envkey", b"").unwrap().request.key, b"envkey");
    }

    #[test]
    fn json_is_clientv3s_struct() {
        use crate::proto::mvccpb::{Event, KeyValue};
        let response = WatchResponse {
            events: vec![Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: b"w".to_vec(),
                    mod_revision: 24,
                    ..Default::default()
                }),
                prev_kv: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            json(&response).render(),
            r#"{"Header":{},"Events":[{"type":1,"kv":{"key":"dw==","mod_revision":24}}],"CompactRevision":0,"Canceled":false,"Created":false}"#
        );
    }
}
