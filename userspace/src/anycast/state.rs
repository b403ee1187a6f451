//! The announcement's state machine: rise/fall counting, hold-down, drain. Pure: time comes in
//! as an argument, so tests drive it with a fake clock.
//!
//! - `starting`: never announced yet; `rise` good rounds in a row announce, but not before
//!   `hold_down` has passed since the start: the start counts as a withdrawal, so a daemon that
//!   crashes and is restarted in a loop can't announce more often than the hold-down allows.
//! - `announced`: `fall` failed rounds in a row withdraw, at once; so do `fall` failed rounds
//!   among the last `2 × fall` (health flapping faster than `fall` rounds would otherwise keep a
//!   half-broken node announced, losing the queries routed to it in its bad moments).
//! - `withdrawn`: `rise` good rounds in a row announce again, but not before `hold_down` has
//!   passed since the withdrawal. Withdrawing is never delayed; announcing is, so the
//!   announcement changes at most once per hold-down however fast health toggles.
//! - `draining`: the operator's `drain`: withdrawn whatever the health; `undrain` returns to
//!   `withdrawn` (announcing as soon as health and hold-down allow).
//!
//! A round whose result is inconclusive (the fast path busy installing a reload) counts neither
//! way.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many transitions the status keeps.
const HISTORY: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Announced,
    Withdrawn,
    Draining,
}

impl State {
    pub fn announced(self) -> bool {
        self == State::Announced
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Starting => "starting",
            State::Announced => "announced",
            State::Withdrawn => "withdrawn",
            State::Draining => "draining",
        })
    }
}

/// One probe round's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Round {
    Healthy,
    /// Each failed probe's reason.
    Failed(Vec<String>),
    /// Neither good nor bad (and why).
    Inconclusive(String),
}

/// What the caller must do to the announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Announce(String),
    Withdraw(String),
}

#[derive(Clone, Debug)]
pub struct Transition {
    pub at: Instant,
    pub from: State,
    pub to: State,
    pub reason: String,
}

#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
    pub hold_down: Duration,
}

#[derive(Debug)]
pub struct Machine {
    limits: Thresholds,
    state: State,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    /// When the announcement last went away (start, withdraw or drain).
    withdrawn_at: Option<Instant>,
    pub transitions: VecDeque<Transition>,
    /// Every transition since start (`transitions` keeps the last few).
    pub transitions_total: u64,
    /// The last `2 × fall` conclusive rounds, `true` for failed.
    recent: VecDeque<bool>,
}

