//! Configuration files, told apart by their content: `/etc/etcd/etcd.conf` (`ETCD_NAME=value`
//! lines, read as systemd's `EnvironmentFile=` reads them, plus `[section]` headers and `export`
//! prefixes) and etcd's YAML file (keys are flag names).

use std::path::Path;

use serde_yaml::Value;

use super::flags::{self, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `KEY=value` lines: the keys are environment variables.
    Env,
    /// etcd's YAML: the keys are flag names.
    Yaml,
}

/// One `key = value` of the file and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: String,
    pub format: Format,
    pub assignments: Vec<Assignment>,
}

/// A line that does not parse (0 when the whole file is at fault) and why.
pub type LineError = (usize, String);

/// The YAML keys that group TLS settings, and the flag prefix of their keys.
const SECURITY_GROUPS: &[(&str, &str)] = &[("client-transport-security", ""), ("peer-transport-security", "peer-")];

/// Reads and parses the file at `path`; every bad line is reported.
pub fn read(path: &str) -> Result<ConfigFile, Vec<LineError>> {
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| vec![(0, format!("open {path}: {e}"))])?;
    let format = detect(&text);
    let assignments = match format {
        Format::Env => parse_env(&text)?,
        Format::Yaml => parse_yaml(&text)?,
    };
    let path = path.to_string();
    Ok(ConfigFile {
        path,
        format,
        assignments,
    })
}

/// An env file when its first meaningful line is a `[section]` or a `KEY=value`.
pub fn detect(text: &str) -> Format {
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with(['#', ';']) && line != &"---");
    match first {
        Some(line) if line.starts_with('[') || env_assignment(line).is_some() => Format::Env,
        _ => Format::Yaml,
    }
}

/// Parses `KEY=value` lines as systemd does: `#` and `;` start comments, values may be
/// double-quoted (with backslash escapes) or single-quoted, `export ` may precede the key, and
/// `[section]` lines are skipped.
pub fn parse_env(text: &str) -> Result<Vec<Assignment>, Vec<LineError>> {
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) || (line.starts_with('[') && line.ends_with(']')) {
            continue;
        }
        let parsed = env_assignment(line)
            .ok_or_else(|| "expected KEY=value, a [section], or a # comment".to_string())
            .and_then(|(key, value)| Ok((key, unquote(value)?)));
        match parsed {
            Ok((key, value)) => assignments.push(Assignment {
                key: key.to_string(),
                value,
                line: index + 1,
            }),
            Err(why) => errors.push((index + 1, format!("{why}: {line}"))),
        }
    }
    if errors.is_empty() {
        Ok(assignments)
    } else {
        Err(errors)
    }
}

/// The key and raw value of `[export ]KEY=value`, if the line is one.
fn env_assignment(line: &str) -> Option<(&str, &str)> {
    let line = line
        .strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .unwrap_or(line);
    let (key, value) = line.trim_start().split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((key, value.trim()))
}

fn unquote(value: &str) -> Result<String, String> {
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(value.to_string());
    };
    let mut out = String::new();
    let mut chars = value[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            c if c == quote => {
                let rest = chars.as_str().trim();
                return if rest.is_empty() || rest.starts_with('#') {
                    Ok(out)
                } else {
                    Err(format!("text after the closing quote ({rest})"))
                };
            }
            '\\' if quote == '"' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    Err("no closing quote".to_string())
}

/// Parses etcd's YAML configuration: a mapping of flag names to values, with TLS settings
/// grouped under `client-transport-security` and `peer-transport-security`. An empty value
/// leaves the flag unset; a list is joined with commas.
pub fn parse_yaml(text: &str) -> Result<Vec<Assignment>, Vec<LineError>> {
    let document: Value = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |at| at.line());
        vec![(line, format!("YAML: {e}"))]
    })?;
    let mapping = match document {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(mapping) => mapping,
        _ => {
            return Err(vec![(
                1,
                "YAML: expected a mapping of flag names to values".to_string(),
            )])
        }
    };
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in mapping {
        let key = scalar(&key).unwrap_or_default();
        let line = line_of(text, &key, 0);
        let group = SECURITY_GROUPS.iter().find(|(name, _)| *name == key);
        match (group, value) {
            (Some((_, prefix)), Value::Mapping(inner)) => {
                for (inner_key, inner_value) in inner {
                    let inner_key = scalar(&inner_key).unwrap_or_default();
                    let inner_line = line_of(text, &inner_key, line);
                    let flag = match inner_key.as_str() {
                        "client-cert-auth" | "trusted-ca-file" | "cert-file" | "key-file" | "auto-tls" => {
                            format!("{prefix}{inner_key}")
                        }
                        "crl-file" if prefix.is_empty() => "client-crl-file".to_string(),
                        _ => format!("{key}.{inner_key}"),
                    };
                    push(&mut assignments, &mut errors, flag, &inner_value, inner_line);
                }
            }
            (_, value) => push(&mut assignments, &mut errors, key, &value, line),
        }
    }
    if errors.is_empty() {
        Ok(assignments)
    } else {
        Err(errors)
    }
}

