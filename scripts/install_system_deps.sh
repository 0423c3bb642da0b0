#!/usr/bin/env bash
# System packages the project needs beyond Python (Debian/Ubuntu package names):
#   rna-star fastqc samtools   the upstream workflow (STAR, FastQC, samtools)
#   slurm-wlm munge            the SLURM end-to-end test (tests/test_slurm.py)
#   chromium chromium-driver   browser tests of the built book
#   npm                        MathJax for the book
#
# As root on a machine with apt-get: installs whichever of them are missing (apt-get update runs
# once, and only if something is missing); a second run does nothing.
# Not root: prints the one apt-get line to run and exits 0 (so `make setup` carries on).
# No apt-get: says which packages to find for this system and exits 0.
#
#   bash scripts/install_system_deps.sh            # install what is missing (root) or print the line
#   bash scripts/install_system_deps.sh --dry-run  # only print what would be installed
set -euo pipefail

PACKAGES=(rna-star fastqc samtools slurm-wlm munge chromium chromium-driver npm)
# the executable that shows a package's job is already done, however it was installed (e.g.
# NodeSource's nodejs ships npm, and Debian's npm package would conflict with it)
declare -A PROVIDES=(
  [rna-star]=STAR [fastqc]=fastqc [samtools]=samtools [slurm-wlm]=slurmctld [munge]=munged
  [chromium]=chromium [chromium-driver]=chromedriver [npm]=npm
)

dry_run=0
case "${1:-}" in
  "") ;;
  -n | --dry-run) dry_run=1 ;;
  -h | --help) sed -n "2,15p" "$0"; exit 0 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

present() {  # its executable is on PATH (or in /usr/sbin, /sbin), or dpkg has the package installed
  PATH="$PATH:/usr/sbin:/sbin" command -v "${PROVIDES[$1]}" >/dev/null 2>&1 ||
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  present "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: no apt-get here; install this system's equivalents of: ${missing[*]}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_deps: missing system packages; run:"
  echo "sudo apt-get install -y ${missing[*]}"
  exit 0
fi
if [ "$dry_run" -eq 1 ]; then
  echo "apt-get install -y ${missing[*]}"
  exit 0
fi

echo "install_system_deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
