//! String functions (ksqlDB's "STRING" category).

use std::sync::Arc;

use super::{FunctionRegistry, Overload, SimpleFunction};
use crate::types::SqlType;
use crate::value::Value;

pub(super) fn register(registry: &mut FunctionRegistry) {
    registry.register(Arc::new(SimpleFunction {
        name: "UCASE",
        category: "STRING",
        description: "Returns the input string in upper case.",
        overloads: vec![Overload {
            params: vec![SqlType::String],
            variadic: false,
            returns: SqlType::String,
            call: |args| Ok(map_string(&args[0], str::to_uppercase)),
        }],
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "LCASE",
        category: "STRING",
        description: "Returns the input string in lower case.",
        overloads: vec![Overload {
            params: vec![SqlType::String],
            variadic: false,
            returns: SqlType::String,
            call: |args| Ok(map_string(&args[0], str::to_lowercase)),
        }],
    }));
}

/// NULL in, NULL out; otherwise `f` of the string.
fn map_string(value: &Value, f: impl Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use crate::functions::FunctionRegistry;
    use crate::types::SqlType;
    use crate::value::Value;

    #[test]
    fn ucase_binds_to_strings_only_and_keeps_null() {
        let registry = FunctionRegistry::builtin();
        let ucase = registry.get("ucase").unwrap();
        let bound = ucase.bind(&[SqlType::String]).unwrap();
        assert_eq!(
            bound.call(&[Value::String("abc".into())]).unwrap(),
            Value::String("ABC".into())
        );
        assert_eq!(bound.call(&[Value::Null]).unwrap(), Value::Null);
        let refused = ucase.bind(&[SqlType::Integer]).err().unwrap();
        assert_eq!(
            refused.0,
            "Function 'UCASE' does not accept parameters (INTEGER)."
        );
    }
}
