//! `put`, `get`, `del` and `compaction`: their flags, the requests they build
//! (shared with `txn`) and their printers.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;

use clap::{value_parser, Arg, ArgMatches, Command};

use super::error::{go_quote_bytes, parse_int, CtlError, Exit};
use super::global::{bool_flag, Globals};
use super::output::{header, key_value, Format, Json, Object, Out};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader,
};
use crate::proto::mvccpb::KeyValue;

/// The positional arguments, as raw bytes (keys need not be UTF-8).
pub fn positional(name: &'static str) -> Arg {
    Arg::new(name).num_args(0..).value_parser(value_parser!(OsString))
}

pub fn args_of(m: &ArgMatches, name: &str) -> Vec<Vec<u8>> {
    m.get_many::<OsString>(name)
        .map(|values| values.map(|v| v.clone().into_vec()).collect())
        .unwrap_or_default()
}

pub fn put_command() -> Command {
    Command::new("put")
        .about("Puts the given key into the store")
        .arg(positional("args").value_name("KEY VALUE"))
        .arg(
            Arg::new("lease")
                .long("lease")
                .default_value("0")
                .help("lease ID (in hexadecimal) to attach to the key"),
        )
        .arg(bool_flag(
            "prev-kv",
            "return the previous key-value pair before modification",
        ))
        .arg(bool_flag("ignore-value", "updates the key using its current value"))
        .arg(bool_flag("ignore-lease", "updates the key using its current lease"))
}

pub fn get_command() -> Command {
    Command::new("get")
        .about("Gets the key or a range of keys")
        .arg(positional("args").value_name("KEY RANGE_END"))
        .arg(
            Arg::new("consistency")
                .long("consistency")
                .default_value("l")
                .help("Linearizable(l) or Serializable(s)"),
        )
        .arg(
            Arg::new("order")
                .long("order")
                .default_value("")
                .help("Order of results; ASCEND or DESCEND (ASCEND by default)"),
        )
        .arg(
            Arg::new("sort-by")
                .long("sort-by")
                .default_value("")
                .help("Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
        )
        .arg(
            Arg::new("limit")
                .long("limit")
                .default_value("0")
                .value_parser(value_parser!(i64))
                .help("Maximum number of results"),
        )
        .arg(bool_flag("prefix", "Get keys with matching prefix"))
        .arg(bool_flag(
            "from-key",
            "Get keys that are greater than or equal to the given key using byte compare",
        ))
        .arg(
            Arg::new("rev")
                .long("rev")
                .default_value("0")
                .value_parser(value_parser!(i64))
                .help("Specify the kv revision"),
        )
        .arg(bool_flag("keys-only", "Get only the keys"))
        .arg(bool_flag("count-only", "Get only the count"))
        .arg(bool_flag(
            "print-value-only",
            "Only write values when using the \"simple\" output format",
        ))
}

pub fn del_command() -> Command {
    Command::new("del")
        .about("Removes the specified key or range of keys [key, range_end)")
        .arg(positional("args").value_name("KEY RANGE_END"))
        .arg(bool_flag("prefix", "delete keys with matching prefix"))
        .arg(bool_flag("prev-kv", "return deleted key-value pairs"))
        .arg(bool_flag(
            "from-key",
            "delete keys that are greater than or equal to the given key using byte compare",
        ))
}

pub fn compaction_command() -> Command {
    Command::new("compaction")
        .about("Compacts the event history in etcd")
        .arg(positional("args").value_name("REVISION"))
        .arg(bool_flag(
            "physical",
            "'true' to wait for compaction to physically remove all old revisions",
        ))
}

fn flag(m: &ArgMatches, name: &str) -> bool {
    *m.get_one::<bool>(name).expect("defaulted")
}

fn text<'a>(m: &'a ArgMatches, name: &str) -> &'a str {
    m.get_one::<String>(name).expect("defaulted")
}

