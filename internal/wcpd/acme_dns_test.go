package wcpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// A domain with a wildcard alias gets its certificate over DNS-01: pebble
// looks up the TXT records in pebble-challtestsrv, where lego's exec
// provider publishes them through a hook script configured in acme.dns
// (its settings partly in acme.dns.env, partly in a 0600 env file). nginx
// then serves the issued certificate to any name under the wildcard,
// verified against pebble's root, over HTTP/2; the status and an Issued
// event describe it; the hook's secret setting shows nowhere.
func TestDomainACMEWildcardOverDNS01(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{}) {
		return
	}
	const secret = "hook-s3cret-token"
	s := pebble.StartChallTestSrv(t)
	p := pebble.Start(t, pebble.Options{DNSServer: s.DNSAddr})
	dir := t.TempDir()
	bundle, envFile, hookLog := filepath.Join(dir, "pebble-https-ca.pem"), filepath.Join(dir, "dns.env"), filepath.Join(dir, "hook.log")
	if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("# the hook's settings\nEXEC_PATH=%s\nCHALLTESTSRV_URL=%s\nHOOK_TOKEN='%s'\n", s.ExecHook(t), s.URL, secret)
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	acmeSection := fmt.Sprintf(`acme:
  directory: %s
  email: admin@wild.test
  caBundle: %s
  dns:
    provider: exec
    env: {HOOK_LOG: %s}
    envFile: %s
    resolvers: [%q]
    checkAuthoritative: false
    pollingInterval: 100ms
    sequenceInterval: 100ms
`, pebble.DirectoryURL, bundle, hookLog, envFile, s.DNSAddr)
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "acme:\n  directory: \"\"\n", acmeSection, 1)
	})
	if code, body := d.do("PUT", "/api/v1/tenants/wild", tenant("wild")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	start := time.Now()
	if code, body := d.do("PUT", "/api/v1/domains/wild.test", domainManifest("wild.test", "wild", map[string]any{
		"aliases": []string{"*.wild.test"}, "php": map[string]any{"enabled": false},
		"tls": map[string]any{"mode": "acme", "challenge": "dns-01"}})); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	// Two authorizations one after the other, each polled by lego 2.5 to
	// 7.5 s after pebble's "pending" (wcpd's client gets no Retry-After
	// hint): up to some 20 s under load.
	var st v1alpha1.Status
	for deadline := time.Now().Add(90 * time.Second); !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("wild.test not Ready within 90 s: %+v\nlogs:\n%s", st, d.logs)
		}
		st = d.domainReady("wild.test")
	}
	t.Logf("apply → Ready with the wildcard certificate over DNS-01: %s", time.Since(start).Round(time.Millisecond))

	names := []string{"*.wild.test", "wild.test"}
	if ts := st.TLS; ts == nil || !ts.Trusted || !strings.Contains(ts.Issuer, "Pebble") || ts.LastError != "" || ts.NextRetry != nil ||
		!slices.Equal(slices.Sorted(slices.Values(ts.Names)), names) {
		b, _ := json.Marshal(ts)
		t.Errorf("TLS status %s", b)
	}
	if c := condition(st, "TLS"); c == nil || c.Status != v1alpha1.ConditionTrue || c.Reason != "Issued" {
		t.Errorf("TLS condition %+v", c)
	}
	if b, _ := os.ReadFile(hookLog); !strings.Contains(string(b), "present _acme-challenge.wild.test.") {
		t.Errorf("the hook's log: %q", b)
	}

	// Any name under the wildcard: the issued chain, verified, over h2.
	for _, n := range []string{"foo.wild.test", "wild.test"} {
		state := handshake(t, n, &tls.Config{ServerName: n, RootCAs: p.Roots(t), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
		if state.NegotiatedProtocol != "h2" {
			t.Errorf("%s: ALPN %q, want h2", n, state.NegotiatedProtocol)
		}
		if leaf := state.PeerCertificates[0]; !slices.Contains(leaf.DNSNames, "*.wild.test") {
			t.Errorf("%s: served %v", n, leaf.DNSNames)
		}
	}

	var evs []api.EventItem
	d.getJSON("/api/v1/domains/wild.test/events", &evs)
	if !hasEvent(evs, "Normal", "Issued", "issued by CN=Pebble Intermediate") || !hasEvent(evs, "Normal", "Issued", "valid until") {
		t.Errorf("no Issued event with the issuer and expiry: %+v", evs)
	}
	if hasEvent(evs, "Normal", "Changed", "issued by the ACME CA") {
		t.Errorf("the issuance is also a Changed event: %+v", evs)
	}

	// The hook's secret is in none of status, events, logs, config print.
	_, obj := d.do("GET", "/api/v1/domains/wild.test", nil)
	evJSON, _ := json.Marshal(evs)
	var printed bytes.Buffer
	if code := RunEnv(context.Background(), []string{"config", "print", "--config", d.cfgPath}, nil,
		Env{Environ: []string{}, Stdout: &printed, Stderr: &printed}); code != 0 {
		t.Fatalf("wcpd config print: exit %d\n%s", code, printed.String())
	}
	if !strings.Contains(printed.String(), "HOOK_LOG: xxxxx") || !strings.Contains(printed.String(), "envFile: "+envFile) {
		t.Errorf("config print's acme.dns:\n%s", printed.String())
	}
	for what, text := range map[string]string{"the domain": string(obj), "the events": string(evJSON), "the log": d.logs.String(),
		"config print": printed.String()} {
		if strings.Contains(text, secret) || strings.Contains(text, hookLog) && what != "the log" {
			t.Errorf("%s shows a setting's value:\n%s", what, text)
		}
	}
}

// The retry backoff after a failed order survives a restart of wcpd: the
// domain's first reconcile by the new wcpd waits for the rest of the
// minute instead of ordering again, and says so; the status keeps the
// failure (failures, nextRetry, lastErrorTime) as it was. The order fails
// in the DNS provider: an exec hook that refuses.
func TestDomainACMEBackoffSurvivesRestart(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{}) {
		return
	}
	p := pebble.Start(t, pebble.Options{})
	dir := t.TempDir()
	bundle, hook, hookLog := filepath.Join(dir, "pebble-https-ca.pem"), filepath.Join(dir, "refuse.sh"), filepath.Join(dir, "hook.log")
	if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$1 $2\" >>\"$HOOK_LOG\"\necho 'the DNS API says: zone locked' >&2\nexit 1\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil { //nolint:gosec // a program
		t.Fatal(err)
	}
	acmeSection := fmt.Sprintf(`acme:
  directory: %s
  caBundle: %s
  dns:
    provider: exec
    env: {EXEC_PATH: %s, HOOK_LOG: %s}
    sequenceInterval: 100ms
`, pebble.DirectoryURL, bundle, hook, hookLog)
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "acme:\n  directory: \"\"\n", acmeSection, 1)
	})
	if code, body := d.do("PUT", "/api/v1/tenants/wild", tenant("wild")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	if code, body := d.do("PUT", "/api/v1/domains/wild.test", domainManifest("wild.test", "wild", map[string]any{
		"aliases": []string{"*.wild.test"}, "php": map[string]any{"enabled": false},
		"tls": map[string]any{"mode": "acme", "challenge": "dns-01"}})); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	var failed v1alpha1.TLSStatus
	eventually(t, d, "the order failed and status.tls holds the backoff", func() (bool, string) {
		var st v1alpha1.Status
		d.getJSON("/api/v1/domains/wild.test/status", &st)
		if st.TLS != nil {
			failed = *st.TLS
		}
		return failed.Failures == 1 && failed.NextRetry != nil && failed.LastErrorTime != nil, fmt.Sprintf("%+v", st.TLS)
	})
	if !strings.Contains(failed.LastError, "zone locked") || failed.NextRetry.Sub(*failed.LastErrorTime) != time.Minute {
		t.Errorf("status.tls of the failed order: %+v", failed)
	}
	var evs []api.EventItem
	d.getJSON("/api/v1/domains/wild.test/events", &evs)
	if !hasEvent(evs, "Warning", "Failed", "the DNS API says: zone locked") || !hasEvent(evs, "Warning", "Failed", "next order in 1m0s") {
		t.Errorf("no Failed event with the provider's error: %+v", evs)
	}

	before, _ := os.ReadFile(hookLog)
	restarted := d.restart()
	t.Logf("wcpd restarted %s after the failed order", restarted.Sub(*failed.LastErrorTime).Round(100*time.Millisecond))
	var waiting api.EventItem
	eventually(t, d, "the new wcpd reconciled the domain and waited", func() (bool, string) {
		d.getJSON("/api/v1/domains/wild.test/events", &evs)
		for _, e := range evs {
			if e.Reason == "StepFailed" && strings.Contains(e.Message, "acme apply: waiting ") && e.LastSeen.After(restarted) {
				waiting = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", evs)
	})
	t.Logf("after the restart: %s", waiting.Message)
	if !strings.Contains(waiting.Message, "next order at "+failed.NextRetry.UTC().Format(time.RFC3339)) {
		t.Errorf("the wait does not name the next order's time %s: %s", failed.NextRetry, waiting.Message)
	}
	if after, _ := os.ReadFile(hookLog); len(before) == 0 || string(after) != string(before) {
		t.Errorf("the hook ran %q before the restart, %q after: want no run after", before, after)
	}
	var st v1alpha1.Status
	d.getJSON("/api/v1/domains/wild.test/status", &st)
	if ts := st.TLS; ts == nil || ts.Failures != 1 || !ts.NextRetry.Equal(*failed.NextRetry) || !ts.LastErrorTime.Equal(*failed.LastErrorTime) {
		t.Errorf("status.tls after the restart: %+v, want the failure as it was: %+v", ts, failed)
	}
}

// domainReady is the domain's status, its conditions only those of its
// generation's.
func (d *daemonUnderTest) domainReady(name string) v1alpha1.Status {
	d.t.Helper()
	var obj struct {
		Metadata v1alpha1.ObjectMeta `json:"metadata"`
		Status   v1alpha1.Status     `json:"status"`
	}
	d.getJSON("/api/v1/domains/"+name, &obj)
	if obj.Status.ObservedGeneration != obj.Metadata.Generation {
		obj.Status.Conditions = nil
	}
	return obj.Status
}

// restart stops the daemon and starts another on the same configuration,
// database and state; it returns when the first had stopped.
func (d *daemonUnderTest) restart() time.Time {
	d.t.Helper()
	if code := d.stop(); code != 0 {
		d.t.Fatalf("wcpd exited with %d; logs:\n%s", code, d.logs)
	}
	stopped := time.Now()
	d.stopped, d.done = false, make(chan int, 1)
	go func() {
		d.done <- RunEnv(context.Background(), []string{"serve", "--config", d.cfgPath}, nil,
			Env{Environ: []string{}, Stdout: d.logs, Stderr: d.logs, Signals: d.sigs})
	}()
	d.waitHealthy()
	return stopped
}

// acme.dns's settings come from acme.dns.env and the 0600 env file
// together; a name in both, or a file others can read, stops wcpd.
func TestACMEDNSSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dns.env")
	if err := os.WriteFile(file, []byte("RFC2136_TSIG_SECRET=s3cret\nRFC2136_TSIG_KEY=wcp360.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.ACMEDNS{Provider: "rfc2136", Env: map[string]string{"RFC2136_NAMESERVER": "10.0.0.53:53"}, EnvFile: file,
		Resolvers: []string{"10.0.0.53:53"}, CheckAuthoritative: true}
	got, err := acmeDNS(c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"RFC2136_NAMESERVER": "10.0.0.53:53", "RFC2136_TSIG_SECRET": "s3cret", "RFC2136_TSIG_KEY": "wcp360."}
	if !maps.Equal(got.Env, want) || got.Provider != "rfc2136" || !got.CheckAuthoritative || !slices.Equal(got.Resolvers, c.Resolvers) {
		t.Errorf("acmeDNS = %+v", got)
	}
	if len(c.Env) != 1 {
		t.Errorf("acmeDNS changed the configuration's map: %v", c.Env)
	}

	c.Env["RFC2136_TSIG_KEY"] = "other."
	if _, err := acmeDNS(c); err == nil || !strings.Contains(err.Error(), "acme.dns.envFile: RFC2136_TSIG_KEY is in acme.dns.env too") {
		t.Errorf("a setting in both: %v", err)
	}
	delete(c.Env, "RFC2136_TSIG_KEY")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := acmeDNS(c); err == nil || !strings.Contains(err.Error(), "acme.dns.envFile: ") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a world-readable env file: %v", err)
	}
	if d, err := acmeDNS(config.ACMEDNS{}); d != nil || err != nil {
		t.Errorf("no provider: %+v, %v", d, err)
	}
}
