//! stub

use super::FunctionRegistry;

pub(super) fn register(_registry: &mut FunctionRegistry) {}
