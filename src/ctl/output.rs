//! Output formats as etcdctl 3.4 prints them: `simple` lines, `table`
//! (tablewriter's layout, right-aligned cells, 30-column word wrap), `json`
//! (Go's encoding/json of etcd's Go structs: field order, `omitempty`,
//! base64 bytes, HTML-safe escapes) and the small formatters they share
//! (keys and values, `--hex`, sizes, durations).

use std::io::{self, Write};
use std::time::Duration;

use base64::Engine as _;

use super::error::{CtlError, Exit};
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::mvccpb::KeyValue;

/// `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Table,
    Fields,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format, CtlError> {
        match name {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "table" => Ok(Format::Table),
            "fields" => Ok(Format::Fields),
            _ => Err(CtlError::new(Exit::BadFeature, "unsupported output format")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Table => "table",
            Format::Fields => "fields",
        }
    }

    /// etcdctl's answer for a format a command has no printer for.
    pub fn unsupported(self) -> CtlError {
        CtlError::new(
            Exit::BadFeature,
            format!("{} not supported as output format", self.name()),
        )
    }
}

/// Where a command prints: stdout, or a buffer in tests.
pub struct Out<'a> {
    pub write: &'a mut (dyn Write + Send),
    pub format: Format,
    pub hex: bool,
}

impl Out<'_> {
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.write.write_all(text.as_bytes())?;
        self.write.write_all(b"\n")
    }

    pub fn bytes_line(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write.write_all(bytes)?;
        self.write.write_all(b"\n")
    }

    pub fn json(&mut self, value: Json) -> io::Result<()> {
        self.line(&value.render())
    }

    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
        self.write.write_all(table(header, rows).as_bytes())
    }

    /// etcdctl's printKV: the key (unless value-only) and the value, each on
    /// its own line, raw or as `\x..` escapes with `--hex`.
    pub fn kv(&mut self, kv: &KeyValue, value_only: bool) -> io::Result<()> {
        let hex = self.hex;
        let render = |bytes: &[u8]| -> Vec<u8> {
            if hex {
                bytes.iter().flat_map(|b| format!("\\x{b:02x}").into_bytes()).collect()
            } else {
                bytes.to_vec()
            }
        };
        if !value_only {
            self.bytes_line(&render(&kv.key))?;
        }
        self.bytes_line(&render(&kv.value))
    }
}

impl From<io::Error> for CtlError {
    fn from(e: io::Error) -> CtlError {
        CtlError::new(Exit::Io, e.to_string())
    }
}

/// A JSON value as Go's encoding/json writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Str(String),
    /// `[]byte`: base64 with padding.
    Bytes(Vec<u8>),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => out.push_str(&n.to_string()),
            Json::Uint(n) => out.push_str(&n.to_string()),
            Json::Str(s) => write_string(out, s),
            Json::Bytes(b) => {
                out.push('"');
                out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
                out.push('"');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, name);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Go's string encoding: HTML-safe, U+2028/2029 escaped.
fn write_string(out: &mut String, s: &str) {
    out.push_str(&crate::api::go_json::quote(s));
}

