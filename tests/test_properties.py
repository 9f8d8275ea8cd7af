"""Property tests (hypothesis) for what users type and what corrupts their inputs: ``--set`` parsing
and coercion against real model configs, and the corruption processes of denoising. The data
readers are fuzzed in tests/test_reliability.py."""
import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aezoo.config import build, coerce, coerce_fields, fields_of, parse_overrides
from aezoo.errors import ConfigError
from aezoo.nn.corruption import KINDS, Corruption, parse
from aezoo.registry import get, list_models

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=16)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


# --- --set KEY=VALUE -----------------------------------------------------------------------------------
@FAST
@given(st.dictionaries(KEYS, TEXT, max_size=5))
def test_overrides_split_at_the_first_equals_sign(pairs):
    items = [f" {k} ={v}" for k, v in pairs.items()]
    assert parse_overrides(items) == {k: v.strip() for k, v in pairs.items()}


@FAST
@given(st.text(st.characters(blacklist_characters="=", blacklist_categories=("Cs",)), max_size=20))
def test_an_override_without_equals_is_one_error(item):
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([item])


@FAST
@given(st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(0, 10**6), max_size=6), st.booleans())
def test_typed_values_survive_the_command_line(i, x, widths, flag):
    """What a user writes for a value (its str) coerces back to the value."""
    assert coerce("f", int, str(i)) == i
    assert coerce("f", float, repr(x)) == x
    assert coerce("f", tuple[int, ...], ",".join(map(str, widths))) == tuple(widths)
    assert coerce("f", tuple[int, ...], str(widths)) == tuple(widths)  # [a, b] as YAML or Python writes it
    assert coerce("f", bool, str(flag).lower()) is flag
    assert coerce("f", int | None, "none") is None


CONFIGS = sorted({get(n).Config for n in list_models()}, key=lambda c: c.__name__)


@FAST
@given(st.sampled_from(CONFIGS), st.data())
def test_any_text_for_any_field_is_a_value_or_one_error_naming_the_field(cls, data):
    name = data.draw(st.sampled_from(sorted(fields_of(cls))))
    text = data.draw(TEXT)
    try:
        values = coerce_fields(cls, {name: text})
    except ConfigError as e:
        assert repr(name) in str(e) or name in str(e)
        return
    try:
        config = build(cls, values)
    except ConfigError:  # validation (a range, a combination) names its own field
        return
    assert dataclasses.is_dataclass(config)


# --- corruption processes (Vincent et al. 2008) ----------------------------------------------------------
SHAPES = st.lists(st.integers(1, 12), min_size=1, max_size=3).map(lambda s: (64, *s))


def inputs(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def binomial_ok(count: int, n: int, p: float) -> bool:
    """``count`` successes of ``n`` within 6 standard deviations (and 3 trials) of n p."""
    return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 3


@FAST
@given(SHAPES, st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_mask_zeroes_a_fraction_p_and_keeps_the_rest(shape, p, seed):
    x = inputs(shape, seed) + 0.01  # no zeros before masking
    x_tilde = Corruption("mask", p)(x, generator=torch.Generator().manual_seed(seed))
    assert x_tilde.shape == x.shape and x_tilde.dtype == x.dtype
    zero = x_tilde == 0
    assert torch.equal(x_tilde[~zero], x[~zero])
    assert binomial_ok(int(zero.sum()), x.numel(), p)


@FAST
@given(SHAPES, st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_salt_and_pepper_sets_a_fraction_p_to_0_or_1(shape, p, seed):
    x = inputs(shape, seed) * 0.98 + 0.01  # strictly inside (0, 1)
    x_tilde = Corruption("salt_pepper", p)(x, generator=torch.Generator().manual_seed(seed))
    hit = x_tilde != x
    assert bool(((x_tilde[hit] == 0) | (x_tilde[hit] == 1)).all())
    assert 0 <= float(x_tilde.min()) and float(x_tilde.max()) <= 1
    assert binomial_ok(int(hit.sum()), x.numel(), p)
    if hit.sum() > 200:  # a fair coin between salt and pepper
        assert binomial_ok(int((x_tilde[hit] == 1).sum()), int(hit.sum()), 0.5)


@FAST
@given(SHAPES, st.floats(0.01, 10), st.integers(0, 2**31 - 1))
def test_gaussian_noise_has_standard_deviation_sigma(shape, sigma, seed):
    x = inputs(shape, seed)
    noise = (Corruption("gaussian", sigma)(x, generator=torch.Generator().manual_seed(seed)) - x) / sigma
    n = noise.numel()
    assert abs(float(noise.mean())) < 6 / math.sqrt(n)
    assert abs(float(noise.var()) - 1) < 6 * math.sqrt(2 / n) + 1e-3


@FAST
@given(st.sampled_from(KINDS), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_a_corruption_is_a_function_of_its_generator(kind, level, seed):
    x = inputs((64, 5), seed)
    q = parse(f"{kind}:{level!r}")
    assert q == Corruption(kind, level)
    a = q(x, generator=torch.Generator().manual_seed(seed))
    b = q(x, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    if level == 0:
        assert torch.equal(a, x)


@FAST
@given(st.sampled_from(KINDS), st.floats(allow_nan=True, allow_infinity=True))
def test_a_level_out_of_range_is_one_error(kind, level):
    ok = math.isfinite(level) and level >= 0 and (kind == "gaussian" or level <= 1)
    if ok:
        assert parse(f"{kind}:{level!r}").level == level
    else:
        with pytest.raises(ConfigError, match="level"):
            parse(f"{kind}:{level!r}")
