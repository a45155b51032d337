"""The version policy: its text forms, its refusals, how many versions it serves and which
versions it tries (the repository's use of it: tests/serving/test_repository.py)."""

import pytest

from tfnn.serving.policy import Policy


@pytest.mark.parametrize(
    "text, policy",
    [
        ("latest", Policy("latest", 1)),
        ("latest:1", Policy("latest", 1)),
        ("latest:3", Policy("latest", 3)),
        ("specific:3,1,3", Policy("specific", versions=(1, 3))),
        # Sorted, not in a set's order (which for these two is 2^40 first).
        ("specific:1099511627776,5", Policy("specific", versions=(5, 2**40))),
        ("all", Policy("all")),
    ],
)
def test_a_policy_is_read_from_its_text(text, policy):
    assert Policy.parse(text) == policy


@pytest.mark.parametrize(
    "text, message",
    [
        ("latest:0", "Expected latest:N with N >= 1. Received: latest:0"),
        ("latest:x", "Expected latest:<positive integer>. Received: 'latest:x'"),
        ("latest:-1", "Expected latest:<positive integer>. Received: 'latest:-1'"),
        ("latest:\u0662", "Expected latest:<positive integer>. Received: 'latest:\u0662'"),
        ("specific:", "Expected specific:<version>,<version>,…. Received: 'specific:'"),
        ("specific:1,a", "Expected specific:<version>,<version>,…. Received: 'specific:1,a'"),
        ("all:2", "Expected latest[:N], specific:V,… or all. Received: 'all:2'"),
        ("new", "Expected latest[:N], specific:V,… or all. Received: 'new'"),
    ],
)
def test_a_bad_policy_is_refused_naming_it_and_the_forms(text, message):
    with pytest.raises(ValueError) as error:
        Policy.parse(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ("newest",),
            "Expected a policy kind in ('latest', 'specific', 'all'). Received: 'newest'",
        ),
        (("latest", 0), "Expected latest:N with N >= 1. Received: latest:0"),
        (("specific",), "Expected at least one version for specific:V,…"),
    ],
)
def test_a_bad_policy_is_refused_when_built_directly(arguments, message):
    with pytest.raises(ValueError) as error:
        Policy(*arguments)
    assert str(error.value) == message


def test_a_policy_says_how_many_versions_it_serves_and_which_to_try():
    assert [Policy.parse(text).most for text in ("latest", "latest:2", "specific:1,3")] == [1, 2, 2]
    assert Policy.parse("all").most == float("inf")
    assert Policy.parse("specific:1,3").candidates([4, 3, 2, 1]) == [3, 1]
    assert Policy.parse("latest:2").candidates([4, 3, 2, 1]) == [4, 3, 2, 1]  # until 2 load
    assert Policy.parse("all").candidates([4, 3]) == [4, 3]
