#!/usr/bin/env bash
# The Ansible role and playbooks (ansible/), proven on hosts booted with systemd (issue 9):
#   - ansible-lint (production profile) and --syntax-check of every playbook (in the
#     background, while the .deb is built and the hosts boot);
#   - a1 (firewalld), a2 and a3 (ufw) on a private bridge, the .deb built from the tree, TLS on
#     (the role's default): site.yml makes a healthy three-member cluster, checked with etcdctl
#     and the generated client certificate from the controller's address against all three
#     https endpoints; the PKI (CA, member and client certificates) checked with openssl, its
#     files' owners and modes on the controller and the members; a second run changes nothing;
#   - the firewall for real: from the controller (not a member) 2379 connects and 2380 does
#     not; between members both do; after a power cut and boot of a1 (firewalld) and a2 (ufw)
#     the rules and the members are back;
#   - certificate rotation as the README documents it (site.yml -e ferrocd_pki_regenerate=true):
#     the members serve the new certificates and the cluster stays healthy; rolling-restart.yml;
#   - a3 powered off for good, replace-member.yml puts a4 in its place while a client writes in
#     a loop; scale.yml grows to five (a5, a6) and back to three;
#   - plain http (ferrocd_tls=false): site.yml makes a one-member cluster on p1, alongside.
# Ansible talks to the hosts with the community.docker.nsenter connection (the inventory is
# written by this script). Names of hosts and networks carry this run's id (hosts_run_id), so
# that runs at the same time do not collide. Needs root. Driven by tests/e2e/ansible.rs; run
# alone with `bash tests/hosts/ansible.sh`; ANSIBLE_TEST_LOGS=DIR keeps every playbook's log.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=tests/hosts/lib.sh
source tests/hosts/lib.sh

started=$(date +%s)
phase_started=$started
phase_name=
phases=()
checks=0
step() {
  local now
  now=$(date +%s)
  [ -n "$phase_name" ] && phases+=("$(printf '%4ss  %s' "$((now - phase_started))" "$phase_name")")
  phase_name=$*
  phase_started=$now
  printf '\n== %s (%ss)\n' "$*" "$((now - started))"
}
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

step "Ansible; lint and syntax checks started"
bin=$(bash tests/hosts/ansible-env.sh)
export PATH=$bin:$PATH
export ANSIBLE_CONFIG=$repo/ansible/ansible.cfg ANSIBLE_ROLES_PATH=$repo/ansible/roles
export ANSIBLE_HOST_KEY_CHECKING=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
# Every task's time at the end of each playbook's log.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12
ansible-playbook --version | sed -n 1p
hosts_init
# Background jobs of ours (lint, build, a concurrent playbook, the writer) end with the script.
# (Not one failing command in a trap: errexit would end it before hosts_cleanup.)
trap 'kill $(jobs -p) 2>/dev/null || true; hosts_cleanup' EXIT
lint_log=$HOSTS_WORK/lint.log
(
  cd ansible && ansible-lint --offline --profile production || exit 1
  cd .. && for playbook in site replace-member scale rolling-restart; do
    ansible-playbook --syntax-check -i ansible/inventory/example/hosts.yml "ansible/$playbook.yml" || exit 1
  done
) >"$lint_log" 2>&1 &
lint=$!

step "build the .deb, boot the hosts"
# Into the work dir, not dist/: the package test may be building there at the same time. The
# inventory names it with ferrocd_package. build.sh runs cargo: under the machine's build lock.
(
  flock 9
  locked=$(date +%s)
  bash packaging/build.sh --out "$HOSTS_WORK/dist" >"$HOSTS_WORK/build.log" 2>&1
  echo "$locked $(date +%s)" >"$HOSTS_WORK/build.times"
) 9>/tmp/cargo.lock &
build=$!
build_started=$(date +%s)
id=$(hosts_run_id)
net=an$id
hosts_network "$net" 10.88.9
# The hosts' names in the inventory (and as members); on this machine NAME-ID.
declare -A address=([a1]=10.88.9.11 [a2]=10.88.9.12 [a3]=10.88.9.13 [a4]=10.88.9.14 [a5]=10.88.9.15
  [a6]=10.88.9.16 [p1]=10.88.9.21)
