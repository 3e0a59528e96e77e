//! Budgets: the scenario's `[budget]` merged with `--budget key=value`, checked
//! against measured values. A breach names the limit, the measured value and
//! the step responsible.

use serde::{Deserialize, Serialize};

use super::facts::{RecoveryState, ReplicaLag, Span, StepFacts};
use super::findings::fmt_bytes;
use super::latency::{self, LatencyFacts};
use super::replica;
use crate::latency::SCRIPT_APP;
use crate::record::{Blocks, RunRecord, WaitCause, WaitRow};
use crate::scenario::Budget;

/// Every budget key, in the order they are checked and reported.
pub const BUDGET_KEYS: [&str; 9] = [
    "max_blocking_lock_ms",
    "max_app_wait_ms",
    "p99_ms",
    "max_errors",
    "max_error_rate",
    "max_duration_ms",
    "max_invalid_indexes",
    "max_recovery_ms",
    "max_replica_lag_ms",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetResult {
    pub name: String,
    pub limit: f64,
    /// None: it could not be measured (no replica sampled, no traffic
    /// before the migration to compare recovery with, no request while it
    /// ran); `detail` says why and `passed` whether the gate holds anyway.
    pub measured: Option<f64>,
    /// ms | errors | ratio | indexes
    pub unit: String,
    pub passed: bool,
    /// "phase / step" responsible for the measured value, when one is.
    pub step: Option<String>,
    /// What was measured, in words.
    pub detail: String,
}

fn canonical_key(key: &str) -> Option<&'static str> {
    let k = key.trim().replace('-', "_");
    let k = match k.as_str() {
        "max_duration" => "max_duration_ms",
        "max_recovery" => "max_recovery_ms",
        "p99" => "p99_ms",
        other => other,
    };
    BUDGET_KEYS.iter().copied().find(|b| *b == k)
}

fn unknown_key(key: &str) -> String {
    format!(
        "unknown budget key `{key}`; known keys: {}",
        BUDGET_KEYS.join(", ")
    )
}

/// Parse a `--budget key=value` flag. Millisecond keys take a plain number
/// or a `ms`/`s` suffix (`2s` = 2000); `max_error_rate` takes a ratio or a
/// percentage (`0.01`, `1%`); `max_errors` and `max_invalid_indexes` a
/// whole number.
pub fn parse_budget_override(s: &str) -> Result<(String, f64), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected key=value, e.g. p99_ms=50"))?;
    let key = canonical_key(key).ok_or_else(|| unknown_key(key.trim()))?;
    let v = value.trim();
    let expected = if key.ends_with("_ms") {
        "milliseconds, e.g. 250, 250ms or 2s"
    } else if key == "max_error_rate" {
        "a ratio in 0..=1 or a percentage, e.g. 0.01 or 1%"
    } else {
        "a whole number, e.g. 0"
    };
    let bad = || format!("{key}: `{v}` is not a valid value; expected {expected}");
    let n = if key.ends_with("_ms") {
        if let Some(x) = v.strip_suffix("ms") {
            x.trim().parse::<f64>().map_err(|_| bad())?
        } else if let Some(x) = v.strip_suffix('s') {
            x.trim().parse::<f64>().map_err(|_| bad())? * 1000.0
        } else {
            v.parse::<f64>().map_err(|_| bad())?
        }
    } else if key == "max_error_rate" {
        match v.strip_suffix('%') {
            Some(x) => x.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
            None => v.parse::<f64>().map_err(|_| bad())?,
        }
    } else {
        let n = v.parse::<u64>().map_err(|_| bad())?;
        n as f64
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{key}: `{v}` must be a non-negative number"));
    }
    if key == "max_error_rate" && n > 1.0 {
        return Err(format!(
            "max_error_rate: `{v}` must be a ratio in 0..=1 (or a percentage like 1%)"
        ));
    }
    Ok((key.to_string(), n))
}

/// A limit `pgrehearse report --budget` set other than the run's
/// (run.json's budget, which the run was judged by and which stays as it
/// was): every verdict rendered with it says so, with the run's limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetOverride {
    pub name: String,
    /// The limit this verdict was judged by.
    pub limit: f64,
    /// run.json's limit; None when the run had none for this key.
    pub run_limit: Option<f64>,
    /// ms | errors | ratio | indexes
    pub unit: String,
}

