//! The gate in front of the leader's log: it counts the proposals this member is making as
//! leader, and refuses new ones while leadership is handed over. The hand-over closes it, then
//! waits for the proposals already admitted to be answered: only then is the leader's log final,
//! so a follower found caught up stays caught up, and no entry replicated afterwards meets the
//! follower's higher term (which would make this leader step down before anyone else leads).

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    /// New proposals are refused (a hand-over is under way).
    closed: bool,
    /// Proposals admitted and not yet answered.
    admitted: usize,
}

/// Admits or refuses proposals; see the module documentation.
pub struct Gate {
    state: watch::Sender<State>,
}

/// An admitted proposal; dropping it (answered or abandoned) lets the count go down.
pub struct Admitted<'a>(&'a Gate);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.state.send_modify(|state| state.admitted -= 1);
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            state: watch::Sender::new(State::default()),
        }
    }

    /// Admits a proposal, unless the gate is closed.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        let admitted = self.state.send_if_modified(|state| {
            if state.closed {
                return false;
            }
            state.admitted += 1;
            true
        });
        admitted.then_some(Admitted(self))
    }

    /// Refuses new proposals, then waits until those admitted before are answered, or the
    /// deadline; returns whether they were.
    pub async fn close(&self, deadline: Instant) -> bool {
        self.state.send_modify(|state| state.closed = true);
        let mut state = self.state.subscribe();
        tokio::time::timeout_at(deadline, state.wait_for(|state| state.admitted == 0))
            .await
            .is_ok_and(|settled| settled.is_ok())
    }

    /// Admits proposals again.
    pub fn open(&self) {
        self.state.send_modify(|state| state.closed = false);
    }
}
