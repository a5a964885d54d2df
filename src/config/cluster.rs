//! The initial cluster: parsing `--initial-cluster` and the checks etcd makes before it
//! bootstraps a member without data.

use std::collections::{BTreeMap, BTreeSet};

use super::go_syntax;

/// One member's name and one of its peer URLs.
pub type Entry = (String, String);

/// Parses `name=url,name=url,...` as etcd's `types.NewURLsMap` does; a name may repeat.
/// Entries come back sorted by name, then URL.
pub fn parse(spec: &str) -> Result<Vec<Entry>, String> {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for item in spec.split(',').filter(|item| !item.is_empty()) {
        let (name, url) = item.split_once('=').unwrap_or((item, ""));
        by_name.entry(name).or_default().push(url);
    }
    let mut entries = Vec::new();
    for (name, urls) in by_name {
        for url in go_syntax::parse_urls(&urls.join(","))? {
            entries.push((name.to_string(), url));
        }
    }
    Ok(entries)
}

/// etcd's checks for a member of a new cluster (`VerifyBootstrap`).
pub fn check_new_member(name: &str, cluster: &[Entry], advertised: &[String]) -> Result<(), String> {
    check_local_member(name, cluster)?;
    check_advertised(name, cluster, advertised)?;
    check_duplicate_urls(cluster)
}

/// etcd's checks for a member joining an existing cluster (`VerifyJoinExisting`).
pub fn check_joining_member(name: &str, cluster: &[Entry]) -> Result<(), String> {
    check_local_member(name, cluster)?;
    check_duplicate_urls(cluster)
}

fn check_local_member(name: &str, cluster: &[Entry]) -> Result<(), String> {
    if cluster.iter().any(|(member, _)| member == name) {
        Ok(())
    } else {
        Err(format!(
            "couldn't find local name {name:?} in the initial cluster configuration"
        ))
    }
}

/// The URLs `--initial-cluster` gives `name` must be the ones it advertises. etcd resolves
/// host names before comparing; ferrocd compares the URLs as written.
fn check_advertised(name: &str, cluster: &[Entry], advertised: &[String]) -> Result<(), String> {
    let listed: Vec<&str> = urls_of(name, cluster).collect();
    let mut advertised: Vec<&str> = advertised.iter().map(String::as_str).collect();
    advertised.sort_unstable();
    let Err(mismatch) = compare_url_lists(&advertised, &listed) else {
        return Ok(());
    };
    let advertised_list = advertised.join(",");
    let advertised_set: BTreeSet<&str> = advertised.iter().copied().collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    let as_cluster = |urls: &BTreeSet<&str>| {
        let pairs: Vec<String> = urls.iter().map(|url| format!("{name}={url}")).collect();
        pairs.join(",")
    };
    let only_listed: BTreeSet<&str> = listed_set.difference(&advertised_set).copied().collect();
    if !only_listed.is_empty() {
        return Err(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={advertised_list} ({mismatch})",
            as_cluster(&only_listed)
        ));
    }
    let only_advertised: Vec<&str> = advertised_set.difference(&listed_set).copied().collect();
    if !only_advertised.is_empty() {
        return Err(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
            only_advertised.join(","),
            as_cluster(&advertised_set)
        ));
    }
    Err(format!(
        "failed to resolve {advertised_list} to match --initial-cluster={} ({mismatch})",
        as_cluster(&advertised_set)
    ))
}

/// etcd's `URLStringsEqual` on sorted lists, without name resolution; the error is its text.
fn compare_url_lists(a: &[&str], b: &[&str]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("len({}) != len({})", go_quoted(a), go_quoted(b)));
    }
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => Err(format!("resolved urls: {x:?} != {y:?}")),
        None => Ok(()),
    }
}

/// A string slice as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn check_duplicate_urls(cluster: &[Entry]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    if cluster.iter().all(|(_, url)| seen.insert(url.as_str())) {
        return Ok(());
    }
    let mut pairs: Vec<String> = cluster.iter().map(|(n, u)| format!("{n}={u}")).collect();
    pairs.sort();
    Err(format!("initial cluster {} has duplicate url", pairs.join(",")))
}

