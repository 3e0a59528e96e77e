use super::*;

fn cg(kind: Gen) -> ColumnGen {
    ColumnGen {
        kind,
        null_fraction: 0.0,
    }
}

fn draw(gen: &ColumnGen, seed: u64, n: u64) -> Vec<Value> {
    let s = gen.sampler();
    let mut rng = chunk_rng(seed, 0, 0, 0);
    (0..n).map(|row| s.sample(row, &mut rng)).collect()
}

fn all_kinds() -> Vec<Gen> {
    vec![
        Gen::Sequence { start: 1 },
        Gen::Int {
            min: -5,
            max: 5,
            dist: IntDist::Uniform,
            s: 1.0,
        },
        Gen::Int {
            min: 10,
            max: 1000,
            dist: IntDist::Zipf,
            s: 1.0,
        },
        Gen::Float { min: 1.5, max: 2.5 },
        Gen::Text {
            min_len: 3,
            max_len: 17,
        },
        Gen::Words { min: 1, max: 4 },
        Gen::Choice {
            values: vec!["a".into(), "b".into(), "c".into()],
            weights: vec![1, 5, 4],
        },
        Gen::Bool { p_true: 0.3 },
        Gen::Timestamp {
            from_us: 1_700_000_000_000_000,
            to_us: 1_800_000_000_000_000,
        },
        Gen::Uuid,
        Gen::Json { keys: 3 },
        Gen::ForeignKey {
            table: "p".into(),
            rows: 42,
        },
        Gen::Constant { value: "x".into() },
    ]
}

#[test]
fn same_seed_same_values_other_seed_other_values() {
    for kind in all_kinds() {
        let g = cg(kind.clone());
        assert_eq!(draw(&g, 7, 200), draw(&g, 7, 200), "{kind:?}");
        let varies = !matches!(kind, Gen::Sequence { .. } | Gen::Constant { .. });
        if varies {
            assert_ne!(draw(&g, 7, 200), draw(&g, 8, 200), "{kind:?}");
        }
    }
}

#[test]
fn chunk_streams_differ_by_table_chunk_and_column() {
    let g = cg(Gen::Uuid);
    let s = g.sampler();
    let a = s.sample(0, &mut chunk_rng(1, 0, 0, 0));
    assert_ne!(a, s.sample(0, &mut chunk_rng(1, 1, 0, 0)));
    assert_ne!(a, s.sample(0, &mut chunk_rng(1, 0, 1, 0)));
    assert_ne!(a, s.sample(0, &mut chunk_rng(1, 0, 0, 1)));
    assert_eq!(a, s.sample(0, &mut chunk_rng(1, 0, 0, 0)));
}

