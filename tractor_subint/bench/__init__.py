"""``python -m tractor_subint bench``: spawn benchmarks, every backend side
by side with the floor references, in one run.

Items are measured round by round, in a rotating order (so that machine
noise hits every item alike), and reported as medians and as ratios to the
references measured in the same run: ratios are what compare across runs on
a noisy machine. The run states its Python and bytecode mode, because this
machine exports ``PYTHONDONTWRITEBYTECODE=1`` and every fresh interpreter
then compiles its imports from source (``--bytecode warm`` re-runs the
benchmark with a private bytecode cache instead).

Every sample is kept: ``--json`` writes them with the run's conditions,
``--compare`` sets a run beside an earlier one, ``--plot`` draws the spawn
times (schema and how to add a measurement: ``bench/README.md``).

Modules: ``targets`` (what the actors run), ``_probes`` (loop stall, USS),
``_items`` (the measured items: backends through the public API, and the
bare-fork references), ``_measures`` (the kinds of sample and their
columns), ``_run`` (the plan, the rounds, the CLI), ``_report`` (the run as
data: tables, JSON, comparison, plot), ``_transport`` (``--transport``),
``_imports`` (``--imports``: an actor's import bill per kind of interpreter).
"""
