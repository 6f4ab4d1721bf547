#!/usr/bin/env bash
# Brings the panel up on this machine: a PostgreSQL cluster of its own, wcpd
# on the unix socket, the manifests in examples/ applied, and their state
# shown. Idempotent: run it again to restart wcpd with freshly built binaries.
# `hack/demo.sh stop` stops wcpd and the demo's PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=/var/lib/wcp360/demo
PGDATA=$DEMO/pg
PGSOCK=/run/wcp360/demo-pg
SOCKET=/run/wcp360/wcpd.sock
PIDFILE=/run/wcp360/wcpd-demo.pid
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WCP="bin/wcp --socket $SOCKET"

as_postgres() { runuser -u postgres -- "$@"; }

stop_wcpd() {
	if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		kill -TERM "$(cat "$PIDFILE")"
		for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.2; done
	fi
	rm -f "$PIDFILE"
}

if [[ ${1:-} == stop ]]; then
	stop_wcpd
	[[ -d $PGDATA ]] && as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop || true
	echo "demo stopped"
	exit 0
fi

mkdir -p "$DEMO" "$PGSOCK"
chown postgres: "$DEMO" "$PGSOCK"
if [[ ! -f $PGDATA/PG_VERSION ]]; then
	as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
fi
if ! as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
	as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$DEMO/pg.log" -w \
		-o "-k $PGSOCK -c listen_addresses=''" start >/dev/null
fi
if ! psql -h "$PGSOCK" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='wcp360'" | grep -q 1; then
	psql -h "$PGSOCK" -U postgres -qc "CREATE DATABASE wcp360"
fi

cat >"$DEMO/wcpd.yaml" <<YAML
node: demo
database:
  url: postgres://postgres@/wcp360?host=$PGSOCK&sslmode=disable
api:
  socket: $SOCKET
controllers:
  resyncInterval: 1m
YAML

stop_wcpd
nohup bin/wcpd serve --config "$DEMO/wcpd.yaml" >>"$DEMO/wcpd.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 100); do
	$WCP get tenants >/dev/null 2>&1 && break
	kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "wcpd exited; see $DEMO/wcpd.log" >&2; tail -20 "$DEMO/wcpd.log" >&2; exit 1; }
	sleep 0.1
done

echo "== wcp apply -f examples/ --wait"
$WCP apply -f examples/ --wait --timeout 60s
echo
echo "== wcp get tenants,domains,databases"
$WCP get tenants
$WCP get domains
$WCP get databases
echo
echo "== wcp describe domain acme.test"
$WCP describe domain acme.test
echo
echo "wcpd is running (pid $(cat "$PIDFILE"), log $DEMO/wcpd.log, socket $SOCKET)."
echo "Try: bin/wcp get tenants -o yaml; bin/wcp diff -f examples/; make demo-stop"
