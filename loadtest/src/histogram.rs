//! The latency histogram.

/// Log-linear buckets: exact below 1024, then 512 buckets per power of two (values
/// are reported as their bucket's upper bound: ≤ 0.2 % high).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub(super) counts: Vec<u64>,
    pub(super) total: u64,
    pub(super) max: u64,
    pub(super) sum: u128,
}

pub(super) const SUB_BITS: u32 = 9;
pub(super) const EXACT: u64 = 1 << (SUB_BITS + 1);

impl Histogram {
    pub(super) fn index(value: u64) -> usize {
        if value < EXACT {
            return value as usize;
        }
        let shift = 63 - value.leading_zeros() - SUB_BITS;
        let mantissa = (value >> shift) as usize; // in [512, 1024)
        EXACT as usize + (shift as usize - 1) * (1 << SUB_BITS) + (mantissa - (1 << SUB_BITS))
    }

    pub(super) fn upper_bound(index: usize) -> u64 {
        if (index as u64) < EXACT {
            return index as u64;
        }
        let relative = index - EXACT as usize;
        let shift = relative / (1 << SUB_BITS) + 1;
        let mantissa = (relative % (1 << SUB_BITS) + (1 << SUB_BITS)) as u64;
        ((mantissa + 1) << shift) - 1
    }

    pub fn record(&mut self, value: u64) {
        let index = Self::index(value);
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.percentile(0.5) as f64;
        let p99 = h.percentile(0.99) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.003, "{p50}");
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.003, "{p99}");
        assert_eq!(h.max(), 100_000_000);
        for v in [0, 1, 1023, 1024, 1025, 4096, u64::from(u32::MAX)] {
            let bound = Histogram::upper_bound(Histogram::index(v));
            assert!(
                bound >= v && (bound - v) as f64 <= v as f64 * 0.002 + 1.0,
                "{v} {bound}"
            );
        }
    }
}
