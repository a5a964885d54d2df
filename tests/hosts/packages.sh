#!/usr/bin/env bash
# The packages, proven on hosts booted with systemd (issue 8). Builds the .deb and .rpm with
# packaging/build.sh (and a newer-stamped .deb for the upgrade), lints them, then:
#   deb1:      apt install, start/health/put/get, user, unit properties, data dir, stop,
#              a broken etcd.conf, upgrade, remove, purge;
#   rpm1:      rpm -ivh --nodeps, start/health/put/get, erase;
#   c1 c2 c3:  three hosts on a private bridge with seed-style etcd.conf files, started at once,
#              form one healthy cluster.
# Needs root. Driven by tests/e2e/packages.rs; run alone with `bash tests/hosts/packages.sh`.
# shellcheck disable=SC2016 # dpkg-query and awk formats are meant for those programs
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
# The service's journal in host $1, to explain a failure.
journal() {
  echo "--- journalctl -u etcd on $1:" >&2
  hosts_exec "$1" journalctl -u etcd --no-pager -n 60 >&2 || true
}
# Fails unless "$2" equals "$3"; $1 says what was compared.
expect() {
  [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"
  ok "$1 = $3"
}
# Fails unless the text $2 contains $3.
expect_in() {
  [[ $2 == *"$3"* ]] || fail "$1: '$3' not in: $2"
  ok "$1 has '$3'"
}
unit() { hosts_exec "$1" systemctl show etcd.service -p "$2" --value; }
# Like expect_in for the output of the shell line $3 in host $2, polled for up to 10 s (for
# what changes by itself, like the status line during an election).
eventually_in() {
  local text=""
  for _ in $(seq 1 100); do
    text=$(hosts_sh "$2" "$3" 2>&1 || true)
    [[ $text == *"$4"* ]] && break
    sleep 0.1
  done
  expect_in "$1" "$text" "$4"
}

step "build the packages"
hosts_tools
for tool in lintian rpmlint; do
  command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null
done
bash packaging/build.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
next=$(echo "$version" | awk -F. -v OFS=. '{ $NF = $NF + 1; print }')
deb=$repo/dist/ferrocd_${version}_amd64.deb
rpm=$repo/dist/ferrocd-${version}-1.x86_64.rpm
if [ ! -f "$deb" ] || [ ! -f "$rpm" ]; then fail "build.sh did not make $deb and $rpm"; fi
ok "built $(basename "$deb") and $(basename "$rpm")"
hosts_init
bash packaging/build.sh --version "$next" --out "$HOSTS_WORK/next" >/dev/null
deb_next=$HOSTS_WORK/next/ferrocd_${next}_amd64.deb
[ -f "$deb_next" ] || fail "build.sh --version $next did not make $deb_next"
ok "built the upgrade $(basename "$deb_next")"
programs=(ferrocd ferrocdctl)

step "lint and inspect"
lintian --fail-on error,warning --info "$deb" || fail "lintian"
ok "lintian: no errors or warnings (overrides: deb/lintian-overrides)"
rpmlint -c rpm/rpmlint.toml "$rpm" || fail "rpmlint"
ok "rpmlint: no errors or warnings (settings: rpm/rpmlint.toml)"
expect "deb Conflicts" "$(dpkg-deb -f "$deb" Conflicts)" etcd-server
expect_in "deb Depends" "$(dpkg-deb -f "$deb" Depends)" systemd
expect "deb conffiles" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | sort | tr '\n' ' ')" \
  "/etc/etcd/etcd.conf /etc/ufw/applications.d/ferrocd "
files=$(rpm -qlp "$rpm" 2>/dev/null)
deb_files=$(dpkg-deb -c "$deb")
for program in "${programs[@]}"; do
  for path in /usr/bin/$program /usr/share/man/man1/$program.1.gz \
    /usr/share/bash-completion/completions/$program /usr/share/zsh/site-functions/_$program \
    /usr/share/fish/vendor_completions.d/$program.fish; do
    grep -qx "$path" <<<"$files" || fail "rpm -l: no $path"
    grep -q " \.${path/site-functions/vendor-completions}\$" <<<"$deb_files" || fail "deb: no $path"
  done
