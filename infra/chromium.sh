#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium (and a font) for the console's
# browser tests and screenshots, when it is missing. Idempotent and quick when
# already installed. Playwright drives this browser through
# executable_path=/usr/bin/chromium; `playwright install` is never used (it
# downloads a browser build of its own).
# Exit codes: 0 installed (or already there); 1 cannot install.
set -euo pipefail
INFRA_NAME=chromium
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM=${PIPELINE_CHROMIUM:-/usr/bin/chromium}

if [[ -x $CHROMIUM ]] && fc-list 2>/dev/null | grep -q .; then
  exit 0
fi
if ! is_root || ! command -v apt-get >/dev/null; then
  die "$CHROMIUM not found. Install Chromium (Debian/Ubuntu: sudo apt-get install -y chromium fonts-dejavu-core) or set PIPELINE_CHROMIUM to its path."
fi
take_lock chromium
if [[ -x $CHROMIUM ]] && fc-list 2>/dev/null | grep -q .; then
  exit 0 # installed by a concurrent caller while we waited for the lock
fi
info "installing Debian's chromium package with apt-get (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium fonts-dejavu-core fontconfig >/dev/null ||
  die "apt-get could not install chromium"
[[ -x $CHROMIUM ]] || die "chromium installed, but $CHROMIUM is still missing"
info "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