/// The limits of `judged` that differ from the run's own (`run`, run.json's
/// budget): what `--budget` changed. `run`'s own `--budget`s are in run.json
/// already, so a run's verdict lists none.
pub(crate) fn overridden(run: &Budget, judged: &Budget) -> Vec<BudgetOverride> {
    BUDGET_KEYS
        .iter()
        .filter_map(|k| {
            let (was, now) = (run.limit(k), judged.limit(k)?);
            (was != Some(now)).then(|| BudgetOverride {
                name: k.to_string(),
                limit: now,
                run_limit: was,
                unit: unit_of(k).to_string(),
            })
        })
        .collect()
}

/// The unit of a budget key's limit, as [`BudgetResult::unit`] says it.
fn unit_of(key: &str) -> &'static str {
    match key {
        "max_errors" => "errors",
        "max_error_rate" => "ratio",
        "max_invalid_indexes" => "indexes",
        _ => "ms",
    }
}

impl Budget {
    /// One limit by key (see [`BUDGET_KEYS`]); None when not set.
    pub fn limit(&self, key: &str) -> Option<f64> {
        match canonical_key(key)? {
            "max_blocking_lock_ms" => self.max_blocking_lock_ms,
            "max_app_wait_ms" => self.max_app_wait_ms,
            "p99_ms" => self.p99_ms,
            "max_errors" => self.max_errors.map(|n| n as f64),
            "max_error_rate" => self.max_error_rate,
            "max_duration_ms" => self.max_duration_ms,
            "max_invalid_indexes" => self.max_invalid_indexes.map(|n| n as f64),
            "max_recovery_ms" => self.max_recovery_ms,
            "max_replica_lag_ms" => self.max_replica_lag_ms,
            _ => None,
        }
    }

    /// Set one limit by key (see [`BUDGET_KEYS`]).
    pub fn apply(&mut self, key: &str, value: f64) -> Result<(), String> {
        let key = canonical_key(key).ok_or_else(|| unknown_key(key))?;
        match key {
            "max_blocking_lock_ms" => self.max_blocking_lock_ms = Some(value),
            "max_app_wait_ms" => self.max_app_wait_ms = Some(value),
            "p99_ms" => self.p99_ms = Some(value),
            "max_errors" => {
                if value < 0.0 || value.fract() != 0.0 {
                    return Err(format!("max_errors must be a whole number, got {value}"));
                }
                self.max_errors = Some(value as u64)
            }
            "max_error_rate" => self.max_error_rate = Some(value),
            "max_duration_ms" => self.max_duration_ms = Some(value),
            "max_invalid_indexes" => {
                if value < 0.0 || value.fract() != 0.0 {
                    return Err(format!(
                        "max_invalid_indexes must be a whole number, got {value}"
                    ));
                }
                self.max_invalid_indexes = Some(value as u64)
            }
            "max_recovery_ms" => self.max_recovery_ms = Some(value),
            "max_replica_lag_ms" => self.max_replica_lag_ms = Some(value),
            _ => unreachable!("canonical_key returns only BUDGET_KEYS"),
        }
        Ok(())
    }
}

/// The step whose figure is the largest, by `key`.
fn worst_step(steps: &[StepFacts], key: impl Fn(&StepFacts) -> f64) -> Option<&StepFacts> {
    steps
        .iter()
        .filter(|s| key(s) > 0.0)
        .max_by(|a, b| key(a).total_cmp(&key(b)))
}

/// A span the reports show app errors over: before the migration, a step,
/// between two steps, after the migration.
struct ErrorSpan {
    /// What the budget line's step column says: the step's label, "between
    /// A and B", "after the migration"; None before it (no step to blame).
    label: Option<String>,
    /// In words, for the detail: "while expand / add col ran".
    when: String,
    /// The app's errors among the requests due in it.
    errors: u64,
    /// Within the migration (a step or between two): what the error rate
    /// is over.
    during: bool,
}

