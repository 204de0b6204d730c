#!/bin/sh
# Start a private ejabberd cluster of N nodes on this machine (loopback), as N machines would be:
#   xmpp-server/ejabberd/start-cluster.sh DIR [NODES]      (stop: ... stop DIR)
# Each node gets DIR/nodeK (config from ejabberd.yml.in and cluster/ejabberdctl.cfg.in, its own
# client port and certificate); nodes 2..N join node 1. See docs/scaling.md.
set -e
here=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
if [ "$1" = "stop" ]; then
    exec "$py" -m vmenergy.runtime.servers.cluster stop "$2"
fi
exec "$py" -m vmenergy.runtime.servers.cluster start "$1" --nodes "${2:-2}"
