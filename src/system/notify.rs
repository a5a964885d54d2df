//! systemd's notification protocol (`sd_notify`): `READY=1` once the member serves clients,
//! `STATUS=` lines a person can read, `EXTEND_TIMEOUT_USEC=` keep-alives while a start waits for
//! quorum, `WATCHDOG=1` pings while the member is healthy, `STOPPING=1` on shutdown. Without
//! `NOTIFY_SOCKET` every message is dropped, so it costs nothing outside systemd.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest a start waiting for quorum is kept alive by `EXTEND_TIMEOUT_USEC` keep-alives,
/// counted from the start. After it the unit's own `TimeoutStartSec=` applies again, so a member
/// whose peers never come up still fails in the end.
pub const QUORUM_WAIT_LIMIT: Duration = Duration::from_secs(15 * 60);
/// How often a waiting start asks for more time, and how much more each time.
const EXTEND_EVERY: Duration = Duration::from_secs(10);
const EXTEND_BY: Duration = Duration::from_secs(30);
/// How often the status line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the notifier needs to know about the member it reports on.
pub trait MemberStatus: Send + Sync + 'static {
    /// The current leader's name, when a leader is known.
    fn leader(&self) -> Option<String>;
    /// The revision of the applied state.
    fn revision(&self) -> i64;
    /// How many voting members answer (this one included), and how many there are.
    fn reachable(&self) -> impl Future<Output = (usize, usize)> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Serving,
    Stopping,
}

/// Tells systemd where the member is in its life; dropping it stops the reports.
pub struct Notifier {
    phase: watch::Sender<Phase>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    /// Starts reporting on `member`: status lines, keep-alives and watchdog pings.
    pub fn start(member: impl MemberStatus) -> Notifier {
        let (phase, phases) = watch::channel(Phase::Starting);
        let task = tokio::spawn(report(Arc::new(member), phases, watchdog_interval()));
        Notifier { phase, task }
    }

    /// The member serves client requests.
    pub fn ready(&self) {
        send(&[NotifyState::Ready]);
        let _ = self.phase.send(Phase::Serving);
    }

    /// The member is shutting down.
    pub fn stopping(&self) {
        let _ = self.phase.send(Phase::Stopping);
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// Half of `WATCHDOG_USEC` when systemd set it for this process (or for whatever process it
/// started, when `WATCHDOG_PID` is absent), as `sd_watchdog_enabled` reads it.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|usec| *usec > 0)?;
    let for_us = match std::env::var("WATCHDOG_PID") {
        Ok(pid) => pid.parse() == Ok(std::process::id()),
        Err(_) => true,
    };
    for_us.then(|| Duration::from_micros(usec / 2))
}

async fn report(member: Arc<impl MemberStatus>, mut phases: watch::Receiver<Phase>, watchdog: Option<Duration>) {
    let started = Instant::now();
    let tick = watchdog.map_or(STATUS_EVERY, |half| half.min(STATUS_EVERY));
    let mut last_status = String::new();
    let mut last_extend: Option<Instant> = None;
    let mut last_ping = Instant::now();
    loop {
        let phase = *phases.borrow_and_update();
        let leader = member.leader();
        let status = match phase {
            Phase::Stopping => return,
            Phase::Starting => {
                let (up, all) = member.reachable().await;
                let extend_due = last_extend.map_or(true, |at| at.elapsed() >= EXTEND_EVERY);
                if extend_due && started.elapsed() < QUORUM_WAIT_LIMIT {
                    last_extend = Some(Instant::now());
                    send(&[NotifyState::ExtendTimeoutUsec(EXTEND_BY.as_micros() as u32)]);
                }
                format!("waiting for quorum: {up} of {all} members reachable")
            }
            Phase::Serving => match &leader {
                Some(name) => format!("serving: leader={name}, revision={}", member.revision()),
                None => "serving: no leader, election in progress".to_string(),
            },
        };
        if status != last_status && *phases.borrow() != Phase::Stopping {
            send(&[NotifyState::Status(&status)]);
            last_status = status;
        }
        if let Some(half) = watchdog {
            let healthy = phase == Phase::Serving && leader.is_some();
            if healthy && last_ping.elapsed() >= half.saturating_sub(tick / 2) {
                send(&[NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = phases.changed() => {}
        }
    }
}