/// Where the app's errors were, by the span attribution every report
/// uses: a request's error counts in the span it was due in (latency.hdr's
/// segments, exact, scripts left out). A run directory whose segments
/// count no error while errors.csv has the app's (a hand-made record) is
/// read from errors.csv, each row where it was due (else completed).
fn error_spans(steps: &[StepFacts], rec: &RunRecord) -> Vec<ErrorSpan> {
    let mut order: Vec<&StepFacts> = steps.iter().collect();
    order.sort_by(|a, b| a.latency.start_ms.total_cmp(&b.latency.start_ms));
    let mut spans: Vec<(f64, f64, Option<String>, String, bool)> = Vec::new();
    let Some(first) = order.first() else {
        return Vec::new();
    };
    spans.push((
        f64::NEG_INFINITY,
        first.latency.start_ms,
        None,
        "before the migration began".into(),
        false,
    ));
    for (i, st) in order.iter().enumerate() {
        spans.push((
            st.latency.start_ms,
            st.latency.end_ms,
            Some(st.label()),
            format!("while {} ran", st.label()),
            true,
        ));
        let next = order.get(i + 1).map(|n| n.latency.start_ms);
        match next {
            Some(n) if n > st.latency.end_ms => {
                let between = format!("between {} and {}", st.label(), order[i + 1].label());
                spans.push((st.latency.end_ms, n, Some(between.clone()), between, true));
            }
            Some(_) => {}
            None => spans.push((
                st.latency.end_ms,
                f64::INFINITY,
                Some("after the migration".into()),
                format!("after the migration (after {})", st.label()),
                false,
            )),
        }
    }
    let from_segments: Vec<u64> = spans
        .iter()
        .map(|(a, b, ..)| latency::merge(rec, *a, *b, latency::of_the_app).errors)
        .collect();
    let counts = if from_segments.iter().any(|n| *n > 0) {
        from_segments
    } else {
        spans
            .iter()
            .map(|(a, b, ..)| {
                rec.errors
                    .iter()
                    .filter(|e| e.app != SCRIPT_APP)
                    .map(|e| e.due())
                    .filter(|t| *t >= *a && *t < *b)
                    .count() as u64
            })
            .collect()
    };
    spans
        .into_iter()
        .zip(counts)
        .map(|((_, _, label, when, during), errors)| ErrorSpan {
            label,
            when,
            errors,
            during,
        })
        .collect()
}

/// The span with the most errors (the earliest of equals), among those
/// `keep` selects; None when none had one.
fn most_errors(spans: &[ErrorSpan], keep: impl Fn(&ErrorSpan) -> bool) -> Option<&ErrorSpan> {
    spans
        .iter()
        .filter(|s| keep(s) && s.errors > 0)
        .reduce(|best, s| if s.errors > best.errors { s } else { best })
}

/// ", most (97) due after the migration (after contract / drop memo)".
fn where_most(s: Option<&ErrorSpan>) -> String {
    s.map_or(String::new(), |s| {
        format!(", most ({}) due {}", s.errors, s.when)
    })
}

/// What the budgets are checked against.
pub(crate) struct Measured<'a> {
    pub steps: &'a [StepFacts],
    /// App traffic while the migration ran.
    pub during: &'a LatencyFacts,
    pub migration: Option<Span>,
    /// When the run ended (recovery is looked for until then).
    pub run_end_ms: f64,
    pub rec: &'a RunRecord,
    /// For each wait of waits.csv, the step it is charged to.
    pub wait_steps: &'a [Option<usize>],
    /// The replica's peak lag over the run, if a replica was sampled.
    pub replica_lag: Option<ReplicaLag>,
}

/// A measured value, the step responsible and what was measured, in words.
type Measurement = (f64, Option<String>, String);

