use super::*;

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

/// Registers through the same decide-then-apply path the registry uses, in memory.
fn register(state: &mut State, subject: &str, schema: &str) -> Result<(u32, u32), RegistryError> {
    register_with(state, subject, schema, &[])
}

fn register_with(
    state: &mut State,
    subject: &str,
    schema: &str,
    references: &[Reference],
) -> Result<(u32, u32), RegistryError> {
    match state.prepare_registration("test".into(), subject, schema, references, false)? {
        Registration::Existing { id, version } => Ok((id, version)),
        Registration::Claim(record) => {
            assert!(state.apply(&record), "a fresh claim is accepted");
            let Record::Claim { schema, .. } = &record else {
                unreachable!()
            };
            Ok(state
                .registered(subject, schema, references)
                .map(|(v, id)| (id, v))
                .unwrap())
        }
    }
}

fn claim(subject: &str, version: u32, id: u32, schema: &str) -> Record {
    Record::Claim {
        claim: format!("{subject}-{version}-{id}"),
        subject: subject.into(),
        version,
        id,
        schema: schema.into(),
        references: Vec::new(),
    }
}

#[test]
fn the_same_schema_gets_the_same_id_in_every_subject_and_whitespace_does_not_matter() {
    let mut state = State::default();
    assert_eq!(register(&mut state, "a-value", V1).unwrap(), (1, 1));
    let spaced = V1.replace(',', " ,\n ");
    assert_eq!(register(&mut state, "b-value", &spaced).unwrap(), (1, 1));
    assert_eq!(register(&mut state, "a-value", &spaced).unwrap(), (1, 1)); // already there
    assert_eq!(register(&mut state, "a-value", V2_DEFAULT).unwrap(), (2, 2));
    assert_eq!(state.subjects(false, ""), ["a-value", "b-value"]);
    assert_eq!(state.versions("a-value", false).unwrap(), [1, 2]);
}

#[test]
fn compatibility_levels_follow_avro_resolution() {
    let mut state = State::default();
    register(&mut state, "s", V1).unwrap();
    // BACKWARD (the default): a new field needs a default.
    let refused = register(&mut state, "s", V2_NO_DEFAULT).unwrap_err();
    assert_eq!(refused.error_code(), 409);
    assert_eq!(register(&mut state, "s", V2_DEFAULT).unwrap().1, 2);
    // FORWARD: old readers must read new data; dropping a field without default breaks it.
    state.apply(&Record::Config {
        subject: Some("t".into()),
        level: Some(Compatibility::Forward),
    });
    register(&mut state, "t", V2_NO_DEFAULT).unwrap();
    assert_eq!(register(&mut state, "t", V1).unwrap_err().error_code(), 409);
    // NONE takes anything.
    state.apply(&Record::Config {
        subject: Some("t".into()),
        level: Some(Compatibility::None),
    });
    register(&mut state, "t", r#""string""#).unwrap();
}

#[test]
fn transitive_levels_check_every_live_version() {
    let mut state = State::default();
    let int_a = V1;
    let long_a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    let string_a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    state.apply(&Record::Config {
        subject: Some("s".into()),
        level: Some(Compatibility::Backward),
    });
    register(&mut state, "s", int_a).unwrap();
    register(&mut state, "s", long_a).unwrap();
    // BACKWARD checks only the latest (long): float can read long but this is string, refused
    assert_eq!(
        register(&mut state, "s", string_a)
            .unwrap_err()
            .error_code(),
        409
    );
    let float_a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"float"}]}"#;
    register(&mut state, "s", float_a).unwrap();
    // Transitive: double reads int, long and float: fine; but reading back to int is needed
    // for FORWARD_TRANSITIVE, which fails.
    let double_a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"double"}]}"#;
    state.apply(&Record::Config {
        subject: Some("s".into()),
        level: Some(Compatibility::FullTransitive),
    });
    let refused = register(&mut state, "s", double_a).unwrap_err();
    assert!(refused.to_string().contains("version 1"), "{refused}");
    state.apply(&Record::Config {
        subject: Some("s".into()),
        level: Some(Compatibility::BackwardTransitive),
    });
    register(&mut state, "s", double_a).unwrap();
}