/// The put request; `stdin` supplies the value when only the key is given.
pub fn put_request(m: &ArgMatches, stdin: Option<&mut dyn Read>) -> Result<PutRequest, CtlError> {
    let args = args_of(m, "args");
    let needs = || CtlError::bad_args("put command needs 1 argument and input from stdin or 2 arguments");
    let Some(key) = args.first() else {
        return Err(needs());
    };
    let ignore_value = flag(m, "ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = match (ignore_value, args.get(1), stdin) {
        (true, _, _) => Vec::new(),
        (false, Some(value), _) => value.clone(),
        (false, None, Some(stdin)) => {
            let mut value = Vec::new();
            stdin.read_to_end(&mut value).map_err(|_| needs())?;
            if value.is_empty() {
                return Err(needs());
            }
            value
        }
        (false, None, None) => return Err(needs()),
    };
    let lease = parse_int(text(m, "lease"), 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: key.clone(),
        value,
        lease,
        prev_kv: flag(m, "prev-kv"),
        ignore_value,
        ignore_lease: flag(m, "ignore-lease"),
    })
}

/// The range end that selects every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Key and range end for `[key [range_end]]`, `--prefix` and `--from-key`.
fn key_range(command: &str, args: &[Vec<u8>], prefix: bool, from_key: bool) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let Some(key) = args.first() else {
        return Err(CtlError::bad_args(format!(
            "{command} command needs one argument as key and an optional argument as range_end"
        )));
    };
    let mut key = key.clone();
    let mut range_end = Vec::new();
    if let Some(end) = args.get(1) {
        if prefix || from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        range_end = end.clone();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    Ok((key, range_end))
}

pub fn range_request(m: &ArgMatches) -> Result<RangeRequest, CtlError> {
    let args = args_of(m, "args");
    if args.is_empty() {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    if flag(m, "prefix") && flag(m, "from-key") {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match text(m, "consistency") {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::new(
                Exit::BadFeature,
                format!("unknown consistency flag {}", go_quote_bytes(other.as_bytes())),
            ))
        }
    };
    let (key, range_end) = key_range("get", &args, flag(m, "prefix"), flag(m, "from-key"))?;
    let order = match text(m, "order").to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CtlError::new(
                Exit::BadFeature,
                format!("bad sort order {}", text(m, "order")),
            ))
        }
    };
    let target = match text(m, "sort-by").to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                Exit::BadFeature,
                format!("bad sort target {}", text(m, "sort-by")),
            ))
        }
    };
    // etcd's client drops "ascending by key": the server returns that order anyway.
    let order = if target == SortTarget::Key && order == SortOrder::Ascend {
        SortOrder::None
    } else {
        order
    };
    Ok(RangeRequest {
        key,
        range_end,
        limit: *m.get_one::<i64>("limit").expect("defaulted"),
        revision: (*m.get_one::<i64>("rev").expect("defaulted")).max(0),
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only: flag(m, "keys-only"),
        count_only: flag(m, "count-only"),
        ..Default::default()
    })
}

pub fn delete_request(m: &ArgMatches) -> Result<DeleteRangeRequest, CtlError> {
    let args = args_of(m, "args");
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (key, range_end) = key_range("del", &args, flag(m, "prefix"), flag(m, "from-key"))?;
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: flag(m, "prev-kv"),
    })
}