machine() { echo "$1-$id"; }
on() {
  local name=$1
  shift
  hosts_exec "$(machine "$name")" "$@"
}
declare -A booting
for name in a1 a2 a3 a4 a5 a6 p1; do
  case $name in
  # ufw hosts: firewalld never runs (the role picks ufw by itself there).
  a2 | a3 | a5) hosts_boot "$(machine "$name")" "$net" "${address[$name]}" firewalld.service & ;;
  *) hosts_boot "$(machine "$name")" "$net" "${address[$name]}" & ;;
  esac
  booting[$name]=$!
done
for name in "${!booting[@]}"; do wait "${booting[$name]}" || fail "host $name did not boot"; done
# The controller's place on the bridge: where etcdctl and the firewall checks come from.
hosts_netns "ac-$id" "$net" 10.88.9.100
ctl() { ip netns exec "ac-$id" "$@"; }
wait "$build" || { cat "$HOSTS_WORK/build.log"; fail "packaging/build.sh"; }
deb=$(ls "$HOSTS_WORK"/dist/ferrocd_*_amd64.deb)
read -r locked built <"$HOSTS_WORK/build.times"
ok "built $(basename "$deb") in $((built - locked)) s (after $((locked - build_started)) s waiting for /tmp/cargo.lock)"

pki=$HOSTS_WORK/pki
# etcdctl from the controller, with the operator's client certificate that site.yml made.
ctl_etcdctl() {
  ctl env ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s \
    --cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key" "$@"
}
endpoints() {
  local list="" name
  for name in "$@"; do list+="${list:+,}https://${address[$name]}:2379"; done
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
    echo "    ferrocd_pki_dir: $pki"
    echo "    ferrocd_package: $deb"
    echo "  hosts:"
    for name in a1 a2 a3 a4 a5 a6; do
      [ -f "$HOSTS_WORK/hosts/$(machine "$name")/init.pid" ] || continue
      echo "    $name: {ansible_nsenter_pid: $(hosts_pid "$(machine "$name")"), ferrocd_address: ${address[$name]}}"
    done
    echo "  children:"
    echo "    etcd:"
    echo "      hosts:"
    for name in "$@"; do echo "        $name:"; done
  } >"$inventory"
}
# Runs a playbook against $inventory (or $PLAY_INVENTORY); its output goes to
# $HOSTS_WORK/play.log (or $PLAY_LOG) and is shown on failure. Prints the recap.
plays=0
play() {
  local playbook=$1 log=${PLAY_LOG:-$HOSTS_WORK/play.log}
  shift
  plays=$((plays + 1))
  if ! ansible-playbook -i "${PLAY_INVENTORY:-$inventory}" "$@" "$playbook" >"$log" 2>&1; then
    cat "$log"
    fail "ansible-playbook $playbook $*"
  fi
  if [ -n "${ANSIBLE_TEST_LOGS:-}" ]; then
    mkdir -p "$ANSIBLE_TEST_LOGS"
    cp "$log" "$ANSIBLE_TEST_LOGS/$(printf '%02d' "$plays")-$(basename "$playbook" .yml)-$(basename "$log")"
  fi
  sed -n '/PLAY RECAP/,/^$/p' "$log"
}
changed_total() {
  sed -n '/PLAY RECAP/,/^$/p' "$HOSTS_WORK/play.log" | grep -o 'changed=[0-9]*' | cut -d= -f2 |
    awk '{ s += $1 } END { print s + 0 }'
}
member_pids() {
  local name
  for name in "$@"; do on "$name" systemctl show etcd -p MainPID --value; done
}
# Checks from the controller that the members $* form one healthy cluster of exactly them.
check_cluster() {
  local health members name
  health=$(ctl_etcdctl --endpoints="$(endpoints "$@")" endpoint health 2>&1) || fail "endpoint health: $health"
  expect "healthy endpoints" "$(grep -c 'is healthy' <<<"$health")" "$#"
  members=$(ctl_etcdctl --endpoints="$(endpoints "$@")" member list)
  expect "members" "$(wc -l <<<"$members")" "$#"
  for name in "$@"; do
    expect_in "member list" "$members" "started, $name, https://${address[$name]}:2380, https://${address[$name]}:2379"
  done
}
# Waits until the member on host $1 runs (after a boot).
wait_active() {
  for _ in $(seq 1 150); do
    [ "$(on "$1" systemctl is-active etcd 2>/dev/null)" = active ] && break
    sleep 0.2
  done
  expect "$1: etcd" "$(on "$1" systemctl is-active etcd || true)" active
}
# TCP connects, all at once: each argument is FROM:TO:PORT:WANT with FROM a host or "ctl" (the
# controller) and WANT open or closed (refused, or dropped: no answer within 2 s).
check_tcp() {
  local probe from to port want results=$HOSTS_WORK/tcp jobs=()
  rm -rf "$results" && mkdir -p "$results"
  for probe in "$@"; do
    IFS=: read -r from to port want <<<"$probe"
    (
      if [ "$from" = ctl ]; then
        ctl timeout 2 bash -c "</dev/tcp/${address[$to]}/$port" 2>/dev/null && echo open || echo closed
      else
        on "$from" timeout 2 bash -c "</dev/tcp/${address[$to]}/$port" 2>/dev/null && echo open || echo closed
      fi
    ) >"$results/$probe" &
    jobs+=($!)
  done
  wait "${jobs[@]}"
  for probe in "$@"; do
    IFS=: read -r from to port want <<<"$probe"
    expect "$from -> $to:$port" "$(cat "$results/$probe")" "$want"
  done
}
# The firewall of the members $*: the controller reaches 2379 but not 2380; members reach both.
check_firewall() {
  local name other probes=()
  for name in "$@"; do
    probes+=("ctl:$name:2379:open" "ctl:$name:2380:closed")
    for other in "$@"; do
      [ "$other" = "$name" ] || probes+=("$other:$name:2380:open" "$other:$name:2379:open")
    done
  done
  check_tcp "${probes[@]}"
}
sha() { sha256sum | cut -d' ' -f1; }