#[test]
fn the_first_claim_in_the_log_wins_and_later_conflicts_are_rejected() {
    let mut state = State::default();
    assert!(state.apply(&claim("s", 1, 1, V1)));
    // Same version of the same subject, another schema: taken.
    assert!(!state.apply(&claim("s", 1, 2, V2_DEFAULT)));
    // Same id for another schema: taken.
    assert!(!state.apply(&claim("t", 1, 1, V2_DEFAULT)));
    // The same schema under another id: it already has one.
    assert!(!state.apply(&claim("t", 1, 5, V1)));
    // A version that is not the next one.
    assert!(!state.apply(&claim("s", 3, 2, V2_DEFAULT)));
    assert!(state.apply(&claim("t", 1, 1, V1)));
    assert_eq!(state.claims_rejected(), 4);
    assert_eq!(state.max_id(), 1);
}

#[test]
fn deletions_never_change_which_claims_win() {
    // Replaying with a deletion moved later (as compaction may do) gives the same verdicts.
    let records = [
        claim("s", 1, 1, V1),
        Record::DeleteVersion {
            subject: "s".into(),
            version: 1,
            permanent: false,
        },
        claim("s", 2, 1, V1),
        claim("s", 2, 2, V2_DEFAULT),
    ];
    let mut in_order = State::default();
    let verdicts: Vec<bool> = records.iter().map(|r| in_order.apply(r)).collect();
    let mut moved = State::default();
    let moved_verdicts: Vec<bool> = [&records[0], &records[2], &records[3], &records[1]]
        .iter()
        .map(|r| moved.apply(r))
        .collect();
    assert_eq!(verdicts, [true, true, true, false]);
    assert_eq!(moved_verdicts, [true, true, false, true]);
    assert_eq!(
        in_order.versions("s", true).unwrap(),
        moved.versions("s", true).unwrap()
    );
    assert_eq!(in_order.versions("s", false).unwrap(), [2]);
}

