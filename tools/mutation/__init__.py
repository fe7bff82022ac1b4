"""Mutation testing of one module against the tests that cover it.

``python -m tools.mutation MODULE --tests TESTPATHS...`` makes small deliberate
bugs (mutants) in MODULE one at a time, runs the tests against each, and says
which bugs no test noticed. The goal for the security-critical modules (safe
tar, path confinement, bearer auth, owner registry, ...) is that at least 90% of
the mutants that are not equivalent to the original are killed; the command and
the results live in ``docs/mutation.md``.

Built on cosmic-ray (a maintained mutation-testing library on PyPI) rather than
mutmut 3: cosmic-ray mutates the real source text with a parso tree, so the code
under test is exactly the module with one operator changed, and each mutation is
addressed by (operator, occurrence), which lets this runner apply it in several
copies of the project in parallel. mutmut 3 instead rewrites every function into
a trampoline and drives pytest in-process with its own fork model and timeouts,
which would change how dataclasses, overloads and anyio code behave under test.

- :mod:`.mutants` lists the mutants of a module (which operators, where).
- :mod:`.equivalents` reads the table of known equivalent mutants.
- :mod:`.runner` copies the project, runs the baseline and every mutant.
- :mod:`.report` prints killed / survived / timed out, the score and survivors.
"""
