#!/usr/bin/env bash
# Tests that need Redis or PostgreSQL start their own servers on 127.0.0.1 from the binaries
# of Debian's packages; the alert-rules tests run promtool (Debian's prometheus package), the
# console's browser tests a headless Chromium (Debian's chromium package).
# Install the packages when they are missing (root or sudo needed).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
# Chinese glyphs for the 简体中文 screenshots
fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk' || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} (the tests start their own servers)" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