#[test]
fn soft_and_permanent_deletion_follow_confluents_rules() {
    let mut state = State::default();
    register(&mut state, "s", V1).unwrap();
    register(&mut state, "s", V2_DEFAULT).unwrap();
    let err = state
        .prepare_version_deletion("s", VersionSpec::Number(1), true)
        .unwrap_err();
    assert_eq!(err.error_code(), 40407); // permanent needs a soft delete first
    let (record, version) = state
        .prepare_version_deletion("s", VersionSpec::Number(1), false)
        .unwrap();
    assert_eq!(version, 1);
    state.apply(&record);
    assert_eq!(state.versions("s", false).unwrap(), [2]);
    assert_eq!(state.versions("s", true).unwrap(), [1, 2]);
    assert_eq!(
        state
            .version("s", VersionSpec::Number(1), false)
            .unwrap_err()
            .error_code(),
        40402
    );
    assert_eq!(
        state.version("s", VersionSpec::Number(1), true).unwrap().id,
        1
    );
    let again = state
        .prepare_version_deletion("s", VersionSpec::Number(1), false)
        .unwrap_err();
    assert_eq!(again.error_code(), 40406);

    assert_eq!(
        state
            .prepare_subject_deletion("s", true)
            .unwrap_err()
            .error_code(),
        40405
    );
    let (records, versions) = state.prepare_subject_deletion("s", false).unwrap();
    assert_eq!(versions, [2]);
    records.iter().for_each(|r| {
        state.apply(r);
    });
    assert_eq!(state.versions("s", false).unwrap_err().error_code(), 40401);
    assert_eq!(
        state
            .prepare_subject_deletion("s", false)
            .unwrap_err()
            .error_code(),
        40404
    );
    let (records, versions) = state.prepare_subject_deletion("s", true).unwrap();
    assert_eq!(versions, [1, 2]);
    records.iter().for_each(|r| {
        state.apply(r);
    });
    assert!(state.subjects(true, "").is_empty());
    // Data written with the ids stays readable, and neither ids nor versions are reused.
    assert_eq!(state.schema(2).unwrap().id, 2);
    assert_eq!(register(&mut state, "s", r#""string""#).unwrap(), (3, 3));
}

#[test]
fn references_resolve_and_cannot_point_at_what_does_not_exist() {
    let mut state = State::default();
    let address = r#"{"type":"record","name":"Address","namespace":"x","fields":[{"name":"city","type":"string"}]}"#;
    let person = r#"{"type":"record","name":"Person","namespace":"x","fields":[{"name":"home","type":"x.Address"}]}"#;
    register(&mut state, "address", address).unwrap();
    let reference = Reference {
        name: "x.Address".into(),
        subject: "address".into(),
        version: 1,
    };
    let (id, _) = register_with(
        &mut state,
        "person",
        person,
        std::slice::from_ref(&reference),
    )
    .unwrap();
    assert_eq!(
        state.schema(id).unwrap().references,
        std::slice::from_ref(&reference)
    );
    // Without the reference the type is unknown.
    assert_eq!(
        register(&mut state, "person2", person)
            .unwrap_err()
            .error_code(),
        42201
    );
    // A reference to a version that does not exist (its own next version, say).
    let missing = Reference {
        name: "x.Person".into(),
        subject: "person".into(),
        version: 2,
    };
    let err = register_with(&mut state, "person", person, &[missing]).unwrap_err();
    assert_eq!(err.error_code(), 42201);
    // A referenced version cannot be deleted while in use.
    let err = state
        .prepare_version_deletion("address", VersionSpec::Number(1), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 42206);
}

#[test]
fn lookups_answer_with_the_registered_version_or_the_right_error() {
    let mut state = State::default();
    register(&mut state, "s", V1).unwrap();
    let found = state.lookup("s", V1, &[], false, false).unwrap();
    assert_eq!((found.id, found.version), (1, 1));
    assert_eq!(
        state
            .lookup("s", V2_DEFAULT, &[], false, false)
            .unwrap_err()
            .error_code(),
        40403
    );
    assert_eq!(
        state
            .lookup("nope", V1, &[], false, false)
            .unwrap_err()
            .error_code(),
        40401
    );
    assert_eq!(
        state
            .lookup("s", "{bad", &[], false, false)
            .unwrap_err()
            .error_code(),
        42201
    );
    assert_eq!(state.schema(99).unwrap_err().error_code(), 40403);
    assert_eq!(VersionSpec::parse("0").unwrap_err().error_code(), 42202);
    assert_eq!(VersionSpec::parse("x").unwrap_err().error_code(), 42202);
    assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
    assert_eq!(
        state.level(Some("s"), false).unwrap_err().error_code(),
        40408
    );
    assert_eq!(
        state.level(Some("s"), true).unwrap(),
        Compatibility::Backward
    );
}

#[test]
fn normalize_matches_schemas_that_differ_only_in_how_names_are_written() {
    let mut state = State::default();
    let short =
        r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"int"}]}"#;
    let full = r#"{"type":"record","name":"n.R","fields":[{"name":"a","type":"int"}]}"#;
    register(&mut state, "s", short).unwrap();
    assert_eq!(
        state
            .lookup("s", full, &[], false, false)
            .unwrap_err()
            .error_code(),
        40403
    );
    assert_eq!(state.lookup("s", full, &[], true, false).unwrap().id, 1);
}

#[test]
fn readonly_mode_refuses_registrations() {
    let mut state = State::default();
    state.apply(&Record::Mode {
        subject: None,
        mode: Some(Mode::ReadOnly),
    });
    assert_eq!(
        register(&mut state, "s", V1).unwrap_err().error_code(),
        42205
    );
    state.apply(&Record::Mode {
        subject: None,
        mode: None,
    });
    register(&mut state, "s", V1).unwrap();
}
