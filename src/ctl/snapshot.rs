//! `snapshot save FILE` (stream Maintenance.Snapshot from one endpoint into
//! `FILE.part`, check it, fsync, rename) and `snapshot status FILE`.
//!
//! A ferrocd snapshot is checked whole with [`crate::snapshot::status`]; any
//! other stream (real etcd's bbolt file) is checked by etcd's own rule: its
//! size is 32 more than a multiple of 512 and it ends in the SHA-256 of what
//! precedes it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use clap::{ArgMatches, Command};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

use super::error::{CtlError, Exit};
use super::global::{deadline_exceeded, os_error, Globals};
use super::kv::{args_of, positional};
use super::output::{human_bytes, Format, Json, Object, Out};
use crate::proto::etcdserverpb::SnapshotRequest;
use crate::snapshot::{self as format, Status};

/// Progress lines start after this long, then repeat at this interval.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub fn command() -> Command {
    Command::new("snapshot")
        .about("Manages etcd node snapshots")
        .subcommand_required(true)
        .subcommand(
            Command::new("save")
                .about("Stores an etcd node backend snapshot to a given file")
                .arg(positional("args").value_name("FILENAME")),
        )
        .subcommand(
            Command::new("status")
                .about("Gets backend snapshot status of a given file")
                .arg(positional("args").value_name("FILENAME")),
        )
        .subcommand(
            Command::new("restore")
                .about("Restores a ferrocd member snapshot to a new data dir")
                .arg(positional("args").value_name("FILENAME"))
                .args(RESTORE_FLAGS.iter().map(|(name, default, help)| {
                    clap::Arg::new(*name).long(*name).default_value(*default).help(*help)
                })),
        )
}

/// `snapshot restore`'s flags, with etcdctl's defaults; they mean what the
/// server flags of the same names mean.
const RESTORE_FLAGS: &[(&str, &str, &str)] = &[
    ("name", "default", "Human-readable name for this member"),
    ("data-dir", "", "Path to the data directory (default: NAME.etcd)"),
    (
        "initial-cluster",
        "default=http://localhost:2380",
        "Initial cluster configuration for restore bootstrap",
    ),
    (
        "initial-cluster-token",
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during restore bootstrap",
    ),
    (
        "initial-advertise-peer-urls",
        "http://localhost:2380",
        "List of this member's peer URLs to advertise",
    ),
];

/// Builds the new data dir, reporting progress on stderr.
fn restore(path: &str, m: &ArgMatches, out: &mut Out<'_>) -> Result<(), CtlError> {
    let mut flags = Vec::new();
    for (name, _, _) in RESTORE_FLAGS {
        let value = m.get_one::<String>(name).cloned().unwrap_or_default();
        if !value.is_empty() {
            flags.push(format!("--{name}={value}"));
        }
    }
    let config =
        crate::server::restore_config(&flags).map_err(|e| CtlError::new(Exit::InvalidInput, format!("{e:#}")))?;
    let file = std::fs::read(path).map_err(|e| CtlError::error(format!("open {path}: {}", os_error(&e))))?;
    eprintln!(
        "restoring snapshot {path} ({}) into {}",
        human_bytes(file.len() as u64),
        config.data_dir.display()
    );
    let restored = crate::server::restore(&file, &config).map_err(|e| CtlError::error(format!("{e:#}")))?;
    out.line(&format!(
        "Restored snapshot {path} into {}: member {:x} of new cluster {:x}, revision {}, {} records",
        config.data_dir.display(),
        restored.member_id,
        restored.cluster_id,
        restored.revision,
        restored.records
    ))?;
    Ok(())
}

pub async fn run(m: &ArgMatches, globals: &Globals, out: &mut Out<'_>) -> Result<(), CtlError> {
    let (name, m) = m.subcommand().expect("required");
    let args = args_of(m, "args");
    let [path] = args.as_slice() else {
        return Err(CtlError::bad_args(format!("snapshot {name} expects one argument")));
    };
    let path = String::from_utf8_lossy(path).into_owned();
    match name {
        "save" => {
            let saving = save(globals, &path);
            // Without --command-timeout, a snapshot may take as long as it takes.
            if globals.command_timeout_set {
                tokio::time::timeout(globals.command_timeout, saving)
                    .await
                    .map_err(|_| deadline_exceeded())?
            } else {
                saving.await
            }
            .map_err(|e| e.with_exit(Exit::Interrupted))?;
            out.line(&format!("Snapshot saved at {path}"))?;
            Ok(())
        }
        "restore" => restore(&path, m, out),
        "status" => {
            let file = std::fs::read(&path).map_err(|e| CtlError::error(format!("stat {path}: {}", os_error(&e))))?;
            let status = format::status(&file).map_err(|e| CtlError::error(e.to_string()))?;
            print_status(out, &status)
        }
        _ => unreachable!("snapshot command {name}"),
    }
}

