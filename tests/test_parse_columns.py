"""KSQL column declarations into pyarrow schemas, and the errors for bad ones (no broker needed)."""

from __future__ import annotations

import kafkaml
import pyarrow as pa
import pytest

TALK_DECLARATIONS = (
    ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
    + [f"V{i} double" for i in range(1, 29)]
    + ["Amount double", "Class string"]
)


def test_talk_declarations_keep_names_and_order() -> None:
    schema = kafkaml.parse_columns(TALK_DECLARATIONS)
    assert isinstance(schema, pa.Schema)
    assert schema.names == ["Id", "Timestamp", "User", "Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
    assert schema.field("Id").type == pa.int64()
    assert schema.field("Timestamp").type == pa.string()
    assert schema.field("Time").type == pa.int32()
    assert schema.field("V17").type == pa.float64()
    assert schema.field("Class").type == pa.string()
    assert all(field.nullable for field in schema)


def test_one_string_with_nested_types_and_ksql_markers() -> None:
    schema = kafkaml.parse_columns(
        "ID BIGINT KEY, `my price` DECIMAL(10, 2), TAGS ARRAY<STRING>, "
        "ATTRS MAP<STRING, INT>, LOC STRUCT<LAT DOUBLE, `lon` DOUBLE>, T TIMESTAMP, RAW BYTES HEADER('trace')"
    )
    assert schema.names == ["ID", "my price", "TAGS", "ATTRS", "LOC", "T", "RAW"]
    assert schema.field("my price").type == pa.decimal128(10, 2)
    assert schema.field("TAGS").type == pa.list_(pa.string())
    assert schema.field("ATTRS").type == pa.map_(pa.string(), pa.int32())
    assert schema.field("LOC").type == pa.struct([("LAT", pa.float64()), ("lon", pa.float64())])
    assert schema.field("T").type == pa.timestamp("ms")
    assert schema.field("RAW").type == pa.binary()


@pytest.mark.parametrize(
    ("declarations", "expected"),
    [
        # the bad token is named as written, with where it is
        (["Id bigint", "V1 doubel"], ['unknown KSQL type "doubel"', '"V1 doubel"']),
        ("ID BIGINTT", ['unknown KSQL type "BIGINTT"', "character 4"]),
        ("A INT B INT", ["expected ','", 'found "B"', "character 7"]),
        ("X ARRAY<INT", ["expected '>'", "found the end"]),
        ("X MAP<STRING INT>", ["expected ','", 'found "INT"']),
        ("X STRUCT<A INT", ["expected '>'", "found the end"]),
        ("X DECIMAL(a, 2)", ["expected a number", 'found "a"']),
        ("X DECIMAL(50, 2)", ["DECIMAL(50, 2)", "out of range"]),
        ("X", ["expected a type", "found the end"]),
        ("X INT, ;", ["expected a name", 'found ";"']),
        ("A INT, a INT, A DOUBLE", ['column "A" is declared twice']),
        ("`unterminated INT", ["unterminated quoted name"]),
        ("", ["no columns declared"]),
        ([], ["no columns declared"]),
    ],
)
def test_bad_declarations_raise_schema_error_naming_the_problem(declarations, expected: list[str]) -> None:
    with pytest.raises(kafkaml.SchemaError) as caught:
        kafkaml.parse_columns(declarations)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert isinstance(caught.value, kafkaml.KafkaMLError)


@pytest.mark.parametrize("declarations", [123, ["a int", 5], None])
def test_declarations_of_the_wrong_type_are_a_config_error(declarations) -> None:
    with pytest.raises(kafkaml.ConfigError):
        kafkaml.parse_columns(declarations)


def test_consumer_rejects_bad_declarations_before_connecting() -> None:
    # The schema is checked before the broker is contacted: the address is never dialled.
    with pytest.raises(kafkaml.SchemaError, match='unknown KSQL type "doubel"'):
        kafkaml.Consumer("127.0.0.1:1", "t", format="csv", schema="V1 doubel", timeout=1)
