//! Space in the shared scheduling-table pool. A service's new table is
//! written to fresh space before the service points at it; the old space is
//! reused only after a grace period, so a packet still reading it (XDP runs
//! take microseconds) never sees it rewritten.

use std::time::{Duration, Instant};

const GRACE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub off: u32,
    pub len: u32,
}

pub struct Pool {
    /// Free regions, sorted by offset and never adjacent.
    free: Vec<Region>,
    retired: Vec<(Instant, Region)>,
}

impl Pool {
    pub fn new(slots: u32) -> Pool {
        Pool {
            free: vec![Region { off: 0, len: slots }],
            retired: Vec::new(),
        }
    }

    /// First fit. `len` 0 gets an empty region at offset 0.
    pub fn alloc(&mut self, len: u32) -> Option<Region> {
        if len == 0 {
            return Some(Region { off: 0, len: 0 });
        }
        self.reclaim(Instant::now());
        let i = self.free.iter().position(|r| r.len >= len)?;
        let region = Region {
            off: self.free[i].off,
            len,
        };
        self.free[i].off += len;
        self.free[i].len -= len;
        if self.free[i].len == 0 {
            self.free.remove(i);
        }
        Some(region)
    }

    /// Gives the region back once no packet can still be reading it.
    pub fn retire(&mut self, region: Region) {
        if region.len > 0 {
            self.retired.push((Instant::now(), region));
        }
    }

    fn reclaim(&mut self, now: Instant) {
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .retired
            .drain(..)
            .partition(|(at, _)| now.duration_since(*at) >= GRACE);
        self.retired = waiting;
        for (_, region) in ready {
            self.release(region);
        }
    }

    fn release(&mut self, region: Region) {
        let i = self.free.partition_point(|r| r.off < region.off);
        self.free.insert(i, region);
        // Merge with the neighbours so large tables still fit later.
        if i + 1 < self.free.len() && self.free[i].off + self.free[i].len == self.free[i + 1].off {
            self.free[i].len += self.free[i + 1].len;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].off + self.free[i - 1].len == self.free[i].off {
            self.free[i - 1].len += self.free[i].len;
            self.free.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_space_returns_after_grace_and_merges() {
        let mut pool = Pool::new(10);
        let a = pool.alloc(6).unwrap();
        let b = pool.alloc(4).unwrap();
        assert!(pool.alloc(1).is_none());
        pool.retire(a);
        pool.retire(b);
        assert!(pool.alloc(1).is_none(), "reused before the grace period");
        pool.reclaim(Instant::now() + GRACE);
        assert_eq!(pool.alloc(10), Some(Region { off: 0, len: 10 }));
    }
}