#[test]
fn ranges_are_respected() {
    for v in draw(&cg(all_kinds()[1].clone()), 1, 5000) {
        let Value::Int(i) = v else { panic!("{v:?}") };
        assert!((-5..=5).contains(&i));
    }
    let zipf = draw(&cg(all_kinds()[2].clone()), 1, 5000);
    assert!(zipf
        .iter()
        .all(|v| matches!(v, Value::Int(i) if (10..=1000).contains(i))));
    for v in draw(&cg(all_kinds()[3].clone()), 1, 5000) {
        let Value::Float(x) = v else { panic!("{v:?}") };
        assert!((1.5..=2.5).contains(&x));
    }
    for v in draw(&cg(all_kinds()[4].clone()), 1, 5000) {
        let Value::Text(t) = v else { panic!("{v:?}") };
        assert!((3..=17).contains(&t.len()), "{t}");
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    for v in draw(&cg(all_kinds()[5].clone()), 1, 2000) {
        let Value::Text(t) = v else { panic!("{v:?}") };
        let n = t.split(' ').count();
        assert!((1..=4).contains(&n), "{t}");
        assert!(t.split(' ').all(|w| WORDS.contains(&w)));
    }
    for v in draw(&cg(all_kinds()[8].clone()), 1, 5000) {
        let Value::Timestamp(us) = v else {
            panic!("{v:?}")
        };
        assert!((1_700_000_000_000_000..=1_800_000_000_000_000).contains(&us));
    }
    for v in draw(&cg(all_kinds()[11].clone()), 1, 5000) {
        let Value::Int(i) = v else { panic!("{v:?}") };
        assert!((1..=42).contains(&i));
    }
    let seq = draw(&cg(Gen::Sequence { start: 100 }), 1, 5);
    assert_eq!(seq, (100..105).map(Value::Int).collect::<Vec<_>>());
}

#[test]
fn choice_and_bool_follow_their_weights() {
    let vals = draw(&cg(all_kinds()[6].clone()), 3, 100_000);
    let share = |c: &str| {
        vals.iter()
            .filter(|v| matches!(v, Value::Text(t) if t == c))
            .count() as f64
            / vals.len() as f64
    };
    assert!((share("a") - 0.1).abs() < 0.01, "{}", share("a"));
    assert!((share("b") - 0.5).abs() < 0.01, "{}", share("b"));
    assert!((share("c") - 0.4).abs() < 0.01, "{}", share("c"));
    let bools = draw(&cg(Gen::Bool { p_true: 0.3 }), 3, 100_000);
    let t = bools.iter().filter(|v| **v == Value::Bool(true)).count() as f64 / 1e5;
    assert!((t - 0.3).abs() < 0.01, "{t}");
}

#[test]
fn null_fraction_is_honoured() {
    for nf in [0.0, 0.1, 0.5, 1.0] {
        let g = ColumnGen {
            kind: Gen::Uuid,
            null_fraction: nf,
        };
        let vals = draw(&g, 11, 100_000);
        let nulls = vals.iter().filter(|v| **v == Value::Null).count() as f64 / 1e5;
        assert!((nulls - nf).abs() < 0.01, "wanted {nf}, got {nulls}");
    }
}

#[test]
fn zipf_is_skewed_towards_min() {
    let g = cg(Gen::Int {
        min: 1,
        max: 10_000,
        dist: IntDist::Zipf,
        s: 1.0,
    });
    let vals = draw(&g, 5, 100_000);
    let count = |x: i64| vals.iter().filter(|v| **v == Value::Int(x)).count() as f64;
    // P(rank k) ∝ 1/k: rank 1 about twice rank 2 and ten times rank 10.
    let (c1, c2, c10) = (count(1), count(2), count(10));
    assert!((c1 / c2 - 2.0).abs() < 0.3, "{c1} {c2}");
    assert!((c1 / c10 - 10.0).abs() < 2.0, "{c1} {c10}");
    // Harmonic number H(10000) ≈ 9.79: rank 1 holds about 10%.
    assert!((c1 / 1e5 - 0.102).abs() < 0.01, "{c1}");
    let uniform = draw(
        &cg(Gen::Int {
            min: 1,
            max: 10_000,
            dist: IntDist::Uniform,
            s: 1.0,
        }),
        5,
        100_000,
    );
    let u1 = uniform.iter().filter(|v| **v == Value::Int(1)).count();
    assert!(u1 < 50, "{u1}");
}

#[test]
fn zipf_over_the_whole_i64_range_does_not_panic() {
    let g = cg(Gen::Int {
        min: i64::MIN,
        max: i64::MAX,
        dist: IntDist::Zipf,
        s: 1.2,
    });
    assert_eq!(draw(&g, 1, 100).len(), 100);
}

#[test]
fn uuids_are_v4_and_json_parses() {
    for v in draw(&cg(Gen::Uuid), 2, 100) {
        let Value::Uuid(b) = v else { panic!() };
        assert_eq!(uuid::Uuid::from_bytes(b).get_version_num(), 4);
    }
    for v in draw(&cg(Gen::Json { keys: 3 }), 2, 100) {
        let Value::Json(s) = v else { panic!() };
        let j: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(j.as_object().unwrap().len(), 3);
    }
}

#[test]
fn histograms_follow_their_buckets() {
    // Half the values in [0, 10], half in [10, 1000].
    let g = cg(Gen::Histogram {
        scale: Scale::Int,
        bounds: vec![0.0, 10.0, 1000.0],
        distinct: None,
    });
    let vals = draw(&g, 4, 100_000);
    let low = vals
        .iter()
        .filter(|v| matches!(v, Value::Int(i) if (0..=10).contains(i)))
        .count() as f64;
    assert!((low / 1e5 - 0.5).abs() < 0.01, "{low}");
    assert!(vals
        .iter()
        .all(|v| matches!(v, Value::Int(i) if (0..=1000).contains(i))));
    let t = cg(Gen::Histogram {
        scale: Scale::Timestamp,
        bounds: vec![1e15, 2e15],
        distinct: None,
    });
    assert!(draw(&t, 4, 1000)
        .iter()
        .all(|v| matches!(v, Value::Timestamp(us) if (1_000_000_000_000_000..=2_000_000_000_000_000).contains(us))));
}

#[test]
fn distinct_sets_hold_exactly_n_values() {
    use std::collections::HashSet;
    let kinds = [
        Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![0.0, 1e9],
            distinct: Some(Distinct::Count(777)),
        },
        Gen::Histogram {
            scale: Scale::Float,
            bounds: vec![0.0, 1.0, 5.0],
            distinct: Some(Distinct::Count(777)),
        },
        Gen::Histogram {
            scale: Scale::Timestamp,
            bounds: vec![1.7e15, 1.8e15],
            distinct: Some(Distinct::Count(777)),
        },
        Gen::TextSet {
            min_len: 2,
            max_len: 9,
            distinct: Distinct::Count(777),
        },
    ];
    for kind in kinds {
        let g = cg(kind.clone());
        let vals: HashSet<String> = draw(&g, 1, 10_000).iter().map(|v| v.to_string()).collect();
        assert_eq!(vals.len(), 777, "{kind:?}");
        // As many rows as values: every row its own value.
        let once: HashSet<String> = draw(&g, 1, 777).iter().map(|v| v.to_string()).collect();
        assert_eq!(once.len(), 777, "{kind:?}");
    }
}

