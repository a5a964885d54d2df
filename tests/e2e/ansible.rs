//! The Ansible role and playbooks (ansible/), run for real against hosts booted with systemd
//! (systemd-nspawn over a Debian bookworm root, see `tests/hosts/lib.sh`):
//! `tests/hosts/ansible.sh` lints the playbooks, builds the .deb with `packaging/build.sh`,
//! rolls out a three-member cluster with site.yml (firewalld and ufw hosts), checks idempotence,
//! the firewall from outside and between members, power cuts, the TLS PKI, rolling-restart.yml,
//! replace-member.yml under a writing client and scale.yml to five and back. Needs root (CI has
//! it); skipped otherwise.

use std::time::Duration;

use crate::support::run_host_scenario;

/// Far more than the script needs (a few minutes here, plus about 2 minutes the first time, to
/// build the cached root filesystem and the Ansible venv).
const LIMIT: Duration = Duration::from_secs(15 * 60);

#[test]
fn ansible_deploys_replaces_and_scales_a_cluster_on_systemd_hosts() {
    run_host_scenario("tests/hosts/ansible.sh", LIMIT);
}
