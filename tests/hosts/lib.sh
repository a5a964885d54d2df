# shellcheck shell=bash
# Test hosts booted with systemd, on one machine: a cached Debian bookworm root filesystem,
# one overlay per host, systemd-nspawn with systemd as the host's PID 1, each host in a network
# namespace of its own on a private bridge. Follows ../../../shared/docs/TEST-HOSTS.md.
#
# Source it from a bash script that runs as root, then:
#   hosts_init                      # work dir, cleanup trap (EXIT/INT/TERM), cached rootfs
#   hosts_network NET 10.88.1       # a private bridge NET for 10.88.1.0/24
#   hosts_boot NAME NET 10.88.1.11  # boot host NAME at that address, wait until it runs
#   hosts_boot NAME NET IP UNIT...  # the same, with those units disabled before its first boot
#   hosts_exec NAME systemctl start etcd      # a command in the host (all its namespaces)
#   hosts_sh NAME 'etcdctl get foo | tail -1' # a shell line in the host
#   hosts_put NAME SRC DEST         # copy a file from here into the host
#   hosts_stop NAME; hosts_cleanup  # hosts_cleanup also runs on exit, whatever happened
#
# Names: a host or network name has at most 11 characters (interface names are derived from
# it); two scripts that run at the same time must use different names (network namespaces,
# cgroups and interfaces on this machine are named after them; subnets may repeat, each bridge
# is private). hosts_run_id gives a short suffix that no other running script has.
# Hosts boot in parallel when hosts_boot runs in the background (`hosts_boot ... &`, then
# `wait` for each).
# Settings (environment, before hosts_init): HOSTS_EXTRA_PACKAGES (installed in the cached
# rootfs on top of the base set; part of the cache key), HOSTS_CACHE (/var/cache/ferrocd-tests,
# which holds the rootfs as a tarball and unpacked beside it).

HOSTS_CACHE=${HOSTS_CACHE:-/var/cache/ferrocd-tests}
HOSTS_SUITE=bookworm
# What every host has: systemd as init, and what the firewall and Ansible tests need (netbase
# for firewalld, python3-apt for Ansible's apt module; libpam-systemd provides the logind that
# firewalld's polkitd depends on, which debootstrap cannot resolve as a virtual package).
HOSTS_BASE_PACKAGES=systemd,systemd-sysv,libpam-systemd,dbus,openssh-server,python3,python3-apt,iproute2,sudo,netbase,procps,ca-certificates,nftables,iptables,firewalld,ufw
# Extra packages, installed with a policy-rc.d that keeps their services from starting.
HOSTS_EXTRA_PACKAGES=${HOSTS_EXTRA_PACKAGES:-etcd-client curl rpm}
HOSTS_WORK=
HOSTS_LOWER=

hosts_log() {
  printf '[hosts %s] %s\n' "$(date +%T)" "$*" >&2
}

# The Debian mirror the machine's own apt uses (sources.list or a deb822 .sources file).
hosts_mirror() {
  local uri
  uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    grep -v security | awk '{print $2}' | head -n1)
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security |
      awk '{print $2}' | head -n1)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Installs the host-side tools when they are missing.