/// An `fk` with `distinct` draws from its parent's keys 1..=R: N different
/// ones for N = R (every key) and N <= R - 2 — not N = R - 1, whose points
/// fall one key apart on the halves, where rounding pairs some (init's
/// key combinations count on this; unique.rs `set_of`).
#[test]
fn an_fk_set_of_as_many_values_as_parent_keys_holds_every_key() {
    use std::collections::HashSet;
    for (parent, n) in [
        (1u64, 1u64),
        (2, 2),
        (3, 3),
        (7, 5),
        (1000, 1000),
        (1000, 998),
        (4099, 4099),
    ] {
        let g = cg(Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![1.0, parent as f64],
            distinct: Some(Distinct::Count(n)),
        });
        let vals: HashSet<i64> = draw(&g, 1, n)
            .iter()
            .map(|v| match v {
                Value::Int(k) => *k,
                v => panic!("{v:?}"),
            })
            .collect();
        assert_eq!(vals.len() as u64, n, "{n} of {parent} keys");
        assert!(
            vals.iter().all(|k| (1..=parent as i64).contains(k)),
            "{vals:?}"
        );
    }
}

#[test]
fn choice_rest_mixes_listed_values_and_the_rest() {
    let g = cg(Gen::ChoiceRest {
        values: vec!["7".into(), "8".into()],
        weights: vec![50, 30],
        rest: Box::new(Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![100.0, 200.0],
            distinct: Some(Distinct::Count(10)),
        }),
        rest_weight: 20,
    });
    let vals = draw(&g, 2, 100_000);
    let share = |f: &dyn Fn(&Value) -> bool| vals.iter().filter(|v| f(v)).count() as f64 / 1e5;
    assert!((share(&|v| *v == Value::Text("7".into())) - 0.5).abs() < 0.01);
    assert!((share(&|v| *v == Value::Text("8".into())) - 0.3).abs() < 0.01);
    let rest = share(&|v| matches!(v, Value::Int(i) if (100..=200).contains(i)));
    assert!((rest - 0.2).abs() < 0.01, "{rest}");
}

#[test]
fn weighted_keys_are_integers_and_the_rest_draws_the_other_keys() {
    // What `fk` with weights = [60, 20], rest_weight = 20 over 10 keys is.
    let g = cg(Gen::WeightedKeys {
        weights: vec![60, 20],
        rest: Box::new(Gen::Int {
            min: 3,
            max: 10,
            dist: IntDist::Uniform,
            s: 1.0,
        }),
        rest_weight: 20,
    });
    let vals = draw(&g, 2, 100_000);
    let share = |k: i64| vals.iter().filter(|v| **v == Value::Int(k)).count() as f64 / 1e5;
    // Integers, so a uuid key gets the uuid `sequence` gave its parent.
    assert!(vals.iter().all(|v| matches!(v, Value::Int(1..=10))));
    assert!((share(1) - 0.6).abs() < 0.01, "{}", share(1));
    assert!((share(2) - 0.2).abs() < 0.01, "{}", share(2));
    for k in 3..=10 {
        assert!((share(k) - 0.025).abs() < 0.005, "{k}: {}", share(k));
    }
}

