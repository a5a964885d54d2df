//! Measures KV throughput, latency, RSS and disk use of ferrocd against real etcd 3.4 in the same run, as ratios.
//! Run: `cargo build --release --bin ferrocd && cargo bench --bench throughput`; scale with the env vars
//! BENCH_OPS (ops per workload, 20000), BENCH_CLIENTS (64), BENCH_SIZES ("1,3"), BENCH_VALUE (value bytes, 256)
//! and BENCH_MAX_SECS (time cap per workload, 30). No timed assertions: the numbers are only printed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

const ETCD: &str = "/opt/etcd/usr/bin/etcd";
const FLAVOURS: [&str; 2] = ["ferrocd", "etcd"];
const WORKLOADS: [&str; 4] = ["put", "get", "get-serial", "txn-cas"];
const DISTINCT_KEYS: usize = 10_000;
const OP_TIMEOUT: Duration = Duration::from_secs(10);

struct Config {
    ops: usize,
    clients: usize,
    sizes: Vec<usize>,
    value: usize,
    max_secs: u64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Config {
    fn from_env() -> Config {
        let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "1,3".into());
        Config {
            ops: env_or("BENCH_OPS", 20_000usize).max(1),
            clients: env_or("BENCH_CLIENTS", 64usize).max(1),
            sizes: sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .filter(|&n| n > 0)
                .collect(),
            value: env_or("BENCH_VALUE", 256usize),
            max_secs: env_or("BENCH_MAX_SECS", 30u64),
        }
    }
}

/// One server process with its client port, data dir and log file.
struct Member {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    /// Log length when the member became healthy and when the workloads ended: splits startup/run/shutdown.
    marks: [usize; 2],
}

