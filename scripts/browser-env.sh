#!/usr/bin/env bash
# Provisions the headless browser of the Swagger UI test (tests/compat/browser): Debian's chromium and
# chromium-driver (apt, as root or through sudo; skipped when both are already installed), then the pinned
# selenium venv .venv-browser. Prints the venv's path; the browser and driver are /usr/bin/chromium and
# /usr/bin/chromedriver.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "browser-env: chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver) or run as root" >&2
      exit 1
    }
    SUDO=(sudo)
  fi
  echo "browser-env: installing chromium and chromium-driver from Debian" >&2
  # The lists may be empty (fresh image) or stale; another apt run may hold the lock for a while.
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends chromium chromium-driver >&2
fi
bash "$ROOT/scripts/python-env.sh" browser