/// Builds a JSON object field by field; the typed setters follow Go's
/// `omitempty` (zero values are left out), `field` always writes.
#[derive(Debug, Default)]
pub struct Object(Vec<(&'static str, Json)>);

impl Object {
    pub fn new() -> Object {
        Object::default()
    }

    pub fn field(mut self, name: &'static str, value: Json) -> Object {
        self.0.push((name, value));
        self
    }

    pub fn uint(self, name: &'static str, value: u64) -> Object {
        if value == 0 {
            return self;
        }
        self.field(name, Json::Uint(value))
    }

    pub fn int(self, name: &'static str, value: i64) -> Object {
        if value == 0 {
            return self;
        }
        self.field(name, Json::Int(value))
    }

    pub fn boolean(self, name: &'static str, value: bool) -> Object {
        if !value {
            return self;
        }
        self.field(name, Json::Bool(true))
    }

    pub fn string(self, name: &'static str, value: &str) -> Object {
        if value.is_empty() {
            return self;
        }
        self.field(name, Json::Str(value.to_string()))
    }

    pub fn bytes(self, name: &'static str, value: &[u8]) -> Object {
        if value.is_empty() {
            return self;
        }
        self.field(name, Json::Bytes(value.to_vec()))
    }

    pub fn strings(self, name: &'static str, values: &[String]) -> Object {
        self.array(name, values.iter().map(|s| Json::Str(s.clone())).collect())
    }

    pub fn array(self, name: &'static str, values: Vec<Json>) -> Object {
        if values.is_empty() {
            return self;
        }
        self.field(name, Json::Array(values))
    }

    /// A pointer field: left out when absent, `{}` when present but empty.
    pub fn object(self, name: &'static str, value: Option<Object>) -> Object {
        match value {
            Some(object) => self.field(name, object.build()),
            None => self,
        }
    }

    /// Go's embedded struct: its fields inline.
    pub fn inline(mut self, other: Option<Object>) -> Object {
        if let Some(other) = other {
            self.0.extend(other.0);
        }
        self
    }

    pub fn build(self) -> Json {
        Json::Object(self.0)
    }
}

/// etcdserverpb.ResponseHeader.
pub fn header(header: &Option<ResponseHeader>) -> Option<Object> {
    header.as_ref().map(|h| {
        Object::new()
            .uint("cluster_id", h.cluster_id)
            .uint("member_id", h.member_id)
            .int("revision", h.revision)
            .uint("raft_term", h.raft_term)
    })
}

/// mvccpb.KeyValue.
pub fn key_value(kv: &KeyValue) -> Json {
    Object::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .build()
}

/// tablewriter's rendering as etcdctl configures it: upper-case centred
/// headers, right-aligned cells, cells wider than 30 columns wrapped at
/// spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    const WRAP: usize = 30;
    let columns = header.len();
    let cells: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| wrap_cell(cell, WRAP)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for (row, cells) in rows.iter().zip(&cells) {
        for (i, lines) in cells.iter().enumerate().take(columns) {
            // A wrapped cell keeps the whole wrap width.
            let wrapped = width(&row[i]).min(WRAP);
            for line in lines {
                widths[i] = widths[i].max(width(line)).max(wrapped);
            }
        }
    }
    let border = {
        let mut line = String::from("+");
        for w in &widths {
            line.push_str(&"-".repeat(w + 2));
            line.push('+');
        }
        line.push('\n');
        line
    };
    let mut out = border.clone();
    out.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let title = h.replace(['_', '.'], " ").trim().to_uppercase();
        let gap = w - width(&title);
        let left = gap / 2;
        out.push_str(&format!(" {}{}{} |", " ".repeat(left), title, " ".repeat(gap - left)));
    }
    out.push('\n');
    out.push_str(&border);
    for row in &cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for line in 0..height {
            out.push('|');
            for (i, w) in widths.iter().enumerate() {
                let text = row.get(i).and_then(|l| l.get(line)).map(String::as_str).unwrap_or("");
                out.push_str(&format!(" {}{} |", " ".repeat(w - width(text)), text));
            }
            out.push('\n');
        }
    }
    if !rows.is_empty() {
        out.push_str(&border);
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Splits a cell wider than `limit` at single spaces into lines of minimum
/// raggedness, as tablewriter's WrapString does (a word longer than the
/// limit widens it).
fn wrap_cell(cell: &str, limit: usize) -> Vec<String> {
    if width(cell) <= limit {
        return vec![cell.to_string()];
    }
    let words: Vec<&str> = cell.split(' ').collect();
    let limit = words.iter().map(|w| width(w)).max().unwrap_or(0).max(limit);
    let n = words.len();
    // length[i][j]: width of words i..=j joined by single spaces.
    let length = |i: usize, j: usize| -> usize { words[i..=j].iter().map(|w| width(w)).sum::<usize>() + (j - i) };
    const PENALTY: u64 = 100_000;
    let mut cost = vec![u64::MAX; n + 1];
    let mut next = vec![n; n + 1];
    cost[n] = 0;
    for i in (0..n).rev() {
        if length(i, n - 1) <= limit {
            cost[i] = 0;
            next[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = length(i, j - 1);
            let slack = limit as i64 - len as i64;
            let mut c = (slack * slack) as u64 + cost[j];
            if len > limit {
                c += PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                next[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..next[i]].join(" "));
        i = next[i];
    }
    lines
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
pub fn human_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let exponent = ((size as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (size as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let mut out = String::new();
    let secs = nanos / 1_000_000_000;
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", decimal(nanos % 60_000_000_000, 1_000_000_000)));
    out
}

/// `value / unit` with the fraction's trailing zeros dropped.
fn decimal(value: u128, unit: u128) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = unit.to_string().len() - 1;
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_follows_gos_encoding() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 4,
            version: 3,
            value: b"q".to_vec(),
            lease: 0,
        };
        assert_eq!(
            key_value(&kv).render(),
            r#"{"key":"Zm9v","create_revision":2,"mod_revision":4,"version":3,"value":"cQ=="}"#
        );
        let header = header(&Some(ResponseHeader {
            cluster_id: 14443903163313418560,
            member_id: 0,
            revision: 17,
            raft_term: 2,
        }));
        let json = Object::new().object("header", header).object("none", None).build();
        assert_eq!(
            json.render(),
            r#"{"header":{"cluster_id":14443903163313418560,"revision":17,"raft_term":2}}"#
        );
        assert_eq!(
            Json::Str("<a&b>\u{1}".into()).render(),
            r#""\u003ca\u0026b\u003e\u0001""#
        );
    }

    #[test]
    fn tables_match_tablewriter() {
        let rows = vec![
            vec!["2f36e8e1c83af4f2".to_string(), "started".into(), "c".into()],
            vec!["baf7f7a229e7ef7c".to_string(), "unstarted".into(), "".into()],
        ];
        let expected = "\
+------------------+-----------+------+
|        ID        |  STATUS   | NAME |
+------------------+-----------+------+
| 2f36e8e1c83af4f2 |   started |    c |
| baf7f7a229e7ef7c | unstarted |      |
+------------------+-----------+------+
";
        assert_eq!(table(&["ID", "Status", "Name"], &rows), expected);
    }

    #[test]
    fn long_cells_wrap_like_tablewriter() {
        let cell = "memberID:3402162624949581042 alarm:NOSPACE , memberID:7059799375513725458 alarm:NOSPACE ";
        assert_eq!(
            wrap_cell(cell, 30),
            vec![
                "memberID:3402162624949581042",
                "alarm:NOSPACE ,",
                "memberID:7059799375513725458",
                "alarm:NOSPACE "
            ]
        );
    }

    #[test]
    fn sizes_and_durations_read_as_go_prints_them() {
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(274432), "274 kB");
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(32_800_000), "33 MB");
        assert_eq!(go_duration(Duration::from_nanos(5_093_333)), "5.093333ms");
        assert_eq!(go_duration(Duration::from_nanos(5_000_444_143)), "5.000444143s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
    }
}
