"""The talk's data files through a real broker: the KSQL declarations, CSV and JSON."""

from __future__ import annotations

from pathlib import Path

import kafkaml
import numpy as np
import pyarrow.csv as pacsv

# The talk's KSQL column declarations for creditcard_extended.csv, in its list form.
TALK_DECLARATIONS = (
    ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
    + [f"V{i} double" for i in range(1, 29)]
    + ["Amount double", "Class string"]
)
FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]


def test_creditcard_extended_csv_with_the_talks_declarations(bootstrap: str, new_topic, talk_fixtures: Path) -> None:
    path = talk_fixtures / "creditcard_extended.csv"
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, path, format="csv", schema=TALK_DECLARATIONS) == 10

    table = kafkaml.read_topic(bootstrap, topic, format="csv", schema=TALK_DECLARATIONS)
    schema = kafkaml.parse_columns(TALK_DECLARATIONS)
    # The file has no header. Row 4 has an empty Class field: KSQL's DELIMITED format (and
    # kafkaml's csv) reads an empty field as null, so pyarrow is asked to do the same.
    expected = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=schema.names),
        convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True),
    )
    assert expected.num_rows == 10 and expected.column("Class").null_count == 1
    assert table.schema == schema
    assert table.num_rows == 10
    assert table.sort_by("Id").equals(expected)
    assert table.sort_by("Id").column("User").to_pylist()[:3] == ["Kai", "Hans", "Kai"]


def test_creditcard_small_csv_in_one_write_as_json(bootstrap: str, new_topic, talk_fixtures: Path) -> None:
    path = talk_fixtures / "creditcard_small.csv"
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, path, format="json") == 999

    table = kafkaml.read_topic(bootstrap, topic)
    expected = pacsv.read_csv(path)
    assert table.num_rows == 999
    assert table.schema.names == expected.schema.names  # the file's column order, not sorted names
    assert table.schema == expected.schema
    every_column = [(name, "ascending") for name in expected.column_names]
    assert table.sort_by(every_column).equals(expected.sort_by(every_column))

    # and the talk's feature matrix
    features = kafkaml.to_numpy(table, columns=FEATURES, dtype="float32")
    reference = np.load(talk_fixtures / "creditcard_small_x.npy")
    assert features.shape == reference.shape == (999, 30)
    order = np.lexsort(features.T[::-1])
    reference_order = np.lexsort(reference.T[::-1])
    assert np.array_equal(features[order], reference[reference_order])
