//! Tests of configuration files end to end through [`load`]: the deployment guide's etcd.conf,
//! `export` lines, etcd's YAML file, and `check-config` on broken files.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use super::*;

fn load_with(args: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let args = std::iter::once("ferrocd").chain(args.iter().copied());
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    load(args.map(OsString::from).collect(), &env)
}

fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
    match load_with(args, env) {
        Ok(Loaded::Run(config)) => config,
        other => panic!("{args:?} {env:?}: {other:?}"),
    }
}

fn guide() -> String {
    format!("{}/tests/fixtures/guide-etcd.conf", env!("CARGO_MANIFEST_DIR"))
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn urls(list: &[&str]) -> Vec<Url> {
    list.iter().map(|u| Url::parse(u).unwrap()).collect()
}

/// `check-config`'s output and exit status.
fn check(args: &[&str], env: &[(&str, &str)]) -> (String, i32) {
    let args: Vec<&str> = std::iter::once("check-config").chain(args.iter().copied()).collect();
    match load_with(&args, env) {
        Ok(Loaded::Exit { message, code }) => (message, code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_guide_file_gives_its_settings_by_flag_or_variable() {
    let path = guide();
    for c in [
        config(&["--config-file", &path], &[]),
        config(&[], &[("ETCD_CONFIG_FILE", &path)]),
    ] {
        assert_eq!(c.name, "cd-test-001.drcloud.com");
        assert_eq!(c.data_dir, PathBuf::from("/data/lib/etcd/"));
        assert_eq!(c.listen_client_urls, urls(&["http://0.0.0.0:2379"]));
        assert_eq!(c.advertise_client_urls, urls(&["http://0.0.0.0:2379"]));
        assert_eq!(c.listen_peer_urls, urls(&["http://0.0.0.0:2380"]));
        assert_eq!(c.initial_advertise_peer_urls, urls(&["http://172.16.200.100:2380"]));
        let names: Vec<&str> = c.initial_cluster.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cd-test-001.drcloud.com",
                "cd-test-002.drcloud.com",
                "cd-test-003.drcloud.com"
            ]
        );
        assert_eq!(c.initial_cluster[2].1, urls(&["http://172.16.200.102:2380"])[0]);
        assert_eq!(c.initial_cluster_state, ClusterState::New);
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with(&format!("{path}:5: --advertise-client-urls has http://0.0.0.0:2379")));
        assert_eq!(c.verify_bootstrap(), Ok(()));
    }
}

#[test]
fn check_config_passes_the_guide_file_with_a_warning() {
    let (output, code) = check(&["--config-file", &guide()], &[]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(":5: warning: --advertise-client-urls has http://0.0.0.0:2379"),
        "{output}"
    );
    assert!(
        output.ends_with("0 errors, 1 warning: ferrocd would start\n"),
        "{output}"
    );
}

#[test]
fn export_lines_and_flags_combine_with_etcds_rules() {
    let file = file_with("# written by hand\nexport ETCD_NAME='m1'\nexport ETCD_SNAPSHOT_COUNT=7\nETCD_DATA_DIR=/d\n");
    let path = file.path().to_str().unwrap();
    let c = config(
        &["--config-file", path, "--heartbeat-interval=50"],
        &[("ETCD_DATA_DIR", "/over")],
    );
    assert_eq!((c.name.as_str(), c.snapshot_count), ("m1", 7));
    assert_eq!(
        c.data_dir,
        PathBuf::from("/d"),
        "the file's variables win over the environment"
    );
    assert_eq!(c.heartbeat_interval, Duration::from_millis(50));
    let shadowed = load_with(&["--config-file", path, "--name=x"], &[]).unwrap_err();
    assert_eq!(
        shadowed.to_string(),
        format!(
            "{path}:2: conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding \
             command-line flag (either unset environment variable or disable flag)"
        )
    );
}

#[test]
fn yaml_replaces_flags_and_variables() {
    let file = file_with(
        "name: y1\ndata-dir: /var/lib/y1\nlisten-client-urls: http://127.0.0.1:2379\n\
         initial-cluster: y1=http://localhost:2380\ninitial-cluster-state: 'new'\nheartbeat-interval: 200\n\
         election-timeout: 2000\nstrict-reconfig-check: false\nno-such-key: 1\n",
    );
    let path = file.path().to_str().unwrap();
    let c = config(
        &["--config-file", path, "--name=ignored"],
        &[("ETCD_SNAPSHOT_COUNT", "5")],
    );
    assert_eq!(c.name, "y1");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/y1"));
    assert_eq!(c.listen_client_urls, urls(&["http://127.0.0.1:2379"]));
    assert_eq!(c.advertise_client_urls, urls(&["http://localhost:2379"]));
    assert_eq!(
        c.initial_cluster,
        [("y1".to_string(), urls(&["http://localhost:2380"])[0].clone())]
    );
    assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(c.snapshot_count, 100_000);
    assert!(!c.strict_reconfig_check);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].ends_with("are ignored: --name, ETCD_SNAPSHOT_COUNT"),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        c.warnings[1],
        format!("{path}:9: unknown key \"no-such-key\" is ignored")
    );
}

