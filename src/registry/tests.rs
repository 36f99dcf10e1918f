//! The registry on librdkafka's mock cluster: state read back after a restart, and two
//! registries writing at once. (pytest runs the same on a real broker.)

use std::collections::BTreeSet;

use super::*;
use crate::kafka::local::LocalCluster;

fn schema(n: usize) -> String {
    format!(r#"{{"type":"record","name":"R{n}","fields":[{{"name":"a","type":"int"}}]}}"#)
}

fn registry(cluster: &LocalCluster) -> Registry {
    let options = RegistryOptions {
        timeout: Duration::from_secs(20),
        ..RegistryOptions::default()
    };
    Registry::on_kafka(cluster.bootstrap_servers(), options).unwrap()
}

#[test]
fn a_restarted_registry_serves_the_same_ids() {
    let cluster = LocalCluster::start(1).unwrap();
    let first = registry(&cluster);
    // Records of different names in one subject: only NONE lets them follow each other.
    first.set_level(None, Compatibility::None).unwrap();
    let ids: Vec<(u32, u32)> = (0..5)
        .map(|n| {
            first
                .register(&format!("s{}", n % 2), &schema(n), &[], false)
                .unwrap()
        })
        .collect();
    first.set_level(Some("s0"), Compatibility::Full).unwrap();
    first
        .delete_version("s1", VersionSpec::Number(1), false)
        .unwrap();
    drop(first);

    let second = registry(&cluster);
    for (n, (id, version)) in ids.iter().enumerate() {
        let subject = format!("s{}", n % 2);
        let found = second
            .state()
            .lookup(&subject, &schema(n), &[], false, true)
            .unwrap();
        assert_eq!((found.id, found.version), (*id, *version));
    }
    assert_eq!(
        second.state().level(Some("s0"), false).unwrap(),
        Compatibility::Full
    );
    assert_eq!(
        second.state().level(None, false).unwrap(),
        Compatibility::None
    );
    assert_eq!(second.state().versions("s1", false).unwrap(), [2]);
    // Registering again finds the existing version instead of adding one.
    assert_eq!(
        second.register("s0", &schema(0), &[], false).unwrap(),
        ids[0]
    );
    assert_eq!(second.stats().schemas, 5);
}

#[test]
fn two_registries_on_one_cluster_agree_on_every_id_under_concurrent_writes() {
    let cluster = LocalCluster::start(1).unwrap();
    let registries = [Arc::new(registry(&cluster)), Arc::new(registry(&cluster))];
    // 20 writers: half register one shared schema, half a schema of their own, split over
    // the two registries, all at once.
    let results: Vec<(usize, (u32, u32))> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let registry = registries[n % 2].clone();
                scope.spawn(move || {
                    let which = if n % 2 == 0 { 1000 } else { n };
                    let subject = format!("subject-{which}");
                    (
                        which,
                        registry
                            .register(&subject, &schema(which), &[], false)
                            .unwrap(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shared: BTreeSet<u32> = results
        .iter()
        .filter(|(w, _)| *w == 1000)
        .map(|(_, (id, _))| *id)
        .collect();
    assert_eq!(shared.len(), 1, "one schema, one id: {results:?}");
    let all_ids: BTreeSet<u32> = results.iter().map(|(_, (id, _))| *id).collect();
    assert_eq!(
        all_ids.len(),
        11,
        "10 own schemas + the shared one: {results:?}"
    );
    // Both registries hold the same state.
    for registry in &registries {
        registry.catch_up().unwrap();
    }
    let view = |r: &Registry| {
        let state = r.state();
        state
            .subjects(true, "")
            .into_iter()
            .map(|s| {
                let versions = state.versions(&s, true).unwrap();
                let ids: Vec<u32> = versions
                    .iter()
                    .map(|v| state.version(&s, VersionSpec::Number(*v), true).unwrap().id)
                    .collect();
                (s, versions, ids)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&registries[0]), view(&registries[1]));
}

#[test]
fn a_schema_written_through_one_registry_is_read_at_once_through_another() {
    let cluster = LocalCluster::start(1).unwrap();
    let options = RegistryOptions {
        timeout: Duration::from_secs(3),
        ..RegistryOptions::default()
    };
    let writer = Registry::on_kafka(cluster.bootstrap_servers(), options.clone()).unwrap();
    let reader = Registry::on_kafka(cluster.bootstrap_servers(), options).unwrap();
    // Read right after the write returns: the reader's follower is often a fetch behind, so
    // the read misses first and must catch up (it once waited on its own state lock).
    for n in 0..20 {
        let (id, _) = writer
            .register(&format!("s{n}"), &schema(n), &[], false)
            .unwrap();
        let text = reader
            .read(|state| Ok(state.schema(id)?.text.clone()))
            .unwrap_or_else(|e| panic!("schema {id} written a moment ago: {e}"));
        assert_eq!(text, schema(n));
    }
}

#[test]
fn an_unreachable_cluster_is_a_store_error_not_a_hang() {
    let options = RegistryOptions {
        timeout: Duration::from_millis(1500),
        ..RegistryOptions::default()
    };
    let error = Registry::on_kafka("127.0.0.1:1", options).err().unwrap();
    assert!(
        matches!(error, RegistryError::Store(ref m) if m.contains("127.0.0.1:1")),
        "{error}"
    );
}
