#!/usr/bin/env bash
# Brings the panel up: a PostgreSQL cluster of its own, a local ACME CA
# (pebble, the ACME test server: its HTTPS certificate made here with
# openssl, its DNS pebble-challtestsrv answering 127.0.0.1 for every name),
# wcpd on a unix socket with acme.directory pointing at that CA, the
# manifests in examples/ applied (tenants become real Linux users with
# homes, acme.test gets its certificate from pebble over HTTP-01 through
# nginx), and their state shown.
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
# The local ACME CA: pebble's files (made again at every start: pebble
# keeps nothing, and makes a new root each time it starts).
PEBBLE=$DEMO/pebble
PEBBLE_DIR=https://127.0.0.1:14000/dir
PEBBLE_MGMT=https://127.0.0.1:15000

stop() {
	if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		kill -TERM "$(cat "$PIDFILE")"
		for _ in $(seq 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$(cat "$PIDFILE")" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
}

# start_pebble starts pebble (ACME on 127.0.0.1:14000, management on
# :15000, HTTP-01 validated on port 80) and pebble-challtestsrv as its DNS
# (127.0.0.1:8053, every name is 127.0.0.1, so the real /etc/hosts is not
# needed), in the background, and waits until pebble answers. pebble's
# HTTPS certificate (for 127.0.0.1 and localhost) and its CA are made with
# openssl; wcpd trusts that CA through acme.caBundle.
start_pebble() {
	rm -rf "$PEBBLE"
	mkdir -p "$PEBBLE"
	(
		cd "$PEBBLE"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-subj "/CN=WCP360 demo CA for pebble's HTTPS" -keyout https-ca.key -out https-ca.pem \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
			-keyout key.pem -out https.csr 2>/dev/null
		printf '%s\n' subjectAltName=DNS:localhost,IP:127.0.0.1 extendedKeyUsage=serverAuth \
			keyUsage=critical,digitalSignature basicConstraints=CA:FALSE >https.ext
		openssl x509 -req -in https.csr -CA https-ca.pem -CAkey https-ca.key -set_serial "0x$(openssl rand -hex 8)" \
			-days 30 -extfile https.ext -out cert.pem 2>/dev/null
		rm -f https-ca.key https.csr https.ext
		cat >pebble.json <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$PEBBLE/cert.pem", "privateKey": "$PEBBLE/key.pem",
  "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
	)
	pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 127.0.0.1:8053 -management 127.0.0.1:8055 \
		-http01 "" -https01 "" -tlsalpn01 "" >>"$DEMO/pebble.log" 2>&1 &
	# No random sleep before validating, no rejected nonces: issuance in
	# seconds.
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$PEBBLE/pebble.json" -dnsserver 127.0.0.1:8053 \
		>>"$DEMO/pebble.log" 2>&1 &
	for _ in $(seq 100); do
		curl -sf --cacert "$PEBBLE/https-ca.pem" -o /dev/null "$PEBBLE_DIR" && return 0
		sleep 0.1
	done
	echo "pebble did not answer on $PEBBLE_DIR; see $DEMO/pebble.log" >&2
	return 1
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
	start_pebble
	# Certificates of an earlier demo's pebble chain to a root that is
	# gone (on the host; a sandbox starts with none): have them ordered
	# again from this one.
	for chain in /var/lib/wcp360/certs/*/fullchain.pem; do
		if [[ -f $chain ]] && openssl x509 -noout -issuer -in "$chain" 2>/dev/null | grep -q Pebble; then
			rm -rf "$(dirname "$chain")"
		fi
	done
	cat >"$DEMO/wcpd.yaml" <<YAML
node: demo
database:
  url: postgres://postgres@/wcp360?host=$PGSOCK&sslmode=disable
api:
  socket: $SOCKET
controllers:
  resyncInterval: 1m
acme:
  directory: $PEBBLE_DIR # the local test CA (pebble), not a real one
  email: admin@acme.test
  caBundle: $PEBBLE/https-ca.pem
YAML
	bin/wcpd serve --config "$DEMO/wcpd.yaml" &
	wcpd=$!
	stop_all() {
		kill -TERM "$wcpd" 2>/dev/null || true
		wait "$wcpd" || true
		# shellcheck disable=SC2046 # one pid a word
		kill -TERM $(jobs -p) 2>/dev/null || true # pebble and its DNS
		wait || true
		as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
		exit 0
	}
	trap stop_all TERM INT
	wait $wcpd || true
	stop_all
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
echo "== the tenant on the host: getent passwd acme; id acme; ls -la /srv/www/acme"
in_demo getent passwd acme
in_demo id acme
in_demo ls -la /srv/www/acme
echo
# A page for the example site, written as the tenant would (over SFTP).
in_demo runuser -u acme -- sh -c 'cat > /srv/www/acme/domains/acme.test/public/index.php' <<'PHP'
<?php
printf("Hello from %s over %s, served by nginx, run by PHP %s as uid %d (%s)\n",
    $_SERVER['HTTP_HOST'], empty($_SERVER['HTTPS']) ? 'HTTP' : 'HTTPS', PHP_VERSION,
    posix_geteuid(), posix_getpwuid(posix_geteuid())['name']);
PHP
# The resources may be Ready from an earlier demo (PostgreSQL keeps them)
# while this sandbox's host starts empty and this pebble is new: wcpd's
# first resync puts the host back (drift) and orders the certificate again
# within seconds. Wait for the page over HTTPS with the certificate pebble
# issued, verified against pebble's root (from its management API).
in_demo curl -sSf --cacert "$PEBBLE/https-ca.pem" -o "$PEBBLE/root.pem" "$PEBBLE_MGMT/roots/0"
HTTPS=(curl --cacert "$PEBBLE/root.pem" --resolve acme.test:443:127.0.0.1)
for i in $(seq 300); do
	in_demo "${HTTPS[@]}" -sf -o /dev/null https://acme.test/ && break
	if ((i == 300)); then
		echo "https://acme.test/ does not answer with a certificate from pebble after 60 s:" >&2
		in_demo "${HTTPS[@]}" -sS -o /dev/null https://acme.test/ >&2 || true
		$WCP describe domain acme.test >&2
		exit 1
	fi
	sleep 0.2
done
echo "== wcp describe domain acme.test"
$WCP describe domain acme.test
echo
echo "== wcp describe tenant acme (its limits: what this host enforces, usage, pressure)"
$WCP describe tenant acme
echo
echo "== curl --cacert $PEBBLE/root.pem --resolve acme.test:443:127.0.0.1 https://acme.test/"
in_demo "${HTTPS[@]}" -sS https://acme.test/
echo "== curl -H 'Host: acme.test' http://127.0.0.1/x (plain HTTP redirects to HTTPS)"
in_demo curl -sS -o /dev/null -w '%{http_code} to %{redirect_url}\n' -H 'Host: acme.test' http://127.0.0.1/x
echo
issuer=$(in_demo openssl s_client -connect 127.0.0.1:443 -servername acme.test </dev/null 2>/dev/null |
	openssl x509 -noout -issuer -nameopt oneline | sed 's/^issuer= *//')
echo "serving https://acme.test/ with a certificate from the local test CA (pebble; issuer: $issuer), verified against its root $PEBBLE/root.pem"
echo
echo "wcpd is running $mode (pid $(cat "$PIDFILE"), log $DEMO/wcpd.log; pebble's log $DEMO/pebble.log)."
echo "Try: export WCP_SOCKET=$SOCKET; bin/wcp get tenants -o yaml; bin/wcp describe tenant acme; bin/wcp describe domain acme.test; make demo-stop"
if [[ ${WCP_DEMO_HOST:-} == 1 ]]; then
	echo "The site: ${HTTPS[*]} https://acme.test/"
else
	echo "The site, inside the sandbox: nsenter -t \$(pgrep -P \$(cat $PIDFILE)) -n ${HTTPS[*]} https://acme.test/"
fi
