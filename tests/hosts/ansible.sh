#!/usr/bin/env bash
# The Ansible role and playbooks (ansible/), proven on hosts booted with systemd (issue 9):
#   - ansible-lint (production profile) and --syntax-check of every playbook;
#   - a1 (firewalld), a2 and a3 (ufw: firewalld disabled, as on a ufw host) on a private bridge,
#     the .deb built from the tree: site.yml makes a healthy three-member cluster (etcdctl from
#     the controller's address against all three endpoints); a second run changes nothing;
#   - the firewall for real: from the controller (10.88.9.100, not a member) 2379 connects and
#     2380 does not; between members both do; after a power cut and boot of a1 and of a2 the
#     rules and the members are back;
#   - the PKI for ferrocd_tls (made twice: the second run changes nothing), certificates
#     checked with openssl, distributed with their modes, a TLS etcd.conf accepted by
#     check-config; rolling-restart.yml;
#   - a3 powered off for good, replace-member.yml puts a4 in its place while a client writes in
#     a loop; scale.yml grows to five (a5, a6) and back to three.
# Ansible talks to the hosts with the community.docker.nsenter connection (the inventory is
# written by this script). Needs root. Driven by tests/e2e/ansible.rs; run alone with
# `bash tests/hosts/ansible.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=tests/hosts/lib.sh
source tests/hosts/lib.sh