impl Machine {
    pub fn new(limits: Thresholds, started: Instant) -> Machine {
        Machine {
            limits,
            state: State::Starting,
            consecutive_ok: 0,
            consecutive_failed: 0,
            withdrawn_at: Some(started),
            transitions: VecDeque::new(),
            transitions_total: 0,
            recent: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Feeds one round's result.
    pub fn on_round(&mut self, now: Instant, round: &Round) -> Option<Action> {
        let failed = match round {
            Round::Inconclusive(_) => return None,
            Round::Healthy => false,
            Round::Failed(_) => true,
        };
        if self.recent.len() == 2 * self.limits.fall as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(failed);
        let Round::Failed(reasons) = round else {
            self.consecutive_ok += 1;
            self.consecutive_failed = 0;
            return self.try_announce(now);
        };
        self.consecutive_failed += 1;
        self.consecutive_ok = 0;
        if self.state != State::Announced {
            return None;
        }
        let recent_failures = self.recent.iter().filter(|&&f| f).count();
        let reason = if self.consecutive_failed >= self.limits.fall {
            format!("{} failed rounds", self.consecutive_failed)
        } else if recent_failures >= self.limits.fall as usize {
            format!(
                "{recent_failures} of the last {} rounds failed (flapping)",
                self.recent.len()
            )
        } else {
            return None;
        };
        let reason = format!("{reason}: {}", reasons.join("; "));
        Some(self.go(now, State::Withdrawn, reason))
    }

    /// Announces if health and hold-down allow (from `starting` or `withdrawn`).
    fn try_announce(&mut self, now: Instant) -> Option<Action> {
        let held = self
            .withdrawn_at
            .is_some_and(|t| now.duration_since(t) < self.limits.hold_down);
        let may = matches!(self.state, State::Starting | State::Withdrawn)
            && self.consecutive_ok >= self.limits.rise
            && !held;
        may.then(|| {
            let reason = format!("healthy for {} rounds", self.consecutive_ok);
            self.go(now, State::Announced, reason)
        })
    }

    /// The operator's drain: withdraw (if announced) and stay withdrawn.
    pub fn drain(&mut self, now: Instant) -> Option<Action> {
        if self.state == State::Draining {
            return None;
        }
        let was = self.state;
        let action = self.go(now, State::Draining, "drained by the operator".into());
        was.announced().then_some(action)
    }

    /// Ends a drain; announces at once if health and hold-down allow.
    pub fn undrain(&mut self, now: Instant) -> Option<Action> {
        if self.state != State::Draining {
            return None;
        }
        self.record(now, State::Withdrawn, "undrained by the operator".into());
        self.try_announce(now)
    }

    fn go(&mut self, now: Instant, to: State, reason: String) -> Action {
        let was = self.state;
        self.record(now, to, reason.clone());
        if to.announced() {
            Action::Announce(reason)
        } else {
            if was.announced() {
                self.withdrawn_at = Some(now);
            }
            Action::Withdraw(reason)
        }
    }

    fn record(&mut self, now: Instant, to: State, reason: String) {
        if self.transitions.len() == HISTORY {
            self.transitions.pop_front();
        }
        self.transitions_total += 1;
        self.transitions.push_back(Transition {
            at: now,
            from: self.state,
            to,
            reason,
        });
        self.state = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn machine(t0: Instant) -> Machine {
        Machine::new(
            Thresholds {
                rise: 3,
                fall: 3,
                hold_down: 2000 * MS,
            },
            t0,
        )
    }

    fn bad() -> Round {
        Round::Failed(vec!["slow path: no answer".into()])
    }

    /// Feeds `rounds`, one per 100 ms from `*t`, returning the actions with their times (ms).
    fn feed(m: &mut Machine, t0: Instant, t: &mut u64, rounds: &[Round]) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        for r in rounds {
            *t += 100;
            if let Some(a) = m.on_round(t0 + *t as u32 * MS, r) {
                out.push((*t, a));
            }
        }
        out
    }

    #[test]
    fn rises_falls_and_holds_down() {
        let t0 = Instant::now();
        let (mut t, mut m) = (0, machine(t0));
        // Starting: two good rounds are not enough, a bad one resets the count.
        let ok = Round::Healthy;
        assert!(feed(&mut m, t0, &mut t, &[ok.clone(), ok.clone(), bad()]).is_empty());
        assert_eq!(m.state(), State::Starting);
        // Good rounds from then on, but the start counts as a withdrawal: announced at 2 s.
        let a = feed(&mut m, t0, &mut t, &vec![ok.clone(); 17]);
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], (2000, Action::Announce(_))), "{a:?}");
        assert_eq!(m.state(), State::Announced);

        // One or two failures are tolerated; the third in a row withdraws at once.
        let mixed = [
            bad(),
            bad(),
            ok.clone(),
            ok.clone(),
            ok.clone(),
            ok.clone(),
            bad(),
            bad(),
        ];
        assert!(feed(&mut m, t0, &mut t, &mixed).is_empty());
        let a = feed(&mut m, t0, &mut t, &[bad()]);
        match &a[..] {
            [(2900, Action::Withdraw(reason))] => {
                assert_eq!(reason, "3 failed rounds: slow path: no answer")
            }
            other => panic!("{other:?}"),
        }

