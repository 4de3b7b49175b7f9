"""Judge one run of upstream tractor's suite under a backend of ours.

Reads the run's JUnit XML. Every failure or error fails the verdict except
the known ones below, each named with its cause, and a run with no test
passed fails too (a crash or a collection error). Exit status 0 on pass.
"""
import sys
import xml.etree.ElementTree as ET

KNOWN_FAILURES = {
    # Upstream's test picks a time budget per (backend, depth) with a
    # `match` that only knows 'trio' and 'main_thread_forkserver': under any
    # other key its `timeout` local is never bound.
    "test_nested_multierrors[start_method=subint_forkserver-":
        "UnboundLocalError: cannot access local variable 'timeout'",
}


def known(name: str, text: str) -> bool:
    return any(
        name.startswith(prefix) and cause in text
        for prefix, cause in KNOWN_FAILURES.items()
    )


def main(path: str) -> int:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"FAIL upstream verdict: no readable JUnit XML ({exc})")
        return 1
    passed, tolerated, unexpected = 0, [], []
    for case in root.iter("testcase"):
        problems = case.findall("failure") + case.findall("error")
        name = case.get("name", "?")
        if not problems:
            if case.find("skipped") is None:
                passed += 1
            continue
        text = " ".join((p.get("message") or "") + (p.text or "") for p in problems)
        (tolerated if known(name, text) else unexpected).append(name)
    print(f"upstream verdict: {passed} passed (xfail/skip aside), "
          f"{len(tolerated)} known upstream test failures, {len(unexpected)} unexpected")
    for name in tolerated:
        print(f"  known: {name}")
    for name in unexpected:
        print(f"  UNEXPECTED: {name}")
    return 1 if unexpected or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
