import pytest

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule, parse_rule, parse_rules


@pytest.mark.parametrize(
    ("spec", "kind", "angle", "canonical"),
    [
        ("bp", "bp", None, "bp"),
        ("FA", "fa", None, "fa"),
        ("ifa", "ifa", 0.0, "ifa"),
        ("ifa:0", "ifa", 0.0, "ifa"),
        ("ifa:45", "ifa", 45.0, "ifa:45"),
        ("ifa:22.5", "ifa", 22.5, "ifa:22.5"),
        ("ifa:180", "ifa", 180.0, "ifa:180"),
    ],
)
def test_parse_rule(spec, kind, angle, canonical):
    rule = parse_rule(spec)
    assert (rule.kind, rule.angle_deg, rule.spec) == (kind, angle, canonical)
    assert rule.uses_feedback_weights == (kind != "bp")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sgd", "unknown learning rule 'sgd'"),
        ("fa:30", "unknown learning rule 'fa:30'"),
        ("ifa:abc", "bad angle in rule 'ifa:abc'"),
        ("ifa:181", "outside [0, 180]"),
        ("ifa:-1", "outside [0, 180]"),
        ("ifa:nan", "outside [0, 180]"),
    ],
)
def test_bad_rule_specs_are_clear_errors(spec, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rule(spec)


def test_parse_rules_list_and_duplicates():
    assert [r.spec for r in parse_rules("bp, fa,ifa,ifa:30")] == ["bp", "fa", "ifa", "ifa:30"]
    assert parse_rules(["ifa:15"]) == [Rule("ifa", 15.0)]
    with pytest.raises(InputError, match="given twice"):
        parse_rules("ifa,ifa:0")
    with pytest.raises(InputError, match="no learning rule"):
        parse_rules(" , ")
