"""How many examples the property tests try: ``examples(n)`` in their ``@settings``, n for
the suite's runs, scaled by the Hypothesis profile loaded.

- ``suite`` (the default): the counts the tests name, chosen so that the whole suite
  stays within minutes. The examples differ from run to run (the seed is random) and a
  failing one is kept in ``.hypothesis/`` and tried first the next time, so coverage
  adds up over the runs.
- ``thorough``: ten times as many, for a change to the renderers:
  ``pytest --hypothesis-profile=thorough tests/test_rich_split.py``.

Every profile has no deadline: a test's examples run while the other pytest-xdist
workers keep the cores busy, so one example's time says nothing about a bug. Nor does
``suite`` trace the lines a failing example runs (the explain phase): shrinking one
under the tracer took minutes; ``thorough`` does.
"""

from __future__ import annotations

from hypothesis import Phase, settings

BASE = 100  # the ``suite`` profile's max_examples: examples(n) is n there

settings.register_profile(
    "suite",
    max_examples=BASE,
    deadline=None,
    phases=[phase for phase in Phase if phase is not Phase.explain],
)
settings.register_profile("thorough", max_examples=10 * BASE, deadline=None)
settings.load_profile("suite")  # pytest --hypothesis-profile=NAME loads another after this


def examples(count: int) -> int:
    """``count`` examples under the ``suite`` profile, as many times more under another
    as its max_examples is (read when the test module is imported, after the profile
    was chosen)."""
    return max(1, count * settings.default.max_examples // BASE)
