#!/bin/sh
# Install Debian's headless Chromium and its driver for the browser test (tests/test_ui_browser.py).
#
# Idempotent: does nothing when /usr/bin/chromium exists. Installs only when running as root with
# apt-get available (CI containers, dev boxes); otherwise prints why it did nothing and exits 0, so
# `make test` still runs and the browser test skips with its reason (it fails under CI=true).
# Playwright's own browser download (`playwright install`) is deliberately not used: the test
# drives the distribution's Chromium through `executable_path`.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install-browser: $CHROMIUM already installed ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found; install Chromium yourself (the browser test will skip)"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-browser: not root; run 'sudo apt-get install -y chromium chromium-driver' (the browser test will skip)"
    exit 0
fi

echo "install-browser: installing chromium and chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium chromium-driver; then
    echo "install-browser: first attempt failed; refreshing package lists and retrying"
    apt-get update
    apt-get install -y --no-install-recommends chromium chromium-driver
fi
echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