done
ok "both packages: ${programs[*]} with man pages and bash, zsh, fish completions"
for path in /usr/lib/systemd/system/etcd.service /usr/lib/sysusers.d/ferrocd.conf \
  /usr/lib/tmpfiles.d/ferrocd.conf /etc/etcd/etcd.conf /etc/ufw/applications.d/ferrocd; do
  grep -qx "$path" <<<"$files" || fail "rpm -l: no $path"
done
ok "rpm -l: unit, sysusers, tmpfiles, etcd.conf, ufw profiles"
expect "rpm config files" "$(rpm -qp --configfiles "$rpm" 2>/dev/null | tr '\n' ' ')" \
  "/etc/etcd/etcd.conf /etc/ufw/applications.d/ferrocd "
expect "rpm %config(noreplace)" "$(rpm -qp --qf '[%{FILEFLAGS:fflags}|%{FILENAMES}\n]' "$rpm" 2>/dev/null |
  awk -F'|' '$1 == "cn" {print $2}' | tr '\n' ' ')" "/etc/etcd/etcd.conf /etc/ufw/applications.d/ferrocd "
scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
expect_in "rpm %pre" "$scripts" "systemd-sysusers --replace=/usr/lib/sysusers.d/ferrocd.conf"
expect_in "rpm %post" "$scripts" "systemd-tmpfiles --create /usr/lib/tmpfiles.d/ferrocd.conf"
expect_in "rpm %preun" "$scripts" "systemctl --no-reload disable --now etcd.service"
expect_in "rpm %postun" "$scripts" "systemctl try-restart etcd.service"
if grep -qE 'systemctl (--no-reload )?(start|enable|restart) ' <<<"$scripts"; then
  fail "an rpm scriptlet starts or enables the service: $scripts"
fi
ok "no rpm scriptlet starts or enables the service"
requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
expect_in "rpm Requires" "$requires" "libc.so.6(GLIBC_2.34)(64bit)"
expect_in "rpm Requires" "$requires" "systemd"
if grep -vE '^(/bin/sh|systemd|config\(ferrocd\)|rpmlib\(|rtld\(|ld-linux|lib(c|m|gcc_s)\.so)' <<<"$requires"; then
  fail "rpm Requires has more than libc, libgcc, systemd and /bin/sh"
fi
ok "rpm Requires: only libc, libm, libgcc_s, systemd, /bin/sh"
expect "rpm Conflicts" "$(rpm -qp --conflicts "$rpm" 2>/dev/null)" etcd

step "boot hosts"
hosts_network pkg 10.88.8
hosts_boot deb1 pkg 10.88.8.11
hosts_boot rpm1 pkg 10.88.8.12

step "deb1: apt install"
hosts_put deb1 "$deb" "/root/$(basename "$deb")"
hosts_put deb1 "$deb_next" "/root/$(basename "$deb_next")"
hosts_exec deb1 apt-get install -y -q "/root/$(basename "$deb")" >"$HOSTS_WORK/apt.log" 2>&1 ||
  { cat "$HOSTS_WORK/apt.log"; fail "apt install"; }
ok "apt install ./$(basename "$deb")"
expect "after install, is-active" "$(hosts_exec deb1 systemctl is-active etcd || true)" inactive
expect "after install, is-enabled" "$(hosts_exec deb1 systemctl is-enabled etcd || true)" disabled
expect "etcd user" "$(hosts_exec deb1 id -un etcd)" etcd
expect "data dir" "$(hosts_exec deb1 stat -c '%U:%G %a' /var/lib/etcd)" "etcd:etcd 700"
expect "ufw profile etcd-client" "$(hosts_exec deb1 ufw app info etcd-client | sed -n 's/^ *\(2379\/tcp\)$/\1/p')" 2379/tcp
expect "ufw profile etcd-server" "$(hosts_exec deb1 ufw app info etcd-server | sed -n 's/^ *\(2380\/tcp\)$/\1/p')" 2380/tcp
expect "ufw allow etcd-client" "$(hosts_exec deb1 ufw allow etcd-client)" "Rules updated
Rules updated (v6)"
expect_in "ufw show added" "$(hosts_exec deb1 ufw show added)" "ufw allow etcd-client"
expect "man page" "$(hosts_exec deb1 sh -c 'zcat /usr/share/man/man1/ferrocd.1.gz | grep -c "^.SH FILES"')" 1
expect_in "bash completion" \
  "$(hosts_exec deb1 bash -c '. /usr/share/bash-completion/completions/ferrocd && complete -p ferrocd')" "ferrocd"
