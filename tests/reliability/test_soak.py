"""The quick soak (CI): a few hundred sends under a 20 % fault rate, every
fault kind of the sandbox included (drip and endless bodies too); the long
run is `python tests/reliability/soak.py --sends 5000 --rate 0.2` (README)."""
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
    # answers cut by the deadline (drip) or the body bound (endless) happened,
    # and their sends were settled by resending with the same retry key
    assert table["of which drip"] > 0 and table["of which endless"] > 0
    assert table["resent with the same retry_key"] > 0