pub async fn run(name: &str, m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    match name {
        "put" => {
            let request = put_request(m, Some(&mut std::io::stdin()))?;
            let client = globals.connect().await?;
            let response = globals.timed(client.kv().put(request)).await?;
            print_put(out, &response)
        }
        "get" => {
            let request = range_request(m)?;
            let value_only = flag(m, "print-value-only");
            if value_only && out.format != Format::Simple {
                return Err(CtlError::bad_args("print-value-only is only for `--write-out=simple`"));
            }
            if request.count_only && out.format != Format::Fields {
                return Err(CtlError::bad_args("--count-only is only for `--write-out=fields`"));
            }
            let client = globals.connect().await?;
            let response = globals.timed(client.kv().range(request)).await?;
            print_get(out, &response, value_only)
        }
        "del" => {
            let request = delete_request(m)?;
            let client = globals.connect().await?;
            let response = globals.timed(client.kv().delete_range(request)).await?;
            print_del(out, &response)
        }
        "compaction" => {
            let args = args_of(m, "args");
            if args.len() != 1 {
                return Err(CtlError::bad_args("compaction command needs 1 argument"));
            }
            let revision = parse_int(&String::from_utf8_lossy(&args[0]), 10).map_err(CtlError::error)?;
            let request = CompactionRequest {
                revision,
                physical: flag(m, "physical"),
            };
            let client = globals.connect().await?;
            globals.timed(client.kv().compact(request)).await?;
            out.line(&format!("compacted revision {revision}"))?;
            Ok(())
        }
        _ => unreachable!("kv command {name}"),
    }
}

pub fn print_put(out: &mut Out<'_>, r: &PutResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            out.line("OK")?;
            if let Some(prev) = &r.prev_kv {
                out.kv(prev, false)?;
            }
        }
        Format::Json => out.json(put_json(r))?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            if let Some(prev) = &r.prev_kv {
                fields_kv(out, "Prev", prev)?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

pub fn print_get(out: &mut Out<'_>, r: &RangeResponse, value_only: bool) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            for kv in &r.kvs {
                out.kv(kv, value_only)?;
            }
        }
        Format::Json => out.json(get_json(r))?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            for kv in &r.kvs {
                fields_kv(out, "", kv)?;
            }
            out.line(&format!("\"More\" : {}", r.more))?;
            out.line(&format!("\"Count\" : {}", r.count))?;
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

