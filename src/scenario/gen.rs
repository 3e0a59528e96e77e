//! Deterministic value generators for seeding and for query parameters.
//! (Interim version; the full implementation lands from the seed branch.)

use bytes::BytesMut;
use rand::Rng;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::{ColumnGen, Gen};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl ColumnGen {
    pub fn generate(&self, row: u64, rng: &mut impl Rng) -> Value {
        if self.null_fraction > 0.0 && rng.gen::<f64>() < self.null_fraction {
            return Value::Null;
        }
        match &self.kind {
            Gen::Sequence { start } => Value::Int(start + row as i64),
            Gen::Int { min, max, .. } => Value::Int(rng.gen_range(*min..=*max)),
            Gen::ForeignKey { rows, .. } => Value::Int(rng.gen_range(1..=(*rows).max(1) as i64)),
            Gen::Float { min, max } => Value::Float(rng.gen_range(*min..=*max)),
            Gen::Bool { p_true } => Value::Bool(rng.gen::<f64>() < *p_true),
            Gen::Constant { value } => Value::Text(value.clone()),
            _ => Value::Text(format!("v{}", rng.gen::<u32>())),
        }
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => (*v as i16).to_sql(ty, out),
                Type::INT4 => (*v as i32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Float(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bool(v) => v.to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}