expect_in "bash completion of --initial-cl" "$(hosts_exec deb1 bash -c '. /usr/share/bash-completion/completions/ferrocd &&
  COMP_WORDS=(ferrocd --initial-cl) COMP_CWORD=1 COMP_LINE="ferrocd --initial-cl" COMP_POINT=20 &&
  $(complete -p ferrocd | sed -n "s/.*-F \([^ ]*\) .*/\1/p") ferrocd --initial-cl ferrocd && echo "${COMPREPLY[*]}"')" \
  "--initial-cluster --initial-cluster-state --initial-cluster-token"

step "deb1: start, use, inspect, stop"
begin=$(date +%s%N)
hosts_exec deb1 timeout 60 systemctl start etcd || { journal deb1; fail "systemctl start etcd"; }
ok "systemctl start etcd returned after $((($(date +%s%N) - begin) / 1000000)) ms"
expect "is-active" "$(hosts_exec deb1 systemctl is-active etcd)" active
expect "health" "$(hosts_exec deb1 curl -s http://127.0.0.1:2379/health)" '{"health":"true"}'
hosts_exec deb1 etcdctl put greeting hello >/dev/null
expect "etcdctl get" "$(hosts_exec deb1 etcdctl get greeting --print-value-only)" hello
pid=$(unit deb1 MainPID)
expect "process user" "$(hosts_exec deb1 ps -o user= -p "$pid")" etcd
expect "process command" "$(hosts_exec deb1 ps -o args= -p "$pid")" /usr/bin/ferrocd
eventually_in "STATUS=" deb1 "systemctl show etcd -p StatusText --value" "serving: leader=default, revision="
for property in Type=notify LimitNOFILE=65536 User=etcd Restart=on-failure NoNewPrivileges=yes \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes ProtectKernelTunables=yes \
  ProtectControlGroups=yes RestrictNamespaces=yes MemoryDenyWriteExecute=yes \
  "ReadWritePaths=/var/lib/etcd" "EnvironmentFiles=/etc/etcd/etcd.conf (ignore_errors=yes)"; do
  expect "systemctl show ${property%%=*}" "$(unit deb1 "${property%%=*}")" "${property#*=}"
done
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
expect "Max open files of the process" \
  "$(hosts_exec deb1 awk '/Max open files/ {print $4 " " $5}' "/proc/$pid/limits")" \
  "$((hard < 65536 ? hard : 65536)) $((hard < 65536 ? hard : 65536))"
expect "data dir after start" "$(hosts_exec deb1 stat -c '%U:%G %a' /var/lib/etcd)" "etcd:etcd 700"
expect "member data owner" "$(hosts_exec deb1 stat -c '%U' /var/lib/etcd/member)" etcd
expect_in "journal" "$(hosts_exec deb1 journalctl -u etcd --no-pager)" "0 errors, 0 warnings: ferrocd would start"
hosts_exec deb1 systemctl enable etcd 2>/dev/null
expect "the alias ferrocd.service" "$(hosts_exec deb1 systemctl show ferrocd.service -p Id --value)" etcd.service
expect "is-enabled ferrocd.service" "$(hosts_exec deb1 systemctl is-enabled ferrocd.service)" alias
expect "the alias link" "$(hosts_exec deb1 readlink /etc/systemd/system/ferrocd.service)" /lib/systemd/system/etcd.service
begin=$(date +%s%N)
hosts_exec deb1 timeout 60 systemctl stop etcd || fail "systemctl stop etcd"
ok "systemctl stop etcd returned after $((($(date +%s%N) - begin) / 1000000)) ms"
expect "stop result" "$(unit deb1 Result)" success
expect "exit status" "$(unit deb1 ExecMainStatus)" 0
expect_in "journal" "$(hosts_exec deb1 journalctl -u etcd --no-pager)" "Deactivated successfully"