started=$(date +%s)
checks=0
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
ok() {
  checks=$((checks + 1))
  echo "ok: $*"
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
expect() {
  [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"
  ok "$1 = $3"
}
expect_in() {
  [[ $2 == *"$3"* ]] || fail "$1: '$3' not in: $2"
  ok "$1 has '$3'"
}

step "Ansible, lint, syntax"
bin=$(bash tests/hosts/ansible-env.sh)
export PATH=$bin:$PATH
export ANSIBLE_CONFIG=$repo/ansible/ansible.cfg ANSIBLE_ROLES_PATH=$repo/ansible/roles
export ANSIBLE_HOST_KEY_CHECKING=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
ansible-playbook --version | sed -n 1p
(cd ansible && ansible-lint --offline --profile production) || fail "ansible-lint"
ok "ansible-lint --profile production passes"
for playbook in site replace-member scale rolling-restart; do
  ansible-playbook --syntax-check -i ansible/inventory/example/hosts.yml "ansible/$playbook.yml" >/dev/null ||
    fail "syntax-check of $playbook.yml"
done
ok "ansible-playbook --syntax-check of site, replace-member, scale, rolling-restart"

step "boot hosts, build the .deb"
hosts_init
# Into the work dir, not dist/: the package test may be building there at the same time. The
# inventory names it with ferrocd_package.
bash packaging/build.sh --out "$HOSTS_WORK/dist" >/dev/null
deb=$(ls "$HOSTS_WORK"/dist/ferrocd_*_amd64.deb)
ok "built $(basename "$deb")"
hosts_network ans 10.88.9
declare -A address=([a1]=10.88.9.11 [a2]=10.88.9.12 [a3]=10.88.9.13 [a4]=10.88.9.14 [a5]=10.88.9.15 [a6]=10.88.9.16)
for name in a1 a2 a3 a4 a5 a6; do hosts_boot "$name" ans "${address[$name]}"; done
# ufw hosts: no firewalld (the role picks ufw by itself there).
for name in a2 a3 a5; do hosts_exec "$name" systemctl disable --now -q firewalld; done
# The controller's place on the bridge: where etcdctl and the firewall checks come from.
hosts_netns actl ans 10.88.9.100
ctl() { ip netns exec actl "$@"; }
ctl_etcdctl() { ctl env ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s "$@"; }
endpoints() {
  local list="" name
  for name in "$@"; do list+="${list:+,}http://${address[$name]}:2379"; done
  echo "$list"
}

# The inventory: group etcd is $*; every host is reachable by its systemd's PID.
inventory=$HOSTS_WORK/inventory.yml
write_inventory() {
  {
    echo "all:"
    echo "  vars:"
    echo "    ansible_connection: community.docker.nsenter"
    echo "    ansible_python_interpreter: /usr/bin/python3"
    echo "    ferrocd_client_networks: [10.88.9.0/24]"
    echo "    ferrocd_data_dir: /data/lib/etcd"
    echo "    ferrocd_pki_dir: $HOSTS_WORK/pki"
    echo "    ferrocd_package: $deb"
    echo "  hosts:"
    for name in a1 a2 a3 a4 a5 a6; do
      [ -f "$HOSTS_WORK/hosts/$name/init.pid" ] || continue
      echo "    $name: {ansible_nsenter_pid: $(hosts_pid "$name"), ferrocd_address: ${address[$name]}}"
    done
    echo "  children:"
    echo "    etcd:"
    echo "      hosts:"
    for name in "$@"; do echo "        $name:"; done
  } >"$inventory"
}
# Runs a playbook; its output goes to $HOSTS_WORK/play.log and is shown on failure. Prints the
# recap's totals of changed and failed.
play() {
  local playbook=$1
  shift
  if ! ansible-playbook -i "$inventory" "$@" "$playbook" >"$HOSTS_WORK/play.log" 2>&1; then
    cat "$HOSTS_WORK/play.log"
    fail "ansible-playbook $playbook $*"
  fi
  tail -n 12 "$HOSTS_WORK/play.log" | sed -n '/PLAY RECAP/,$p'
}
changed_total() {
  sed -n '/PLAY RECAP/,$p' "$HOSTS_WORK/play.log" | grep -o 'changed=[0-9]*' | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'
}
# Checks from the controller that the members $* form one healthy cluster of exactly them.
check_cluster() {
  local health members name
  health=$(ctl_etcdctl --endpoints="$(endpoints "$@")" endpoint health 2>&1) || fail "endpoint health: $health"
  expect "healthy endpoints" "$(grep -c 'is healthy' <<<"$health")" "$#"
  members=$(ctl_etcdctl --endpoints="$(endpoints "$@")" member list)
  expect "members" "$(wc -l <<<"$members")" "$#"
  for name in "$@"; do
    expect_in "member list" "$members" "started, $name, http://${address[$name]}:2380, http://${address[$name]}:2379"
  done
}
# TCP connect from the controller or from host $1 to $2:$3; "open" or "closed" (refused or
# dropped: no answer within 2 s).
tcp_from() {
  local from=$1 to=$2 port=$3
  if [ "$from" = actl ]; then
    ctl timeout 2 bash -c "</dev/tcp/$to/$port" 2>/dev/null && echo open || echo closed
  else
    hosts_exec "$from" timeout 2 bash -c "</dev/tcp/$to/$port" 2>/dev/null && echo open || echo closed
  fi
}
check_firewall() {
  local name other
  for name in "$@"; do
    expect "controller -> $name:2379" "$(tcp_from actl "${address[$name]}" 2379)" open
    expect "controller -> $name:2380" "$(tcp_from actl "${address[$name]}" 2380)" closed
    for other in "$@"; do
      [ "$other" = "$name" ] && continue
      expect "$other -> $name:2380" "$(tcp_from "$other" "${address[$name]}" 2380)" open
      expect "$other -> $name:2379" "$(tcp_from "$other" "${address[$name]}" 2379)" open
    done
  done
}

step "site.yml: a1 a2 a3 from bare hosts"
write_inventory a1 a2 a3
begin=$(date +%s)
play ansible/site.yml
ok "site.yml took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a3
ctl_etcdctl --endpoints="$(endpoints a1)" put placed-by ansible >/dev/null
expect "read on a3" "$(ctl_etcdctl --endpoints="$(endpoints a3)" get placed-by --print-value-only)" ansible
expect "a1 firewall" "$(hosts_exec a1 systemctl is-active firewalld)" active
expect_in "a1 rich rules" "$(hosts_exec a1 firewall-cmd --permanent --list-rich-rules)" \
  'rule family="ipv4" source address="10.88.9.12" service name="etcd-server" accept'
expect_in "a2 ufw" "$(hosts_exec a2 ufw status)" "Status: active"
expect_in "a2 ufw rules" "$(hosts_exec a2 ufw show added)" "ufw allow from 10.88.9.13 to any app etcd-server"
expect "a2 data dir drop-in" "$(hosts_exec a2 systemctl show etcd -p ReadWritePaths --value)" "/var/lib/etcd /data/lib/etcd"
expect "a2 data dir" "$(hosts_exec a2 stat -c '%U:%G %a' /data/lib/etcd/member)" "etcd:etcd 700"
expect_in "a3 etcd.conf" "$(hosts_exec a3 cat /etc/etcd/etcd.conf)" \
  'ETCD_INITIAL_CLUSTER="a1=http://10.88.9.11:2380,a2=http://10.88.9.12:2380,a3=http://10.88.9.13:2380"'
expect "a3 enabled" "$(hosts_exec a3 systemctl is-enabled etcd)" enabled

step "site.yml again: nothing changes"
pids=$(for name in a1 a2 a3; do hosts_exec "$name" systemctl show etcd -p MainPID --value; done)
begin=$(date +%s)
play ansible/site.yml
expect "changed tasks in the second run" "$(changed_total)" 0
ok "the second site.yml took $(($(date +%s) - begin)) s"
expect "member PIDs after the second run" \
  "$(for name in a1 a2 a3; do hosts_exec "$name" systemctl show etcd -p MainPID --value; done)" "$pids"

step "firewall"
check_firewall a1 a2 a3

step "power cut and boot of a1 (firewalld), then a2 (ufw)"
for name in a1 a2; do
  hosts_power_cycle "$name"
  for _ in $(seq 1 100); do
    [ "$(hosts_exec "$name" systemctl is-active etcd 2>/dev/null)" = active ] && break
    sleep 0.2
  done
  expect "$name: etcd after the boot" "$(hosts_exec "$name" systemctl is-active etcd)" active
  check_cluster a1 a2 a3
  check_firewall a1 a2 a3
done
write_inventory a1 a2 a3

step "PKI for ferrocd_tls (ferrocd has no TLS yet: certificates only, not served)"
# On the spare hosts a4 a5 a6 as a group of their own, whose members do not run: nothing to
# restart, and the running cluster keeps its http.
write_inventory a4 a5 a6
play tests/hosts/ansible-pki.yml
play tests/hosts/ansible-pki.yml
expect "changed tasks in the second PKI run" "$(changed_total)" 0
pki=$HOSTS_WORK/pki
for file in ca.crt ca.key client.crt client.key; do
  [ -s "$pki/$file" ] || fail "no $pki/$file"
done
expect "ca.key mode" "$(stat -c %a "$pki/ca.key")" 600
openssl verify -CAfile "$pki/ca.crt" "$pki/client.crt" "$pki"/members/*/server.crt "$pki"/members/*/peer.crt >/dev/null ||
  fail "openssl verify"
ok "client and member certificates verify against ca.crt"
expect_in "a5 server.crt names" "$(openssl x509 -in "$pki/members/a5/server.crt" -noout -ext subjectAltName)" \
  "IP Address:10.88.9.15, DNS:a5, IP Address:127.0.0.1, DNS:localhost"
expect_in "client.crt usage" "$(openssl x509 -in "$pki/client.crt" -noout -ext extendedKeyUsage)" "TLS Web Client Authentication"
expect "a5 /etc/etcd/pki" "$(hosts_exec a5 stat -c '%n %U:%G %a' /etc/etcd/pki /etc/etcd/pki/peer.key /etc/etcd/pki/ca.crt | tr '\n' ' ')" \
  "/etc/etcd/pki root:etcd 750 /etc/etcd/pki/peer.key root:etcd 640 /etc/etcd/pki/ca.crt root:etcd 644 "
expect "a5 key matches the controller's" "$(hosts_exec a5 md5sum </dev/null /etc/etcd/pki/server.key | cut -d' ' -f1)" \
  "$(md5sum "$pki/members/a5/server.key" | cut -d' ' -f1)"
expect "a5 etcd" "$(hosts_exec a5 systemctl is-active etcd || true)" inactive
conf=$(hosts_exec a4 cat /root/etcd.conf.tls)
expect_in "TLS etcd.conf" "$conf" 'ETCD_LISTEN_CLIENT_URLS="https://10.88.9.14:2379,https://127.0.0.1:2379"'
expect_in "TLS etcd.conf" "$conf" 'ETCD_PEER_TRUSTED_CA_FILE="/etc/etcd/pki/ca.crt"'
write_inventory a1 a2 a3
check_cluster a1 a2 a3

step "rolling-restart.yml"
pids=$(for name in a1 a2 a3; do hosts_exec "$name" systemctl show etcd -p MainPID --value; done)
play ansible/rolling-restart.yml
after=$(for name in a1 a2 a3; do hosts_exec "$name" systemctl show etcd -p MainPID --value; done)
[ "$(comm -12 <(sort <<<"$pids") <(sort <<<"$after") | wc -l)" = 0 ] || fail "not every member restarted: $pids / $after"
ok "every member restarted"
grep -q 'Restart the member on a1' "$HOSTS_WORK/play.log" || fail "no restart of a1 in the log"
check_cluster a1 a2 a3

step "a3 dies; replace-member.yml puts a4 in its place while a client writes"
kill -KILL "$(hosts_pid a3)"
for _ in $(seq 1 100); do
  ctl_etcdctl --endpoints="$(endpoints a1)" put probe 1 >/dev/null 2>&1 && break
  sleep 0.2
done
# The writer: one put every 50 ms through the surviving members, for as long as the playbook
# runs (bounded: at most 5 minutes); each line is "ok|fail TIME_MS KEY".
writes=$HOSTS_WORK/writes.log
(
  end=$(($(date +%s) + 300))
  i=0
  while [ ! -f "$HOSTS_WORK/stop-writer" ] && [ "$(date +%s)" -lt "$end" ]; do
    i=$((i + 1))
    if ctl_etcdctl --endpoints="$(endpoints a1 a2)" put "w/$i" "$i" >/dev/null 2>&1; then
      echo "ok $(date +%s%3N) w/$i"
    else
      echo "fail $(date +%s%3N) w/$i"
    fi
    sleep 0.05
  done
) >"$writes" &
writer=$!
write_inventory a1 a2 a4
begin=$(date +%s)
play ansible/replace-member.yml -e ferrocd_old_member=a3
ok "replace-member.yml took $(($(date +%s) - begin)) s"
sleep 1
touch "$HOSTS_WORK/stop-writer"
wait "$writer"
total=$(wc -l <"$writes")
failed=$(grep -c '^fail' "$writes" || true)
echo "writes: $total, failed: $failed"
[ "$total" -gt 20 ] || fail "the writer wrote only $total times"
if [ "$failed" -gt 0 ]; then
  span=$(($(grep '^fail' "$writes" | tail -n1 | cut -d' ' -f2) - $(grep '^fail' "$writes" | head -n1 | cut -d' ' -f2)))
  # One election: a few seconds at most with ferrocd's default timing.
  [ "$span" -le 3000 ] || fail "failed writes over $span ms: $(grep '^fail' "$writes" | tr '\n' ' ')"
fi
ok "$((total - failed)) of $total writes succeeded during the replacement (failed writes within one election)"
check_cluster a1 a2 a4
last=$(grep '^ok' "$writes" | tail -n1 | cut -d' ' -f3)
expect "last write read on a4" "$(ctl_etcdctl --endpoints="$(endpoints a4)" get "$last" --print-value-only)" "${last#w/}"
hashes=$(ctl_etcdctl --endpoints="$(endpoints a1 a2 a4)" endpoint hashkv -w json | grep -o '"hash":[0-9]*' | sort -u | wc -l)
expect "distinct hashkv values over a1 a2 a4" "$hashes" 1
expect_in "a1 rich rules after the replacement" "$(hosts_exec a1 firewall-cmd --permanent --list-rich-rules)" \
  'source address="10.88.9.14" service name="etcd-server"'
[[ "$(hosts_exec a1 firewall-cmd --permanent --list-rich-rules)" != *10.88.9.13* ]] || fail "a1 still lets a3 in"
ok "a1 no longer lets a3 in"
expect "changed tasks when site.yml runs after the replacement" "$(play ansible/site.yml >/dev/null && changed_total)" 0

step "scale.yml: grow to five (a5 ufw, a6 firewalld), then back to three"
write_inventory a1 a2 a4 a5 a6
begin=$(date +%s)
play ansible/scale.yml
ok "scale.yml to five took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a4 a5 a6
check_firewall a1 a5 a6
write_inventory a1 a2 a4
begin=$(date +%s)
play ansible/scale.yml
ok "scale.yml back to three took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a4
for name in a5 a6; do
  for _ in $(seq 1 50); do
    [ "$(hosts_exec "$name" systemctl is-active etcd 2>/dev/null)" != active ] && break
    sleep 0.2
  done
  expect "$name: etcd after its removal" "$(hosts_exec "$name" systemctl is-active etcd || true)" inactive
done
expect "a5 -> a4:2380 after the shrink" "$(tcp_from a5 "${address[a4]}" 2380)" closed
expect "changed tasks when scale.yml runs again" "$(play ansible/scale.yml >/dev/null && changed_total)" 0

printf '\n%s checks passed in %ss\n' "$checks" "$(($(date +%s) - started))"
