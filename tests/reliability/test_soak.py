"""The quick soak (CI): a few hundred sends under a 20 % fault rate; the
long run is `python tests/reliability/soak.py --sends 5000` (README)."""
from soak import format_table, run_soak


def test_quick_soak_loses_nothing_and_duplicates_nothing():
    table, problems = run_soak(sends=400, rate=0.2, seed=11)
    print(format_table(table))
    assert problems == []
    assert table["duplicates"] == table["lost"] == table["misreported"] == 0
    assert table["sends"] == 400
    assert table["delivered"] + table["failed and reported"] == table["sends"]
    assert table["faults injected"] > 40 and table["retries"] > 10  # the faults really happened
    assert table["of which outcome unknown"] > 0  # and included the duplicate trap
