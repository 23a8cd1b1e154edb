//! A virtual server's quorum, exactly as keepalived 2.2.7 decides it
//! (keepalived/check/ipwrapper.c: `weigh_live_realservers`,
//! `set_quorum_states`, `update_quorum_state`; the corrections of
//! check_data.c `validate_check_config`).
//!
//! The live weight is the sum of the *effective* weights (misc_dynamic
//! included) of the reals that are up. Quorum is gained when it reaches
//! `quorum + hysteresis` and lost when it falls below `quorum - hysteresis`
//! or to zero. Losing it puts the sorry server in (and the reals out);
//! gaining it takes the sorry server out again.

use std::fmt;

/// `quorum` and `hysteresis` after keepalived's corrections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub quorum: u32,
    pub hysteresis: u32,
}

impl Quorum {
    /// keepalived lowers a quorum above the total configured weight of the
    /// reals (it could never be reached), then a hysteresis at or above the
    /// quorum to `quorum - 1` (check_data.c).
    pub fn new(quorum: u32, hysteresis: u32, total_weight: u64) -> Quorum {
        let quorum = u64::from(quorum).min(total_weight) as u32;
        let hysteresis = if hysteresis >= quorum {
            quorum.saturating_sub(1)
        } else {
            hysteresis
        };
        Quorum { quorum, hysteresis }
    }

    /// The live weight at or above which a virtual server without quorum
    /// gains it.
    pub fn gain_at(self) -> i64 {
        i64::from(self.quorum) + i64::from(self.hysteresis)
    }

    /// A virtual server with quorum loses it below this live weight (and
    /// always at zero).
    pub fn lose_below(self) -> i64 {
        i64::from(self.quorum) - i64::from(self.hysteresis)
    }
}

/// Where a virtual server stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuorumState {
    /// keepalived's `quorum_state_up`.
    pub up: bool,
    /// The sorry server is in the pool (keepalived's `ISALIVE(vs->s_svr)`);
    /// the reals are out while it is.
    pub sorry_in: bool,
}

/// A quorum decision, for the log and the quorum_up/quorum_down scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub gained: bool,
    /// At (re)configuration: "Starting with quorum up/down".
    pub init: bool,
    pub quorum: Quorum,
    pub threshold: i64,
    pub live_weight: u64,
    pub sorry: SorryMove,
}

/// What happened to the sorry server with a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SorryMove {
    None,
    /// Put in, the live reals taken out.
    In,
    /// Taken out, the live reals put back.
    Out,
}

impl QuorumState {
    /// keepalived's `set_quorum_states`, which runs when the configuration
    /// is read, before any real is alive: a fresh virtual server starts
    /// without quorum unless its gain threshold is zero.
    pub fn initial(q: Quorum) -> QuorumState {
        QuorumState {
            up: 0 >= q.gain_at(),
            sorry_in: false,
        }
    }

    /// keepalived's `update_quorum_state`: called after every change of a
    /// real's state or weight (`init` = false) and when a configuration is
    /// applied (`init` = true, which also puts the sorry server in for a
    /// virtual server starting without quorum).
    pub fn update(
        &mut self,
        q: Quorum,
        has_sorry: bool,
        live_weight: u64,
        init: bool,
    ) -> Option<Transition> {
        let live = live_weight as i64;
        // The hysteresis moves the threshold away from the current state.
        let threshold = if self.up { q.lose_below() } else { q.gain_at() };
        let transition = |gained, sorry| Transition {
            gained,
            init,
            quorum: q,
            threshold,
            live_weight,
            sorry,
        };
        if !self.up && live >= threshold {
            self.up = true;
            let sorry = if self.sorry_in {
                self.sorry_in = false;
                SorryMove::Out
            } else {
                SorryMove::None
            };
            return Some(transition(true, sorry));
        }
        let lost = self.up && (live == 0 || live < threshold);
        let starting_without = init && !self.up && has_sorry && !self.sorry_in;
        if lost || starting_without {
            self.up = false;
            let sorry = if has_sorry && !self.sorry_in {
                self.sorry_in = true;
                SorryMove::In
            } else {
                SorryMove::None
            };
            return Some(transition(false, sorry));
        }
        None
    }
}