step "site.yml: a1 a2 a3 from bare hosts, TLS; p1 alone with plain http"
write_inventory a1 a2 a3
# p1 in an inventory of its own (a cluster of one), at the same time.
plain_inventory=$HOSTS_WORK/inventory-plain.yml
sed -e "s|ferrocd_pki_dir: .*|ferrocd_pki_dir: $HOSTS_WORK/pki-plain|" \
  -e '/^  hosts:$/,$d' "$inventory" >"$plain_inventory"
cat >>"$plain_inventory" <<EOF
    ferrocd_tls: false
  hosts:
    p1: {ansible_nsenter_pid: $(hosts_pid "$(machine p1)"), ferrocd_address: ${address[p1]}}
  children:
    etcd:
      hosts:
        p1:
EOF
(PLAY_INVENTORY=$plain_inventory PLAY_LOG=$HOSTS_WORK/plain.log play ansible/site.yml >/dev/null) &
plain=$!
begin=$(date +%s)
play ansible/site.yml
ok "site.yml took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a3
ctl_etcdctl --endpoints="$(endpoints a1)" put placed-by ansible >/dev/null
expect "read on a3" "$(ctl_etcdctl --endpoints="$(endpoints a3)" get placed-by --print-value-only)" ansible
expect "a1 firewall" "$(on a1 systemctl is-active firewalld)" active
expect_in "a1 rich rules" "$(on a1 firewall-cmd --permanent --list-rich-rules)" \
  'rule family="ipv4" source address="10.88.9.12" service name="etcd-server" accept'
expect_in "a2 ufw" "$(on a2 ufw status)" "Status: active"
expect_in "a2 ufw rules" "$(on a2 ufw show added)" "ufw allow from 10.88.9.13 to any app etcd-server"
expect "a2 data dir drop-in" "$(on a2 systemctl show etcd -p ReadWritePaths --value)" "/var/lib/etcd /data/lib/etcd"
expect "a2 data dir" "$(on a2 stat -c '%U:%G %a' /data/lib/etcd/member)" "etcd:etcd 700"
conf=$(on a3 cat /etc/etcd/etcd.conf)
expect_in "a3 etcd.conf" "$conf" \
  'ETCD_INITIAL_CLUSTER="a1=https://10.88.9.11:2380,a2=https://10.88.9.12:2380,a3=https://10.88.9.13:2380"'
expect_in "a3 etcd.conf" "$conf" 'ETCD_LISTEN_CLIENT_URLS="https://10.88.9.13:2379,https://127.0.0.1:2379"'
expect_in "a3 etcd.conf" "$conf" 'ETCD_PEER_CLIENT_CERT_AUTH="true"'
expect "a3 enabled" "$(on a3 systemctl is-enabled etcd)" enabled
# The PKI: on the controller, and as each member has it.
for file in ca.crt ca.key client.crt client.key; do
  [ -s "$pki/$file" ] || fail "no $pki/$file"