/// The longest hold of a lock that blocks app reads or writes.
fn longest_blocking_hold(rec: &RunRecord) -> Measurement {
    let lock = rec
        .locks
        .iter()
        .filter(|l| l.blocks != Blocks::None)
        .filter_map(|l| l.held_ms.map(|h| (h, l)))
        .max_by(|(x, _), (y, _)| x.total_cmp(y));
    // Statements whose locks nothing listed: the figure may understate.
    let unlisted: Vec<String> = rec
        .statements
        .iter()
        .filter(|s| {
            crate::record::Unknown::parse(&s.unknown)
                .why("locks")
                .is_some()
        })
        .map(|s| format!("{} / {}", s.phase, s.step))
        .collect();
    let caveat = match unlisted.first() {
        None => String::new(),
        Some(first) => format!(
            "; the locks of {} statement(s) are unknown (first in {first}: statements.csv `unknown`)",
            unlisted.len()
        ),
    };
    match lock {
        Some((held, l)) => (
            held,
            Some(format!("{} / {}", l.phase, l.step)),
            format!(
                "{} on {} held {held:.1} ms (blocks {}){caveat}",
                l.mode, l.relation, l.blocks
            ),
        ),
        None if caveat.is_empty() => (0.0, None, "no lock that blocks the app was held".into()),
        None => (
            0.0,
            None,
            format!("no lock that blocks the app was seen{caveat}"),
        ),
    }
}

/// The longest lock wait of an app query that the migration caused.
fn longest_app_wait(m: &Measured<'_>) -> Measurement {
    let waits = &m.rec.waits;
    // Scripts and other sessions are not the app: their own waits are not
    // counted, though an app query waiting behind one that waited for the
    // migration is.
    let wait = waits
        .iter()
        .zip(m.wait_steps)
        .filter(|(w, _)| crate::latency::is_the_apps(&w.app) && migration_caused(w, waits))
        .max_by(|x, y| x.0.wait_ms.total_cmp(&y.0.wait_ms));
    match wait {
        Some((w, s)) => (
            w.wait_ms,
            s.map(|i| m.steps[i].label()),
            format!(
                "{} ({}) waited {:.1} ms for {} (cause: {})",
                w.query,
                w.app,
                w.wait_ms,
                w.lock(),
                w.cause
            ),
        ),
        None => (
            0.0,
            None,
            "no app query waited for a lock of the migration".into(),
        ),
    }
}

/// Did the migration cause this wait: blocked by it or queued behind its
/// request, or blocked by an app session that was itself waiting for the
/// migration then (a chain: B waits for A's row, A for the migration's
/// table)? A wait another app session caused on its own (a script's LOCK,
/// a long transaction) is the app's, not the migration's: the budget, which
/// fails CI for the migration, does not count it.
pub(crate) fn migration_caused(w: &WaitRow, waits: &[WaitRow]) -> bool {
    w.cause != WaitCause::App || chain_blocker(w, waits).is_some()
}

/// The wait (its index in `waits`) the migration caused directly at the
/// head of a chain of sessions blocking `w`, if any: B waits for A's row,
/// A for the migration's table — or C behind B behind A (a hot row's queue
/// behind a session that waits for the migration).
pub(crate) fn chain_blocker(w: &WaitRow, waits: &[WaitRow]) -> Option<usize> {
    chain_from(w, waits, 8)
}

/// [`chain_blocker`], following at most `links` more sessions.
fn chain_from(w: &WaitRow, waits: &[WaitRow], links: usize) -> Option<usize> {
    let blockers: Vec<i32> = w
        .blocked_by
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let meanwhile =
        |x: &WaitRow| blockers.contains(&x.pid) && x.start_ms < w.end_ms && x.end_ms > w.start_ms;
    let direct = waits
        .iter()
        .position(|x| x.cause != WaitCause::App && meanwhile(x));
    if direct.is_some() || links == 0 {
        return direct;
    }
    waits
        .iter()
        .filter(|x| x.cause == WaitCause::App && x.pid != w.pid && meanwhile(x))
        .find_map(|x| chain_from(x, waits, links - 1))
}

/// The age of the oldest app request in flight at the end of a window
/// within `[start, end]` (inflight.csv), if any was.
fn oldest_in_flight(rec: &RunRecord, start: f64, end: f64) -> Option<f64> {
    rec.inflight
        .iter()
        .filter(|r| r.window_start_ms + r.window_ms > start && r.window_start_ms < end)
        .filter_map(|r| r.oldest_ms)
        .reduce(f64::max)
}

