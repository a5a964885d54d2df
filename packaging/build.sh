#!/usr/bin/env bash
# Builds ferrocd's .deb and .rpm into dist/ from the release binaries in target/release:
#   packaging/build.sh [--version V] [--out DIR]
# The version defaults to Cargo.toml's (or $FERROCD_PACKAGE_VERSION); a higher one stamps a
# newer package of the same binaries, for upgrade tests. `cargo build --release` runs first and
# is a no-op when the binaries are up to date (CI builds them once for every test layer).
# ferrocdctl, its man page and completions are packaged when target/release/ferrocdctl exists.
# Installs what it needs (dpkg-dev, rpm) with apt-get when missing. See packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

version=${FERROCD_PACKAGE_VERSION:-}
out=dist
while [ $# -gt 0 ]; do
  case $1 in
  --version) version=$2; shift 2 ;;
  --version=*) version=${1#*=}; shift ;;
  --out) out=$2; shift 2 ;;
  --out=*) out=${1#*=}; shift ;;
  *) echo "usage: packaging/build.sh [--version V] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$version" ]; then
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
fi
# One version string that both formats accept: no '-' (Debian's revision separator, and
# forbidden in an RPM version) and no ':' (an epoch).
if ! [[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
  echo "build.sh: bad version '$version' (digits first, then letters, digits, . + ~)" >&2
  exit 2
fi

need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v strip >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  echo "build.sh: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --bins --example gen_docs
release=$repo/target/release
programs=(ferrocd ferrocdctl)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$release/examples/gen_docs" "$work/docs"
for program in "${programs[@]}"; do
  [ -f "$work/docs/man/$program.1" ] || {
    echo "build.sh: gen_docs made no man page for $program (add it to examples/gen_docs.rs)" >&2
    exit 1
  }
done

# Reproducible dates: the last commit's time.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
maintainer="ferrocd developers <ferrocd@example.org>"

# The files both formats install; $1 is the root, $2 the unit directory, $3 zsh's directory.
stage() {
  local root=$1 units=$2 zsh=$3 program
  install -d "$root/usr/bin" "$root$units" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/etc/etcd" "$root/etc/ufw/applications.d" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root$zsh" "$root/usr/share/fish/vendor_completions.d" \
    "$root/usr/share/doc/ferrocd"
  for program in "${programs[@]}"; do
    install -m 755 "$release/$program" "$root/usr/bin/$program"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$program"
    install -m 644 "$work/docs/man/$program.1" "$root/usr/share/man/man1/$program.1"
    gzip -9n "$root/usr/share/man/man1/$program.1"
    install -m 644 "$work/docs/completions/$program.bash" "$root/usr/share/bash-completion/completions/$program"
    install -m 644 "$work/docs/completions/_$program" "$root$zsh/_$program"
    install -m 644 "$work/docs/completions/$program.fish" "$root/usr/share/fish/vendor_completions.d/$program.fish"
  done
  install -m 644 systemd/etcd.service "$root$units/etcd.service"
  install -m 644 systemd/sysusers.conf "$root/usr/lib/sysusers.d/ferrocd.conf"
  install -m 644 systemd/tmpfiles.conf "$root/usr/lib/tmpfiles.d/ferrocd.conf"
  install -m 644 systemd/ufw-etcd "$root/etc/ufw/applications.d/ferrocd"
  install -m 644 packaging/etcd.conf "$root/etc/etcd/etcd.conf"
  install -m 644 README.md "$root/usr/share/doc/ferrocd/README.md"
}

mkdir -p "$out"
rm -f "$out"/ferrocd_*_amd64.deb "$out"/ferrocd-*.x86_64.rpm

# --- .deb: dpkg-deb over a staged tree (see packaging/README.md for why not cargo-deb) ---
deb=$work/deb
stage "$deb" /lib/systemd/system /usr/share/zsh/vendor-completions
install -m 644 deb/copyright "$deb/usr/share/doc/ferrocd/copyright"
gzip -9n "$deb/usr/share/doc/ferrocd/README.md"
{
  echo "ferrocd ($version) unstable; urgency=medium"
  echo
  echo "  * Built from ferrocd's repository, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$deb/usr/share/doc/ferrocd/changelog"
gzip -9n "$deb/usr/share/doc/ferrocd/changelog"
install -d "$deb/usr/share/lintian/overrides"
install -m 644 deb/lintian-overrides "$deb/usr/share/lintian/overrides/ferrocd"
install -d "$deb/DEBIAN"
install -m 755 deb/postinst deb/prerm deb/postrm "$deb/DEBIAN/"
install -m 644 deb/conffiles "$deb/DEBIAN/conffiles"
# Library dependencies as dpkg-shlibdeps finds them (it wants a debian/control to read).
mkdir -p "$work/shlibs/debian"
echo "Source: ferrocd" >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${programs[@]/#/$deb/usr/bin/}" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
installed_size=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  -e "s/@SHLIBS@/$shlibs/" deb/control.in >"$deb/DEBIAN/control"
(cd "$deb" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$deb/DEBIAN/md5sums"
chmod 644 "$deb/DEBIAN/md5sums"
find "$deb" -type d -exec chmod 755 {} +
dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/ferrocd_${version}_amd64.deb" >/dev/null

# --- .rpm: rpmbuild over the same files, with Fedora's paths ---
rpmroot=$work/rpmstage
stage "$rpmroot" /usr/lib/systemd/system /usr/share/zsh/site-functions
rpmbuild -bb rpm/ferrocd.spec --quiet \
  --define "_topdir $work/rpmbuild" \
  --define "_rpmdir $work/rpms" \
  --define "ferrocd_version $version" \
  --define "ferrocd_stage $rpmroot" \
  --define "with_ferrocdctl 1" >/dev/null
mv "$work"/rpms/x86_64/ferrocd-*.x86_64.rpm "$out/"

ls -1 "$out"/ferrocd_"$version"_amd64.deb "$out"/ferrocd-"$version"-*.x86_64.rpm
