"""The learned thresholds: the prior, evidence that tightens them, and the error-rate target."""

from __future__ import annotations

import random

from thrifty.gateway.cache.thresholds import Calibration, Thresholds

USE = Calibration(0.70, 0.06)  # use-multilingual-v3's calibration (embed.py)


def test_the_prior_starts_at_the_models_threshold_and_follows_the_target() -> None:
    assert Thresholds(USE, 0.01).threshold == 0.70
    assert Thresholds(USE, 0.005).threshold > 0.70  # a stricter target serves less
    assert Thresholds(USE, 0.03).threshold < 0.70
    t = Thresholds(USE, 0.01)
    assert t.declines("k", 0.72) is None
    assert t.declines("k", 0.68) == "unvouched"
    assert t.error_rate is None  # nothing checked yet


def replay(thresholds: Thresholds | None, *, feedback_share: float) -> tuple[int, int]:
    """2,000 semantic candidates; in the band 0.75-0.85 three in ten are wrong (injected).

    A served hit is checked (feedback or a shadow) with probability `feedback_share`; without
    `thresholds`, one fixed threshold at 0.70 serves everything above it. Returns (served,
    wrong served).
    """
    rng = random.Random(7)
    served = wrong = 0
    for i in range(2000):
        similarity = rng.uniform(0.70, 1.0)
        is_wrong = 0.75 <= similarity < 0.85 and rng.random() < 0.3
        key = f"entry{i % 50}"
        if thresholds is not None and thresholds.declines(key, similarity) is not None:
            continue
        served += 1
        wrong += is_wrong
        if thresholds is not None and rng.random() < feedback_share:
            thresholds.record(key, similarity, correct=not is_wrong)
    return served, wrong


def test_the_error_rate_target_holds_on_a_replay_with_injected_wrong_hits() -> None:
    fixed_served, fixed_wrong = replay(None, feedback_share=0)
    assert fixed_wrong / fixed_served > 0.05  # one fixed threshold: about 7 % wrong

    for share in (1.0, 0.3):  # every hit checked, or three in ten
        learned = Thresholds(USE, 0.01)
        served, wrong = replay(learned, feedback_share=share)
        assert wrong / served <= 0.01, (share, served, wrong)
        assert served > 0.6 * fixed_served  # the rest of the range is still served
        bands = {start: is_open for start, _, _, _, is_open in learned.bands()}
        assert not bands[0.75] and not bands[0.8]  # the bad bands closed
        assert bands[0.7] and bands[0.85] and bands[0.9] and bands[0.95]
        counts = learned.counts()
        assert counts.wrong >= 1 and learned.error_rate is not None


def test_a_wrong_hit_raises_the_entrys_own_threshold() -> None:
    t = Thresholds(USE, 0.01, margin=0.02)
    assert t.declines("faq-1", 0.955) is None
    t.record("faq-1", 0.947, correct=False)  # answered another question wrongly at 0.947
    assert t.declines("faq-1", 0.955) == "entry"  # below 0.947 + 0.02
    assert t.declines("faq-1", 0.97) is None
    assert t.declines("faq-2", 0.955) is None  # other entries in that band: unaffected
    assert t.declines("faq-2", 0.93) == "unvouched"  # its band (0.90-0.95) closed
    assert t.entry_threshold("faq-1") >= 0.967
    assert t.error_rate == 1.0
    t.forget("faq-1")
    assert t.declines("faq-1", 0.955) is None


def test_right_answers_reopen_a_band() -> None:
    t = Thresholds(USE, 0.01)
    t.record("a", 0.78, correct=False)
    assert t.declines("b", 0.78) == "unvouched"
    for i in range(120):  # shadow checks of declined near-hits, all right
        t.record(f"n{i}", 0.77 + (i % 5) / 1000, correct=True)
    assert t.declines("b", 0.78) is None
    assert t.error_rate is not None and t.error_rate < 0.01
