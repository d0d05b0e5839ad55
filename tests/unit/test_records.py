"""The bulk lookup's direct JSON builder says exactly what a Record says."""

from hypothesis import given
from hypothesis import strategies as st

from hashfed.federation.merged.records import build_record, record_json_obj

NAMES = {1: ("a.example", "default"), 2: ("a.example", "csam"), 3: ("b.example", "default"), 4: ("ngo.example", "x")}

label_sets = st.lists(st.sampled_from(["csam", "ncmec:a1", "b:x", "iwf:7"]), unique=True, max_size=3).map(
    lambda labels: ";".join(sorted(labels))
)
row = st.tuples(
    st.sampled_from(sorted(NAMES)),
    st.sampled_from([0, 1]),
    label_sets,
    st.sampled_from([None, "true_positive", "false_positive"]),
    st.sampled_from([0, 1]),
).filter(lambda r: not (r[1] and r[4]))  # an active add is never also retracted
rows = st.lists(row, min_size=1, max_size=4, unique_by=lambda r: r[0])


@given(rows)
def test_record_json_obj_equals_the_records_json(rows):
    expected = build_record("md5", "0" * 32, rows, NAMES.__getitem__).to_json_obj()
    assert record_json_obj("md5", "0" * 32, rows, NAMES.__getitem__) == expected
