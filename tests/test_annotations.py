"""Annotations loading and validation, filters and labels on annotation tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from jaxwsi.dataset.annotations import is_blank, load_annotations
from jaxwsi.dataset.errors import AnnotationError, DatasetError
from jaxwsi.dataset.filters import apply_filters, normalize_filters
from jaxwsi.dataset.labels import category_of_slides, category_text, slide_labels


def write_csv(tmp_path, text: str):
    path = tmp_path / "annotations.csv"
    path.write_text(text)
    return path


def test_csv_is_read_as_text_and_names_are_stripped(tmp_path):
    path = write_csv(tmp_path, "patient,slide,grade\n P1 ,s1 ,01\nP2,s2,2\n")
    table = load_annotations(path)
    assert list(table["patient"]) == ["P1", "P2"]
    assert list(table["slide"]) == ["s1", "s2"]
    assert list(table["grade"]) == ["01", "2"]  # text: the leading zero survives


def test_dataframe_input_is_copied():
    frame = pd.DataFrame({"patient": ["P1"], "slide": ["s1"], "y": [1.5]})
    table = load_annotations(frame)
    table.loc[0, "y"] = 9.0
    assert frame.loc[0, "y"] == 1.5


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path, "patient,label\nP1,a\n")
    with pytest.raises(AnnotationError, match=r"missing required column\(s\) \['slide'\]"):
        load_annotations(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AnnotationError, match="nope.csv"):
        load_annotations(tmp_path / "nope.csv")


def test_duplicate_slide_rows_name_slide_and_lines(tmp_path):
    path = write_csv(tmp_path, "patient,slide\nP1,s1\nP2,s2\nP3,s1\n")
    with pytest.raises(AnnotationError, match=r"duplicate slide rows: 's1' on lines \[2, 4\]"):
        load_annotations(path)


def test_blank_slide_or_patient_names_the_lines(tmp_path):
    path = write_csv(tmp_path, "patient,slide\nP1,s1\nP2,\n")
    with pytest.raises(AnnotationError, match=r"blank 'slide': lines \[3\]"):
        load_annotations(path)
    frame = pd.DataFrame({"patient": ["P1", None], "slide": ["s1", "s2"]})
    with pytest.raises(AnnotationError, match=r"blank 'patient': lines \[3\]"):
        load_annotations(frame)


@pytest.mark.parametrize("value", [None, math.nan, "", "  ", pd.NA])
def test_blank_values(value):
    assert is_blank(value)


@pytest.mark.parametrize("value", ["0", 0, 0.0, "a", "none of them", "NA", "n/a", "None", "null"])
def test_present_values(value):
    assert not is_blank(value)


TABLE = pd.DataFrame(
    {
        "patient": ["P1", "P1", "P2", "P3", "P4"],
        "slide": ["a1", "a2", "b1", "c1", "d1"],
        "kind": ["tumor", "tumor", "normal", "tumor", "stroma"],
        "age": ["61.5", "61.5", "40", "55", "70.25"],
        "site": ["A", "A", "B", "", "B"],
    }
)


def test_filters_keep_allowed_values_and_count_removed(caplog):
    caplog.set_level("INFO")
    kept = apply_filters(TABLE, normalize_filters({"kind": ["tumor", "stroma"]}))
    assert list(kept["slide"]) == ["a1", "a2", "c1", "d1"]
    assert "removed 1 of 5 slide(s)" in caplog.text
    one = apply_filters(TABLE, normalize_filters({"kind": "normal"}))
    assert list(one["slide"]) == ["b1"]


def test_filters_compare_as_text():
    kept = apply_filters(TABLE, normalize_filters({"age": [40, 55]}))
    assert list(kept["slide"]) == ["b1", "c1"]


def test_filter_blank_removes_blank_rows(caplog):
    caplog.set_level("INFO")
    kept = apply_filters(TABLE, {}, ["site"])
    assert list(kept["slide"]) == ["a1", "a2", "b1", "d1"]
    assert "filter_blank 'site' removed 1 of 5" in caplog.text


def test_filter_on_a_missing_column_is_an_error():
    with pytest.raises(DatasetError, match="column 'grade' is not in the annotations"):
        apply_filters(TABLE, normalize_filters({"grade": [1]}))


def test_categorical_labels_index_sorted_unique_values():
    labels, unique = slide_labels(TABLE, "kind")
    assert unique == ["normal", "stroma", "tumor"]
    assert labels == {"a1": 2, "a2": 2, "b1": 0, "c1": 2, "d1": 1}


def test_continuous_labels_are_floats():
    labels, unique = slide_labels(TABLE, "age", use_float=True)
    assert labels == {"a1": 61.5, "a2": 61.5, "b1": 40.0, "c1": 55.0, "d1": 70.25}
    assert unique == []


def test_several_headers_give_one_label_per_header():
    labels, unique = slide_labels(TABLE, ["kind", "age"], use_float={"age": True})
    assert unique == {"kind": ["normal", "stroma", "tumor"], "age": []}
    assert labels["b1"] == [0, 40.0]
    assert labels["d1"] == [1, 70.25]


def test_non_numeric_continuous_label_names_the_slide():
    with pytest.raises(DatasetError, match=r"slide a1: 'kind' value 'tumor' is not a number"):
        slide_labels(TABLE, "kind", use_float=True)


def test_blank_labels_name_the_slides():
    with pytest.raises(DatasetError, match=r"1 slide\(s\) have a blank 'site': c1"):
        slide_labels(TABLE, "site")
    nan_table = TABLE.assign(score=[1.0, 1.0, math.nan, 2.0, 3.0])
    with pytest.raises(DatasetError, match=r"blank 'score': b1"):
        slide_labels(nan_table, "score", use_float=True)


def test_conflicting_patient_labels_name_patient_and_slides():
    conflicting = TABLE.assign(kind=["tumor", "normal", "normal", "tumor", "stroma"])
    with pytest.raises(DatasetError, match=r"P1 \(a1=tumor, a2=normal\)"):
        slide_labels(conflicting, "kind")


def test_missing_outcome_column_is_an_error():
    with pytest.raises(DatasetError, match="outcome column 'grade'"):
        slide_labels(TABLE, "grade")


def test_categories_join_header_values():
    categories = category_of_slides(TABLE.iloc[[0, 2, 4]], ["kind", "site"])
    assert categories.to_dict() == {"a1": "tumor-A", "b1": "normal-B", "d1": "stroma-B"}


def test_non_utf8_csv_is_an_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("patient,slide,label\nP1,s1,a\nP2,s2,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(
        AnnotationError, match=r"latin1\.csv: not UTF-8 text \(byte 0xe9 on line 3\)"
    ):
        load_annotations(path)


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffpatient,slide\nP1,s1\n".encode())
    assert list(load_annotations(path).columns) == ["patient", "slide"]


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_csv_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=r"empty\.csv: the file is empty"):
        load_annotations(path)


def test_malformed_csv_is_an_error_naming_the_file(tmp_path):
    path = write_csv(tmp_path, 'patient,slide\nP1,"s1\n')
    with pytest.raises(AnnotationError, match=r"annotations\.csv: cannot read the annotations CSV"):
        load_annotations(path)


def test_na_like_patient_ids_are_ids_not_blanks(tmp_path):
    path = write_csv(
        tmp_path, "patient,slide,label\nNA,s1,None\nNone,s2,null\nnull,s3,n/a\nn/a,s4,\n"
    )
    table = load_annotations(path)
    assert list(table["patient"]) == ["NA", "None", "null", "n/a"]
    assert list(table["label"]) == ["None", "null", "n/a", ""]
    labels, unique = slide_labels(table.iloc[:3], "label")
    assert unique == ["None", "n/a", "null"]
    assert labels == {"s1": 0, "s2": 2, "s3": 1}
    with pytest.raises(DatasetError, match=r"blank 'label': s4"):  # only the empty cell
        slide_labels(table, "label")


def test_numbers_written_two_ways_are_one_category():
    mixed = pd.DataFrame(
        {
            "patient": ["P1", "P2", "P3", "P4", "P5"],
            "slide": ["a", "b", "c", "d", "e"],
            "grade": ["1", "1.0", 2.0, "2", "01"],
        }
    )
    labels, unique = slide_labels(mixed, "grade")
    assert unique == ["01", "1", "2"]  # "01" is written as a code, not as a float
    assert labels == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 0}
    assert category_of_slides(mixed, "grade").to_dict() == {
        "a": "1", "b": "1", "c": "2", "d": "2", "e": "01"
    }  # fmt: skip
    kept = apply_filters(mixed, normalize_filters({"grade": 2}))
    assert list(kept["slide"]) == ["c", "d"]
    same_patient = mixed.assign(patient=["P1", "P1", "P3", "P3", "P5"])
    slide_labels(same_patient, "grade")  # 1 and 1.0 do not conflict


@pytest.mark.parametrize(
    ("value", "text"),
    [("1.0", "1"), (" 3.0 ", "3"), ("0.50", "0.5"), ("1e3", "1000"), ("-2.0", "-2"),
     ("01", "01"), ("7", "7"), ("a", "a"), ("nan", "nan"), (1.0, "1"), (2, "2")],
)  # fmt: skip
def test_category_text(value, text):
    assert category_text(value) == text


def test_unknown_column_suggests_the_closest(tmp_path):
    with pytest.raises(
        DatasetError, match=r"'knd' is not in the annotations \(did you mean 'kind'\?\)"
    ):
        slide_labels(TABLE, "knd")
    with pytest.raises(DatasetError, match=r"did you mean 'site'"):
        apply_filters(TABLE, normalize_filters({"Site": "A"}))
