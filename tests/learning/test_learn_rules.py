import pytest

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule, parse_rule, parse_rules, rule_dirname


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
        ("ifa:angle=30", "ifa", 30.0, "ifa:30"),
        ("DFA", "dfa", None, "dfa"),
        ("usf", "usf", None, "usf"),
        ("brsf", "brsf", None, "brsf"),
        ("frsf", "frsf", None, "frsf"),
        ("kp", "kp", None, "kp"),
        ("kp:decay=0", "kp", None, "kp"),
        ("kp:decay=0.50", "kp", None, "kp:decay=0.5"),
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
        ("fa:30", "rule 'fa' takes no parameters, got 'fa:30'"),
        ("dfa:x=1", "rule 'dfa' takes no parameters"),
        ("kp:lr=1", "bad parameter 'lr=1' in rule 'kp:lr=1'"),
        ("kp:decay", "bad parameter 'decay'"),
        ("kp:decay=abc", "bad decay in rule 'kp:decay=abc'"),
        ("kp:decay=-1", "must be >= 0"),
        ("kp:decay=inf", "expected a finite number"),
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
    assert parse_rules("kp:decay=1, kp") == [Rule("kp", decay=1.0), Rule("kp", decay=0.0)]
    with pytest.raises(InputError, match="given twice"):
        parse_rules("kp,kp:decay=0")
    with pytest.raises(InputError, match="given twice"):
        parse_rules("ifa,ifa:0")
    with pytest.raises(InputError, match="no learning rule"):
        parse_rules(" , ")


def test_rule_properties_say_what_each_rule_keeps_and_reads():
    table = {
        # kind: (direct, reads sign, stores feedback, updates it, redraws it)
        "bp": (False, False, False, False, False),
        "fa": (False, False, True, False, False),
        "ifa": (False, False, True, False, False),
        "dfa": (True, False, True, False, False),
        "usf": (False, True, False, False, False),
        "brsf": (False, True, True, False, True),
        "frsf": (False, True, True, False, False),
        "kp": (False, False, True, True, False),
    }
    for kind, expected in table.items():
        rule = parse_rule(kind)
        got = (
            rule.direct,
            rule.reads_weight_sign,
            rule.stores_feedback,
            rule.updates_feedback,
            rule.redraws_feedback,
        )
        assert got == expected, kind
        assert rule.description
    assert rule_dirname("kp:decay=0.5") == "kp-decay=0.5"


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("bits", [8, 32])
def test_layer_lists_match_named_modules(arch, bits):
    """weight_layers/feedback_layers skip brevitas' internals but list what named_modules does."""
    from hwsim.models import TrainConfig, build_model, feedback_layers, weight_layers
    from hwsim.models.convert import WEIGHT_LAYER_TYPES, FeedbackLayer
    from hwsim.models.training import load_data

    depth = 3 if arch == "mlp" else None
    for algo in ("bp", "fa", "dfa"):
        config = TrainConfig(
            dataset="digits", model=arch, depth=depth, width=16, algo=algo, train_size=100
        ).replace(weight_bits=bits, act_bits=bits)
        model = build_model(config, load_data(config))
        named = list(model.named_modules())
        assert weight_layers(model) == [
            (n, m) for n, m in named if isinstance(m, WEIGHT_LAYER_TYPES)
        ]
        assert feedback_layers(model) == [(n, m) for n, m in named if isinstance(m, FeedbackLayer)]
        assert len(weight_layers(model)) == 3 if arch == "mlp" else len(weight_layers(model)) > 2
        assert len(feedback_layers(model)) == (0 if algo == "bp" else len(weight_layers(model)))
