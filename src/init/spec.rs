//! A generator as `init` will write it (`{ gen = "int", min = 1, ... }`):
//! fields in the order they are written, and choice's `rest`. Built by
//! distribution.rs, columns.rs and workload.rs, rendered by write.rs.

/// One TOML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Val>),
}

/// A generator spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub fields: Vec<(&'static str, Val)>,
    pub rest: Option<Box<Spec>>,
}

impl Spec {
    pub fn new(gen: &str) -> Spec {
        Spec {
            fields: vec![("gen", Val::Str(gen.to_string()))],
            rest: None,
        }
    }

    /// Set (or replace) a field.
    pub fn with(mut self, key: &'static str, v: Val) -> Spec {
        self.set(key, v);
        self
    }

    pub fn set(&mut self, key: &'static str, v: Val) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((key, v)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| *k != key);
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The `gen` kind.
    pub fn kind(&self) -> &str {
        match self.get("gen") {
            Some(Val::Str(s)) => s,
            _ => "",
        }
    }

    /// `null_fraction`, when above zero.
    pub fn nulls(self, fraction: f64) -> Spec {
        if fraction > 0.0 {
            self.with("null_fraction", Val::Float(round_to(fraction, 4)))
        } else {
            self
        }
    }

    /// Every row a value of its own: `sequence`, `uuid`, a `distinct` of
    /// 100% of the rows, or random text long enough never to repeat.
    pub fn unique(&self) -> bool {
        match self.kind() {
            "sequence" | "uuid" => true,
            "text" => {
                self.get("distinct") == Some(&Val::Str("100%".into()))
                    || (self.get("distinct").is_none()
                        && matches!(self.get("min_len"), Some(Val::Int(n)) if *n >= 12))
            }
            _ => self.get("distinct") == Some(&Val::Str("100%".into())),
        }
    }
}

/// `x` to `digits` decimals.
pub fn round_to(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}