fn push(assignments: &mut Vec<Assignment>, errors: &mut Vec<LineError>, key: String, value: &Value, line: usize) {
    if value.is_null() {
        return;
    }
    let text = match value {
        Value::Sequence(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        Value::Number(n) if flags::find(&key).is_some_and(|flag| flag.kind == Kind::Duration) => Some(format!("{n}ns")),
        value => scalar(value),
    };
    match text {
        Some(value) => assignments.push(Assignment { key, value, line }),
        None => errors.push((line, format!("{key}: expected a single value or a list"))),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The line of `key:` after line `after` (1-based; 0 for the whole file), or `after`.
fn line_of(text: &str, key: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, line)| {
            let line = line.trim_start().trim_start_matches(['"', '\'']);
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
        })
        .map_or(after, |(index, _)| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file of the deployment guide operators follow, verbatim.
    const GUIDE: &str = include_str!("../../tests/fixtures/guide-etcd.conf");

    fn pairs(assignments: &[Assignment]) -> Vec<(&str, &str, usize)> {
        assignments
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str(), a.line))
            .collect()
    }

    #[test]
    fn the_guide_file_parses() {
        assert_eq!(detect(GUIDE), Format::Env);
        let parsed = parse_env(GUIDE).unwrap();
        assert_eq!(parsed.len(), 9);
        assert_eq!(
            parsed[0],
            Assignment {
                key: "ETCD_NAME".into(),
                value: "cd-test-001.drcloud.com".into(),
                line: 2
            }
        );
        assert_eq!(pairs(&parsed)[1], ("ETCD_DATA_DIR", "/data/lib/etcd/", 3));
        assert_eq!(pairs(&parsed)[8], ("ETCD_INITIAL_CLUSTER_TOKEN", "etcd-cluster", 11));
        assert!(parsed[6]
            .value
            .ends_with("cd-test-003.drcloud.com=http://172.16.200.102:2380"));
    }

    #[test]
    fn export_comments_and_quotes() {
        let text = "# etcd\n\n; old style\nexport ETCD_NAME=a\n  export\tETCD_DATA_DIR = '/x y' # here\n\
                    ETCD_INITIAL_CLUSTER_TOKEN=\"a \\\"b\\\"\"\nETCD_LOG_LEVEL=debug   \nETCD_X=\n";
        assert_eq!(detect(text), Format::Env);
        assert_eq!(
            pairs(&parse_env(text).unwrap()),
            [
                ("ETCD_NAME", "a", 4),
                ("ETCD_DATA_DIR", "/x y", 5),
                ("ETCD_INITIAL_CLUSTER_TOKEN", "a \"b\"", 6),
                ("ETCD_LOG_LEVEL", "debug", 7),
                ("ETCD_X", "", 8),
            ]
        );
    }

    #[test]
    fn bad_env_lines_are_all_reported_with_their_numbers() {
        let text = "ETCD_NAME=a\nETCD_DATA_DIR=\"/x\nnot an assignment\nETCD_TOKEN='a' b\n";
        assert_eq!(
            parse_env(text).unwrap_err(),
            [
                (2, "no closing quote: ETCD_DATA_DIR=\"/x".to_string()),
                (
                    3,
                    "expected KEY=value, a [section], or a # comment: not an assignment".to_string()
                ),
                (4, "text after the closing quote (b): ETCD_TOKEN='a' b".to_string()),
            ]
        );
    }

    #[test]
    fn yaml_keys_are_flag_names() {
        let text = "# etcd.conf.yml\nname: 'm1'\ndata-dir:\nsnapshot-count: 10000\nlisten-client-urls: http://127.0.0.1:2379\n\
                    strict-reconfig-check: false\nlog-outputs: [stderr]\ngrpc-keepalive-min-time: 5000000000\n\
                    client-transport-security:\n  cert-file: /c\n  client-cert-auth: true\npeer-transport-security:\n  auto-tls: true\n";
        assert_eq!(detect(text), Format::Yaml);
        assert_eq!(
            pairs(&parse_yaml(text).unwrap()),
            [
                ("name", "m1", 2),
                ("snapshot-count", "10000", 4),
                ("listen-client-urls", "http://127.0.0.1:2379", 5),
                ("strict-reconfig-check", "false", 6),
                ("log-outputs", "stderr", 7),
                ("grpc-keepalive-min-time", "5000000000ns", 8),
                ("cert-file", "/c", 10),
                ("client-cert-auth", "true", 11),
                ("peer-auto-tls", "true", 13),
            ]
        );
    }

    #[test]
    fn bad_yaml_says_where() {
        let (line, why) = &parse_yaml("name: a\n  data-dir: [\n").unwrap_err()[0];
        assert_eq!(*line, 2, "{why}");
        assert_eq!(
            parse_yaml("name: {a: 1}\n").unwrap_err(),
            [(1, "name: expected a single value or a list".to_string())]
        );
        assert_eq!(parse_yaml("").unwrap(), []);
    }
}