done
expect "controller's PKI modes" "$(cd "$pki" && stat -c '%n %a' . ca.key client.key members/a1/server.key | tr '\n' ' ')" \
  ". 700 ca.key 600 client.key 600 members/a1/server.key 600 "
openssl verify -CAfile "$pki/ca.crt" "$pki/client.crt" "$pki"/members/*/server.crt "$pki"/members/*/peer.crt >/dev/null ||
  fail "openssl verify"
ok "client and member certificates verify against ca.crt"
expect_in "a2 server.crt names" "$(openssl x509 -in "$pki/members/a2/server.crt" -noout -ext subjectAltName)" \
  "IP Address:10.88.9.12, DNS:a2, IP Address:127.0.0.1, DNS:localhost"
expect_in "client.crt usage" "$(openssl x509 -in "$pki/client.crt" -noout -ext extendedKeyUsage)" "TLS Web Client Authentication"
expect "a2 /etc/etcd/pki" \
  "$(on a2 stat -c '%n %U:%G %a' /etc/etcd/pki /etc/etcd/pki/ca.crt /etc/etcd/pki/server.key /etc/etcd/pki/peer.key | tr '\n' ' ')" \
  "/etc/etcd/pki root:etcd 750 /etc/etcd/pki/ca.crt root:etcd 644 /etc/etcd/pki/server.key root:etcd 640 /etc/etcd/pki/peer.key root:etcd 640 "
expect "a2 peer.key is the controller's" "$(on a2 cat /etc/etcd/pki/peer.key | sha)" "$(sha <"$pki/members/a2/peer.key")"
# Clients without a certificate of this CA are refused.
if ctl env ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=3s --cacert "$pki/ca.crt" \
  --endpoints="$(endpoints a1)" get placed-by >/dev/null 2>&1; then
  fail "a client without a certificate was served"
fi
ok "a client without a certificate is refused"

step "p1 (plain http, ferrocd_tls=false)"
wait "$plain" || { cat "$HOSTS_WORK/plain.log"; fail "site.yml on p1 (ferrocd_tls=false)"; }
sed -n '/PLAY RECAP/,/^$/p' "$HOSTS_WORK/plain.log"
health=$(ctl env ETCDCTL_API=3 etcdctl --dial-timeout=2s --endpoints="http://${address[p1]}:2379" endpoint health 2>&1) ||
  fail "p1 endpoint health: $health"
ok "p1 is healthy over http"
expect_in "p1 member list" "$(ctl env ETCDCTL_API=3 etcdctl --endpoints="http://${address[p1]}:2379" member list)" \
  "started, p1, http://10.88.9.21:2380, http://10.88.9.21:2379"
conf=$(on p1 cat /etc/etcd/etcd.conf)
expect_in "p1 etcd.conf" "$conf" 'ETCD_INITIAL_CLUSTER="p1=http://10.88.9.21:2380"'
[[ $conf != *ETCD_CERT_FILE* ]] || fail "p1 etcd.conf has TLS settings: $conf"
ok "p1 etcd.conf has no TLS settings"
[ ! -e "$HOSTS_WORK/pki-plain" ] || fail "a PKI was made for p1"
expect "p1 /etc/etcd/pki" "$(on p1 test -e /etc/etcd/pki && echo there || echo absent)" absent
hosts_stop "$(machine p1)"

step "site.yml again: nothing changes"
pids=$(member_pids a1 a2 a3)
begin=$(date +%s)
play ansible/site.yml
expect "changed tasks in the second run" "$(changed_total)" 0
ok "the second site.yml took $(($(date +%s) - begin)) s"
expect "member PIDs after the second run" "$(member_pids a1 a2 a3)" "$pids"

step "firewall"
check_firewall a1 a2 a3

step "power cut and boot of a1 (firewalld) and a2 (ufw)"
hosts_power_cycle "$(machine a1)" &
cycle1=$!
hosts_power_cycle "$(machine a2)" || fail "a2 did not boot again"
wait "$cycle1" || fail "a1 did not boot again"
wait_active a1
wait_active a2
check_cluster a1 a2 a3
check_firewall a1 a2 a3
write_inventory a1 a2 a3