/// Check every limit the budget sets; a limit not set is not reported.
pub(crate) fn evaluate(budget: &Budget, m: &Measured<'_>) -> Vec<BudgetResult> {
    let (steps, rec) = (m.steps, m.rec);
    let mut out = Vec::new();
    // A figure not measured (None) holds: nothing was there to exceed it.
    let mut push = |name: &str,
                    limit: Option<f64>,
                    measured: Option<f64>,
                    unit: &str,
                    step: Option<String>,
                    detail: String| {
        if let Some(limit) = limit {
            out.push(BudgetResult {
                name: name.to_string(),
                limit,
                measured,
                unit: unit.to_string(),
                passed: measured.is_none_or(|m| m <= limit),
                step,
                detail,
            });
        }
    };

    let (held, step, detail) = longest_blocking_hold(rec);
    push(
        "max_blocking_lock_ms",
        budget.max_blocking_lock_ms,
        Some(held),
        "ms",
        step,
        detail,
    );
    let (waited, step, detail) = longest_app_wait(m);
    push(
        "max_app_wait_ms",
        budget.max_app_wait_ms,
        Some(waited),
        "ms",
        step,
        detail,
    );

    // p99 while the migration ran; the step with the worst p99 is blamed.
    // With none completed, a request stuck in flight all the while (an
    // overloaded app's backlog, a stall) is no "not measured": its age is
    // a floor under the p99 those requests will have.
    let stuck = match (m.during.p99_ms, m.migration) {
        (None, Some(mig)) => oldest_in_flight(rec, mig.start_ms, mig.end_ms),
        _ => None,
    };
    push(
        "p99_ms",
        budget.p99_ms,
        m.during.p99_ms.or(stuck),
        "ms",
        worst_step(steps, |s| s.latency.p99_ms.unwrap_or(0.0)).map(StepFacts::label),
        match (m.during.p99_ms, stuck) {
            (Some(p99), _) => format!(
                "app p99 {p99:.1} ms over {} requests while the migration ran",
                m.during.requests
            ),
            (None, Some(age)) => format!(
                "no app request completed while the migration ran, one was in flight for \
                 {age:.1} ms: at least that"
            ),
            (None, None) => "no app request was sent while the migration ran".into(),
        },
    );

    // All app errors of the run. errors.csv holds one row per error; the
    // latency windows count them too — take the larger in case one source
    // was capped. Scripts are not the app (their one-off sessions are
    // actors of the scenario): their errors are reported as theirs, under
    // app `script`, and not counted here.
    let window_errors: u64 = rec
        .latency
        .iter()
        .filter(|r| r.app != SCRIPT_APP)
        .map(|r| r.errors)
        .sum();
    let csv_errors = rec.errors.iter().filter(|e| e.app != SCRIPT_APP).count() as u64;
    let errors = csv_errors.max(window_errors);
    // Charged to the span where most of them were: a step (or between two,
    // or after the migration), as the reports' tables count them. Most
    // errors before the migration began are the app's own (a query that
    // fails anyway): no step is to blame.
    let spans = error_spans(steps, rec);
    let most = most_errors(&spans, |_| true);
    push(
        "max_errors",
        budget.max_errors.map(|e| e as f64),
        Some(errors as f64),
        "errors",
        most.and_then(|s| s.label.clone()),
        format!("{errors} app errors over the whole run{}", where_most(most)),
    );

    // 0 errors of 0 requests is no rate. Over the requests due while the
    // migration ran: charged to the step (or between two) with most of
    // those errors.
    let most = most_errors(&spans, |s| s.during);
    push(
        "max_error_rate",
        budget.max_error_rate,
        (m.during.requests > 0).then_some(m.during.error_rate),
        "ratio",
        most.and_then(|s| s.label.clone()),
        format!(
            "{} errors / {} requests while the migration ran{}",
            m.during.errors,
            m.during.requests,
            where_most(most)
        ),
    );

    let dur = m.migration.map(|m| m.duration_ms).unwrap_or(0.0);
    push(
        "max_duration_ms",
        budget.max_duration_ms,
        Some(dur),
        "ms",
        worst_step(steps, |s| s.duration_ms).map(StepFacts::label),
        format!("first statement start to last statement end: {dur:.1} ms"),
    );

    // Indexes left INVALID when the run ended (pg_index.indisvalid false):
    // a failed CREATE INDEX CONCURRENTLY nobody cleaned up.
    let invalid: &[String] = rec.info.as_ref().map_or(&[], |i| &i.invalid_indexes);
    push(
        "max_invalid_indexes",
        budget.max_invalid_indexes.map(|n| n as f64),
        Some(invalid.len() as f64),
        "indexes",
        None,
        if invalid.is_empty() {
            "no index left invalid at the end".into()
        } else {
            format!("left invalid at the end: {}", invalid.join(", "))
        },
    );
    if let Some(limit) = budget.max_recovery_ms {
        let finished = rec.info.as_ref().is_none_or(|i| i.failure.is_none());
        out.push(slowest_recovery(limit, steps, m.run_end_ms, finished));
    }
    if let Some(limit) = budget.max_replica_lag_ms {
        out.push(replica_lag(limit, m));
    }
    out
}