impl fmt::Display for Transition {
    /// keepalived's wording: "Gained quorum 3+1=4 <= 4",
    /// "Lost quorum 3-1=2 > 1".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (q, h) = (self.quorum.quorum, self.quorum.hysteresis);
        match (self.gained, self.init) {
            (true, false) => write!(
                f,
                "Gained quorum {q}+{h}={} <= {}",
                self.threshold, self.live_weight
            ),
            (true, true) => write!(
                f,
                "Starting with quorum up {q}+{h}={} <= {}",
                self.threshold, self.live_weight
            ),
            (false, false) => write!(
                f,
                "Lost quorum {q}-{h}={} > {}",
                self.threshold, self.live_weight
            ),
            (false, true) => write!(
                f,
                "Starting with quorum down {q}-{h}={} > {}",
                self.threshold, self.live_weight
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(quorum: u32, hysteresis: u32) -> Quorum {
        Quorum::new(quorum, hysteresis, u64::MAX)
    }

    #[test]
    fn corrections_as_keepalived() {
        assert_eq!(
            Quorum::new(10, 0, 4),
            Quorum {
                quorum: 4,
                hysteresis: 0
            }
        );
        assert_eq!(
            Quorum::new(3, 3, 10),
            Quorum {
                quorum: 3,
                hysteresis: 2
            }
        );
        assert_eq!(
            Quorum::new(3, 7, 10),
            Quorum {
                quorum: 3,
                hysteresis: 2
            }
        );
        assert_eq!(
            Quorum::new(1, 0, 0),
            Quorum {
                quorum: 0,
                hysteresis: 0
            }
        );
    }

    #[test]
    fn exact_thresholds_with_hysteresis() {
        let q = q(3, 1);
        let mut s = QuorumState::initial(q);
        assert!(!s.up);
        // Gain needs quorum + hysteresis = 4.
        assert_eq!(s.update(q, true, 3, false), None);
        let t = s.update(q, true, 4, false).unwrap();
        assert!(t.gained && s.up && t.threshold == 4);
        // Kept down to quorum - hysteresis = 2, lost below it.
        assert_eq!(s.update(q, true, 3, false), None);
        assert_eq!(s.update(q, true, 2, false), None);
        let t = s.update(q, true, 1, false).unwrap();
        assert!(!t.gained && !s.up && s.sorry_in && t.sorry == SorryMove::In);
        assert_eq!(t.threshold, 2);
        // Back up only at 4 again; the sorry server leaves then.
        assert_eq!(s.update(q, true, 3, false), None);
        let t = s.update(q, true, 4, false).unwrap();
        assert_eq!(t.sorry, SorryMove::Out);
        assert!(!s.sorry_in);
        assert_eq!(t.to_string(), "Gained quorum 3+1=4 <= 4");
    }

    #[test]
    fn zero_live_weight_always_loses() {
        // quorum 0 (no weight configured): lose_below is 0, but zero live
        // weight still loses, as `!weight_sum` does in keepalived.
        let q = Quorum::new(1, 0, 0);
        let mut s = QuorumState {
            up: true,
            sorry_in: false,
        };
        let t = s.update(q, false, 0, false).unwrap();
        assert!(!t.gained && t.sorry == SorryMove::None && !s.up);
    }

    #[test]
    fn startup_without_quorum_puts_the_sorry_server_in_only_if_there_is_one() {
        let q = q(2, 0);
        let mut s = QuorumState::initial(q);
        assert_eq!(s.update(q, false, 1, true), None);
        let t = s.update(q, true, 1, true).unwrap();
        assert!(t.init && !t.gained && t.sorry == SorryMove::In);
        assert!(t.to_string().starts_with("Starting with quorum down"));
        // Once in, an init update does nothing more.
        assert_eq!(s.update(q, true, 1, true), None);
    }

    #[test]
    fn startup_with_quorum_is_a_gain() {
        let q = q(1, 0);
        let mut s = QuorumState::initial(q);
        let t = s.update(q, true, 2, true).unwrap();
        assert!(t.gained && t.init && t.sorry == SorryMove::None);
    }
}