step "rotate the certificates: site.yml -e ferrocd_pki_regenerate=true"
ca_before=$(sha <"$pki/ca.crt")
client_before=$(sha <"$pki/client.crt")
begin=$(date +%s)
play ansible/site.yml -e ferrocd_pki_regenerate=true
ok "site.yml with ferrocd_pki_regenerate took $(($(date +%s) - begin)) s"
expect "ca.crt after the rotation" "$(sha <"$pki/ca.crt")" "$ca_before"
[ "$(sha <"$pki/client.crt")" != "$client_before" ] || fail "client.crt was not renewed"
ok "client.crt is new"
for name in a1 a2 a3; do
  grep -q "Restart the member on $name" "$HOSTS_WORK/play.log" || fail "no restart of $name in the log"
  # What the member serves now is the controller's new server certificate.
  served=$(ctl openssl s_client -connect "${address[$name]}:2379" -CAfile "$pki/ca.crt" \
    -cert "$pki/client.crt" -key "$pki/client.key" </dev/null 2>/dev/null | openssl x509 -outform der | sha)
  expect "$name serves the new server.crt" "$served" "$(openssl x509 -in "$pki/members/$name/server.crt" -outform der | sha)"
done
check_cluster a1 a2 a3
expect "placed-by after the rotation" "$(ctl_etcdctl --endpoints="$(endpoints a2)" get placed-by --print-value-only)" ansible

step "rolling-restart.yml"
pids=$(member_pids a1 a2 a3)
play ansible/rolling-restart.yml
after=$(member_pids a1 a2 a3)
[ "$(comm -12 <(sort <<<"$pids") <(sort <<<"$after") | wc -l)" = 0 ] || fail "not every member restarted: $pids / $after"
ok "every member restarted"
check_cluster a1 a2 a3

step "a3 is powered off for good; replace-member.yml puts a4 in its place while a client writes"
kill -KILL "$(hosts_pid "$(machine a3)")"
hosts_stop "$(machine a3)"
for _ in $(seq 1 100); do
  ctl_etcdctl --endpoints="$(endpoints a1)" put probe 1 >/dev/null 2>&1 && break
  sleep 0.2
done
# The writer: one put every 50 ms through the surviving members, for as long as the playbook
# runs (bounded: at most 5 minutes); each line is "ok|fail TIME_MS KEY".
writes=$HOSTS_WORK/writes.log
ctl python3 tests/hosts/ansible-writer.py "$pki/ca.crt" "$pki/client.crt" "$pki/client.key" \
  "$HOSTS_WORK/stop-writer" 300 "${address[a1]}:2379" "${address[a2]}:2379" >"$writes" &
writer=$!
write_inventory a1 a2 a4
begin=$(date +%s)
play ansible/replace-member.yml -e ferrocd_old_member=a3
ok "replace-member.yml took $(($(date +%s) - begin)) s"
# A few more writes with the new member in place.
lines=$(wc -l <"$writes")
for _ in $(seq 1 100); do
  [ "$(wc -l <"$writes")" -ge $((lines + 5)) ] && break
  sleep 0.1
done
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
rules=$(on a1 firewall-cmd --permanent --list-rich-rules)
expect_in "a1 rich rules after the replacement" "$rules" 'source address="10.88.9.14" service name="etcd-server"'
[[ $rules != *10.88.9.13* ]] || fail "a1 still lets a3 in"
ok "a1 no longer lets a3 in"

step "scale.yml: grow to five (a5 ufw, a6 firewalld)"
write_inventory a1 a2 a4 a5 a6
begin=$(date +%s)
play ansible/scale.yml
ok "scale.yml to five took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a4 a5 a6
check_firewall a1 a5 a6

step "scale.yml: back to three"
write_inventory a1 a2 a4
begin=$(date +%s)
play ansible/scale.yml
ok "scale.yml back to three took $(($(date +%s) - begin)) s"
check_cluster a1 a2 a4
for name in a5 a6; do
  for _ in $(seq 1 50); do
    [ "$(on "$name" systemctl is-active etcd 2>/dev/null)" != active ] && break
    sleep 0.2
  done
  expect "$name: etcd after its removal" "$(on "$name" systemctl is-active etcd || true)" inactive
done
check_tcp a5:a4:2380:closed a6:a1:2380:closed a2:a4:2380:open

step "lint and syntax checks"
if ! wait "$lint"; then
  cat "$lint_log"
  fail "ansible-lint or --syntax-check"
fi
ok "ansible-lint --profile production passes"
ok "ansible-playbook --syntax-check of site, replace-member, scale, rolling-restart"
step "end"

printf '\nTime per phase:\n'
printf '%s\n' "${phases[@]}"
printf '\n%s checks passed in %ss (%s playbook runs)\n' "$checks" "$(($(date +%s) - started))" "$plays"
