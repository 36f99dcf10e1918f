//! NULL-handling functions: COALESCE, IFNULL, NULLIF ("CONDITIONAL" in ksqlDB's listing), and
//! AS_VALUE ("OTHER").

use std::sync::Arc;

use super::{common_type, no_overload, row_fn, BindError, BoundFunction, BoundGenericPublic};
use super::{FunctionRegistry, ScalarFunction};
use crate::types::SqlType;
use crate::value::Value;

pub(super) fn register(registry: &mut FunctionRegistry) {
    for (name, description) in [
        ("COALESCE", "Returns first non-null element in list."),
        (
            "IFNULL",
            "Returns expression if not NULL, otherwise the alternative value.",
        ),
        (
            "NULLIF",
            "Returns NULL if expression1 is equal to expression2; otherwise, returns \
             expression1.",
        ),
    ] {
        registry.register(Arc::new(NullFunction { name, description }));
    }
    registry.register(Arc::new(super::GenericFunction {
        name: "AS_VALUE",
        category: "OTHER",
        description: "Used exclusively in the projection of a query to allow a key column to \
                      be copied into the value schema. Has no affect if used anywhere else.",
        signatures: &["AS_VALUE(T) => T"],
        bind: |types| match types {
            [t] => Some((t.clone(), row_fn(|args| Ok(args[0].clone())))),
            _ => None,
        },
    }));
}

struct NullFunction {
    name: &'static str,
    description: &'static str,
}

impl ScalarFunction for NullFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        "CONDITIONAL"
    }
    fn description(&self) -> &str {
        self.description
    }
    fn signatures(&self) -> Vec<String> {
        vec![match self.name {
            "COALESCE" => "COALESCE(T, T...) => T".to_string(),
            other => format!("{other}(T, T) => T"),
        }]
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        let count_ok = match self.name {
            "COALESCE" => !arg_types.is_empty(),
            _ => arg_types.len() == 2,
        };
        if !count_ok {
            return Err(no_overload(self.name, arg_types));
        }
        let returns = common_type(arg_types).ok_or_else(|| no_overload(self.name, arg_types))?;
        let target = returns.clone();
        let call = match self.name {
            "NULLIF" => row_fn(move |args| {
                let first = super::coerce(&args[0], &target);
                let second = super::coerce(&args[1], &target);
                Ok(if !second.is_null() && first == second {
                    Value::Null
                } else {
                    first
                })
            }),
            _ => row_fn(move |args| {
                Ok(args
                    .iter()
                    .find(|v| !v.is_null())
                    .map_or(Value::Null, |v| super::coerce(v, &target)))
            }),
        };
        Ok(Arc::new(BoundGenericPublic::new(returns, call)))
    }
}

#[cfg(test)]
mod tests {
    use crate::functions::FunctionRegistry;
    use crate::types::SqlType;
    use crate::value::Value;

    #[test]
    fn coalesce_takes_the_first_non_null_in_the_common_type() {
        let registry = FunctionRegistry::builtin();
        let coalesce = registry.get("COALESCE").unwrap();
        assert_eq!(
            coalesce.bind(&[]).err().unwrap().0,
            "Function 'COALESCE' does not accept parameters ()."
        );
        let bound = coalesce.bind(&[SqlType::Integer, SqlType::BigInt]).unwrap();
        assert_eq!(bound.return_type(), SqlType::BigInt);
        assert_eq!(
            bound.call(&[Value::Null, Value::BigInt(4)]).unwrap(),
            Value::BigInt(4)
        );
        assert_eq!(
            bound.call(&[Value::Integer(3), Value::BigInt(4)]).unwrap(),
            Value::BigInt(3)
        );
        let ifnull = registry
            .get("IFNULL")
            .unwrap()
            .bind(&[SqlType::String, SqlType::String])
            .unwrap();
        assert_eq!(
            ifnull
                .call(&[Value::Null, Value::String("x".into())])
                .unwrap(),
            Value::String("x".into())
        );
        let nullif = registry
            .get("NULLIF")
            .unwrap()
            .bind(&[SqlType::Integer, SqlType::Integer])
            .unwrap();
        assert_eq!(
            nullif
                .call(&[Value::Integer(1), Value::Integer(1)])
                .unwrap(),
            Value::Null
        );
        assert_eq!(
            nullif.call(&[Value::Integer(1), Value::Null]).unwrap(),
            Value::Integer(1)
        );
        assert!(registry
            .get("IFNULL")
            .unwrap()
            .bind(&[SqlType::String, SqlType::Integer])
            .is_err());
    }

    #[test]
    fn null_literals_bind_by_their_siblings() {
        let registry = FunctionRegistry::builtin();
        let bound = registry
            .get("COALESCE")
            .unwrap()
            .bind_with_null_literals(&[None, Some(SqlType::String)])
            .unwrap();
        assert_eq!(bound.return_type(), SqlType::String);
        let substring = registry
            .get("SUBSTRING")
            .unwrap()
            .bind_with_null_literals(&[Some(SqlType::String), None])
            .unwrap();
        assert_eq!(
            substring
                .call(&[Value::String("abc".into()), Value::Null])
                .unwrap(),
            Value::Null
        );
    }
}
