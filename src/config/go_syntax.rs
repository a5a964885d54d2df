//! Go standard-library parsing rules that etcd's flags inherit: strconv integers and booleans,
//! `time.ParseDuration`, and the URL checks of etcd's `types.NewURLs`.

/// Why a Go `strconv` number parse failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumError {
    Syntax,
    Range,
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 0, bits)`: base prefixes `0x`, `0o`, `0b` and `0` (octal), and
/// `_` digit separators.
pub fn parse_uint(s: &str, bits: u32) -> Result<u64, NumError> {
    let max = u64::MAX >> (64 - bits);
    let (base, digits) = split_base(s);
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut n: u64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(36).ok_or(NumError::Syntax)?;
        if d >= base {
            return Err(NumError::Syntax);
        }
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .filter(|&n| n <= max)
            .ok_or(NumError::Range)?;
    }
    if s.contains('_') && !underscores_ok(s) {
        return Err(NumError::Syntax);
    }
    Ok(n)
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn parse_int(s: &str) -> Result<i64, NumError> {
    let (negative, magnitude) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = parse_uint(magnitude, 64)?;
    match (negative, i64::try_from(n)) {
        (false, Ok(n)) => Ok(n),
        (true, Ok(n)) => Ok(-n),
        (true, Err(_)) if n == 1 << 63 => Ok(i64::MIN),
        _ => Err(NumError::Range),
    }
}

/// Splits a base prefix off an unsigned Go integer literal.
fn split_base(s: &str) -> (u32, &str) {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'0') {
        return (10, s);
    }
    if bytes.len() >= 3 {
        match bytes[1].to_ascii_lowercase() {
            b'b' => return (2, &s[2..]),
            b'o' => return (8, &s[2..]),
            b'x' => return (16, &s[2..]),
            _ => {}
        }
    }
    (8, &s[1..])
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit.
fn underscores_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let bytes = s.as_bytes();
    let prefixed = bytes.len() >= 2 && bytes[0] == b'0' && b"bBoOxX".contains(&bytes[1]);
    let hex = prefixed && bytes[1].eq_ignore_ascii_case(&b'x');
    let (mut saw, rest) = if prefixed { ('0', &s[2..]) } else { ('^', s) };
    for c in rest.chars() {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = '0';
        } else if c == '_' {
            if saw != '0' {
                return false;
            }
            saw = '_';
        } else if saw == '_' {
            return false;
        } else {
            saw = '!';
        }
    }
    saw != '_'
}

/// Go's `time.ParseDuration`, in nanoseconds; the error is Go's text.
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (negative, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let (nanos, rest) = duration_term(s, orig)?;
        total = total.checked_add(nanos).filter(|&t| t <= 1 << 63).ok_or_else(invalid)?;
        s = rest;
    }
    match (negative, i64::try_from(total)) {
        (false, Ok(t)) => Ok(t),
        (true, Ok(t)) => Ok(-t),
        (true, Err(_)) => Ok(i64::MIN),
        (false, Err(_)) => Err(invalid()),
    }
}

/// One `<number><unit>` term of a Go duration: its nanoseconds and the rest of the input.
fn duration_term<'a>(s: &'a str, orig: &str) -> Result<(u64, &'a str), String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (int_part, rest) = s.split_at(int_end);
    let (frac_part, rest) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len())),
        None => ("", rest),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    let unit_end = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_end);
    if unit.is_empty() {
        return Err(format!("time: missing unit in duration {orig:?}"));
    }
    let scale = unit_nanos(unit).ok_or_else(|| format!("time: unknown unit {unit:?} in duration {orig:?}"))?;
    let whole: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| invalid())?
    };
    let nanos = whole
        .checked_mul(scale)
        .and_then(|n| n.checked_add(fraction_nanos(frac_part, scale)))
        .filter(|&n| n <= 1 << 63)
        .ok_or_else(invalid)?;
    Ok((nanos, rest))
}

/// The nanoseconds of a decimal fraction of `scale`, as Go computes them (through a float).
fn fraction_nanos(frac: &str, scale: u64) -> u64 {
    let digits = &frac[..frac.len().min(18)];
    if digits.is_empty() {
        return 0;
    }
    let value: u64 = digits.parse().unwrap_or(0);
    let divisor = 10f64.powi(digits.len() as i32);
    (value as f64 * (scale as f64 / divisor)) as u64
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// etcd's `types.NewURLs`: a comma-separated list of `scheme://host:port` URLs, trimmed and
/// sorted; the error is etcd's text.
pub fn parse_urls(list: &str) -> Result<Vec<String>, String> {
    new_urls(&list.split(',').collect::<Vec<_>>())
}

/// etcd's `types.NewURLs` on a list: each URL checked and trimmed, then sorted; the error is
/// etcd's text for the first bad one.
pub fn new_urls(urls: &[impl AsRef<str>]) -> Result<Vec<String>, String> {
    if urls.is_empty() {
        return Err("no valid URLs given".into());
    }
    let mut urls = urls
        .iter()
        .map(|url| check_url(url.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort();
    Ok(urls)
}

/// Checks one URL the way etcd's `types.NewURLs` does and returns it trimmed.
fn check_url(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let (scheme, rest) = split_scheme(s)?;
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {s}"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => after.split_at(after.find('/').unwrap_or(after.len())),
        None => ("", rest),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    if let Some(port) = invalid_port(host) {
        return Err(format!("parse {s:?}: invalid port {port:?} after host"));
    }
    if split_host_port(host).is_none() {
        return Err(format!(r#"URL address does not have the form "host:port": {s}"#));
    }
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {s}"));
    }
    Ok(format!("{scheme}{}", &s[scheme.len()..]))
}

/// Go's `getScheme`: the lower-cased scheme (empty if there is none) and what follows its `:`.
fn split_scheme(s: &str) -> Result<(String, &str), String> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(format!("parse {s:?}: missing protocol scheme")),
            ':' => return Ok((s[..i].to_ascii_lowercase(), &s[i + 1..])),
            _ => break,
        }
    }
    Ok((String::new(), s))
}