async fn save(globals: &Globals, path: &str) -> Result<(), CtlError> {
    if globals.endpoints.len() != 1 {
        return Err(CtlError::error(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            globals.endpoints.join(" ")
        )));
    }
    let part = format!("{path}.part");
    let result = fetch(globals, &part).await;
    let result = result.and_then(|()| {
        std::fs::rename(&part, path)
            .map_err(|e| CtlError::error(format!("could not rename {part} to {path} ({})", os_error(&e))))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Streams the snapshot into `part`, checks it and syncs it to disk.
async fn fetch(globals: &Globals, part: &str) -> Result<(), CtlError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(part)
        .map_err(|e| CtlError::error(format!("could not open {part} (open {part}: {})", os_error(&e))))?;
    let client = globals.connect().await?;
    let mut stream = client.maintenance().snapshot(SnapshotRequest {}).await?.into_inner();
    let started = Instant::now();
    let mut next_report = started + PROGRESS_EVERY;
    let mut contents = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk.blob)?;
        contents.extend_from_slice(&chunk.blob);
        if Instant::now() >= next_report {
            next_report += PROGRESS_EVERY;
            let total = contents.len() as u64 + chunk.remaining_bytes;
            eprintln!(
                "Fetching snapshot from {}: {} of {} ({}%)",
                client.endpoint,
                human_bytes(contents.len() as u64),
                human_bytes(total),
                contents.len() as u64 * 100 / total.max(1)
            );
        }
    }
    verify(&contents)?;
    file.sync_all()?;
    Ok(())
}

/// A ferrocd snapshot passes its own checks, anything else etcd's.
fn verify(contents: &[u8]) -> Result<(), CtlError> {
    let fail = |why: String| CtlError::error(format!("snapshot integrity check failed: {why}"));
    if format::status(contents).is_ok() {
        return Ok(());
    }
    if contents.starts_with(b"ferrocd-snapshot") {
        return Err(fail(format::status(contents).unwrap_err().to_string()));
    }
    if contents.len() % 512 != 32 {
        return Err(fail(format!(
            "{} bytes is not a multiple of 512 plus a 32-byte sha256",
            contents.len()
        )));
    }
    let (body, trailer) = contents.split_at(contents.len() - 32);
    if Sha256::digest(body).as_slice() != trailer {
        return Err(fail("the sha256 trailer does not match the contents".into()));
    }
    Ok(())
}

fn print_status(out: &mut Out<'_>, s: &Status) -> Result<(), CtlError> {
    let row = vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_keys.to_string(),
        human_bytes(s.total_size as u64),
    ];
    match out.format {
        Format::Simple => out.line(&row.join(", "))?,
        Format::Table => out.table(&["hash", "revision", "total keys", "total size"], &[row])?,
        Format::Json => out.json(
            Object::new()
                .field("hash", Json::Uint(s.hash as u64))
                .field("revision", Json::Int(s.revision))
                .field("totalKey", Json::Uint(s.total_keys as u64))
                .field("totalSize", Json::Uint(s.total_size as u64))
                .build(),
        )?,
        Format::Fields => {
            out.line(&format!("\"Hash\" : {}", s.hash))?;
            out.line(&format!("\"Revision\" : {}", s.revision))?;
            out.line(&format!("\"Keys\" : {}", s.total_keys))?;
            out.line(&format!("\"Size\" : {}", s.total_size))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Contents;

    #[test]
    fn verifies_both_formats() {
        let ours = format::encode(&Contents {
            revision: 3,
            records: vec![(b"k".to_vec(), b"v".to_vec())],
        });
        assert!(verify(&ours).is_ok());
        let mut damaged = ours.clone();
        damaged[30] ^= 1;
        assert!(verify(&damaged).is_err());
        let mut etcd_like = vec![7u8; 1024];
        let hash = Sha256::digest(&etcd_like);
        etcd_like.extend_from_slice(&hash);
        assert!(verify(&etcd_like).is_ok());
        assert!(verify(&etcd_like[..1000]).is_err());
    }

    #[test]
    fn status_prints_in_every_format() {
        let status = Status {
            hash: 0xbfbb76d1,
            revision: 6,
            total_keys: 15,
            total_size: 274432,
        };
        let mut buffer = Vec::new();
        let mut out = Out {
            write: &mut buffer,
            format: Format::Simple,
            hex: false,
        };
        print_status(&mut out, &status).unwrap();
        out.format = Format::Json;
        print_status(&mut out, &status).unwrap();
        out.format = Format::Table;
        print_status(&mut out, &status).unwrap();
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            "\
bfbb76d1, 6, 15, 274 kB
{\"hash\":3216733905,\"revision\":6,\"totalKey\":15,\"totalSize\":274432}
+----------+----------+------------+------------+
|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+----------+----------+------------+------------+
| bfbb76d1 |        6 |         15 |     274 kB |
+----------+----------+------------+------------+
"
        );
    }
}
