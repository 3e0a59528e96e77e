//! The generator options that shape a column like a real one (`bounds`,
//! `distinct`, `choice`'s `rest`, `fk`'s `weights` and `deferred`):
//! validated into generators, shares of rows resolved after --rows, and
//! every bad spec a located error.

use pgrehearse::scenario::{load_str, Distinct, Gen, Overrides, Scale, Scenario};
use pgrehearse::Error;

/// A scenario whose table `t` (1000 rows) has column `c` with `spec`,
/// and whose one query has `param` as its parameter.
fn load(spec: &str, param: &str, ov: &Overrides) -> Result<Scenario, Vec<String>> {
    let text = format!(
        r#"name = "x"
[[table]]
name = "t"
rows = 1000
create = "CREATE TABLE t (id bigint, c int, d int)"
[table.columns]
c = {spec}
d = {{ gen = "fk", table = "t", deferred = true }}
[workload]
[[workload.query]]
name = "q"
sql = "SELECT $1"
params = [{param}]
[[phase]]
name = "p"
[[phase.step]]
name = "s"
sql = "SELECT 1"
"#
    );
    load_str("x.toml".as_ref(), text.as_bytes(), ov).map_err(|e| match e {
        Error::Scenario(es) => es
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
        other => vec![other.to_string()],
    })
}

