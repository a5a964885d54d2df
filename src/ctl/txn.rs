//! `txn`: etcdctl's transaction format on stdin (compares, a blank line,
//! success requests, a blank line, failure requests, a blank line), the
//! comparison syntax (`mod("key") > "5"`), and the printers.

use std::io::BufRead;

use clap::{ArgMatches, Command};

use super::error::{go_quote, CtlError, Exit};
use super::global::{bool_flag, Globals};
use super::kv;
use super::output::{header, Format, Json, Object, Out};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{Compare, RequestOp, TxnRequest, TxnResponse};

pub fn command() -> Command {
    Command::new("txn")
        .about("Txn processes all the requests in one transaction")
        .arg(kv::positional("args").hide(true))
        .arg(bool_flag("interactive", "Input transaction in interactive mode").short('i'))
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    if !kv::args_of(m, "args").is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let interactive = *m.get_one::<bool>("interactive").expect("defaulted");
    let stdin = std::io::stdin();
    let request = read_txn(&mut stdin.lock(), interactive.then_some(&mut *out))?;
    let client = globals.connect().await?;
    // etcdctl sends the transaction without a command timeout.
    let response = client.kv().txn(request).await?.into_inner();
    print(out, &response)
}

/// Reads the three sections, prompting for each in interactive mode.
pub fn read_txn(input: &mut dyn BufRead, mut prompt: Option<&mut Out<'_>>) -> Result<TxnRequest, CtlError> {
    let mut say = |text: &str| -> Result<(), CtlError> {
        if let Some(out) = prompt.as_mut() {
            out.line(text)?;
            out.write.flush()?;
        }
        Ok(())
    };
    say("compares:")?;
    let compare = read_section(input)?
        .iter()
        .map(|line| parse_compare(line))
        .collect::<Result<_, _>>()?;
    say("success requests (get, put, del):")?;
    let success = read_section(input)?
        .iter()
        .map(|l| parse_op(l))
        .collect::<Result<_, _>>()?;
    say("failure requests (get, put, del):")?;
    let failure = read_section(input)?
        .iter()
        .map(|l| parse_op(l))
        .collect::<Result<_, _>>()?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

/// Trimmed lines up to a blank one; input ending first is etcdctl's `EOF`.
fn read_section(input: &mut dyn BufRead) -> Result<Vec<String>, CtlError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        input
            .read_line(&mut line)
            .map_err(|e| CtlError::new(Exit::InvalidInput, e.to_string()))?;
        if !line.ends_with('\n') {
            return Err(CtlError::new(Exit::InvalidInput, "EOF"));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

/// `target("key") op "value"` with etcdctl's targets and messages.
pub fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let malformed = |detail: String| CtlError::new(Exit::InvalidInput, format!("malformed comparison: {line}{detail}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed(String::new()));
    };
    let (key, op, value) = scan_compare(rest);
    let (Some(key), Some(op), Some(value)) = (key.clone(), op.clone(), value.clone()) else {
        return Err(malformed(format!(
            "; got {target}({}) {} {}",
            go_quote(&key.unwrap_or_default()),
            op.unwrap_or_default(),
            go_quote(&value.unwrap_or_default())
        )));
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(malformed(format!(" (unknown operator {op})"))),
    };
    let invalid = || CtlError::new(Exit::InvalidInput, format!("invalid txn compare request: {line}"));
    let number = |base: u32| i64::from_str_radix(&value, base).map_err(|_| invalid());
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(number(10)?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(number(10)?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(number(10)?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(value.clone().into_bytes())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(number(16)?)),
        _ => return Err(malformed(format!(" (unknown target {target})"))),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// Go's `Sscanf(rest, "%q) %s %q")`: whatever it managed to read.
fn scan_compare(rest: &str) -> (Option<String>, Option<String>, Option<String>) {
    let Some((key, rest)) = unquote(rest.trim_start()) else {
        return (None, None, None);
    };
    let Some(rest) = rest.strip_prefix(')') else {
        return (Some(key), None, None);
    };
    let after_space = rest.trim_start();
    if after_space.len() == rest.len() {
        return (Some(key), None, None);
    }
    let op_end = after_space.find(char::is_whitespace).unwrap_or(after_space.len());
    let (op, rest) = after_space.split_at(op_end);
    if op.is_empty() {
        return (Some(key), None, None);
    }
    let value = unquote(rest.trim_start()).map(|(v, _)| v);
    (Some(key), Some(op.to_string()), value)
}

/// A Go-quoted (`"..."` with escapes) or raw (`` `...` ``) string at the
/// start of `s`, and what follows it.
pub fn unquote(s: &str) -> Option<(String, &str)> {
    if let Some(raw) = s.strip_prefix('`') {
        let end = raw.find('`')?;
        return Some((raw[..end].to_string(), &raw[end + 1..]));
    }
    let body = s.strip_prefix('"')?;
    let mut value: Vec<u8> = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((String::from_utf8_lossy(&value).into_owned(), &body[i + 1..])),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    'a' => Some(7u8),
                    'b' => Some(8),
                    'f' => Some(12),
                    'n' => Some(b'\n'),
                    'r' => Some(b'\r'),
                    't' => Some(b'\t'),
                    'v' => Some(11),
                    '\\' => Some(b'\\'),
                    '"' => Some(b'"'),
                    '\'' => Some(b'\''),
                    _ => None,
                };
                if let Some(b) = simple {
                    value.push(b);
                    continue;
                }
                let digits = |n: usize, radix: u32, chars: &mut std::str::CharIndices| -> Option<u32> {
                    let text: String = (0..n).map(|_| chars.next().map(|(_, c)| c)).collect::<Option<_>>()?;
                    u32::from_str_radix(&text, radix).ok()
                };
                match e {
                    'x' => value.push(digits(2, 16, &mut chars)? as u8),
                    'u' => value.extend(char::from_u32(digits(4, 16, &mut chars)?)?.to_string().bytes()),
                    'U' => value.extend(char::from_u32(digits(8, 16, &mut chars)?)?.to_string().bytes()),
                    '0'..='7' => {
                        let rest = digits(2, 8, &mut chars)?;
                        let code = e.to_digit(8)? * 64 + rest;
                        value.push(u8::try_from(code).ok()?);
                    }
                    _ => return None,
                }
            }
            c => value.extend(c.to_string().bytes()),
        }
    }
    None
}

/// etcdctl's argify: words, `"go-quoted strings"` and `'single-quoted
/// strings'`.
pub fn argify(line: &str) -> Result<Vec<String>, CtlError> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else {
            return Ok(args);
        };
        match first {
            '"' => match closing_quote(rest) {
                Some(end) => {
                    let (value, _) =
                        unquote(&rest[..end]).ok_or_else(|| CtlError::new(Exit::InvalidInput, "invalid syntax"))?;
                    args.push(value);
                    rest = &rest[end..];
                }
                None => rest = &rest[1..],
            },
            '\'' => match rest[1..].find('\'') {
                Some(end) => {
                    args.push(rest[1..end + 1].to_string());
                    rest = &rest[end + 2..];
                }
                None => rest = &rest[1..],
            },
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                args.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
}

/// The end (exclusive) of a double-quoted string with backslash escapes.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// One request line: `put`, `get` or `del` with their flags.
pub fn parse_op(line: &str) -> Result<RequestOp, CtlError> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CtlError::new(
            Exit::InvalidInput,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let parser = Command::new("txn-request")
        .no_binary_name(true)
        .subcommand_required(true)
        .subcommand(kv::put_command())
        .subcommand(kv::get_command())
        .subcommand(kv::del_command());
    let m = parser
        .try_get_matches_from(&args)
        .map_err(|_| CtlError::new(Exit::InvalidInput, format!("invalid txn request: {line}")))?;
    let request = match m.subcommand().expect("required") {
        ("put", m) => Request::RequestPut(kv::put_request(m, None)?),
        ("get", m) => Request::RequestRange(kv::range_request(m)?),
        ("del", m) => Request::RequestDeleteRange(kv::delete_request(m)?),
        (other, _) => unreachable!("txn request {other}"),
    };
    Ok(RequestOp { request: Some(request) })
}

pub fn print(out: &mut Out<'_>, r: &TxnResponse) -> Result<(), CtlError> {
    match out.format {
        Format::Simple => {
            out.line(if r.succeeded { "SUCCESS" } else { "FAILURE" })?;
            for response in &r.responses {
                out.line("")?;
                match &response.response {
                    Some(Response::ResponsePut(put)) => kv::print_put(out, put)?,
                    Some(Response::ResponseRange(range)) => kv::print_get(out, range, false)?,
                    Some(Response::ResponseDeleteRange(del)) => kv::print_del(out, del)?,
                    other => out.line(&format!("unexpected response {other:?}"))?,
                }
            }
        }
        Format::Json => out.json(json(r))?,
        Format::Fields => {
            kv::fields_header(out, &r.header)?;
            out.line(&format!("\"Succeeded\" : {}", r.succeeded))?;
            for response in &r.responses {
                match &response.response {
                    Some(Response::ResponsePut(put)) => kv::print_put(out, put)?,
                    Some(Response::ResponseRange(range)) => kv::print_get(out, range, false)?,
                    Some(Response::ResponseDeleteRange(del)) => kv::print_del(out, del)?,
                    other => out.line(&format!("\"Unknown\" : {}", go_quote(&format!("{other:?}"))))?,
                }
            }
        }
        Format::Table => return Err(out.format.unsupported()),
    }
    Ok(())
}

/// etcd's Go TxnResponse: each response wrapped in its oneof's Go names.
pub fn json(r: &TxnResponse) -> Json {
    let responses = r
        .responses
        .iter()
        .map(|op| {
            let (name, value) = match &op.response {
                Some(Response::ResponsePut(put)) => ("ResponsePut", kv::put_json(put)),
                Some(Response::ResponseRange(range)) => ("ResponseRange", kv::get_json(range)),
                Some(Response::ResponseDeleteRange(del)) => ("ResponseDeleteRange", kv::del_json(del)),
                Some(Response::ResponseTxn(txn)) => ("ResponseTxn", json(txn)),
                None => return Object::new().build(),
            };
            Object::new()
                .field("Response", Object::new().field(name, value).build())
                .build()
        })
        .collect();
    Object::new()
        .object("header", header(&r.header))
        .boolean("succeeded", r.succeeded)
        .array("responses", responses)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcdctls_format() {
        let input = "mod(\"sk\") > \"0\"\nvalue(\"a\") = \"x y\"\n\nput sk newv --prev-kv\nget \"a b\" --prefix\n\ndel nothing\n\n";
        let request = read_txn(&mut input.as_bytes(), None).unwrap();
        assert_eq!(request.compare.len(), 2);
        assert_eq!(request.compare[0].target_union, Some(TargetUnion::ModRevision(0)));
        assert_eq!(request.compare[0].result, CompareResult::Greater as i32);
        assert_eq!(
            request.compare[1].target_union,
            Some(TargetUnion::Value(b"x y".to_vec()))
        );
        assert_eq!(request.success.len(), 2);
        let Some(Request::RequestRange(range)) = &request.success[1].request else {
            panic!()
        };
        assert_eq!(
            (range.key.as_slice(), range.range_end.as_slice()),
            (&b"a b"[..], &b"a c"[..])
        );
        assert_eq!(request.failure.len(), 1);
    }

    #[test]
    fn errors_read_as_etcdctls() {
        let message = |input: &str| read_txn(&mut input.as_bytes(), None).unwrap_err().message;
        assert_eq!(message("value(\"sk\") = \"x\"\n\n\n"), "EOF");
        assert_eq!(message("bogus\n\n\n\n"), "malformed comparison: bogus");
        assert_eq!(
            message("version(\"sk\")=\"4\"\n\n\n\n"),
            "malformed comparison: version(\"sk\")=\"4\"; got version(\"sk\")  \"\""
        );
        assert_eq!(
            message("mod(\"sk\") < 100\n\n\n\n"),
            "malformed comparison: mod(\"sk\") < 100; got mod(\"sk\") < \"\""
        );
        assert_eq!(
            message("foo(\"sk\") = \"x\"\n\n\n\n"),
            "malformed comparison: foo(\"sk\") = \"x\" (unknown target foo)"
        );
        assert_eq!(
            message("ver(\"sk\") = \"x\"\n\n\n\n"),
            "invalid txn compare request: ver(\"sk\") = \"x\""
        );
        assert_eq!(message("\n\nbogus\n\n\n"), "invalid txn compare request: bogus");
        assert_eq!(message("\n\nbogus x\n\n\n"), "invalid txn request: bogus x");
    }

    #[test]
    fn argify_splits_like_etcdctl() {
        assert_eq!(
            argify("put 'a b' \"c\\td\" e").unwrap(),
            vec!["put", "a b", "c\td", "e"]
        );
        assert_eq!(argify("get \"a").unwrap(), vec!["get", "a"]);
    }
}