/// Go's URL host check: the `:port` after the host, if it is not all digits.
fn invalid_port(host: &str) -> Option<&str> {
    let after_host = if host.starts_with('[') {
        &host[host.rfind(']')? + 1..]
    } else {
        &host[host.rfind(':')?..]
    };
    let digits = after_host.strip_prefix(':').unwrap_or(after_host);
    let valid = after_host.is_empty() || (after_host.starts_with(':') && digits.bytes().all(|b| b.is_ascii_digit()));
    (!valid).then_some(after_host)
}

/// Go's `net.SplitHostPort`: `host:port` or `[ipv6]:port`; the port may be empty.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let colon = hostport.rfind(':')?;
    let (host, inner_from) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0)
    };
    let start = usize::from(hostport.starts_with('['));
    if hostport[start..].contains('[') || hostport[inner_from..].contains(']') {
        return None;
    }
    Some((host, &hostport[colon + 1..]))
}

/// The host of a URL that [`parse_urls`] accepted (without brackets for IPv6).
pub fn url_host(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    split_host_port(host_port).map_or("", |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_follow_strconv() {
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool("tRUE"), None);
    }

    #[test]
    fn unsigned_integers_accept_go_prefixes_and_separators() {
        assert_eq!(parse_uint("100", 64), Ok(100));
        assert_eq!(parse_uint("0x10", 64), Ok(16));
        assert_eq!(parse_uint("010", 64), Ok(8));
        assert_eq!(parse_uint("0o11", 64), Ok(9));
        assert_eq!(parse_uint("0b11", 64), Ok(3));
        assert_eq!(parse_uint("1_000", 64), Ok(1000));
        assert_eq!(parse_uint("0", 64), Ok(0));
        for bad in ["", "+10", "-1", " 10", "1s", "0x", "1__0", "_1", "1_", "08"] {
            assert_eq!(parse_uint(bad, 64), Err(NumError::Syntax), "{bad}");
        }
        assert_eq!(parse_uint("18446744073709551616", 64), Err(NumError::Range));
        assert_eq!(parse_uint("4294967295", 32), Ok(4294967295));
        assert_eq!(parse_uint("4294967296", 32), Err(NumError::Range));
    }

    #[test]
    fn signed_integers_take_a_sign() {
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("+0x10"), Ok(16));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(NumError::Range));
        assert_eq!(parse_int("1s"), Err(NumError::Syntax));
    }

    #[test]
    fn durations_follow_time_parse_duration() {
        let second = 1_000_000_000;
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1h"), Ok(3600 * second));
        assert_eq!(parse_duration("2h0m0s"), Ok(7200 * second));
        assert_eq!(parse_duration("1.5s"), Ok(second * 3 / 2));
        assert_eq!(parse_duration(".5m"), Ok(30 * second));
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("3\u{b5}s"), Ok(3000));
        assert_eq!(parse_duration("-1m"), Ok(-60 * second));
        assert_eq!(parse_duration("abc"), Err(r#"time: invalid duration "abc""#.into()));
        assert_eq!(
            parse_duration("-1"),
            Err(r#"time: missing unit in duration "-1""#.into())
        );
        assert_eq!(
            parse_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.into())
        );
        assert_eq!(parse_duration(""), Err(r#"time: invalid duration """#.into()));
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn urls_are_checked_like_etcd() {
        assert_eq!(
            parse_urls("http://b:2, http://a:1"),
            Ok(vec!["http://a:1".to_string(), "http://b:2".to_string()])
        );
        for ok in [
            "https://[::1]:1",
            "unix://a:1",
            "HTTP://a:1",
            "http://a:",
            "http://:1",
            "http://u@a:1",
            "http://a:1?x=1",
        ] {
            assert!(parse_urls(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("ftp://a:1", "URL scheme must be http, https, unix, or unixs: ftp://a:1"),
            ("a:1", "URL scheme must be http, https, unix, or unixs: a:1"),
            ("http://a:1,", "URL scheme must be http, https, unix, or unixs: "),
            (
                "http://a",
                r#"URL address does not have the form "host:port": http://a"#,
            ),
            ("http://a:1/", "URL must not contain a path: http://a:1/"),
            ("http://a:1/p", "URL must not contain a path: http://a:1/p"),
            (":::", r#"parse ":::": missing protocol scheme"#),
            ("http://a:b", r#"parse "http://a:b": invalid port ":b" after host"#),
        ];
        for (input, message) in cases {
            assert_eq!(parse_urls(input), Err(message.to_string()), "{input}");
        }
    }

    #[test]
    fn host_port_splits_like_go() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:2"), Some(("::1", "2")));
        assert_eq!(split_host_port(":1"), Some(("", "1")));
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("::1:2"), None);
        assert_eq!(split_host_port("[::1]"), None);
        assert_eq!(url_host("http://u@a:1?x"), "a");
        assert_eq!(url_host("https://[::1]:2"), "::1");
        assert_eq!(url_host("http://:1"), "");
    }
}
