"""Queries for names outside the class list (issue 18): drawn only when asked, never a class, empty target."""

from __future__ import annotations

from sceneparser.data import targets as T

ANN = {"objects": [{"name": "mug", "bbox": [1, 1, 5, 5], "parts": []},
                   {"name": "lamp", "bbox": [2, 2, 8, 8], "parts": []}]}
VOCAB = ("mug", "lamp", "cat", "drawer")  # "cat" is a class here: it must never be an unknown name


def test_default_options_draw_what_they_drew_before():
    plain = [T.choose_query(ANN, seed=3, index=i) for i in range(200)]
    zero = [T.choose_query(ANN, seed=3, index=i, options=T.QueryOptions(unknown_ratio=0.0, vocabulary=VOCAB))
            for i in range(200)]
    assert plain == zero
    assert not any(q.negative for q in plain)


def test_unknown_names_are_drawn_at_the_rate_asked_and_are_never_classes():
    opts = T.QueryOptions(unknown_ratio=0.3, vocabulary=VOCAB)
    got = [T.choose_query(ANN, seed=5, epoch=1, index=i, options=opts) for i in range(1000)]
    unknown = [q for q in got if q.negative]
    assert 240 < len(unknown) < 360
    names = {q.category for q in unknown}
    assert not names & {T.norm(v) for v in VOCAB}
    words = names & set(T.UNKNOWN_NAMES)
    letters = names - set(T.UNKNOWN_NAMES)
    assert len(words) > 10 and len(letters) > 30  # both kinds, the random strings ~30 % of them
    assert all(n.isalpha() and n.islower() and 3 <= len(n) <= 10 for n in letters)
    for q in unknown:
        assert T.build_target(ANN, 10, 10, q.category) == '{"objects": []}'
    # deterministic in (seed, epoch, index); another epoch draws other names
    assert got == [T.choose_query(ANN, seed=5, epoch=1, index=i, options=opts) for i in range(1000)]
    other = [T.choose_query(ANN, seed=5, epoch=2, index=i, options=opts) for i in range(1000)]
    assert other != got


def test_word_list_avoids_the_synthetic_classes_and_parts():
    from sceneparser.data.synth import CLASSES

    taken = set(CLASSES) | {p for c in CLASSES.values() for p in c.parts}
    assert not taken & set(T.UNKNOWN_NAMES)
    assert {"cat", "person", "banana"} <= set(T.UNKNOWN_NAMES)


def test_random_name_is_deterministic():
    assert T.random_name(1, 2, 3) == T.random_name(1, 2, 3)
    assert len({T.random_name(1, 0, i) for i in range(50)}) > 45
