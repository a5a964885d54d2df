#!/usr/bin/env bash
# Prints the bin dir of a Python venv with the Ansible of tests/hosts/ansible-requirements.txt,
# made on first use under /var/cache/ferrocd-tests (keyed by that file, under a lock, about
# half a minute from PyPI). Needs Debian's python3-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${HOSTS_CACHE:-/var/cache/ferrocd-tests}
key=$(sha256sum tests/hosts/ansible-requirements.txt | cut -c1-12)
venv=$cache/ansible-$key
mkdir -p "$cache"
(
  flock 9
  if [ ! -x "$venv/bin/ansible-lint" ]; then
    if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q -r tests/hosts/ansible-requirements.txt >&2
  fi
) 9>"$cache/ansible.lock"
echo "$venv/bin"
