//! The boundaries of the latency segments: the moments the migration
//! started or ended a phase or a step, as the migration executor marks them.
//!
//! A request belongs to the segment in which it *completed* (like a window):
//! segment `i` is `[boundary i-1, boundary i)`, the first starts at 0 and
//! the last ends with the run. The executor takes each phase's and step's
//! start and end time from [`SegmentMarks::mark`], and run.json records those
//! same numbers, so every span the reports show (before, during, after, a
//! step, a phase) is exactly a union of segments.

use std::sync::Mutex;

use crate::clock::Clock;

/// Shared by the migration executor (the only writer) and the recorder.
#[derive(Debug)]
pub struct SegmentMarks {
    clock: Clock,
    marks: Mutex<Vec<f64>>,
}

impl SegmentMarks {
    pub fn new(clock: Clock) -> SegmentMarks {
        SegmentMarks {
            clock,
            marks: Mutex::new(Vec::new()),
        }
    }

    /// Mark a boundary now and return its time (run-clock ms, rounded *up*
    /// to the µs, as run.json keeps it).
    ///
    /// The clock is read under the lock the recorder also reads it under,
    /// so a boundary the recorder has not seen yet lies after every request
    /// it has already assigned to a segment.
    pub fn mark(&self) -> f64 {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let t = (self.clock.now_ms() * 1e3).ceil() / 1e3;
        // Non-decreasing even if two marks round to the same µs.
        let t = marks.last().map_or(t, |last| t.max(*last));
        marks.push(t);
        t
    }

    /// A boundary at `t_ms`, as if marked then (tests replay a run's past).
    #[cfg(test)]
    pub(crate) fn mark_at(&self, t_ms: f64) {
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t_ms);
    }

    /// The boundaries so far, and the run-clock time up to which they are
    /// final: no boundary marked later lies before it.
    pub(crate) fn snapshot(&self, into: &mut Vec<f64>) -> f64 {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        into.clear();
        into.extend_from_slice(&marks);
        self.clock.now_ms()
    }
}

/// Index of the segment `t_ms` falls in, given the sorted boundaries.
pub(crate) fn segment_of(bounds: &[f64], t_ms: f64) -> usize {
    bounds.partition_point(|b| *b <= t_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_ordered_and_final_before_the_snapshot_time() {
        let m = SegmentMarks::new(Clock::start());
        let a = m.mark();
        let b = m.mark();
        assert!(b >= a && (a * 1e3).fract() == 0.0, "{a} {b}");
        let mut v = Vec::new();
        let upto = m.snapshot(&mut v);
        assert_eq!(v, [a, b]);
        assert!(m.mark() >= upto);
    }

    #[test]
    fn a_request_belongs_to_the_segment_it_completed_in() {
        let b = [1000.0, 2000.0];
        assert_eq!(segment_of(&b, 0.0), 0);
        assert_eq!(segment_of(&b, 999.999), 0);
        assert_eq!(segment_of(&b, 1000.0), 1);
        assert_eq!(segment_of(&b, 2500.0), 2);
    }
}
