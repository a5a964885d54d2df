//! Running as an unprivileged user (`--user NAME`): started as root, ferrocd prepares what needs
//! root (the data dir, owned by NAME with mode 0700; the listening sockets, kept for the server
//! to take over), then gives up root for good before any other thread exists.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context as _};
use nix::unistd::{self, Gid, Uid, User};
use url::Url;

use crate::config::Config;

/// Sockets bound before privileges were dropped, by URL, until the server takes them.
static BOUND: Mutex<BTreeMap<String, TcpListener>> = Mutex::new(BTreeMap::new());

/// The listener bound for `url` before privileges were dropped, if any.
pub fn take_listener(url: &Url) -> Option<TcpListener> {
    BOUND.lock().ok()?.remove(url.as_str())
}

/// Drops to `config.user` when one is set, after preparing the data dir and the listeners; warns
/// when running as root without one. Call it while the process has a single thread: the
/// credentials of threads started before would not change.
pub fn drop_privileges(config: &Config) -> anyhow::Result<()> {
    let Some(name) = &config.user else {
        if Uid::effective().is_root() {
            tracing::warn!("running as root; use --user NAME (ETCD_USER) to serve as an unprivileged user");
        }
        return Ok(());
    };
    let user = User::from_name(name)
        .with_context(|| format!("cannot look up user {name}"))?
        .with_context(|| format!("--user {name}: no such user"))?;
    if !Uid::effective().is_root() {
        if Uid::effective() == user.uid {
            return Ok(());
        }
        bail!(
            "--user {name} needs ferrocd to be started as root (it runs as uid {})",
            Uid::effective()
        );
    }
    prepare_data_dir(&config.data_dir, &user)?;
    let urls = config
        .listen_client_urls
        .iter()
        .chain(&config.listen_peer_urls)
        .chain(&config.listen_metrics_urls);
    let mut bound = BOUND.lock().expect("not poisoned");
    for url in urls {
        bound.insert(url.as_str().to_string(), bind(url)?);
    }
    drop(bound);
    become_user(&user)?;
    tracing::info!(user = %name, uid = %user.uid, gid = %user.gid, "dropped root privileges");
    Ok(())
}

/// Creates the data dir owned by `user` with mode 0700. An existing one owned by someone else is
/// handed over to `user` (everything in it), with a message saying so.
fn prepare_data_dir(dir: &Path, user: &User) -> anyhow::Result<()> {
    let cannot = || format!("cannot access data directory: {}", dir.display());
    std::fs::create_dir_all(dir).with_context(cannot)?;
    let metadata = std::fs::metadata(dir).with_context(cannot)?;
    let owner = std::os::unix::fs::MetadataExt::uid(&metadata);
    if owner != user.uid.as_raw() {
        if owner != 0 || std::fs::read_dir(dir).with_context(cannot)?.next().is_some() {
            tracing::warn!(
                "data dir {} was owned by uid {owner}; giving it and its contents to {}",
                dir.display(),
                user.name
            );
        }
        chown_all(dir, user.uid, user.gid).with_context(cannot)?;
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode != 0o700 {
        tracing::warn!("data dir {} had mode {mode:o}; setting 0700", dir.display());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(cannot)
}

fn chown_all(path: &Path, uid: Uid, gid: Gid) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_all(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Binds the address of a listen URL, non-blocking, with etcd's error text.
pub fn bind(url: &Url) -> anyhow::Result<TcpListener> {
    let host = url
        .host_str()
        .unwrap_or("localhost")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(0);
    let listener = TcpListener::bind((host, port)).with_context(|| format!("listen tcp {host}:{port}: bind"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Sets the groups, then the group, then the user, real, effective and saved alike; then checks
/// that root cannot be had back.
fn become_user(user: &User) -> anyhow::Result<()> {
    let failed = |what: &str| format!("cannot drop privileges to {}: {what}", user.name);
    unistd::setgroups(&[user.gid]).with_context(|| failed("setgroups"))?;
    unistd::setresgid(user.gid, user.gid, user.gid).with_context(|| failed("setresgid"))?;
    unistd::setresuid(user.uid, user.uid, user.uid).with_context(|| failed("setresuid"))?;
    if user.uid.is_root() {
        return Ok(());
    }
    if unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::seteuid(Uid::from_raw(0)).is_ok() {
        bail!("{}: root could be regained after dropping privileges", failed("check"));
    }
    Ok(())
}