step "deb1: a broken etcd.conf fails the start fast"
hosts_exec deb1 cp /etc/etcd/etcd.conf /root/etcd.conf.good
hosts_sh deb1 'sed -i "s|^ETCD_LISTEN_CLIENT_URLS=.*|ETCD_LISTEN_CLIENT_URLS=\"localhost:2379\"|" /etc/etcd/etcd.conf'
begin=$(date +%s%N)
if hosts_exec deb1 timeout 60 systemctl start etcd 2>/dev/null; then fail "started with a broken etcd.conf"; fi
elapsed=$((($(date +%s%N) - begin) / 1000000))
[ "$elapsed" -lt 10000 ] || fail "the failing start took $elapsed ms"
ok "systemctl start etcd failed after $elapsed ms"
expect "result" "$(unit deb1 Result)" exit-code
log=$(hosts_exec deb1 journalctl -u etcd --no-pager)
expect_in "journal" "$log" 'error: invalid value "localhost:2379" for ETCD_LISTEN_CLIENT_URLS: URL scheme must be http, https, unix, or unixs'
expect_in "journal" "$log" "1 error, 0 warnings: ferrocd would not start"
expect_in "journal" "$log" "etcd.service: Control process exited, code=exited, status=1/FAILURE"
expect "\"ready to serve\" lines (only the earlier good start)" "$(hosts_exec deb1 sh -c 'journalctl -u etcd --no-pager | grep -c "ready to serve" || true')" 1
# Restart=on-failure retries, but not for ever: five starts in a minute, then the unit stays
# failed until the operator fixes the file and resets it.
for _ in $(seq 1 600); do
  hosts_exec deb1 journalctl -u etcd --no-pager | grep -q "Start request repeated too quickly" && break
  sleep 0.1
done
log=$(hosts_exec deb1 journalctl -u etcd --no-pager)
expect_in "journal" "$log" "etcd.service: Start request repeated too quickly."
expect "state after the retries" "$(unit deb1 ActiveState)" failed
runs=$(grep -c 'ferrocd would not start' <<<"$log")
[ "$runs" -le 5 ] || fail "check-config ran $runs times"
ok "check-config ran $runs times, then systemd stopped retrying"
hosts_exec deb1 systemctl reset-failed etcd

step "deb1: upgrade to $next"
# An operator's edit, which the upgrade must keep.
hosts_sh deb1 'cp /root/etcd.conf.good /etc/etcd/etcd.conf && printf "\n# edited by the operator\nETCD_SNAPSHOT_COUNT=\"5000\"\n" >>/etc/etcd/etcd.conf'
edited=$(hosts_exec deb1 md5sum /etc/etcd/etcd.conf)
hosts_exec deb1 timeout 60 systemctl start etcd || { journal deb1; fail "start before the upgrade"; }
hosts_exec deb1 etcdctl put before-upgrade kept >/dev/null
pid=$(unit deb1 MainPID)
hosts_exec deb1 apt-get install -y -q "/root/$(basename "$deb_next")" >"$HOSTS_WORK/apt.log" 2>&1 ||
  { cat "$HOSTS_WORK/apt.log"; fail "apt install of the upgrade"; }
ok "apt install ./$(basename "$deb_next")"
expect "installed version" "$(hosts_exec deb1 dpkg-query -W -f '${Version}' ferrocd)" "$next"
expect "is-active after the upgrade" "$(hosts_exec deb1 systemctl is-active etcd)" active
[ "$(unit deb1 MainPID)" != "$pid" ] || fail "the upgrade did not restart the service (pid $pid)"
ok "the upgrade restarted the service (pid $pid -> $(unit deb1 MainPID))"
expect "edited etcd.conf" "$(hosts_exec deb1 md5sum /etc/etcd/etcd.conf)" "$edited"
expect "no .dpkg-* beside etcd.conf" "$(hosts_exec deb1 ls /etc/etcd)" etcd.conf
expect "data after the upgrade" "$(hosts_exec deb1 etcdctl get greeting --print-value-only)" hello
expect "data after the upgrade" "$(hosts_exec deb1 etcdctl get before-upgrade --print-value-only)" kept
expect "health after the upgrade" "$(hosts_exec deb1 curl -s http://127.0.0.1:2379/health)" '{"health":"true"}'
expect "still enabled" "$(hosts_exec deb1 systemctl is-enabled etcd)" enabled