        // Healthy again right away: held down until 2 s after the withdrawal (t = 4900).
        let mut healthy = vec![ok.clone(); 25];
        let a = feed(&mut m, t0, &mut t, &healthy);
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], (4900, Action::Announce(_))), "{a:?}");
        // After a long healthy spell, one failure streak withdraws and then rise alone is not
        // enough: hold-down counts from the new withdrawal.
        healthy.truncate(3);
        let a = feed(&mut m, t0, &mut t, &[bad(), bad(), bad()]);
        assert!(matches!(a[0].1, Action::Withdraw(_)));
        assert!(feed(&mut m, t0, &mut t, &healthy).is_empty());
        assert_eq!(m.state(), State::Withdrawn);
        assert_eq!(m.consecutive_ok, 3);
        let states: Vec<_> = m.transitions.iter().map(|t| t.to).collect();
        use State::*;
        assert_eq!(states, [Announced, Withdrawn, Announced, Withdrawn]);
    }

    #[test]
    fn toggling_health_changes_the_announcement_at_most_once_per_hold_down() {
        // Health toggles every 200 ms (2 rounds good, 2 bad) for 10 s, with fall 1 and rise 1
        // the most eager setting: changes still respect the hold-down.
        let (t0, mut t) = (Instant::now(), 0);
        let limits = Thresholds {
            rise: 1,
            fall: 1,
            hold_down: 2000 * MS,
        };
        let mut m = Machine::new(limits, t0);
        let rounds: Vec<Round> = (0..100)
            .map(|i| {
                if (i / 2) % 2 == 0 {
                    Round::Healthy
                } else {
                    bad()
                }
            })
            .collect();
        let actions = feed(&mut m, t0, &mut t, &rounds);
        let announces: Vec<u64> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Announce(_)))
            .map(|(t, _)| *t)
            .collect();
        // The first announce, then at most one per 2 s.
        assert!(announces.len() <= 1 + 10_000 / 2000, "{announces:?}");
        for w in announces.windows(2) {
            assert!(w[1] - w[0] >= 2000, "{announces:?}");
        }
    }

    #[test]
    fn flapping_health_withdraws_and_stays_withdrawn_while_it_flaps() {
        let t0 = Instant::now();
        let (mut t, mut m) = (0, machine(t0));
        feed(&mut m, t0, &mut t, &vec![Round::Healthy; 20]);
        assert_eq!(m.state(), State::Announced);
        // Occasional single failures (1 round in 4) never withdraw.
        let sparse: Vec<Round> = (0..40)
            .map(|i| if i % 4 == 0 { bad() } else { Round::Healthy })
            .collect();
        assert!(feed(&mut m, t0, &mut t, &sparse).is_empty());
        // Health toggling every 200 ms (2 bad rounds, 2 good): never 3 failures in a row, but
        // 3 of the last 6: withdrawn once, and not announced while it keeps toggling (rise 3
        // needs 3 good rounds in a row).
        let toggling: Vec<Round> = (0..100)
            .map(|i| {
                if (i / 2) % 2 == 0 {
                    bad()
                } else {
                    Round::Healthy
                }
            })
            .collect();
        let a = feed(&mut m, t0, &mut t, &toggling);
        assert_eq!(a.len(), 1, "{a:?}");
        match &a[0].1 {
            Action::Withdraw(r) => assert!(r.starts_with("3 of the last 6 rounds failed"), "{r}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.state(), State::Withdrawn);
        // Steady again: announced after the hold-down.
        let a = feed(&mut m, t0, &mut t, &vec![Round::Healthy; 25]);
        assert!(matches!(a[..], [(_, Action::Announce(_))]), "{a:?}");
    }

    #[test]
    fn drain_and_undrain() {
        let t0 = Instant::now();
        let (mut t, mut m) = (0, machine(t0));
        feed(&mut m, t0, &mut t, &vec![Round::Healthy; 20]);
        assert_eq!(m.state(), State::Announced);
        let now = t0 + t as u32 * MS;
        assert!(
            matches!(m.drain(now), Some(Action::Withdraw(r)) if r == "drained by the operator")
        );
        assert_eq!(m.drain(now), None, "idempotent");
        // Healthy rounds don't announce a drained node.
        assert!(feed(&mut m, t0, &mut t, &vec![Round::Healthy; 30]).is_empty());
        assert_eq!(m.state(), State::Draining);
        // Undrain after the hold-down: announced at once, health being good.
        let now = t0 + t as u32 * MS;
        assert!(matches!(m.undrain(now), Some(Action::Announce(_))));
        assert_eq!(m.undrain(now), None);
        // Drain then undrain at once: withdrawn until the hold-down passes.
        assert!(m.drain(now).is_some());
        assert_eq!(m.undrain(now + 10 * MS), None);
        assert_eq!(m.state(), State::Withdrawn);
        let a = feed(&mut m, t0, &mut t, &vec![Round::Healthy; 25]);
        assert_eq!(a.len(), 1);
        // A drain before the first announce just stays down.
        let mut fresh = machine(t0);
        assert_eq!(fresh.drain(t0), None);
        assert_eq!(fresh.state(), State::Draining);
    }

    #[test]
    fn inconclusive_rounds_count_neither_way() {
        let t0 = Instant::now();
        let (mut t, mut m) = (0, machine(t0));
        feed(&mut m, t0, &mut t, &vec![Round::Healthy; 20]);
        let busy = Round::Inconclusive("fast path installing".into());
        let a = feed(
            &mut m,
            t0,
            &mut t,
            &[bad(), bad(), busy.clone(), busy, Round::Healthy],
        );
        assert!(a.is_empty());
        assert_eq!(m.state(), State::Announced);
    }
}
