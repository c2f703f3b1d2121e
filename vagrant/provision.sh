#!/bin/sh
# Makes a lab VM a shoal node: installs the shoal binaries from BIN_DIR,
# runs manager, netd and agent as systemd units, then creates the cluster or
# joins it with a token. Vagrant's shell provisioner and the QEMU lab
# (./scripts/vm-lab) both run it, as root, inside the VM:
#
#   provision.sh BIN_DIR init ADDR [REGISTRY]
#       swarm init --advertise-addr ADDR; writes the join tokens to
#       $SHOAL_TOKEN_DIR (if set) for the other VMs
#   provision.sh BIN_DIR join worker|manager ADDR MANAGER TOKEN [REGISTRY]
#       joins the cluster of MANAGER (host:port) with TOKEN (or @FILE)
#
# ADDR is this VM's address on the cluster network; REGISTRY, if given, is
# an insecure (plain HTTP) registry the agent may pull from. A slow VM (the
# QEMU lab emulates where KVM does not run) sets SHOAL_CONNECT_TIMEOUT
# (seconds) for the CLI and the daemons alike, and SHOAL_DRAIN_GRACE_MS for
# the agent (the other nodes take that much longer to apply a view).
set -eu
bin_dir=$1 mode=$2
shift 2
case "$mode" in
  init) role=manager addr=$1 manager_addr=127.0.0.1:4242; shift ;;
  join) role=$1 addr=$2 remote=$3 token=$4; shift 4
        if [ "$role" = manager ]; then manager_addr=127.0.0.1:4242; else manager_addr=$remote; fi ;;
  *) echo "usage: provision.sh BIN_DIR init|join ..." >&2; exit 2 ;;
esac
registry=${1:-}

for b in shoal shoal-manager shoal-agent shoal-logger shoal-netd; do
  install -m 0755 "$bin_dir/$b" "/usr/local/bin/$b.new"
  mv "/usr/local/bin/$b.new" "/usr/local/bin/$b"
done

unit() { # name description after exec...
  name=$1 description=$2 after=$3
  shift 3
  cat >"/etc/systemd/system/$name.service" <<UNIT
[Unit]
Description=$description
After=network.target $after

[Service]
Environment=SHOAL_CONNECT_TIMEOUT=${SHOAL_CONNECT_TIMEOUT:-3}
ExecStart=$*
Restart=on-failure
RestartSec=1
KillMode=process

[Install]
WantedBy=multi-user.target
UNIT
}
unit shoal-manager "shoal manager (control API, Raft, scheduling)" "" /usr/local/bin/shoal-manager
unit shoal-netd "shoal network daemon (overlays, load balancing, DNS)" shoal-manager.service \
  /usr/local/bin/shoal-netd --manager "$manager_addr"
insecure=
[ -z "$registry" ] || insecure="--insecure-registry $registry"
unit shoal-agent "shoal agent (runs the node's tasks through containerd)" \
  "containerd.service shoal-netd.service" /usr/local/bin/shoal-agent --manager "$manager_addr" $insecure \
  --drain-grace-ms "${SHOAL_DRAIN_GRACE_MS:-1000}"
systemctl daemon-reload
systemctl enable --now containerd.service >/dev/null 2>&1
systemctl enable --now shoal-manager.service >/dev/null 2>&1

# The CLI talks to the local manager's socket; wait until it answers
# (anything but "cannot reach the manager" is an answer).
i=0
while shoal node ls 2>&1 | grep -q "cannot reach the manager"; do
  i=$((i + 1))
  [ $i -lt 120 ] || { echo "shoal-manager did not come up (journalctl -u shoal-manager)" >&2; exit 1; }
  sleep 1
done

if [ -e /var/lib/shoal/node/node.crt ]; then
  echo "$(hostname) is already a node of a cluster"
elif [ "$mode" = init ]; then
  shoal swarm init --advertise-addr "$addr"
  if [ -n "${SHOAL_TOKEN_DIR:-}" ]; then
    mkdir -p "$SHOAL_TOKEN_DIR"
    shoal swarm join-token -q worker >"$SHOAL_TOKEN_DIR/worker"
    shoal swarm join-token -q manager >"$SHOAL_TOKEN_DIR/manager"
  fi
else
  case "$token" in @*) token=$(cat "${token#@}") ;; esac
  if [ "$role" = manager ]; then
    shoal --host unix:///run/shoal/control.sock swarm join --token "$token" --advertise-addr "$addr" "$remote"
  else
    shoal swarm join --token "$token" "$remote"
  fi
fi
systemctl enable --now shoal-netd.service shoal-agent.service >/dev/null 2>&1
