//! Helpers shared by the engine's integration tests.

use std::sync::Arc;

use kafkaml_engine::conformance::MemoryCluster;
use kafkaml_engine::engine::{Engine, EngineConfig, ManualRuntime};
use kafkaml_engine::functions::FunctionRegistry;

/// An engine on `cluster` (topics in memory; the test drives the queries' topologies) that ran
/// `statements` in order.
pub fn engine_on(cluster: Arc<MemoryCluster>, statements: &[&str]) -> Engine {
    let mut engine = Engine::new(
        EngineConfig::default(),
        cluster,
        None,
        Arc::new(ManualRuntime),
        FunctionRegistry::builtin(),
    );
    for statement in statements {
        engine.execute(statement).expect("statement runs");
    }
    engine
}
