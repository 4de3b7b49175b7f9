# Sourced by run-tests and run-demo: find a Python >= 3.13, make the project's
# venv if needed, install the project (editable, with test extras) into it.
# Honours $VENV (an existing venv to use) and $PYTHON (the interpreter to use).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

is_supported() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    local candidate
    for candidate in python3.14 python3.13 python3; do
        if command -v "$candidate" >/dev/null && is_supported "$candidate"; then
            command -v "$candidate"; return
        fi
    done
    if command -v pyenv >/dev/null; then
        for candidate in "$(pyenv root)"/versions/3.1[3-9]*/bin/python; do
            if [ -x "$candidate" ] && is_supported "$candidate"; then echo "$candidate"; return; fi
        done
    fi
    echo "no Python >= 3.13 found: set PYTHON=/path/to/python3.13" >&2
    return 1
}

if [ -z "${VENV:-}" ]; then
    python=$(find_python)
    is_supported "$python" || { echo "$python is older than 3.13" >&2; exit 1; }
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    VENV="$repo/.venv-$version"
    [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
fi
stamp="$VENV/.tractor_subint-installed"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[test]"
    touch "$stamp"
fi
venv_python="$VENV/bin/python"
