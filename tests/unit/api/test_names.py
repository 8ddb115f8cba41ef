"""Names derived from a monitor: valid and unique for every valid monitor name."""

from __future__ import annotations

import random
import re

import pytest

from modelmon.api.names import (
    HASH_CHARS,
    bounded_name,
    monitor_label,
    rule_name,
)
from modelmon.outputs.retraining import job_name

# The API server's own grammars (k8s.io/apimachinery/pkg/util/validation).
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN = re.compile(rf"{DNS_LABEL}(\.{DNS_LABEL})*")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def valid_subdomain(name: str) -> bool:
    return len(name) <= 253 and SUBDOMAIN.fullmatch(name) is not None


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def random_monitor_name(rng: random.Random, length: int) -> str:
    """A valid DNS subdomain of ``length`` characters, dense in "." and "-" (built so:
    a separator only between alphanumerics, "-" runs allowed, never "." next to "-")."""
    chars: list[str] = []
    for i in range(length):
        last = i == length - 1
        if i == 0 or last or chars[-1] == "." or rng.random() < 0.6:
            chars.append(rng.choice("abz09"))
        elif chars[-1] == "-":
            chars.append(rng.choice("-abz09"))
        else:
            chars.append(rng.choice(".-"))
    name = "".join(chars)
    assert valid_subdomain(name) and len(name) == length, name
    return name


def test_names_that_fit_are_unchanged() -> None:
    assert rule_name("breast-cancer") == "modelmon-breast-cancer"
    assert monitor_label("breast-cancer") == "breast-cancer"
    assert monitor_label("a" * 63) == "a" * 63
    assert rule_name("a" * 244) == "modelmon-" + "a" * 244  # exactly 253


def test_the_two_long_names_of_the_issue_get_two_rules() -> None:
    shared = "m" * 244
    first, second = shared + "-aaaaaaa", shared + "-bbbbbbb"  # 252 characters each
    assert len(first) == len(second) == 252
    assert f"modelmon-{first}"[:253] == f"modelmon-{second}"[:253]  # the old cut collided
    a, b = rule_name(first), rule_name(second)
    assert a != b and valid_subdomain(a) and valid_subdomain(b)
    assert monitor_label(first) != monitor_label(second)


def test_a_cut_ending_in_a_dot_or_dash_is_moved_back_to_a_letter() -> None:
    # The first 63 characters end in "." (the 422 of the issue) or "-".
    for sep in ".-":
        name = "a" * 62 + sep + "b" * 40
        assert not valid_label_value(name[:63])
        label = monitor_label(name)
        assert valid_label_value(label), label
        assert label.startswith("a" * 51) and re.fullmatch(r"a+-[0-9a-f]{10}", label)
    # Several separators in a row at the cut all go; the rule name's cut (242 characters,
    # "modelmon-" included) on a dot.
    name = "a" * 50 + "---" + "b" * 40
    assert re.fullmatch(r"a{50}-[0-9a-f]{10}", monitor_label(name))
    assert valid_label_value(monitor_label(name))
    name = "a" * 232 + "." + "b" * 20
    assert ("modelmon-" + name)[:242].endswith(".")
    assert valid_subdomain(rule_name(name)) and ".-" not in rule_name(name)


@pytest.mark.parametrize("length", [1, 2, 50, 62, 63, 64, 65, 120, 243, 244, 245, 252, 253])
def test_every_valid_name_gives_valid_distinct_stable_names(length: int) -> None:
    rng = random.Random(length)
    names = {random_monitor_name(rng, length) for _ in range(300)}
    rules = {n: rule_name(n) for n in names}
    labels = {n: monitor_label(n) for n in names}
    for n in names:
        assert valid_subdomain(rules[n]), rules[n]
        assert valid_label_value(labels[n]), labels[n]
        assert rule_name(n) == rules[n] and monitor_label(n) == labels[n]  # stable
        # Retraining Jobs carry the label and a name of at most 63 characters.
        job = job_name(n, "0b7d3c1e-uid", None)
        assert len(job) <= 63 and valid_subdomain(job), job
    assert len(set(rules.values())) == len(names)
    assert len(set(labels.values())) == len(names)


def test_names_sharing_a_long_prefix_differ_in_every_character_position() -> None:
    base = "x" * 252
    names = {base[:i] + "y" + base[i + 1:] for i in range(252)}
    assert len({rule_name(n) for n in names}) == 252
    assert len({monitor_label(n) for n in names}) == 252


def test_bounded_name_limits() -> None:
    assert bounded_name("abc", 11) == "abc"
    cut = bounded_name("a" * 20, 12)
    assert len(cut) == 12 and cut.startswith("a-")
    assert re.fullmatch(r"[0-9a-f]{10}", bounded_name("." * 20, 12))  # nothing kept
    assert len(bounded_name("abcdefghijk" * 30, 253)) == 253
    assert len(bounded_name("a" * 300, 63)) == 63
    assert bounded_name("a" * 300, 63)[-HASH_CHARS:] != bounded_name("a" * 301, 63)[-HASH_CHARS:]
    with pytest.raises(ValueError, match="must exceed"):
        bounded_name("abc", HASH_CHARS)