#[test]
fn generate_matches_sampler() {
    let g = cg(all_kinds()[2].clone());
    let mut a = chunk_rng(9, 0, 0, 0);
    let mut b = chunk_rng(9, 0, 0, 0);
    let s = g.sampler();
    for row in 0..100 {
        assert_eq!(g.generate(row, &mut a), s.sample(row, &mut b));
    }
}

#[test]
fn an_addressed_value_depends_on_its_row_and_seed_alone() {
    use crate::scenario::RowKey;
    let parent = ColumnGen {
        kind: Gen::Addressed {
            key: RowKey {
                table: 1,
                stream: 2,
            },
            inner: Box::new(Gen::Int {
                min: 1,
                max: 1_000_000_000,
                dist: IntDist::Uniform,
                s: 1.0,
            }),
        },
        null_fraction: 0.1,
    };
    let s = parent.sampler().seeded(7);
    let (mut a, mut b) = (chunk_rng(0, 0, 0, 0), chunk_rng(9, 9, 9, 9));
    for row in 0..200 {
        assert_eq!(s.sample(row, &mut a), s.sample(row, &mut b));
    }
    let nulls = (0..1000)
        .filter(|r| s.sample(*r, &mut a) == Value::Null)
        .count();
    assert!((60..140).contains(&nulls), "{nulls} NULLs of 1000");
    let other = parent.sampler().seeded(8);
    assert!((0..20).any(|r| s.sample(r, &mut a) != other.sample(r, &mut a)));
    // A copy takes the parent's value in the row its key names: key k is
    // row k - 1.
    let copy = cg(copy_of(&parent)).sampler().seeded(7);
    let parent_values: Vec<Value> = (0..50).map(|r| s.sample(r, &mut a)).collect();
    for _ in 0..200 {
        let v = copy.sample(0, &mut a);
        assert!(parent_values.contains(&v), "{v:?} is no parent row's");
    }
}

#[test]
fn copies_of_one_row_agree_whatever_their_nulls() {
    use crate::scenario::RowKey;
    let addressed = |stream: usize, inner: Gen, null_fraction: f64| ColumnGen {
        kind: Gen::Addressed {
            key: RowKey { table: 1, stream },
            inner: Box::new(inner),
        },
        null_fraction,
    };
    // The parent: a random column and a sequence (key k is row k - 1).
    let value = addressed(
        0,
        Gen::Int {
            min: 1,
            max: 1_000_000_000,
            dist: IntDist::Uniform,
            s: 1.0,
        },
        0.0,
    );
    let id = addressed(1, Gen::Sequence { start: 1 }, 0.0);
    // Two copies of one drawn row (one key: stream 0 of table 2), NULL
    // 30 % and never.
    let copy = |parent: &ColumnGen, null_fraction: f64| {
        let inner = copy_of(parent);
        ColumnGen {
            kind: Gen::Addressed {
                key: RowKey {
                    table: 2,
                    stream: 0,
                },
                inner: Box::new(inner),
            },
            null_fraction,
        }
        .sampler()
        .seeded(5)
    };
    let (a, b) = (copy(&value, 0.3), copy(&id, 0.0));
    let parent_value = value.sampler().seeded(5);
    let mut rng = chunk_rng(0, 0, 0, 0);
    let mut nulls = 0;
    for row in 0..1000 {
        let Value::Int(k) = b.sample(row, &mut rng) else {
            panic!("the copy without NULLs gave one at row {row}");
        };
        match a.sample(row, &mut rng) {
            Value::Null => nulls += 1,
            v => assert_eq!(v, parent_value.sample(k as u64 - 1, &mut rng), "row {row}"),
        }
    }
    assert!((200..400).contains(&nulls), "{nulls} NULLs of 1000");
}

/// A column copying `parent`'s value in the row a key 1..=50 names.
fn copy_of(parent: &ColumnGen) -> Gen {
    Gen::ParentColumn {
        table: "p".into(),
        column: "c".into(),
        key: None,
        draw: Box::new(Gen::ForeignKey {
            table: "p".into(),
            rows: 50,
        }),
        parent: Some(Box::new(parent.clone())),
    }
}