#[test]
fn a_bad_line_stops_the_start_and_names_its_line() {
    let file = file_with("ETCD_NAME=a\n\nETCD_HEARTBEAT_INTERVAL=fast\n");
    let path = file.path().to_str().unwrap();
    let error = load_with(&["--config-file", path], &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{path}:3: invalid value \"fast\" for ETCD_HEARTBEAT_INTERVAL: parse error")
    );
    let missing = load_with(&["--config-file", "/nonexistent/etcd.conf"], &[]).unwrap_err();
    assert!(
        missing.to_string().starts_with("open /nonexistent/etcd.conf: "),
        "{missing}"
    );
}

#[test]
fn check_config_reports_every_problem_with_its_line() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = format!("ETCD_DATA_DIR={}\n", data.path().display());
    let text = format!(
        "[member]\nETCD_NAME=m9\n{data_dir}ETCD_LISTEN_PEER_URLS=http://example.com:2380\n\
         ETCD_ADVERTISE_CLIENT_URLS=http://0.0.0.0:2379\nETCD_HEARTBEAT_INTERVAL=500\nETCD_FOO=bar\n\
         [cluster]\nETCD_INITIAL_CLUSTER=m1=http://10.0.0.1:2380,m2=http://10.0.0.1:2380\n\
         ETCD_INITIAL_CLUSTER_STATE=sideways\n"
    );
    let file = file_with(&text);
    let path = file.path().to_str().unwrap();
    let (output, code) = check(&["--config-file", path], &[]);
    assert_eq!(code, 1, "{output}");
    let expected = [
        format!("{path}:7: warning: unrecognized environment variable ETCD_FOO=bar"),
        format!("{path}:10: error: invalid value \"sideways\" for ETCD_INITIAL_CLUSTER_STATE: invalid value"),
        format!("{path}:5: warning: --advertise-client-urls has http://0.0.0.0:2379"),
        format!("{path}:4: error: expected IP in URL for binding (http://example.com:2380)"),
        format!(
            "{path}:6: error: --election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]"
        ),
    ];
    for line in &expected {
        assert!(output.contains(line.as_str()), "{line:?} not in:\n{output}");
    }
    assert!(
        output.ends_with("3 errors, 2 warnings: ferrocd would not start\n"),
        "{output}"
    );

    let fixed = text
        .replace("http://example.com:2380", "http://10.0.0.1:2380")
        .replace("=500", "=100")
        .replace("sideways", "new");
    let file = file_with(&fixed);
    let path = file.path().to_str().unwrap();
    let (output, code) = check(&["--config-file", path], &[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!(
            "{path}:9: error: couldn't find local name \"m9\" in the initial cluster configuration"
        )),
        "{output}"
    );
    let (output, code) = check(&["--config-file", path, "--bad-flag"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        output,
        "error: flag provided but not defined: -bad-flag\n1 error, 0 warnings: ferrocd would not start\n"
    );
}

#[test]
fn check_config_on_a_broken_file_lists_each_bad_line() {
    let file = file_with("ETCD_NAME=\"a\nETCD_DATA_DIR=/d\nwhat is this\n");
    let path = file.path().to_str().unwrap();
    let (output, code) = check(&["--config-file", path], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        output,
        format!(
            "{path}:1: error: no closing quote: ETCD_NAME=\"a\n\
             {path}:3: error: expected KEY=value, a [section], or a # comment: what is this\n\
             2 errors, 0 warnings: ferrocd would not start\n"
        )
    );
    let yaml = file_with("name: a\ndata-dir: [1\n");
    let (output, code) = check(&["--config-file", yaml.path().to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(output.contains(":3: error: YAML: "), "{output}");
}
