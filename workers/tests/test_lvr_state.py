"""The Python LVR state machine follows the same cases as the engine's (libs/engine/test/decoding.test.ts)."""

import numpy as np
import pytest

from lvr.lvr_state import LvrRule, LvrStateMachine, latent_distance
from lvr.repetition import penalize_seen_logits

START = 10
END = 11


def machine(latent_end=None, **over) -> LvrStateMachine:
    fields = dict(strategy="steps", steps=3, criterion="mse", threshold=0.02, upstream_compat=False,
                  lvr_start_id=START, lvr_end_id=END)
    fields.update(over)
    return LvrStateMachine(LvrRule(**fields), latent_end)


def test_steps_exactly_n_latent_inputs_after_start_then_text():
    sm = machine()
    assert [sm.update(5, 7), sm.update(START, 1), sm.update(1, 2), sm.update(2, 3), sm.update(3, 4),
            sm.update(4, START), sm.update(START, 1)] == [False, True, True, True, False, False, True]


def test_steps_one_step_block_and_start_inside_a_block_does_not_restart_it():
    one = machine(steps=1)
    assert [one.update(START), one.update(1), one.update(2)] == [True, False, False]
    sm = machine(steps=2)
    assert [sm.update(START), sm.update(START), sm.update(START)] == [True, True, False]


def test_end_token_exits_on_sampled_end_capped_unless_upstream_compat():
    sm = machine(strategy="end_token")
    assert [sm.update(START, 1), sm.update(1, END)] == [True, False]
    capped = machine(strategy="end_token", steps=2)
    assert [capped.update(START, 1), capped.update(1, 2), capped.update(2, 3)] == [True, True, False]
    compat = machine(strategy="end_token", steps=2, upstream_compat=True)
    assert [compat.update(START, 1), compat.update(1, 2), compat.update(2, 3), compat.update(3, 4)] == [True] * 4


def test_latent_exits_when_the_fed_latent_reaches_the_end_vector_or_the_cap():
    sm = machine(strategy="latent", steps=5)
    assert [sm.update(START, 1), sm.update(1, 2, False), sm.update(2, 3, True)] == [True, True, False]
    capped = machine(strategy="latent", steps=2)
    assert [capped.update(START, 1), capped.update(1, 2), capped.update(2, 3)] == [True, True, False]


def test_latent_state_machine_measures_the_fed_latent_itself():
    end = np.array([1, 0, 0, 0], dtype=np.float32)
    far = np.array([0, 1, 0, 0], dtype=np.float32)
    near = np.array([1, 0.1, 0, 0], dtype=np.float32)
    sm = machine(end, strategy="latent", steps=5, threshold=0.02)
    assert sm.reached_latent_end(far) is False
    assert sm.reached_latent_end(near) is True
    assert [sm.after_forward(START, 1, None), sm.after_forward(1, 2, far), sm.after_forward(2, 3, near)] == \
        [True, True, False]
    steps = machine(end, strategy="steps")
    assert steps.reached_latent_end(near) is False, "only the latent strategy ends on the vector"


def test_latent_distance_criteria():
    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 2.0], dtype=np.float32)
    assert latent_distance("mse", a, b) == pytest.approx(2.5)
    assert latent_distance("mae", a, b) == pytest.approx(1.5)
    assert latent_distance("cosine", a, b) == pytest.approx(1.0)
    assert latent_distance("cosine", a, a) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown latent criterion 'l3'"):
        latent_distance("l3", a, b)


def test_repetition_penalty_rule_is_the_same_for_numpy_and_torch():
    torch = pytest.importorskip("torch")
    seen = np.array([2.0, -2.0, 0.0, 1.5], dtype=np.float32)
    with_numpy = penalize_seen_logits(seen, np.float32(2.0))
    with_torch = penalize_seen_logits(torch.from_numpy(seen), 2.0, where=torch.where)
    assert with_numpy.tolist() == [1.0, -4.0, 0.0, 0.75]
    assert with_torch.tolist() == with_numpy.tolist()


def test_none_strategy_never_feeds_a_latent():
    sm = machine(strategy="none")
    assert [sm.update(START, 1), sm.update(1, 2)] == [False, False]