step "deb1: remove, then purge"
hosts_exec deb1 apt-get remove -y -q ferrocd >"$HOSTS_WORK/apt.log" 2>&1 || { cat "$HOSTS_WORK/apt.log"; fail "apt remove"; }
expect "is-active after remove" "$(hosts_exec deb1 systemctl is-active etcd || true)" inactive
expect "ferrocd processes after remove" "$(hosts_exec deb1 pgrep -c -x ferrocd || true)" 0
expect "binary after remove" "$(hosts_exec deb1 sh -c 'test -e /usr/bin/ferrocd && echo present || echo gone')" gone
expect "package state after remove" "$(hosts_exec deb1 dpkg-query -W -f '${db:Status-Abbrev}' ferrocd)" "rc "
expect "etcd.conf after remove" "$(hosts_exec deb1 md5sum /etc/etcd/etcd.conf)" "$edited"
expect "data dir after remove" "$(hosts_exec deb1 stat -c '%U:%G %a' /var/lib/etcd)" "etcd:etcd 700"
hosts_exec deb1 apt-get purge -y -q ferrocd >"$HOSTS_WORK/apt.log" 2>&1 || { cat "$HOSTS_WORK/apt.log"; fail "apt purge"; }
expect "/etc/etcd after purge" "$(hosts_exec deb1 sh -c 'test -e /etc/etcd && echo present || echo gone')" gone
expect "enable links after purge" \
  "$(hosts_exec deb1 sh -c 'ls /etc/systemd/system/ferrocd.service /etc/systemd/system/multi-user.target.wants/etcd.service 2>/dev/null | wc -l')" 0
expect "package after purge" "$(hosts_exec deb1 sh -c 'dpkg-query -W ferrocd 2>/dev/null || echo none')" none
expect "data kept after purge" "$(hosts_exec deb1 sh -c 'ls /var/lib/etcd/member | head -n1 | wc -l')" 1
expect "etcd user kept after purge" "$(hosts_exec deb1 id -un etcd)" etcd

step "rpm1: rpm -ivh --nodeps"
hosts_put rpm1 "$rpm" "/root/$(basename "$rpm")"
hosts_exec rpm1 rpm -ivh --nodeps "/root/$(basename "$rpm")" >"$HOSTS_WORK/rpm.log" 2>&1 ||
  { cat "$HOSTS_WORK/rpm.log"; fail "rpm -ivh"; }
ok "rpm -ivh --nodeps $(basename "$rpm")"
expect "after install, is-active" "$(hosts_exec rpm1 systemctl is-active etcd || true)" inactive
expect "etcd user" "$(hosts_exec rpm1 id -un etcd)" etcd
expect "data dir" "$(hosts_exec rpm1 stat -c '%U:%G %a' /var/lib/etcd)" "etcd:etcd 700"
expect "unit loaded" "$(unit rpm1 LoadState)" loaded
expect "unit file's package" "$(hosts_exec rpm1 rpm -qf /usr/lib/systemd/system/etcd.service)" "ferrocd-$version-1.x86_64"
hosts_exec rpm1 timeout 60 systemctl start etcd || { journal rpm1; fail "systemctl start etcd (rpm)"; }
ok "systemctl start etcd"
expect "health" "$(hosts_exec rpm1 curl -s http://127.0.0.1:2379/health)" '{"health":"true"}'
hosts_exec rpm1 etcdctl put from-rpm yes >/dev/null
expect "etcdctl get" "$(hosts_exec rpm1 etcdctl get from-rpm --print-value-only)" yes
expect "process user" "$(hosts_exec rpm1 ps -o user= -p "$(unit rpm1 MainPID)")" etcd
hosts_exec rpm1 rpm -e --nodeps ferrocd >"$HOSTS_WORK/rpm.log" 2>&1 || { cat "$HOSTS_WORK/rpm.log"; fail "rpm -e"; }
expect "is-active after rpm -e" "$(hosts_exec rpm1 systemctl is-active etcd || true)" inactive
expect "data kept after rpm -e" "$(hosts_exec rpm1 sh -c 'ls /var/lib/etcd/member | head -n1 | wc -l')" 1
hosts_stop deb1
hosts_stop rpm1

step "c1 c2 c3: a three-member cluster from seed-style etcd.conf files"
names=(c1 c2 c3)
declare -A address=([c1]=10.88.8.21 [c2]=10.88.8.22 [c3]=10.88.8.23)
initial=""
for name in "${names[@]}"; do
  initial+="${initial:+,}cd-test-$name.ferrocd.test=http://${address[$name]}:2380"
done
for name in "${names[@]}"; do
  hosts_boot "$name" pkg "${address[$name]}"
  hosts_put "$name" "$deb" "/root/$(basename "$deb")"
  # The deployment guide's layout: data in /data/lib/etcd, listen everywhere, advertise the
  # host's own address.
  cat >"$HOSTS_WORK/etcd.conf.$name" <<EOF
