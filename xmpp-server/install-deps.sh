#!/bin/sh
# Install the system packages VME runs and tests on (Debian/Ubuntu): Prosody (default XMPP server),
# ejabberd (large deployments, clusters), openssl (self-signed certificates), chromium with its
# driver (the web console's browser tests) and Python's venv.
# As root it installs what is missing; otherwise it says what to install and carries on, so the
# parts that need a missing server are skipped with that reason instead of failing obscurely.
set -u
missing=""
command -v prosody >/dev/null 2>&1 || missing="$missing prosody"
command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || missing="$missing ejabberd"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
# the web console's browser tests drive Debian's chromium through its driver (selenium)
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
PY=${PYTHON:-python3}
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo 3)
  missing="$missing python$ver-venv"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # Do not let package scripts start system-wide services: VME runs its own private instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && cleanup=1
  fi
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null
  rc=$?
  [ "${cleanup:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || { echo "apt-get install failed ($rc) for:$missing" >&2; exit $rc; }
else
  echo "NOTE: missing system packages:$missing" >&2
  echo "      install them with: sudo apt-get install$missing" >&2
  echo "      (tests that need them are skipped with this reason)" >&2
fi
exit 0
