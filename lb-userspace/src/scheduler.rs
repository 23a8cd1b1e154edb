//! Schedulers compute a service's table in userspace; the data plane only
//! reads it. Each reproduces the IPVS module of the same name
//! (net/netfilter/ipvs/ip_vs_{rr,wrr,sh}.c).
//!
//! Inputs are the reals' weights in IPVS list order (newest first, see
//! [`ipvs_order`]); outputs are indices into that list, `None` for a bucket
//! without a usable real.

use crate::model::SchedulerKind;
use lb_common::{ipvs::SH_TAB_SIZE, sched_kind};

/// Longest ring a service may have; longer wrr cycles are scaled down.
pub const MAX_RING_LEN: usize = 1 << 16;

pub trait Scheduler {
    /// How the data plane reads the table (`lb_common::sched_kind`).
    fn table_kind(&self) -> u8;
    /// The table for reals with these weights, in IPVS list order.
    fn table(&self, weights: &[u32]) -> Vec<Option<usize>>;
}

pub fn for_kind(kind: SchedulerKind) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin),
        SchedulerKind::Sh { fallback, port: _ } => Box::new(SourceHash { fallback }),
    }
}

/// IPVS inserts each new real at the head of the service's list.
pub fn ipvs_order<T: Clone>(added_order: &[T]) -> Vec<T> {
    added_order.iter().rev().cloned().collect()
}

/// rr: every real with a positive weight, once, in list order.
pub struct RoundRobin;

impl Scheduler for RoundRobin {
    fn table_kind(&self) -> u8 {
        sched_kind::RING
    }
    fn table(&self, weights: &[u32]) -> Vec<Option<usize>> {
        (0..weights.len())
            .filter(|&i| weights[i] > 0)
            .map(Some)
            .collect()
    }
}

/// wrr: one cycle of IPVS's interleaved sequence. The current weight `cw`
/// starts at the maximum and drops by the weights' gcd after each pass over
/// the list; a real is picked on every pass where its weight reaches `cw`.
pub struct WeightedRoundRobin;

impl Scheduler for WeightedRoundRobin {
    fn table_kind(&self) -> u8 {
        sched_kind::RING
    }
    fn table(&self, weights: &[u32]) -> Vec<Option<usize>> {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let gcd = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold(0, |g, &w| gcd(g, w));
        if gcd == 0 {
            return Vec::new();
        }
        if total / gcd as u64 > MAX_RING_LEN as u64 {
            return self.table(&scale_down(weights, total));
        }
        let max = *weights.iter().max().unwrap_or(&0);
        // ip_vs_wrr: mw = max - (di - 1), cw steps down by di while > 0.
        let mw = (max - (gcd - 1)) as i64;
        let mut ring = Vec::with_capacity((total / gcd as u64) as usize);
        let mut cw = mw;
        while cw > 0 {
            ring.extend(
                (0..weights.len())
                    .filter(|&i| weights[i] as i64 >= cw)
                    .map(Some),
            );
            cw -= gcd as i64;
        }
        ring
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Proportionally smaller weights whose wrr cycle fits `MAX_RING_LEN`;
/// every positive weight stays positive.
fn scale_down(weights: &[u32], total: u64) -> Vec<u32> {
    let factor = total.div_ceil(MAX_RING_LEN as u64 / 2);
    weights
        .iter()
        .map(|&w| match w {
            0 => 0,
            w => ((w as u64 / factor).max(1)) as u32,
        })
        .collect()
}

/// sh: IPVS's 256 buckets. Walking the list, a real of weight w fills w
/// consecutive buckets (a weight-0 real still takes one, and is then
/// unavailable). With `fallback`, an unavailable bucket resolves to the first
/// available one IPVS's probe order finds, so the data plane reads one bucket.
pub struct SourceHash {
    pub fallback: bool,
}

impl Scheduler for SourceHash {
    fn table_kind(&self) -> u8 {
        sched_kind::SOURCE_HASH
    }
    fn table(&self, weights: &[u32]) -> Vec<Option<usize>> {
        let size = SH_TAB_SIZE as usize;
        if weights.is_empty() {
            return vec![None; size];
        }
        let mut buckets = Vec::with_capacity(size);
        let (mut p, mut count) = (0usize, 0u32);
        for _ in 0..size {
            buckets.push(p);
            count += 1;
            if count >= weights[p] {
                p = (p + 1) % weights.len();
                count = 0;
            }
        }
        let available = |b: usize| weights[buckets[b]] > 0;
        (0..size)
            .map(|h| {
                if available(h) {
                    Some(buckets[h])
                } else if self.fallback {
                    // ip_vs_sh_get_fallback probes hashkey(offset + ihash),
                    // i.e. bucket (2 * ihash + offset) mod 256.
                    (0..size)
                        .map(|off| (2 * h + off) % size)
                        .find(|&b| available(b))
                        .map(|b| buckets[b])
                } else {
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(t: &[Option<usize>]) -> Vec<usize> {
        t.iter().map(|x| x.unwrap()).collect()
    }

    #[test]
    fn wrr_matches_ipvs_sequence() {
        // List A=1, B=2, C=3: IPVS cycles C, B, C, A, B, C.
        let t = WeightedRoundRobin.table(&[1, 2, 3]);
        assert_eq!(picks(&t), vec![2, 1, 2, 0, 1, 2]);
        // Common factor: same cycle, shortened by the gcd.
        assert_eq!(
            picks(&WeightedRoundRobin.table(&[2, 4, 6])),
            vec![2, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn wrr_skips_drained_and_handles_all_zero() {
        assert_eq!(picks(&WeightedRoundRobin.table(&[0, 1, 1])), vec![1, 2]);
        assert!(WeightedRoundRobin.table(&[0, 0]).is_empty());
    }

    #[test]
    fn wrr_scales_huge_cycles() {
        let t = WeightedRoundRobin.table(&[65535, 65534, 1]);
        assert!(t.len() <= MAX_RING_LEN);
        assert!(t.contains(&Some(2)));
    }

    #[test]
    fn rr_lists_available_reals() {
        assert_eq!(picks(&RoundRobin.table(&[1, 0, 5])), vec![0, 2]);
    }

    #[test]
    fn sh_assigns_buckets_by_weight() {
        // List C=3, B=2, A=1 (indices 0, 1, 2).
        let t = SourceHash { fallback: false }.table(&[3, 2, 1]);
        assert_eq!(picks(&t[..6]), vec![0, 0, 0, 1, 1, 2]);
        assert_eq!(picks(&t[252..]), vec![0, 0, 0, 1]);
    }

    #[test]
    fn sh_weight_zero_bucket_is_empty_unless_fallback() {
        let t = SourceHash { fallback: false }.table(&[1, 0]);
        assert_eq!(t[0], Some(0));
        assert_eq!(t[1], None);
        let t = SourceHash { fallback: true }.table(&[1, 0]);
        assert_eq!(t[1], Some(0));
    }

    #[test]
    fn ipvs_order_is_newest_first() {
        assert_eq!(ipvs_order(&["a", "b", "c"]), vec!["c", "b", "a"]);
    }
}