fn gen_of(spec: &str) -> Gen {
    let s = load(spec, r#"{ gen = "uuid" }"#, &Overrides::default()).unwrap();
    s.tables[0].columns[0].gen.kind.clone()
}

fn errors_of(spec: &str, param: &str) -> String {
    load(spec, param, &Overrides::default())
        .unwrap_err()
        .join("\n")
}

#[test]
fn shaped_specs_validate_into_generators() {
    assert_eq!(
        gen_of(r#"{ gen = "int", bounds = [1, 5, 100], distinct = 40 }"#),
        Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![1.0, 5.0, 100.0],
            distinct: Some(Distinct::Count(40)),
        }
    );
    assert_eq!(
        gen_of(r#"{ gen = "float", min = 0, max = 2.5, distinct = "10%" }"#),
        Gen::Histogram {
            scale: Scale::Float,
            bounds: vec![0.0, 2.5],
            distinct: Some(Distinct::Count(100)),
        }
    );
    let Gen::Histogram { scale, bounds, .. } =
        gen_of(r#"{ gen = "timestamp", bounds = ["2024-01-01", "2024-01-01 00:00:01+00"] }"#)
    else {
        panic!()
    };
    assert_eq!(scale, Scale::Timestamp);
    assert_eq!(bounds[1] - bounds[0], 1e6);
    assert_eq!(
        gen_of(r#"{ gen = "fk", table = "t", deferred = true, distinct = 30 }"#),
        Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![1.0, 1000.0],
            distinct: Some(Distinct::Count(30)),
        }
    );
    assert_eq!(
        gen_of(
            r#"{ gen = "fk", table = "t", deferred = true, weights = [5, 3], rest_weight = 2 }"#
        ),
        // The rest draws the other keys only.
        Gen::WeightedKeys {
            weights: vec![5, 3],
            rest: Box::new(Gen::Int {
                min: 3,
                max: 1000,
                dist: pgrehearse::scenario::IntDist::Uniform,
                s: 1.0,
            }),
            rest_weight: 2,
        }
    );
    assert_eq!(
        gen_of(
            r#"{ gen = "fk", table = "t", deferred = true, weights = [5], rest_weight = 2, distinct = 30 }"#
        ),
        Gen::WeightedKeys {
            weights: vec![5],
            rest: Box::new(Gen::Histogram {
                scale: Scale::Int,
                bounds: vec![2.0, 1000.0],
                distinct: Some(Distinct::Count(30)),
            }),
            rest_weight: 2,
        }
    );
    assert_eq!(
        gen_of(r#"{ gen = "text", min_len = 3, max_len = 5, distinct = "100%" }"#),
        Gen::TextSet {
            min_len: 3,
            max_len: 5,
            distinct: Distinct::Count(1000),
        }
    );
    assert_eq!(
        gen_of(
            r#"{ gen = "choice", values = [1, 2], weights = [5, 3], rest = { gen = "int", min = 3, max = 9 }, rest_weight = 2 }"#
        ),
        Gen::ChoiceRest {
            values: vec!["1".into(), "2".into()],
            weights: vec![5, 3],
            rest: Box::new(Gen::Int {
                min: 3,
                max: 9,
                dist: pgrehearse::scenario::IntDist::Uniform,
                s: 1.0,
            }),
            rest_weight: 2,
        }
    );
}

#[test]
fn shares_follow_the_rows_override() {
    let ov = Overrides {
        rows: Some(5000),
        scale: None,
        ..Overrides::default()
    };
    let s = load(
        r#"{ gen = "int", min = 1, max = 1000000, distinct = "10%" }"#,
        r#"{ gen = "uuid" }"#,
        &ov,
    )
    .unwrap();
    assert!(matches!(
        s.tables[0].columns[0].gen.kind,
        Gen::Histogram {
            distinct: Some(Distinct::Count(500)),
            ..
        }
    ));
    // Weighted keys beyond the scaled parent's rows are dropped.
    let s2 = load(
        r#"{ gen = "fk", table = "t", deferred = true, weights = [5, 4, 3, 2, 1], rest_weight = 1 }"#,
        r#"{ gen = "uuid" }"#,
        &Overrides {
            rows: Some(3),
            scale: None,
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(matches!(
        &s2.tables[0].columns[0].gen.kind,
        Gen::WeightedKeys { weights, rest, .. }
            if weights.len() == 3 && matches!(**rest, Gen::ForeignKey { rows: 3, .. })
    ));
    // A deferred fk may point at its own table.
    assert!(matches!(
        &s.tables[0].columns[1].gen.kind,
        Gen::ForeignKey { table, rows: 5000 } if table == "t"
    ));
}

#[test]
fn bad_shapes_are_located_errors() {
    let uuid = r#"{ gen = "uuid" }"#;
    let cases = [
        (
            r#"{ gen = "int", bounds = [1, 5], min = 1 }"#,
            uuid,
            "table[0].columns.c.min: give either `bounds` or min/max",
        ),
        (
            r#"{ gen = "int", bounds = [5, 1] }"#,
            uuid,
            "columns.c.bounds[1]: is less than the bound before it",
        ),
        (
            r#"{ gen = "int", bounds = [5] }"#,
            uuid,
            "columns.c.bounds: has 1 bounds; expected 2",
        ),
        (
            r#"{ gen = "timestamp", bounds = ["soon", "later"] }"#,
            uuid,
            "bounds[0]: `\"soon\"` is not a date or timestamp",
        ),
        (
            r#"{ gen = "int", bounds = [1, 5], dist = "zipf" }"#,
            uuid,
            "columns.c.dist: `dist` does not combine",
        ),
        (
            r#"{ gen = "int", min = 1, max = 9, distinct = 0 }"#,
            uuid,
            "columns.c.distinct: `0` is out of range",
        ),
        (
            r#"{ gen = "int", min = 1, max = 9, distinct = "0%" }"#,
            uuid,
            "columns.c.distinct: `0%` is not a share",
        ),
        (
            r#"{ gen = "int", min = 1, max = 9, distinct = "150%" }"#,
            uuid,
            "columns.c.distinct: `150%` is not a share",
        ),
        (
            r#"{ gen = "int", min = 1, max = 9, distinct = 1.5 }"#,
            uuid,
            "columns.c.distinct: `1.5` is out of range",
        ),
        (
            r#"{ gen = "text", min_len = 1, max_len = 2, distinct = 5000 }"#,
            uuid,
            "5000 distinct texts do not fit in 2 characters",
        ),
        (
            r#"{ gen = "choice", values = [1], rest_weight = 3 }"#,
            uuid,
            "columns.c.rest_weight: there is no `rest`",
        ),
        (
            r#"{ gen = "choice", values = [1], rest = { gen = "int", min = 1, max = 2 } }"#,
            uuid,
            "columns.c.rest_weight: missing",
        ),
        (
            r#"{ gen = "choice", values = [1], rest = { gen = "int", min = 1, max = 2, null_fraction = 0.5 }, rest_weight = 1 }"#,
            uuid,
            "columns.c.rest.null_fraction: NULLs are the outer generator's",
        ),
        (
            r#"{ gen = "choice", values = [1], rest = { gen = "nope" }, rest_weight = 1 }"#,
            uuid,
            "columns.c.rest.gen: unknown generator",
        ),
        (
            r#"{ gen = "fk", table = "t", deferred = true, rest_weight = 3 }"#,
            uuid,
            "columns.c.rest_weight: rest_weight weighs the other keys",
        ),
        (
            r#"{ gen = "fk", table = "t", deferred = true, weights = [1] }"#,
            uuid,
            "columns.c.rest_weight: missing",
        ),
        (
            r#"{ gen = "uuid" }"#,
            r#"{ gen = "int", min = 1, max = 9, distinct = "5%" }"#,
            "workload.query[0].params[0].distinct: a share of rows needs a table",
        ),
        (
            r#"{ gen = "uuid", distinct = 5 }"#,
            uuid,
            "`distinct` does not apply to gen = \"uuid\"",
        ),
    ];
    for (spec, param, want) in cases {
        let e = errors_of(spec, param);
        assert!(e.contains(want), "{spec}: wanted {want:?} in {e}");
    }
}