[member]
ETCD_NAME=cd-test-$name.ferrocd.test
ETCD_DATA_DIR="/data/lib/etcd/"
ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"
ETCD_ADVERTISE_CLIENT_URLS="http://${address[$name]}:2379"
ETCD_LISTEN_PEER_URLS="http://0.0.0.0:2380"
ETCD_INITIAL_ADVERTISE_PEER_URLS="http://${address[$name]}:2380"
[cluster]
ETCD_INITIAL_CLUSTER="$initial"
ETCD_INITIAL_CLUSTER_STATE="new"
ETCD_INITIAL_CLUSTER_TOKEN="etcd-cluster"
EOF
done
# The README's drop-in for a data dir outside /var/lib/etcd.
printf '[Service]\nReadWritePaths=/data/lib/etcd\n' >"$HOSTS_WORK/data-dir.conf"
installs=()
for name in "${names[@]}"; do
  (
    hosts_exec "$name" apt-get install -y -q "/root/$(basename "$deb")" >"$HOSTS_WORK/apt.$name.log" 2>&1 &&
      hosts_put "$name" "$HOSTS_WORK/etcd.conf.$name" /etc/etcd/etcd.conf &&
      hosts_put "$name" "$HOSTS_WORK/data-dir.conf" /etc/systemd/system/etcd.service.d/data-dir.conf &&
      hosts_sh "$name" 'install -d -o etcd -g etcd -m 700 /data/lib/etcd && systemctl daemon-reload'
  ) &
  installs+=($!)
done
# Not a bare `wait`: the hosts' nspawn processes are background jobs too.
wait "${installs[@]}" || true
for name in "${names[@]}"; do
  expect "$name: installed" "$(hosts_exec "$name" dpkg-query -W -f '${Status}' ferrocd 2>/dev/null)" "install ok installed"
  # firewalld runs on these hosts and rejects what it is not told to let in: open the ports by
  # the service names firewalld ships.
  hosts_exec "$name" firewall-cmd -q --add-service=etcd-client --add-service=etcd-server
  expect "$name: firewalld services" "$(hosts_exec "$name" firewall-cmd --list-services)" "dhcpv6-client etcd-client etcd-server ssh"
  expect "$name: ReadWritePaths" "$(unit "$name" ReadWritePaths)" "/var/lib/etcd /data/lib/etcd"
done
begin=$(date +%s%N)
for name in "${names[@]}"; do
  hosts_exec "$name" timeout 120 systemctl start etcd >"$HOSTS_WORK/start.$name.log" 2>&1 &
  echo $! >"$HOSTS_WORK/start.$name.pid"
done
for name in "${names[@]}"; do
  wait "$(cat "$HOSTS_WORK/start.$name.pid")" || { journal "$name"; fail "$name: systemctl start etcd"; }
done
ok "systemctl start etcd on c1, c2, c3 at once returned after $((($(date +%s%N) - begin) / 1000000)) ms"
endpoints=http://10.88.8.21:2379,http://10.88.8.22:2379,http://10.88.8.23:2379
health=$(hosts_exec c1 etcdctl --endpoints="$endpoints" endpoint health 2>&1) || fail "endpoint health: $health"
expect "healthy endpoints" "$(grep -c 'is healthy' <<<"$health")" 3
members=$(hosts_exec c2 etcdctl --endpoints="$endpoints" member list)
expect "members" "$(wc -l <<<"$members")" 3
for name in "${names[@]}"; do
  expect_in "member list" "$members" "started, cd-test-$name.ferrocd.test, http://${address[$name]}:2380, http://${address[$name]}:2379"
  eventually_in "$name: status" "$name" "systemctl show etcd -p StatusText --value" "serving: leader=cd-test-"
done
for name in "${names[@]}"; do
  expect "$name: member data" "$(hosts_exec "$name" stat -c '%U:%G %a' /data/lib/etcd /data/lib/etcd/member | tr '\n' ' ')" \
    "etcd:etcd 700 etcd:etcd 700 "
done
hosts_exec c1 etcdctl --endpoints=http://10.88.8.21:2379 put across hosts >/dev/null
expect "written on c1, read on c3" \
  "$(hosts_exec c3 etcdctl --endpoints=http://10.88.8.23:2379 get across --print-value-only)" hosts

printf '\n%s checks passed in %ss\n' "$checks" "$(($(date +%s) - started))"
