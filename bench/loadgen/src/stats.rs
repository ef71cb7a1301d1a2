//! Medians, percentiles and throughput of a set of samples.

use serde_json::{json, Value};

/// Summary of latency samples in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// 50th percentile (ms).
    pub p50: f64,
    /// 90th percentile (ms).
    pub p90: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Largest sample (ms).
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (milliseconds). Returns `None` when there are none.
    pub fn of(samples: &mut [f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Summary {
            n: samples.len(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            max: samples[samples.len() - 1],
        })
    }

    /// The summary as JSON (`null` fields are never produced).
    pub fn to_json(self) -> Value {
        json!({"n": self.n, "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max})
    }
}

/// Nearest-rank percentile of sorted samples, with linear interpolation.
fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let rank = pct / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_sets() {
        let mut odd = vec![3.0, 1.0, 2.0];
        assert_eq!(Summary::of(&mut odd).unwrap().p50, 2.0);
        let mut even = vec![4.0, 1.0, 2.0, 3.0];
        assert_eq!(Summary::of(&mut even).unwrap().p50, 2.5);
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn p99_is_near_the_top() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&mut v).unwrap();
        assert!(s.p99 > 98.0 && s.p99 <= 100.0);
        assert_eq!(s.max, 100.0);
    }
}
