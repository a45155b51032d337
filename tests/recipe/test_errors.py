"""tfnn.recipe.errors: ItemsFailed's failures and its one line per failed item."""

from tfnn.recipe import errors


def test_items_failed_says_one_line_per_item_in_the_order_given():
    """Catches the lines joined by something other than a newline, or a line without the
    item's name or its error."""
    failures = {"member-2": "ValueError: bad", "member-0": "worker killed by SIGKILL"}
    failed = errors.ItemsFailed(failures)
    assert str(failed) == (
        "member-2 failed: ValueError: bad\nmember-0 failed: worker killed by SIGKILL"
    )
    assert failed.failures == failures


def test_items_failed_keeps_its_own_copy_of_the_failures():
    """Catches `failures` kept as the caller's dict, which the caller may go on changing."""
    failures = {"a": "x"}
    failed = errors.ItemsFailed(failures)
    failures["b"] = "y"
    assert failed.failures == {"a": "x"}


def test_items_failed_takes_pairs_as_well_as_a_dict():
    failed = errors.ItemsFailed([("a", "x")])
    assert failed.failures == {"a": "x"} and str(failed) == "a failed: x"
