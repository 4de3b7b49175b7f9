"""Judge a run of upstream tractor's suite under a backend of ours against
upstream's own ``trio`` backend on the same tree and Python.

usage: upstream_verdict.py --baseline TRIO.xml OURS.xml [--rerun RERUN.xml] [--ids-out FILE]

Reads JUnit XML. A test that fails (or errors) under our key is tolerated
when the same test id (its ``start_method=...`` parameter aside) also fails
under ``trio``, or when it is a known upstream test bug below; any other
failure is unexpected. With ``--rerun``, an unexpected failure whose re-run
(of those ids alone) passed is reported as flaky and tolerated: the suite
keeps fixed time budgets that a loaded 2-core machine misses now and then.
``--ids-out`` writes the unexpected ids (``path::name``), one a line, for
such a re-run. A run with no test passed fails too (a crash or a
collection error). Exit status 0 on pass.
"""
from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET

KNOWN_FAILURES = {
    # Upstream's test picks a time budget per (backend, depth) with a
    # `match` that only knows 'trio' and 'main_thread_forkserver': under any
    # other key its `timeout` local is never bound.
    "test_nested_multierrors[start_method=subint_forkserver-":
        "UnboundLocalError: cannot access local variable 'timeout'",
}
_KEY_PARAM = re.compile(r'start_method=[a-z_]+')


def _normal(name: str) -> str:
    return _KEY_PARAM.sub('start_method=KEY', name)


def outcomes(path: str) -> dict[str, tuple[str, str, str]]:
    """``{normalised id: (outcome, real id, failure text)}``; outcome is
    ``passed``, ``failed`` or ``skipped``."""
    root = ET.parse(path).getroot()
    found = {}
    for case in root.iter('testcase'):
        name = case.get('name', '?')
        module = case.get('classname', '').replace('.', '/')
        test_id = f'{module}.py::{name}'
        problems = case.findall('failure') + case.findall('error')
        if problems:
            text = ' '.join((p.get('message') or '') + (p.text or '') for p in problems)
            found[_normal(test_id)] = ('failed', test_id, text)
        elif case.find('skipped') is not None:
            found[_normal(test_id)] = ('skipped', test_id, '')
        else:
            found[_normal(test_id)] = ('passed', test_id, '')
    return found


def _known(test_id: str, text: str) -> bool:
    name = test_id.rpartition('::')[2]
    return any(name.startswith(prefix) and cause in text for prefix, cause in KNOWN_FAILURES.items())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--baseline', required=True)
    parser.add_argument('ours')
    parser.add_argument('--rerun')
    parser.add_argument('--ids-out')
    args = parser.parse_args(argv)
    try:
        ours, baseline = outcomes(args.ours), outcomes(args.baseline)
        rerun = outcomes(args.rerun) if args.rerun else {}
    except (OSError, ET.ParseError) as exc:
        print(f'FAIL upstream verdict: no readable JUnit XML ({exc})')
        return 1
    passed = sum(1 for outcome, _, _ in ours.values() if outcome == 'passed')
    also_trio, known, flaky, unexpected = [], [], [], []
    for key, (outcome, test_id, text) in sorted(ours.items()):
        if outcome != 'failed':
            continue
        if baseline.get(key, ('missing',))[0] == 'failed':
            also_trio.append(test_id)
        elif _known(test_id, text):
            known.append(test_id)
        elif rerun.get(key, ('missing',))[0] == 'passed':
            flaky.append(test_id)
        else:
            unexpected.append(test_id)
    base_passed = sum(1 for outcome, _, _ in baseline.values() if outcome == 'passed')
    print(f'upstream verdict: {passed} passed (trio: {base_passed}); failed as under trio: '
          f'{len(also_trio)}, known upstream test bugs: {len(known)}, passed on re-run: '
          f'{len(flaky)}, unexpected: {len(unexpected)}')
    for label, ids in (('as under trio', also_trio), ('known', known), ('flaky, passed on re-run', flaky),
                       ('UNEXPECTED', unexpected)):
        for test_id in ids:
            print(f'  {label}: {test_id}')
    if args.ids_out:
        with open(args.ids_out, 'w') as out:
            out.writelines(f'{test_id}\n' for test_id in unexpected)
    return 1 if unexpected or passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
