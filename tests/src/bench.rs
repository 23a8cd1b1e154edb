//! Pure helpers of the `xvs-bench` binary: order statistics over per-round
//! samples, a seeded shuffle, the hand-written JSON summary and machine info.
//! Nothing here touches BPF, so it is unit-tested like any other code.

use std::fmt::Write as _;

/// Order statistics of one series of per-round samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Summary {
    /// Summarises `samples` (any order). Empty input gives NaNs.
    pub fn of(samples: &[f64]) -> Summary {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            median: percentile(&sorted, 0.5),
            p25: percentile(&sorted, 0.25),
            p75: percentile(&sorted, 0.75),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            count: sorted.len(),
        }
    }
}

/// The `q` quantile of sorted data, interpolating linearly between the two
/// nearest ranks (numpy's default), so small series still give smooth values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// `case[r] - baseline[r]` for every round `r`: pairing samples taken in the
/// same round cancels the VM's slow and fast phases, which last seconds.
pub fn paired_deltas(case: &[f64], baseline: &[f64]) -> Vec<f64> {
    assert_eq!(case.len(), baseline.len(), "one sample per round each");
    case.iter().zip(baseline).map(|(c, b)| c - b).collect()
}

/// xorshift64*: a deterministic shuffle needs no crate and no OS entropy.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// One entry of `summary.json`.
#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The compared baseline's median, in the same unit; `None` for raw figures.
    pub baseline: Option<f64>,
    /// The value the figure should not exceed; `None` when there is no target.
    pub target: Option<f64>,
    pub method: String,
    /// Samples (rounds) behind the value.
    pub runs: usize,
}

/// The records as a pretty-printed JSON array.
pub fn records_json(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let sep = if i + 1 < records.len() { "," } else { "" };
        let _ = writeln!(
            out,
            "  {{\"name\": {}, \"value\": {}, \"unit\": {}, \"baseline\": {}, \
             \"target\": {}, \"method\": {}, \"runs\": {}}}{sep}",
            json_string(&r.name),
            json_number(Some(r.value)),
            json_string(&r.unit),
            json_number(r.baseline),
            json_number(r.target),
            json_string(&r.method),
            r.runs,
        );
    }
    out.push_str("]\n");
    out
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number with two decimals; `null` for none, NaN or infinity (JSON
/// has no literal for those).
pub fn json_number(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => "null".to_string(),
    }
}

/// What the figures were measured on.
#[derive(Clone, Debug)]
pub struct MachineInfo {
    pub cpu_model: String,
    pub kernel: String,
    pub cores: usize,
    pub clocksource: String,
}

impl MachineInfo {
    pub fn read() -> MachineInfo {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let clocksource = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
        MachineInfo {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            kernel: kernel_release().unwrap_or_else(|| "unknown".into()),
            cores: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            clocksource,
        }
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// What `uname -r` prints.
fn kernel_release() -> Option<String> {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!(s.p25, 1.75);
        assert_eq!(s.p75, 3.25);
        assert_eq!((s.min, s.max, s.count), (1.0, 4.0, 4));
        assert_eq!(Summary::of(&[7.0]).p25, 7.0);
        assert!(Summary::of(&[]).median.is_nan());
    }

    #[test]
    fn deltas_pair_by_round() {
        assert_eq!(paired_deltas(&[10.0, 20.0], &[4.0, 15.0]), vec![6.0, 5.0]);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..10).collect();
        Rng::new(42).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn json_escapes_and_nulls() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(json_number(Some(1.0 / 3.0)), "0.33");
        assert_eq!(json_number(Some(f64::NAN)), "null");
        assert_eq!(json_number(None), "null");
        let json = records_json(&[Record {
            name: "x".into(),
            value: 1.5,
            unit: "ns".into(),
            baseline: None,
            target: Some(30.0),
            method: "m".into(),
            runs: 3,
        }]);
        assert_eq!(
            json,
            "[\n  {\"name\": \"x\", \"value\": 1.50, \"unit\": \"ns\", \"baseline\": null, \
             \"target\": 30.00, \"method\": \"m\", \"runs\": 3}\n]\n"
        );
    }

    #[test]
    fn cpu_model_from_cpuinfo() {
        let info = "processor\t: 0\nmodel name\t: AMD EPYC\nprocessor\t: 1\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC"));
    }
}