/// The recovery bar in words.
fn bar(threshold_ms: Option<f64>) -> String {
    threshold_ms.map_or("?".into(), |t| format!("{t:.1}"))
}

/// `max_recovery_ms`: the step whose latency took longest to come back; a
/// step not recovered by the end of the run breaches it, as does one still
/// slow when the next step began longer than the limit after it ended
/// (sooner, its backlog is the next step's); without
/// traffic before the migration it cannot be checked (a breach too: a gate
/// that cannot look must not pass).
///
/// A step not recovered when the run ended less than the limit after it
/// ended has no recovery time to measure (the run did not last long enough
/// to tell): not measured — never "19.6 ms > 2000 ms", a breach with a
/// figure under its limit (QA: a run cut short 19.6 ms after its step). A
/// finished run that cannot show the limit held breaches it, saying why;
/// one that did not finish leaves it open (n/a in the reports).
fn slowest_recovery(
    limit: f64,
    steps: &[StepFacts],
    run_end_ms: f64,
    finished: bool,
) -> BudgetResult {
    let result = |measured: Option<f64>, passed: bool, step: Option<&StepFacts>, detail: String| {
        BudgetResult {
            name: "max_recovery_ms".into(),
            limit,
            measured,
            unit: "ms".into(),
            passed,
            step: step.map(StepFacts::label),
            detail,
        }
    };
    // Still slow when the next step began, longer than the limit after it
    // ended: over the limit, whatever came next.
    let overran = steps.iter().find_map(|st| {
        let gap = super::recovery::next_step_start(steps, st.latency.end_ms)? - st.latency.end_ms;
        (st.recovery.state == RecoveryState::NextStepBegan && gap > limit).then_some((st, gap))
    });
    if let Some((st, gap)) = overran {
        return result(
            Some(crate::pg::round3(gap)),
            false,
            Some(st),
            format!(
                "app p99 not back within {} ms ({}) when the next step began, {gap:.1} ms after the step ended",
                bar(st.recovery.threshold_ms),
                super::recovery::BAR_WORDS
            ),
        );
    }
    if let Some(st) = steps.iter().find(|s| {
        matches!(
            s.recovery.state,
            RecoveryState::NotRecovered | RecoveryState::RunStopped
        )
    }) {
        let since = crate::pg::round3((run_end_ms - st.latency.end_ms).max(0.0));
        if since <= limit {
            let why = if finished {
                "the run ended"
            } else {
                "the run stopped (it did not finish)"
            };
            return result(
                None,
                !finished,
                Some(st),
                format!(
                    "app p99 not back within {} ms ({}) when {why}, {since:.1} ms after the step ended: too soon to tell whether it comes back within the limit",
                    bar(st.recovery.threshold_ms),
                    super::recovery::BAR_WORDS
                ),
            );
        }
        return result(
            Some(since),
            false,
            Some(st),
            format!(
                "app p99 not back within {} ms ({}) by the end of the run, {since:.1} ms after the step ended",
                bar(st.recovery.threshold_ms),
                super::recovery::BAR_WORDS
            ),
        );
    }
    let slowest = steps
        .iter()
        .filter_map(|s| s.recovery.recovery_ms.map(|r| (s, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match slowest {
        Some((st, ms)) => result(
            Some(ms),
            ms <= limit,
            Some(st),
            format!(
                "app p99 back within {} ms ({}) {ms:.1} ms after the step ended",
                bar(st.recovery.threshold_ms),
                super::recovery::BAR_WORDS
            ),
        ),
        None if steps.is_empty() => result(None, true, None, "no step ran".into()),
        None => result(
            None,
            false,
            None,
            "cannot be checked: no app traffic before the migration to compare with".into(),
        ),
    }
}

/// The replica's peak replay lag against `limit`. A run without replica
/// samples cannot show the limit held: that is a breach that says why.
fn replica_lag(limit: f64, m: &Measured<'_>) -> BudgetResult {
    let peak = m.replica_lag.and_then(|p| Some((p.peak_ms?, p)));
    let (measured, passed, step, detail) = match peak {
        Some((ms, p)) => (
            Some(ms),
            ms <= limit,
            replica::step_at(m.steps, p.at_ms).map(StepFacts::label),
            format!(
                "the replica's replay lag peaked at {ms:.1} ms{} at {:.1} s",
                p.peak_bytes
                    .map(|b| format!(" ({} of WAL behind at most)", fmt_bytes(b)))
                    .unwrap_or_default(),
                p.at_ms / 1e3
            ),
        ),
        None => (
            None,
            false,
            None,
            "no replica lag was sampled: rehearse with a replica ([postgres] replica = true \
             or --replica)"
                .to_string(),
        ),
    };
    BudgetResult {
        name: "max_replica_lag_ms".into(),
        limit,
        measured,
        unit: "ms".into(),
        passed,
        step,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overrides_with_units() {
        assert_eq!(
            parse_budget_override("p99_ms=50"),
            Ok(("p99_ms".into(), 50.0))
        );
        assert_eq!(
            parse_budget_override("max_blocking_lock_ms=2s"),
            Ok(("max_blocking_lock_ms".into(), 2000.0))
        );
        assert_eq!(
            parse_budget_override("max_app_wait_ms = 150ms"),
            Ok(("max_app_wait_ms".into(), 150.0))
        );
        assert_eq!(
            parse_budget_override("max_error_rate=1%"),
            Ok(("max_error_rate".into(), 0.01))
        );
        assert_eq!(
            parse_budget_override("max_duration=10s"),
            Ok(("max_duration_ms".into(), 10000.0))
        );
        assert_eq!(
            parse_budget_override("max_errors=0"),
            Ok(("max_errors".into(), 0.0))
        );
    }

    #[test]
    fn rejects_bad_overrides_clearly() {
        let e = parse_budget_override("p98_ms=5").unwrap_err();
        assert!(e.contains("unknown budget key `p98_ms`"), "{e}");
        for k in BUDGET_KEYS {
            assert!(e.contains(k), "{e} should list {k}");
        }
        assert!(parse_budget_override("p99_ms")
            .unwrap_err()
            .contains("key=value"));
        assert!(parse_budget_override("p99_ms=fast")
            .unwrap_err()
            .contains("p99_ms"));
        assert!(parse_budget_override("max_errors=1.5").is_err());
        assert!(parse_budget_override("p99_ms=-1").is_err());
        assert!(parse_budget_override("max_error_rate=3").is_err());
    }

    #[test]
    fn apply_sets_the_named_limit() {
        let mut b = Budget::default();
        b.apply("p99_ms", 50.0).unwrap();
        b.apply("max_errors", 3.0).unwrap();
        assert_eq!(b.p99_ms, Some(50.0));
        assert_eq!(b.max_errors, Some(3));
        b.apply("max-invalid-indexes", 0.0).unwrap();
        assert_eq!(b.max_invalid_indexes, Some(0));
        assert!(b.apply("max_invalid_indexes", 0.5).is_err());
        assert!(b
            .apply("nope", 1.0)
            .unwrap_err()
            .contains("max_app_wait_ms"));
    }
}