struct Cluster {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn health_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut resp = String::new();
    write!(s, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok()
        && s.read_to_string(&mut resp).is_ok()
        && resp.split_whitespace().nth(1) == Some("200")
}

impl Cluster {
    fn start(binary: &Path, size: usize) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={}", url(p.1)))
            .collect();
        let mut members = Vec::new();
        for (i, &(cport, pport)) in ports.iter().enumerate() {
            let data_dir = dir.path().join(format!("m{i}.etcd"));
            let log = dir.path().join(format!("m{i}.log"));
            let out = std::fs::File::create(&log)?;
            let child = Command::new(binary)
                .args(["--name", &format!("m{i}"), "--data-dir", &data_dir.to_string_lossy()])
                .args([
                    "--listen-client-urls",
                    &url(cport),
                    "--advertise-client-urls",
                    &url(cport),
                ])
                .args([
                    "--listen-peer-urls",
                    &url(pport),
                    "--initial-advertise-peer-urls",
                    &url(pport),
                ])
                .args([
                    "--initial-cluster",
                    &initial.join(","),
                    "--initial-cluster-token",
                    "bench",
                ])
                .env_remove("ETCD_NAME")
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("spawn {}", binary.display()))?;
            members.push(Member {
                child,
                port: cport,
                data_dir,
                log,
                marks: [0; 2],
            });
        }
        let mut cluster = Cluster { members, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        for m in &cluster.members {
            while !health_ok(m.port) {
                if Instant::now() > deadline {
                    bail!(
                        "member on port {} not healthy within 30 s; log:\n{}",
                        m.port,
                        tail(&m.log, 20)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster.mark(0);
        Ok(cluster)
    }

    fn mark(&mut self, phase: usize) {
        for m in &mut self.members {
            m.marks[phase] = std::fs::metadata(&m.log).map_or(0, |md| md.len() as usize);
        }
    }

    /// (max VmHWM, max VmRSS, max data dir bytes apparent, max data dir bytes allocated) over members.
    fn usage(&self) -> [u64; 4] {
        let mut out = [0u64; 4];
        for m in &self.members {
            let status = std::fs::read_to_string(format!("/proc/{}/status", m.child.id())).unwrap_or_default();
            let kb = |key: &str| {
                let line = status.lines().find(|l| l.starts_with(key));
                line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            let (apparent, allocated) = dir_size(&m.data_dir);
            for (slot, v) in out.iter_mut().zip([kb("VmHWM:"), kb("VmRSS:"), apparent, allocated]) {
                *slot = (*slot).max(v);
            }
        }
        out
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL. Returns notable log lines (errors, panics) for the report.
    fn stop(mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for m in &mut self.members {
            let pid = nix::unistd::Pid::from_raw(m.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(m.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(m.child.try_wait(), Ok(None)) {
                notes.push(format!("port {}: did not exit within 10 s of SIGTERM, killed", m.port));
                let _ = m.child.kill();
            }
            let _ = m.child.wait();
            let log = std::fs::read(&m.log).unwrap_or_default();
            let [a, b] = m.marks.map(|x| x.min(log.len()));
            let (mut counts, mut firsts) = (Vec::new(), Vec::new());
            for (phase, part) in
                ["startup", "run", "shutdown"]
                    .iter()
                    .zip([&log[..a], &log[a..b.max(a)], &log[b.max(a)..]])
            {
                let text = String::from_utf8_lossy(part);
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let l = l.to_lowercase();
                        l.contains("panic") || l.contains("error") || l.contains(" e | ")
                    })
                    .collect();
                counts.push(bad.len().to_string());
                if let Some(l) = bad.first() {
                    firsts.push(format!(
                        "  first at {phase}: {}",
                        l.chars().take(200).collect::<String>()
                    ));
                }
            }
            if !firsts.is_empty() {
                let counts = counts.join("/");
                notes.push(format!(
                    "port {}: error/panic log lines startup/run/shutdown = {counts}",
                    m.port
                ));
                notes.extend(firsts);
            }
        }
        notes
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// (apparent bytes like `du -sb`, allocated bytes like `du -s`), walking the tree iteratively.
fn dir_size(root: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut apparent, mut allocated, mut stack) = (0, 0, vec![root.to_path_buf()]);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

#[derive(Clone, Copy, Default)]
struct Stats {
    done: usize,
    errors: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `n` ops of `workload` split over the clients (client c does ops c, c+C, ...), capped at `max` wall time.
async fn run_workload(clients: &[Client], workload: &str, n: usize, value: &[u8], max: Duration) -> Stats {
    let start = Instant::now();
    let keys = DISTINCT_KEYS.min(n);
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (mut kv, workload, value, step) = (client.kv_client(), workload.to_string(), value.to_vec(), clients.len());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::with_capacity(n / step + 1), 0usize);
            for i in (c..n).step_by(step) {
                if start.elapsed() > max {
                    break;
                }
                let key = format!("bench/key/{:05}", i % keys);
                let t = Instant::now();
                let ok = match workload.as_str() {
                    "put" => tokio::time::timeout(OP_TIMEOUT, kv.put(key, value.clone(), None))
                        .await
                        .is_ok_and(|r| r.is_ok()),
                    "get" | "get-serial" => {
                        let opts = (workload == "get-serial").then(|| GetOptions::new().with_serializable());
                        let r = tokio::time::timeout(OP_TIMEOUT, kv.get(key, opts)).await;
                        r.is_ok_and(|r| r.is_ok_and(|r| r.kvs().len() == 1))
                    }
                    _ => {
                        let txn = Txn::new()
                            .when([Compare::value(key.clone(), CompareOp::Equal, value.clone())])
                            .and_then([TxnOp::put(key, value.clone(), None)]);
                        let r = tokio::time::timeout(OP_TIMEOUT, kv.txn(txn)).await;
                        r.is_ok_and(|r| r.is_ok_and(|r| r.succeeded()))
                    }
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.expect("client task panicked");
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    Stats {
        done: lat.len(),
        errors,
        ops_per_sec: lat.len() as f64 / secs,
        p50_ms: ms(pct(0.5)),
        p99_ms: ms(pct(0.99)),
    }
}

/// Results of one flavour at one size: per-workload stats and the values of `USAGE_LABELS`.
struct Run {
    stats: Vec<Stats>,
    usage: [u64; 7],
}

const USAGE_LABELS: [&str; 7] = [
    "peak RSS (VmHWM)",
    "RSS after startup",
    "RSS at end (VmRSS)",
    "data dir after startup",
    "data dir at end (du -sb)",
    "data dir at end (du -s)",
    "data dir growth (du -sb)",
];

fn bench_one(rt: &tokio::runtime::Runtime, binary: &Path, size: usize, cfg: &Config) -> Result<Run> {
    let cluster = Cluster::start(binary, size)?;
    let start_usage = cluster.usage();
    let ports: Vec<u16> = cluster.members.iter().map(|m| m.port).collect();
    let value: Vec<u8> = (0..cfg.value).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let result = rt.block_on(async {
        let mut clients = Vec::new();
        for c in 0..cfg.clients {
            let ep = format!("http://127.0.0.1:{}", ports[c % ports.len()]);
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(OP_TIMEOUT);
            clients.push(Client::connect([ep], Some(opts)).await.context("connect etcd-client")?);
        }
        let mut stats = Vec::new();
        for (w, ops) in WORKLOADS.iter().zip([cfg.ops, cfg.ops, cfg.ops, (cfg.ops / 4).max(1)]) {
            stats.push(run_workload(&clients, w, ops, &value, Duration::from_secs(cfg.max_secs)).await);
        }
        anyhow::Ok(stats)
    });
    let mut cluster = cluster;
    cluster.mark(1);
    let end = cluster.usage();
    let growth = end[2].saturating_sub(start_usage[2]);
    let usage = [end[0], start_usage[1], end[1], start_usage[2], end[2], end[3], growth];
    for note in cluster.stop() {
        println!("  note: {note}");
    }
    Ok(Run { stats: result?, usage })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

fn mib(b: u64) -> String {
    if b < 1 << 20 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    }
}

fn main() -> Result<()> {
    let cfg = Config::from_env();
    let ferrocd = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/ferrocd");
    if !ferrocd.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --release --bin ferrocd`",
            ferrocd.display()
        );
    }
    if !Path::new(ETCD).exists() {
        bail!("real etcd is missing at {ETCD}");
    }
    println!(
        "throughput bench: ops={} clients={} sizes={:?} value={}B cap={}s/workload",
        cfg.ops, cfg.clients, cfg.sizes, cfg.value, cfg.max_secs
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // runs[size index][flavour index]
    let mut runs: Vec<[Option<Run>; 2]> = Vec::new();
    for &size in &cfg.sizes {
        let mut pair = [None, None];
        for (f, binary) in [ferrocd.as_path(), Path::new(ETCD)].into_iter().enumerate() {
            let t = Instant::now();
            println!("running {} with {size} member(s)...", FLAVOURS[f]);
            match bench_one(&rt, binary, size, &cfg) {
                Ok(run) => pair[f] = Some(run),
                Err(e) => println!("  FAILED: {e:#}"),
            }
            println!("  took {:.1} s", t.elapsed().as_secs_f64());
        }
        runs.push(pair);
    }

    let mut summary = Vec::new();
    println!(
        "\n{:<11} {:>2} {:>12} {:>12} {:>7} {:>16} {:>16} {:>7} {:>10}",
        "workload", "n", "ferrocd op/s", "etcd op/s", "ratio", "ferrocd p50/p99", "etcd p50/p99", "p99 r", "errs f/e"
    );
    for (size, pair) in cfg.sizes.iter().zip(&runs) {
        let [Some(f), Some(e)] = pair else { continue };
        for (w, name) in WORKLOADS.iter().enumerate() {
            let (a, b) = (f.stats[w], e.stats[w]);
            let (tput, p99) = (ratio(a.ops_per_sec, b.ops_per_sec), ratio(a.p99_ms, b.p99_ms));
            println!(
                "{name:<11} {size:>2} {:>12.0} {:>12.0} {tput:>7} {:>16} {:>16} {p99:>7} {:>10}",
                a.ops_per_sec,
                b.ops_per_sec,
                format!("{:.1}/{:.1}ms", a.p50_ms, a.p99_ms),
                format!("{:.1}/{:.1}ms", b.p50_ms, b.p99_ms),
                format!("{}/{}", a.errors, b.errors)
            );
            summary.push(format!(
                "{name} n={size}: ferrocd/etcd throughput {tput}, p99 latency {p99} ({} / {} ops ok)",
                a.done, b.done
            ));
        }
    }
    println!(
        "\n{:<25} {:>2} {:>12} {:>12} {:>7}",
        "resource (max of members)", "n", "ferrocd", "etcd", "ratio"
    );
    for (size, pair) in cfg.sizes.iter().zip(&runs) {
        let [Some(f), Some(e)] = pair else { continue };
        for (i, label) in USAGE_LABELS.iter().enumerate() {
            let r = ratio(f.usage[i] as f64, e.usage[i] as f64);
            println!(
                "{label:<25} {size:>2} {:>12} {:>12} {r:>7}",
                mib(f.usage[i]),
                mib(e.usage[i])
            );
            summary.push(format!(
                "{label} n={size}: ferrocd/etcd {r} ({} vs {})",
                mib(f.usage[i]),
                mib(e.usage[i])
            ));
        }
    }
    println!("errs f/e = failed ops (error, 10 s timeout, get of a missing key, txn compare false) ferrocd/etcd");
    println!("\nsummary (ratio = ferrocd / etcd; >1 means ferrocd is higher):");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}