pub fn print_del(out: &mut Out<'_>, r: &DeleteRangeResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            out.line(&r.deleted.to_string())?;
            for kv in &r.prev_kvs {
                out.kv(kv, false)?;
            }
        }
        Format::Json => out.json(del_json(r))?,
        Format::Fields => {
            fields_header(out, &r.header)?;
            out.line(&format!("\"Deleted\" : {}", r.deleted))?;
            for kv in &r.prev_kvs {
                fields_kv(out, "Prev", kv)?;
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

pub fn put_json(r: &PutResponse) -> Json {
    let prev = r.prev_kv.as_ref().map(key_value);
    let object = Object::new().object("header", header(&r.header));
    match prev {
        Some(prev) => object.field("prev_kv", prev),
        None => object,
    }
    .build()
}

pub fn get_json(r: &RangeResponse) -> Json {
    Object::new()
        .object("header", header(&r.header))
        .array("kvs", r.kvs.iter().map(key_value).collect())
        .boolean("more", r.more)
        .int("count", r.count)
        .build()
}

pub fn del_json(r: &DeleteRangeResponse) -> Json {
    Object::new()
        .object("header", header(&r.header))
        .int("deleted", r.deleted)
        .array("prev_kvs", r.prev_kvs.iter().map(key_value).collect())
        .build()
}

/// The `fields` format's response header.
pub fn fields_header(out: &mut Out<'_>, header: &Option<ResponseHeader>) -> Result<(), CtlError> {
    let h = header.unwrap_or_default();
    out.line(&format!("\"ClusterID\" : {}", h.cluster_id))?;
    out.line(&format!("\"MemberID\" : {}", h.member_id))?;
    out.line(&format!("\"Revision\" : {}", h.revision))?;
    out.line(&format!("\"RaftTerm\" : {}", h.raft_term))?;
    Ok(())
}

/// The `fields` format's key-value, its names prefixed by `prefix`.
pub fn fields_kv(out: &mut Out<'_>, prefix: &str, kv: &KeyValue) -> Result<(), CtlError> {
    out.line(&format!("\"{prefix}Key\" : {}", go_quote_bytes(&kv.key)))?;
    out.line(&format!("\"{prefix}CreateRevision\" : {}", kv.create_revision))?;
    out.line(&format!("\"{prefix}ModRevision\" : {}", kv.mod_revision))?;
    out.line(&format!("\"{prefix}Version\" : {}", kv.version))?;
    out.line(&format!("\"{prefix}Value\" : {}", go_quote_bytes(&kv.value)))?;
    out.line(&format!("\"{prefix}Lease\" : {}", kv.lease))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(command: Command, args: &[&str]) -> ArgMatches {
        command.try_get_matches_from(args).unwrap()
    }

    #[test]
    fn get_builds_etcdctls_range() {
        let r = range_request(&parse(get_command(), &["get", "k", "--prefix", "--limit", "5"])).unwrap();
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice(), r.limit),
            (&b"k"[..], &b"l"[..], 5)
        );
        let r = range_request(&parse(get_command(), &["get", "", "--prefix"])).unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let r = range_request(&parse(get_command(), &["get", "a", "--from-key", "--consistency=s"])).unwrap();
        assert_eq!((r.range_end, r.serializable), (vec![0], true));
        let r = range_request(&parse(get_command(), &["get", "a", "--sort-by=key", "--order=ascend"])).unwrap();
        assert_eq!(r.sort_order, SortOrder::None as i32);
        let r = range_request(&parse(
            get_command(),
            &["get", "a", "--sort-by=modify", "--order=DESCEND"],
        ))
        .unwrap();
        assert_eq!(
            (r.sort_target, r.sort_order),
            (SortTarget::Mod as i32, SortOrder::Descend as i32)
        );
    }

    #[test]
    fn get_refuses_what_etcdctl_refuses() {
        let err = range_request(&parse(get_command(), &["get"])).unwrap_err();
        assert_eq!(err.exit, Exit::BadArgs);
        let err = range_request(&parse(get_command(), &["get", "a", "--sort-by=bogus"])).unwrap_err();
        assert_eq!(
            (err.exit, err.message.as_str()),
            (Exit::BadFeature, "bad sort target bogus")
        );
        let err = range_request(&parse(get_command(), &["get", "a", "--consistency=x"])).unwrap_err();
        assert_eq!(err.message, "unknown consistency flag \"x\"");
        let err = range_request(&parse(get_command(), &["get", "a", "b", "--prefix"])).unwrap_err();
        assert_eq!(err.exit, Exit::BadArgs);
    }

    #[test]
    fn put_reads_flags_and_stdin() {
        let m = parse(put_command(), &["put", "k", "--lease=1f", "--prev-kv"]);
        let r = put_request(&m, Some(&mut &b"from stdin"[..])).unwrap();
        assert_eq!((r.value.as_slice(), r.lease, r.prev_kv), (&b"from stdin"[..], 31, true));
        let err = put_request(&m, Some(&mut &b""[..])).unwrap_err();
        assert_eq!(
            err.message,
            "put command needs 1 argument and input from stdin or 2 arguments"
        );
        let m = parse(put_command(), &["put", "k", "v", "--lease=zz"]);
        assert_eq!(
            put_request(&m, None).unwrap_err().message,
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        let m = parse(put_command(), &["put", "k", "--", "-v"]);
        assert_eq!(put_request(&m, None).unwrap().value, b"-v");
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn simple_and_json_output() {
        let response = PutResponse {
            header: Some(ResponseHeader {
                revision: 4,
                ..Default::default()
            }),
            prev_kv: Some(KeyValue {
                key: b"foo".to_vec(),
                value: b"baz".to_vec(),
                version: 2,
                ..Default::default()
            }),
        };
        let mut buffer = Vec::new();
        let mut out = Out {
            write: &mut buffer,
            format: Format::Simple,
            hex: false,
        };
        print_put(&mut out, &response).unwrap();
        out.format = Format::Json;
        print_put(&mut out, &response).unwrap();
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            "OK\nfoo\nbaz\n{\"header\":{\"revision\":4},\"prev_kv\":{\"key\":\"Zm9v\",\"version\":2,\"value\":\"YmF6\"}}\n"
        );
    }
}
