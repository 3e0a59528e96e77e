//! A foreign key's generator from its column's pg_stats: `fk` with the
//! hottest parents weighted and the other references spread over as many
//! parents as the source's column has.

use super::distinct;
use super::distribution::{facts, Facts, Input, WEIGHT_SCALE};
use super::spec::{Spec, Val};

/// A foreign key: its parent's keys (1..rows, which the parent's
/// `sequence` fills). The keys referenced notably more often than the keys
/// after them ([`hot_keys`]) go to keys 1..k, the hottest parents, with
/// their frequencies; the others come from as many different parents among
/// keys k+1.. as the source's column references. `fk` draws integer keys,
/// so a uuid key gets the uuid its parent's `sequence` wrote.
pub fn foreign_key(input: &Input, parent: &str, parent_rows: u64, deferred: bool) -> Spec {
    let f = facts(input);
    let mut spec = Spec::new("fk").with("table", Val::Str(parent.to_string()));
    if deferred {
        spec.set("deferred", Val::Bool(true));
    }
    let hot = hot_keys(&f, parent_rows);
    let k = hot.len() as u64;
    let hot_share: f64 = hot.iter().sum();
    let (target, share) = (
        f.distinct.map(|d| (d - k as f64).max(1.0)),
        (1.0 - f.nulls - hot_share).max(0.0),
    );
    let rest_weight = (share * WEIGHT_SCALE).round() as i64;
    // The rest draws keys k+1..=rows only (fk's weights): fewer parents
    // than those keys are a set. A rest never drawn needs none.
    let others = parent_rows.saturating_sub(k);
    let drawn = hot.is_empty() || rest_weight > 0;
    if let Some(t) = target.filter(|t| drawn && others > 1 && *t < 0.8 * others as f64) {
        let bounds = [k as f64 + 1.0, parent_rows as f64];
        if let Some(d) = distinct::setting(&f.target(t, share), &bounds, Some(1.0)) {
            spec.set("distinct", d);
        }
    }
    if !hot.is_empty() {
        let weights = hot
            .iter()
            .map(|p| Val::Int(((p * WEIGHT_SCALE).round() as i64).max(1)))
            .collect();
        spec.set("weights", Val::List(weights));
        spec.set("rest_weight", Val::Int(rest_weight));
    }
    spec.nulls(f.nulls)
}

/// A key referenced this many times as often as the average of the keys
/// after it is weighted on its own.
const HOT: f64 = 1.25;

/// The shares of the keys weighted on their own, most referenced first:
/// each common key while it is [`HOT`] times as common as the keys after it
/// are on average. Compared with the keys after it, not with all keys: to a
/// small parent whose keys pg_stats lists all (40%, 20%, 10%, then 4%
/// each), the third is far above the rest, though only as common as the
/// average key. Keys no more common than the others stay with the rest,
/// which follows --rows where weighted keys do not.
fn hot_keys(f: &Facts, parent_rows: u64) -> Vec<f64> {
    let Some(d) = f.distinct else {
        return Vec::new();
    };
    let mut left_share = 1.0 - f.nulls;
    let mut left_keys = d;
    let mut hot = Vec::new();
    for &(_, p) in f.common.iter().take(parent_rows as usize) {
        if left_keys <= 1.0 || p < HOT * left_share / left_keys {
            break;
        }
        hot.push(p);
        left_share -= p;
        left_keys -= 1.0;
    }
    hot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_of(common: &[f64], distinct: f64) -> Facts<'static> {
        Facts {
            stats: None,
            nulls: 0.0,
            common: common.iter().map(|p| (String::new(), *p)).collect(),
            rest_share: 1.0 - common.iter().sum::<f64>(),
            distinct: Some(distinct),
            scales: false,
            rows: 1000.0,
            dropped: Vec::new(),
        }
    }

    #[test]
    fn hot_keys_stand_out_from_the_keys_after_them() {
        // A small parent's keys, all listed: the third is as common as the
        // average key, but far more than the seven after it.
        let small = [
            0.4, 0.2, 0.1, 0.043, 0.043, 0.043, 0.043, 0.043, 0.043, 0.042,
        ];
        assert_eq!(hot_keys(&facts_of(&small, 10.0), 10), vec![0.4, 0.2, 0.1]);
        // Keys as common as each other: none stands out.
        assert!(hot_keys(&facts_of(&[0.02; 50], 50.0), 50).is_empty());
        // No more than the parent has.
        assert_eq!(hot_keys(&facts_of(&small, 10.0), 2), vec![0.4, 0.2]);
    }
}
