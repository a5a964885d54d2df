//! The .deb and .rpm, installed for real on hosts booted with systemd (systemd-nspawn over a
//! Debian bookworm root, see `tests/hosts/lib.sh`): `tests/hosts/packages.sh` builds them with
//! `packaging/build.sh` (reusing the release binaries), lints them, installs, starts, inspects,
//! breaks, upgrades, removes and purges them, installs the .rpm with `rpm -ivh --nodeps`, and
//! forms a three-host cluster from seed-style etcd.conf files. Needs root (CI has it); skipped
//! otherwise.

use std::time::Duration;

use crate::support::run_host_scenario;

/// Far more than the script needs (about 1.5 minutes here, plus about 2 minutes the first time,
/// to build the cached root filesystem).
const LIMIT: Duration = Duration::from_secs(15 * 60);

#[test]
fn packages_install_run_upgrade_and_form_a_cluster_on_systemd_hosts() {
    run_host_scenario("tests/hosts/packages.sh", LIMIT);
}
