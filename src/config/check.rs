//! `ferrocd check-config [flags]`: resolves the configuration exactly as a start with the same
//! arguments and environment would, adds the checks a first start makes on an empty data dir,
//! and prints every problem, with its line when it comes from a file. Exit status 0 only when
//! the member would start.

use std::collections::{BTreeMap, BTreeSet};

use super::problem::{About, Problem};
use super::resolve::{locate, resolve, Resolved};
use super::{Config, ConfigError, Loaded};

/// Checks the configuration `args` (after `check-config`) and `env` describe.
pub fn run(args: &[String], env: &BTreeMap<String, String>) -> Loaded {
    let problems = match resolve(args, env) {
        Ok(Resolved::Exit(loaded)) => return loaded,
        Ok(Resolved::Checked(checked)) => {
            let mut problems = checked.problems;
            if let Some(config) = &checked.config {
                let mut bootstrap = super::tls::file_problems(&config.tls);
                bootstrap.extend(bootstrap_problems(config));
                if let Some(file) = &checked.file {
                    locate(&mut bootstrap, file);
                }
                problems.extend(bootstrap);
            }
            problems
        }
        Err(error) => vec![Problem::error(error, About::Nothing)],
    };
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    let mut message: String = problems.iter().map(|problem| format!("{problem}\n")).collect();
    let verdict = if errors == 0 {
        "ferrocd would start"
    } else {
        "ferrocd would not start"
    };
    message.push_str(&format!(
        "{}, {}: {verdict}\n",
        count(errors, "error"),
        count(warnings, "warning")
    ));
    Loaded::Exit {
        message,
        code: i32::from(errors > 0),
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// What a start checks before it bootstraps a member whose data dir holds none yet; a data dir
/// that holds one ignores every `--initial-*` setting, as etcd does.
fn bootstrap_problems(config: &Config) -> Vec<Problem> {
    let about = || About::Flag("initial-cluster");
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        let text = format!(
            "cannot access data directory: {} is not a directory",
            config.data_dir.display()
        );
        return vec![Problem::invalid(text, About::Flag("data-dir"))];
    }
    if config.data_dir.join("member").exists() {
        return Vec::new();
    }
    let mut problems = repeated_names(config);
    // A member joining with `existing` is checked as the start checks it (its name must be
    // listed); whether the cluster knows it is only known by asking the peers, at start.
    if let Err(ConfigError::Invalid(text)) = config.verify_bootstrap() {
        problems.push(Problem::invalid(text, about()));
    }
    problems
}

/// etcd takes a name listed with several URLs as one member with several peer URLs, which is
/// rarely what was meant.
fn repeated_names(config: &Config) -> Vec<Problem> {
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for (name, _) in &config.initial_cluster {
        if !seen.insert(name) {
            repeated.insert(name);
        }
    }
    repeated
        .into_iter()
        .map(|name| {
            let text = format!(
                "member {name:?} is listed more than once in --initial-cluster; etcd takes it as one \
                 member with several peer URLs"
            );
            Problem::warning(text, About::Flag("initial-cluster"))
        })
        .collect()
}
