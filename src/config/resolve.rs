//! The order of resolution: the command line, then etcd's YAML file instead of everything else,
//! or the environment with an etcd.conf's variables over it; then validation and the build,
//! collecting every problem on the way.

use std::collections::BTreeMap;

use super::file::{self, ConfigFile, Format};
use super::flags;
use super::problem::{About, Location, Problem, Severity};
use super::settings::Settings;
use super::{build, exit, logging, version_text, Config, ConfigError, Loaded};

/// What the command line asks for, once resolved.
pub enum Resolved {
    Exit(Loaded),
    Checked(Checked),
}

/// Every problem found, and the configuration when none of them is an error.
pub struct Checked {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
    pub file: Option<ConfigFile>,
}

/// Scans the command line, then resolves every setting; an error from the command line itself
/// stops there, as it does etcd.
pub fn resolve(args: &[String], env: &BTreeMap<String, String>) -> Result<Resolved, ConfigError> {
    let scanned = match flags::scan(args)? {
        flags::CommandLine::Help => return Ok(Resolved::Exit(exit(flags::help_text()))),
        flags::CommandLine::Flags(scanned) => scanned,
    };
    let matches = flags::matches(&scanned)?;
    if let Some(arg) = scanned.positional {
        return Err(ConfigError::Invalid(format!("'{arg}' is not a valid flag")));
    }
    let settings = Settings::from_matches(&matches)?;
    if settings.bool("version") {
        return Ok(Resolved::Exit(exit(version_text())));
    }
    Ok(Resolved::Checked(check_settings(settings, env)))
}

/// Applies the configuration file or the environment to the command-line settings, checks the
/// result, and builds the configuration when there is no error.
fn check_settings(mut settings: Settings, env: &BTreeMap<String, String>) -> Checked {
    let path = match settings.text("config-file") {
        "" => env.get("ETCD_CONFIG_FILE").filter(|path| !path.is_empty()).cloned(),
        path => Some(path.to_string()),
    };
    let file = match path.as_deref().map(file::read).transpose() {
        Ok(file) => file,
        Err(errors) => {
            let path = path.unwrap_or_default();
            let problems = errors
                .into_iter()
                .map(|(line, why)| file_error(&path, line, why))
                .collect();
            return Checked {
                config: None,
                problems,
                file: None,
            };
        }
    };
    let mut problems = Vec::new();
    match &file {
        Some(yaml) if yaml.format == Format::Yaml => {
            problems.extend(ignored_with_yaml(&settings, env, &yaml.path));
            let (from_yaml, yaml_problems) = Settings::from_yaml(&yaml.assignments);
            settings = from_yaml;
            problems.extend(yaml_problems);
        }
        _ => {
            let mut env = env.clone();
            for assignment in file.iter().flat_map(|file| &file.assignments) {
                if !assignment.key.starts_with("ETCD_") {
                    let text = format!("{} is not an etcd variable; ignored", assignment.key);
                    problems.push(Problem::warning(text, About::Key(assignment.key.clone())));
                }
                env.insert(assignment.key.clone(), assignment.value.clone());
            }
            problems.extend(settings.legacy_warnings());
            problems.extend(settings.overlay_env(&env));
        }
    }
    problems.extend(settings.unacted_warnings());
    problems.extend(settings.unspecified_address_warnings());
    problems.extend(logging::problems(&settings));
    problems.extend(settings.validate());
    problems.extend(build::data_dir_warning(&settings));
    let built = build::config(&settings, env.contains_key("JOURNAL_STREAM"));
    let mut config = built.map_err(|problem| problems.push(problem)).ok();
    if let Some(file) = &file {
        locate(&mut problems, file);
    }
    if problems.iter().any(Problem::is_error) {
        config = None;
    }
    if let Some(config) = &mut config {
        config.warnings = problems.iter().map(Problem::located_text).collect();
    }
    Checked { config, problems, file }
}

/// etcd reads only its YAML file when given one: a warning names what it ignores.
fn ignored_with_yaml(settings: &Settings, env: &BTreeMap<String, String>, path: &str) -> Option<Problem> {
    let flags = settings
        .command_line_flags()
        .into_iter()
        .filter(|flag| *flag != "config-file");
    let vars = env
        .keys()
        .filter(|var| var.starts_with("ETCD_") && *var != "ETCD_CONFIG_FILE");
    let ignored: Vec<String> = flags.map(|flag| format!("--{flag}")).chain(vars.cloned()).collect();
    (!ignored.is_empty()).then(|| {
        let text = format!(
            "{path} is etcd's YAML configuration, so as etcd does, the flags and ETCD_* variables \
             given with it are ignored: {}",
            ignored.join(", ")
        );
        Problem::warning(text, About::Nothing)
    })
}

fn file_error(path: &str, line: usize, why: String) -> Problem {
    let mut problem = Problem::invalid(why, About::Nothing);
    problem.at = (line > 0).then(|| Location {
        path: path.to_string(),
        line,
    });
    problem
}

/// Points each problem about a setting of `file` at the line that set it.
pub fn locate(problems: &mut [Problem], file: &ConfigFile) {
    for problem in problems.iter_mut() {
        let keys: Vec<String> = match &problem.about {
            About::Key(key) => vec![key.clone()],
            About::Flag(flag) => vec![file_key(flag, file.format)],
            About::Flags(flags) => flags.iter().map(|flag| file_key(flag, file.format)).collect(),
            About::Nothing => continue,
        };
        let assigned = keys
            .iter()
            .find_map(|key| file.assignments.iter().rev().find(|a| &a.key == key));
        if let Some(assignment) = assigned {
            problem.at = Some(Location {
                path: file.path.clone(),
                line: assignment.line,
            });
        }
    }
}

/// How a file of `format` names `flag`.
fn file_key(flag: &str, format: Format) -> String {
    match format {
        Format::Env => flags::find(flag).map(flags::Flag::env_var).unwrap_or_default(),
        Format::Yaml => flag.to_string(),
    }
}

/// The first error, with the file and line that caused it.
pub fn first_error(problems: Vec<Problem>) -> ConfigError {
    let problem = problems
        .into_iter()
        .find(Problem::is_error)
        .expect("no configuration and no error");
    let text = problem.located_text();
    match problem.severity {
        Severity::Error(error) if problem.at.is_none() => error,
        _ => ConfigError::Invalid(text),
    }
}
