#!/usr/bin/env bash
# The whole test suite: installs what the tests need (as root, on Debian),
# builds everything once in the release profile, and runs every test layer
# (unit tests, the openraft storage suite, and end-to-end tests that drive
# the real binaries with etcdctl 3.4, the etcd-client crate and real etcd).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v strace >/dev/null || need_apt+=(strace)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
# Packages and the hosts they are tested on (tests/hosts/): build, lint, boot.
command -v dpkg-shlibdeps >/dev/null || need_apt+=(dpkg-dev)
command -v rpmbuild >/dev/null || need_apt+=(rpm)
command -v lintian >/dev/null || need_apt+=(lintian)
command -v rpmlint >/dev/null || need_apt+=(rpmlint)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
# The Ansible test (tests/hosts/ansible.sh): a venv from PyPI, and openssl for the certificates.
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ! -x /opt/etcd/usr/bin/etcd ] || [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Real etcd 3.4.23 for differential tests, unpacked without starting a service.
if [ ! -x /opt/etcd/usr/bin/etcd ]; then
  scratch=$(mktemp -d)
  (cd "$scratch" && apt-get download -qq etcd-server >/dev/null 2>&1)
  mkdir -p /opt/etcd
  dpkg -x "$scratch"/etcd-server_*.deb /opt/etcd
  rm -rf "$scratch"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Ansible, ansible-lint and the collections the playbooks use, pinned in
# tests/hosts/ansible-requirements.txt (cached under /var/cache/ferrocd-tests).
if [ "$(id -u)" = 0 ]; then
  bash tests/hosts/ansible-env.sh >/dev/null
fi

cargo fmt --check
cargo build --release --all-targets
cargo nextest run --release --no-fail-fast "$@"