fn urls_of<'a>(name: &'a str, cluster: &'a [Entry]) -> impl Iterator<Item = &'a str> {
    cluster
        .iter()
        .filter(move |(member, _)| member == name)
        .map(|(_, url)| url.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "http://127.0.0.1:32380";
    const B: &str = "http://127.0.0.1:32381";

    fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs.iter().map(|(n, u)| (n.to_string(), u.to_string())).collect()
    }

    #[test]
    fn parses_names_with_several_urls() {
        let parsed = parse("m2=http://b:2,m1=http://a:2,m1=http://a:1,").unwrap();
        let expected = entries(&[("m1", "http://a:1"), ("m1", "http://a:2"), ("m2", "http://b:2")]);
        assert_eq!(parsed, expected);
        assert_eq!(parse(""), Ok(vec![]));
    }

    #[test]
    fn parse_errors_are_etcds() {
        assert_eq!(
            parse("a=http://a:1,b=ftp://x"),
            Err("URL scheme must be http, https, unix, or unixs: ftp://x".into())
        );
        assert_eq!(
            parse("a=http://a:1,b"),
            Err("URL scheme must be http, https, unix, or unixs: ".into())
        );
        assert_eq!(
            parse("b=http://a:1/x"),
            Err("URL must not contain a path: http://a:1/x".into())
        );
    }

    #[test]
    fn local_member_must_be_listed() {
        let cluster = entries(&[("a", A)]);
        let message = r#"couldn't find local name "b" in the initial cluster configuration"#;
        assert_eq!(check_new_member("b", &cluster, &[A.into()]), Err(message.into()));
        assert_eq!(check_joining_member("b", &cluster), Err(message.into()));
        assert_eq!(check_new_member("a", &cluster, &[A.into()]), Ok(()));
    }

    #[test]
    fn listed_urls_must_be_advertised() {
        let cluster = entries(&[("default", "http://localhost:2380")]);
        assert_eq!(
            check_new_member("default", &cluster, &[A.into()]),
            Err(format!(
                "--initial-cluster has default=http://localhost:2380 but missing from \
                 --initial-advertise-peer-urls={A} (resolved urls: \"{A}\" != \"http://localhost:2380\")"
            ))
        );
        let cluster = entries(&[("default", A), ("default", B)]);
        assert_eq!(
            check_new_member("default", &cluster, &[A.into()]),
            Err(format!(
                "--initial-cluster has default={B} but missing from \
                 --initial-advertise-peer-urls={A} (len([\"{A}\"]) != len([\"{A}\" \"{B}\"]))"
            ))
        );
    }

    #[test]
    fn advertised_urls_must_be_listed() {
        let cluster = entries(&[("default", A)]);
        assert_eq!(
            check_new_member("default", &cluster, &[B.into(), A.into()]),
            Err(format!(
                "--initial-advertise-peer-urls has {B} but missing from \
                 --initial-cluster=default={A},default={B}"
            ))
        );
    }

    #[test]
    fn a_url_listed_twice_for_the_member_fails_to_match() {
        let cluster = entries(&[("default", A), ("default", A)]);
        assert_eq!(
            check_new_member("default", &cluster, &[A.into()]),
            Err(format!(
                "failed to resolve {A} to match --initial-cluster=default={A} \
                 (len([\"{A}\"]) != len([\"{A}\" \"{A}\"]))"
            ))
        );
    }

    #[test]
    fn urls_must_be_unique_across_members() {
        let cluster = entries(&[("default", A), ("b", A)]);
        let message = format!("initial cluster b={A},default={A} has duplicate url");
        assert_eq!(check_new_member("default", &cluster, &[A.into()]), Err(message.clone()));
        assert_eq!(check_joining_member("default", &cluster), Err(message));
    }
}
