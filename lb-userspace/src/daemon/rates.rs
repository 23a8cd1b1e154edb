//! IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c), so `--rate`
//! shows what ipvsadm would: every 2 s the counters are sampled and each
//! rate moves a quarter of the way to the new per-second value, kept in
//! fixed point (conns and packets scaled by 2^10, bytes by 2^5).

use crate::ipvsadm::listing::{Rates, Stats};

/// Sampling period the scaling below assumes.
pub const PERIOD_SECS: u64 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

impl Estimator {
    /// Starts from the current counters, so old totals are not a burst.
    pub fn new(now: Stats) -> Estimator {
        Estimator {
            last: now,
            ..Estimator::default()
        }
    }

    /// One 2-second sample.
    pub fn update(&mut self, now: Stats) {
        // Counters can go back (zeroed): treat that as no traffic.
        let delta = |new: u64, old: u64| new.saturating_sub(old) as i64;
        step(&mut self.cps, delta(now.conns, self.last.conns) << 9);
        step(&mut self.inpps, delta(now.inpkts, self.last.inpkts) << 9);
        step(&mut self.outpps, delta(now.outpkts, self.last.outpkts) << 9);
        step(&mut self.inbps, delta(now.inbytes, self.last.inbytes) << 4);
        step(
            &mut self.outbps,
            delta(now.outbytes, self.last.outbytes) << 4,
        );
        self.last = now;
    }

    /// `ip_vs_read_estimator()`: the rates in per-second units.
    pub fn rates(&self) -> Rates {
        let pkt = |v: i64| ((v + 0x1FF) >> 10).max(0) as u64;
        let byte = |v: i64| ((v + 0xF) >> 5).max(0) as u64;
        Rates {
            cps: pkt(self.cps),
            inpps: pkt(self.inpps),
            outpps: pkt(self.outpps),
            inbps: byte(self.inbps),
            outbps: byte(self.outbps),
        }
    }
}

fn step(avg: &mut i64, rate: i64) {
    *avg += (rate - *avg) >> 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_steady_rate() {
        let mut e = Estimator::new(Stats::default());
        let mut s = Stats::default();
        for _ in 0..60 {
            // 100 conns/s, 1000 packets/s, 1 MB/s over each 2 s period.
            s.conns += 200;
            s.inpkts += 2000;
            s.inbytes += 2_000_000;
            e.update(s);
        }
        let r = e.rates();
        assert_eq!((r.cps, r.inpps, r.inbps), (100, 1000, 1_000_000));
        assert_eq!((r.outpps, r.outbps), (0, 0));
    }

    #[test]
    fn zeroed_counters_do_not_go_negative() {
        let mut e = Estimator::new(Stats {
            conns: 500,
            ..Stats::default()
        });
        e.update(Stats::default());
        assert_eq!(e.rates().cps, 0);
    }
}
