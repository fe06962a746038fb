#!/usr/bin/env bash
# The project's one Python virtual environment for tests: .venv-test/ at the repository root
# (PYTHON_ENV_DIR to put it elsewhere), holding scripts/requirements-test.txt. Creates it with
# `python3 -m venv` when missing (installing Debian's python3-venv when venv cannot be created
# and apt is there), and runs pip only when the requirements file changed since the last
# successful install, so a second call takes a fraction of a second. Progress goes to stderr.
#
#   PY=$(bash scripts/python-env.sh)     # prints the venv's python on stdout
#   source scripts/python-env.sh         # sets and exports CLIPSAFETY_PYTHON instead
#
# Adding a package is one line in scripts/requirements-test.txt.

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: run as a child (so its set -e and cd stay out of the caller) and keep the answer.
  CLIPSAFETY_PYTHON=$(bash "${BASH_SOURCE[0]}") || return 1
  export CLIPSAFETY_PYTHON
  return 0
fi

set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(realpath -m "${PYTHON_ENV_DIR:-$root/.venv-test}")
cd "$root"
requirements=$root/scripts/requirements-test.txt
python=$venv/bin/python
stamp=$venv/.requirements-installed   # a copy of the requirements file pip last installed

say() { echo "python-env: $*" >&2; }

make_venv() {
  # --clear: a failed attempt (no ensurepip) leaves a venv without pip behind.
  python3 -m venv --clear "$venv" >/dev/null 2>&1 && "$python" -m pip --version >/dev/null 2>&1
}

if [ ! -x "$python" ] || ! "$python" -c 'import sys' >/dev/null 2>&1; then
  say "creating $venv with $(command -v python3) ($(python3 --version 2>&1))"
  if ! make_venv; then
    # Debian and Ubuntu ship venv's ensurepip in a separate package.
    say "python3 -m venv failed; installing python3-venv"
    bash "$root/scripts/apt-install.sh" python3-venv
    ver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    # python3-venv pulls the default version's python3.X-venv; name it in case python3 is another.
    dpkg -s "python$ver-venv" >/dev/null 2>&1 || bash "$root/scripts/apt-install.sh" "python$ver-venv" || true
    if ! make_venv; then
      python3 -m venv --clear "$venv" >&2 || true
      say "cannot create a virtual environment with $(command -v python3)"
      exit 1
    fi
  fi
  rm -f "$stamp"
fi

if ! cmp -s "$requirements" "$stamp"; then
  say "installing scripts/requirements-test.txt into $venv"
  start=$SECONDS
  "$python" -m pip install --disable-pip-version-check --quiet -r "$requirements" >&2
  cp "$requirements" "$stamp"
  say "pip install took $((SECONDS - start)) s"
fi
echo "$python"
