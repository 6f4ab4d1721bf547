#!/usr/bin/env bash
# Brings the panel up: a PostgreSQL cluster of its own, wcpd on a unix
# socket, the manifests in examples/ applied (tenants become real Linux
# users with homes), and their state shown.
#
# By default everything runs inside a sandbox (bin/wcp-sandbox: private
# /etc, /srv/www, /run, /var), so this machine's users and files are not
# changed: the sandbox goes away with `make demo-stop`. WCP_DEMO_HOST=1 runs
# wcpd on the real host instead, where it creates real users under /srv/www.
#
# Idempotent: run it again to restart with freshly built binaries.
# `hack/demo.sh stop` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=/var/lib/wcp360/demo # survives restarts: PostgreSQL data, socket, logs
PIDFILE=$DEMO/demo.pid
SOCKET=$DEMO/wcpd.sock
WCP="bin/wcp --socket $SOCKET"
export WCP_SOCKET=$SOCKET

stop() {
	if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		kill -TERM "$(cat "$PIDFILE")"
		for _ in $(seq 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$(cat "$PIDFILE")" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
}

case ${1:-} in
stop)
	stop
	echo "demo stopped"
	exit 0
	;;
inside)
	# Runs as the sandbox's command (or on the host): PostgreSQL, then wcpd.
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	PGDATA=$DEMO/pg
	PGSOCK=$DEMO/pg-run
	as_postgres() { runuser -u postgres -- "$@"; }
	mkdir -p "$PGSOCK"
	chown postgres: "$DEMO" "$PGSOCK"
	if [[ ! -f $PGDATA/PG_VERSION ]]; then
		as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
	fi
	rm -f "$PGDATA/postmaster.pid" # a sandbox killed earlier leaves it behind
	as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$DEMO/pg.log" -w \
		-o "-k $PGSOCK -c listen_addresses=''" start >/dev/null
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
acme:
  directory: "" # no CA in the demo yet: acme domains serve the self-signed placeholder
YAML
	bin/wcpd serve --config "$DEMO/wcpd.yaml" &
	wcpd=$!
	trap 'kill -TERM $wcpd 2>/dev/null; wait $wcpd; as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; exit 0' TERM INT
	wait $wcpd
	as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
	exit 0
	;;
esac

stop
mkdir -p "$DEMO"
if [[ ${WCP_DEMO_HOST:-} == 1 ]]; then
	mode="on this host (WCP_DEMO_HOST=1)"
	nohup "$0" inside >>"$DEMO/wcpd.log" 2>&1 &
	in_demo() { "$@"; }
else
	mode="in a sandbox (this machine's /etc and /srv/www are not touched)"
	nohup bin/wcp-sandbox --bind "$DEMO:$DEMO" -- "$0" inside >>"$DEMO/wcpd.log" 2>&1 &
	in_demo() {
		# Run a command in the demo's namespaces: the sandbox's init is the
		# child of wcp-sandbox.
		local init
		init=$(pgrep -P "$(cat "$PIDFILE")" | head -1)
		nsenter -t "$init" -m -u -i -n -p -- "$@"
	}
fi
echo $! >"$PIDFILE"
for _ in $(seq 200); do
	curl -sf --unix-socket "$SOCKET" http://wcpd/healthz >/dev/null 2>&1 && break
	kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "wcpd exited; see $DEMO/wcpd.log" >&2; tail -20 "$DEMO/wcpd.log" >&2; exit 1; }
	sleep 0.1
done

echo "== wcpd runs $mode"
# First boot, once: root on the local socket proves root. Run again, it
# says the panel is initialised already.
echo "== wcp init"
$WCP init
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
echo "== the tenant on the host: getent passwd acme; id acme; ls -la /srv/www/acme"
in_demo getent passwd acme
in_demo id acme
in_demo ls -la /srv/www/acme
echo
# A page for the example site, written as the tenant would (over SFTP).
in_demo runuser -u acme -- sh -c 'cat > /srv/www/acme/domains/acme.test/public/index.php' <<'PHP'
<?php
printf("Hello from %s, served by nginx, run by PHP %s as uid %d (%s)\n",
    $_SERVER['HTTP_HOST'], PHP_VERSION, posix_geteuid(), posix_getpwuid(posix_geteuid())['name']);
PHP
# The resources may be Ready from an earlier demo (PostgreSQL keeps them)
# while this sandbox's host starts empty: wcpd's first resync puts the
# host back (drift) within seconds. Wait for the page.
for _ in $(seq 150); do
	in_demo curl -sf -o /dev/null -H 'Host: acme.test' http://127.0.0.1/ && break
	sleep 0.2
done
echo "== curl -H 'Host: acme.test' http://127.0.0.1/"
in_demo curl -sS -H 'Host: acme.test' http://127.0.0.1/
echo "== curl -sk https://acme.test/ --resolve acme.test:443:127.0.0.1 (self-signed until ACME)"
in_demo curl -sSk --resolve acme.test:443:127.0.0.1 https://acme.test/
echo
echo "wcpd is running $mode (pid $(cat "$PIDFILE"), log $DEMO/wcpd.log)."
echo "Try: export WCP_SOCKET=$SOCKET; bin/wcp get tenants -o yaml; bin/wcp describe domain acme.test; make demo-stop"
if [[ ${WCP_DEMO_HOST:-} == 1 ]]; then
	echo "The site: curl -H 'Host: acme.test' http://127.0.0.1/"
else
	echo "The site, inside the sandbox: nsenter -t \$(pgrep -P \$(cat $PIDFILE)) -n curl -H 'Host: acme.test' http://127.0.0.1/"
fi