hosts_tools() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v systemd-nspawn >/dev/null || need+=(systemd-container)
  command -v nsenter >/dev/null || need+=(util-linux)
  if [ ${#need[@]} -gt 0 ]; then
    hosts_log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# The cached root filesystem tarball for the current package set; built on first use (about a
# minute), under a lock so that concurrent scripts build it once.
hosts_rootfs() {
  local key tarball root
  # The key changes with what goes in and with how it is made (the recipe's number).
  key=$(printf '2|%s|%s|%s' "$HOSTS_SUITE" "$HOSTS_BASE_PACKAGES" "$HOSTS_EXTRA_PACKAGES" | sha256sum | cut -c1-12)
  tarball=$HOSTS_CACHE/$HOSTS_SUITE-$key.tar
  mkdir -p "$HOSTS_CACHE"
  (
    flock 9
    [ -s "$tarball" ] && exit 0
    hosts_log "building the $HOSTS_SUITE root filesystem (cached as $tarball)"
    root=$(mktemp -d "$HOSTS_CACHE/build.XXXXXX")
    trap 'umount -l "$root/proc" 2>/dev/null; rm -rf "$root"' EXIT
    local try
    for try in 1 2 3; do
      # A download can arrive corrupt: try again.
      debootstrap --variant=minbase --include="$HOSTS_BASE_PACKAGES" "$HOSTS_SUITE" "$root" \
        "$(hosts_mirror)" >"$root.log" 2>&1 && break
      hosts_log "debootstrap failed (try $try): $(tail -n 3 "$root.log")"
      [ "$try" = 3 ] && exit 1
      rm -rf "$root" && mkdir -p "$root"
    done
    if [ -n "$HOSTS_EXTRA_PACKAGES" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
      chmod 755 "$root/usr/sbin/policy-rc.d"
      mount -t proc proc "$root/proc"
      # shellcheck disable=SC2086 # a list of package names
      chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends $HOSTS_EXTRA_PACKAGES && apt-get clean" \
        >>"$root.log" 2>&1 || { hosts_log "apt-get in the root failed: $(tail -n 5 "$root.log")"; exit 1; }
      umount "$root/proc"
      rm -f "$root/usr/sbin/policy-rc.d"
    fi
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    # Every host gets its own machine id at boot; none baked in (systemd would copy D-Bus's).
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -f "$root.log"
  ) 9>"$HOSTS_CACHE/rootfs.lock" || return 1
  echo "$tarball"
}

# The cached rootfs unpacked beside its tarball: the read-only lower layer of every host's
# overlay, shared by all hosts and runs (unpacking and deleting it each run costs half a minute).
hosts_lower() {
  local tarball lower
  tarball=$(hosts_rootfs) || return 1
  lower=${tarball%.tar}
  (
    flock 9
    [ -f "$lower.unpacked" ] && exit 0
    rm -rf "$lower" && mkdir -p "$lower"
    tar -C "$lower" -xf "$tarball" && touch "$lower.unpacked"
  ) 9>"$HOSTS_CACHE/rootfs.lock" || return 1
  echo "$lower"
}

# Sets up a work dir, the cleanup trap and the shared lower layer.
hosts_init() {
  [ "$(id -u)" = 0 ] || { echo "hosts: needs root" >&2; return 1; }
  hosts_tools
  HOSTS_WORK=$(mktemp -d /var/tmp/ferrocd-hosts.XXXXXX)
  mkdir -p "$HOSTS_WORK/hosts" "$HOSTS_WORK/networks"
  trap hosts_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  HOSTS_LOWER=$(hosts_lower) || return 1
}

# A private bridge NET for the /24 whose first three octets are PREFIX: a bridge in a namespace
# of its own ("a switch"), so that nothing touches the machine's own network.
hosts_network() {
  local net=$1 prefix=$2
  ip netns add "hsw-$net"
  echo "$prefix" >"$HOSTS_WORK/networks/$net"
  ip -n "hsw-$net" link add br0 type bridge
  ip -n "hsw-$net" link set br0 up
}

# The PID of the systemd that is PID 1 in host NAME.
hosts_pid() {
  cat "$HOSTS_WORK/hosts/$1/init.pid"
}

# A suffix for the names of this run's hosts and networks that no other script running at the
# same time has: this script's PID (unique among running processes), at most 7 digits.
hosts_run_id() {
  echo "$$"
}

# Boots host NAME with address IP/24 on network NET and waits until systemd has finished
# booting it. Units named after IP are disabled first (`systemctl --root`), so that they
# never start, e.g. firewalld on a host that is to use ufw.
hosts_boot() {
  local name=$1 net=$2 ip=$3
  shift 3
  local dir=$HOSTS_WORK/hosts/$name prefix
  prefix=$(cat "$HOSTS_WORK/networks/$net")
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
  echo "$net" >"$dir/network"
  mount -t overlay overlay -o "lowerdir=$HOSTS_LOWER,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
  echo "$name" >"$dir/merged/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" >"$dir/merged/etc/hosts"
  if [ $# -gt 0 ]; then
    systemctl --root="$dir/merged" disable -q "$@"
  fi

  ip netns add "$name"
  local last=${ip##*.}
  ip link add "hv-$name" netns "hsw-$net" type veth peer name eth0 netns "$name"
  ip -n "hsw-$net" link set "hv-$name" master br0 up
  ip -n "$name" link set eth0 address "$(printf '02:00:0a:58:%02x:%02x' "${prefix##*.}" "$last")"
  ip -n "$name" addr add "$ip/24" dev eth0
  ip -n "$name" link set lo up
  ip -n "$name" link set eth0 up
  # A default route, so that facts like Ansible's default IPv4 address are set; nothing answers
  # at the gateway address and no traffic leaves the bridge.
  ip -n "$name" route add default via "$prefix.254"

  # Its own cgroup in both hierarchies of this machine's hybrid layout; the launching shell
  # moves in first, so nspawn and everything in the host live there.
  local cg=ferrocd-hosts-$name
  mkdir -p "/sys/fs/cgroup/systemd/$cg" "/sys/fs/cgroup/unified/$cg"
  (
    echo "$BASHPID" >"/sys/fs/cgroup/systemd/$cg/cgroup.procs"
    echo "$BASHPID" >"/sys/fs/cgroup/unified/$cg/cgroup.procs"
    exec systemd-nspawn -b -D "$dir/merged" -M "$name" --register=no --keep-unit \
      --network-namespace-path="/run/netns/$name" --capability=CAP_NET_ADMIN \
      --console=read-only </dev/null >"$dir/console.log" 2>&1
  ) &
  echo $! >"$dir/nspawn.pid"

  local pid=""
  for _ in $(seq 1 300); do
    pid=$(pgrep -P "$(cat "$dir/nspawn.pid")" -x systemd || true)
    [ -n "$pid" ] && break
    kill -0 "$(cat "$dir/nspawn.pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$pid" ]; then
    hosts_log "host $name did not boot:"
    cat "$dir/console.log" >&2
    return 1
  fi
  echo "$pid" >"$dir/init.pid"
  # Until the host's systemd has set up its private socket, systemctl cannot reach it and
  # prints nothing or "offline": retry.
  local state=
  for _ in $(seq 1 600); do
    state=$(timeout 120 nsenter -t "$pid" -a systemctl is-system-running --wait 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != offline ] && break
    sleep 0.1
  done
  if [ "$state" != running ] && [ "$state" != degraded ]; then
    hosts_log "host $name is $state after boot:"
    cat "$dir/console.log" >&2
    return 1
  fi
  if [ "$state" = degraded ]; then
    hosts_log "host $name is degraded: $(hosts_exec "$name" systemctl --failed --no-legend | tr '\n' ' ')"
  fi
  hosts_log "host $name is up ($ip)"
}

# Runs a command in host NAME, in all its namespaces, with a clean environment.
hosts_exec() {
  local name=$1
  shift
  nsenter -t "$(hosts_pid "$name")" -a \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 ETCDCTL_API=3 "$@"
}

# Runs a shell line in host NAME.
hosts_sh() {
  hosts_exec "$1" bash -c "$2"
}

# Copies SRC from this machine to DEST in host NAME (not under /tmp: nspawn mounts a tmpfs
# there inside the host).
hosts_put() {
  local dest=$HOSTS_WORK/hosts/$1/merged/$3
  mkdir -p "$(dirname "$dest")"
  cp "$2" "$dest"
}

# Stops host NAME (systemd shuts it down cleanly) and removes everything it had. Never fails:
# it runs from the exit trap, where errexit is still on.
hosts_stop() {
  local name=$1 dir=$HOSTS_WORK/hosts/$1 nspawn
  [ -d "$dir" ] || return 0
  if [ -f "$dir/nspawn.pid" ]; then
    nspawn=$(cat "$dir/nspawn.pid")
    kill -TERM "$nspawn" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$nspawn" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$nspawn" 2>/dev/null; then
      hosts_log "host $name did not shut down in 10 s: killing it"
      kill -KILL "$nspawn" 2>/dev/null || true
      if [ -f "$dir/init.pid" ]; then kill -KILL "$(cat "$dir/init.pid")" 2>/dev/null || true; fi
    fi
    wait "$nspawn" 2>/dev/null || true
  fi
  local cg=ferrocd-hosts-$name hierarchy
  # The host's last processes may still be exiting: give them a moment, then remove the
  # cgroups bottom-up and unmount (lazily, when something still holds the mount).
  for _ in $(seq 1 50); do
    [ -z "$(find "/sys/fs/cgroup/unified/$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
    sleep 0.1
  done
  for hierarchy in systemd unified; do
    if [ -d "/sys/fs/cgroup/$hierarchy/$cg" ]; then
      find "/sys/fs/cgroup/$hierarchy/$cg" -depth -type d -exec rmdir {} + 2>/dev/null ||
        hosts_log "cannot remove cgroup $hierarchy/$cg"
    fi
  done
  if mountpoint -q "$dir/merged"; then
    umount "$dir/merged" 2>/dev/null || umount -l "$dir/merged" || true
  fi
  if [ -f "$dir/network" ]; then
    ip -n "hsw-$(cat "$dir/network")" link del "hv-$name" 2>/dev/null || true
  fi
  ip netns del "$name" 2>/dev/null || true
  rm -rf "$dir"
  return 0
}

# Stops every host, removes every network and the work dir. Safe to call more than once.
hosts_cleanup() {
  [ -n "$HOSTS_WORK" ] && [ -d "$HOSTS_WORK" ] || return 0
  local dir net
  # Shut every host down at once, then wait for each.
  for dir in "$HOSTS_WORK"/hosts/*/; do
    if [ -f "$dir/nspawn.pid" ]; then kill -TERM "$(cat "$dir/nspawn.pid")" 2>/dev/null || true; fi
  done
  for dir in "$HOSTS_WORK"/hosts/*/; do
    [ -d "$dir" ] && hosts_stop "$(basename "$dir")"
  done
  for net in "$HOSTS_WORK"/networks/*; do
    if [ -f "$net" ]; then ip netns del "hsw-$(basename "$net")" 2>/dev/null || true; fi
  done
  if grep -q " $HOSTS_WORK/" /proc/mounts; then
    hosts_log "mounts left under $HOSTS_WORK; not removing it"
  else
    rm -rf "$HOSTS_WORK"
  fi
  HOSTS_WORK=
  return 0
}

# --- Added for the Ansible test (tests/hosts/ansible.sh) -------------------------------------

# A plain network namespace NAME with address IP/24 on network NET: a machine that is not one of
# the hosts (an Ansible controller's or a client's place on the network). Removed by
# hosts_cleanup (it is recorded like a host without nspawn).
hosts_netns() {
  local name=$1 net=$2 ip=$3
  local dir=$HOSTS_WORK/hosts/$name
  mkdir -p "$dir"
  echo "$net" >"$dir/network"
  ip netns add "$name"
  ip link add "hv-$name" netns "hsw-$net" type veth peer name eth0 netns "$name"
  ip -n "hsw-$net" link set "hv-$name" master br0 up
  ip -n "$name" addr add "$ip/24" dev eth0
  ip -n "$name" link set lo up
  ip -n "$name" link set eth0 up
}

# A power cut and a boot of host NAME: kills its PID 1 (no shutdown), then boots the same
# overlay in the same network namespace again and waits until systemd has booted it.
hosts_power_cycle() {
  local name=$1 dir=$HOSTS_WORK/hosts/$1 nspawn
  nspawn=$(cat "$dir/nspawn.pid")
  kill -KILL "$(hosts_pid "$name")"
  for _ in $(seq 1 100); do
    kill -0 "$nspawn" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$nspawn" 2>/dev/null && { hosts_log "nspawn of $name still runs after its PID 1 died"; return 1; }
  wait "$nspawn" 2>/dev/null || true
  local cg=ferrocd-hosts-$name
  (
    echo "$BASHPID" >"/sys/fs/cgroup/systemd/$cg/cgroup.procs"
    echo "$BASHPID" >"/sys/fs/cgroup/unified/$cg/cgroup.procs"
    exec systemd-nspawn -b -D "$dir/merged" -M "$name" --register=no --keep-unit \
      --network-namespace-path="/run/netns/$name" --capability=CAP_NET_ADMIN \
      --console=read-only </dev/null >>"$dir/console.log" 2>&1
  ) &
  echo $! >"$dir/nspawn.pid"
  local pid=""
  for _ in $(seq 1 300); do
    pid=$(pgrep -P "$(cat "$dir/nspawn.pid")" -x systemd || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || { hosts_log "host $name did not boot again"; tail -n 30 "$dir/console.log" >&2; return 1; }
  echo "$pid" >"$dir/init.pid"
  local state=
  for _ in $(seq 1 600); do
    state=$(timeout 120 nsenter -t "$pid" -a systemctl is-system-running --wait 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != offline ] && break
    sleep 0.1
  done
  hosts_log "host $name booted again ($state)"
}
