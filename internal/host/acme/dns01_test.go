package acme

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// dnsTestClient is a Client whose DNS-01 goes through the exec provider
// and a hook that publishes in s; log is the hook's log of its calls.
func dnsTestClient(t *testing.T, p *pebble.Pebble, s *pebble.ChallTestSrv, forAll bool) (c *Client, log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "hook.log")
	c, err := New(Options{DirectoryURL: pebble.DirectoryURL, Email: "admin@acme.test", HTTPClient: p.Client, DNS: &DNS{
		Provider: "exec",
		Env:      map[string]string{"EXEC_PATH": s.ExecHook(t), "CHALLTESTSRV_URL": s.URL, "HOOK_LOG": log},
		// lego's propagation check asks challtestsrv, which is no
		// zone's authoritative server.
		Resolvers: []string{s.DNSAddr}, CheckAuthoritative: false,
		PollingInterval: 100 * time.Millisecond, SequenceInterval: 100 * time.Millisecond, ForAll: forAll,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c, log
}

func hookCalls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

// TestObtainWildcardOverDNS01: pebble validates DNS-01 against
// pebble-challtestsrv, whose TXT records the exec provider's hook
// publishes; lego's propagation check asks challtestsrv too. A wildcard
// and its apex share one _acme-challenge name: published and removed one
// after the other. No web server runs: nothing goes over HTTP-01.
func TestObtainWildcardOverDNS01(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{}) {
		return
	}
	s := pebble.StartChallTestSrv(t)
	p := pebble.Start(t, pebble.Options{DNSServer: s.DNSAddr})
	c, log := dnsTestClient(t, p, s, false)
	names := []string{"*.wild.test", "wild.test"}
	start := time.Now()
	cert, err := c.ObtainWith(t.Context(), names, ChallengeDNS01)
	t.Logf("wildcard issuance over DNS-01 (account registration included): %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, p, cert, names)
	if err := cert.Leaf.VerifyHostname("foo.wild.test"); err != nil {
		t.Error(err)
	}
	want := []string{"present _acme-challenge.wild.test.", "cleanup _acme-challenge.wild.test."}
	want = append(want, want...)
	if got := hookCalls(t, log); !slices.Equal(got, want) {
		t.Errorf("hook calls %q, want present and cleanup of _acme-challenge.wild.test. twice", got)
	}
	if _, err := os.Stat(DefaultChallengeDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the HTTP-01 challenge directory was made: %v", err)
	}
}

// TestObtainMixedChallenges: with a DNS provider, Obtain proves a
// wildcard over DNS-01 and the other names over HTTP-01 (through nginx);
// with DNS.ForAll every name goes over DNS-01.
func TestObtainMixedChallenges(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{Hosts: testHosts}) {
		return
	}
	s := pebble.StartChallTestSrv(t)
	p := pebble.Start(t, pebble.Options{DNSServer: s.DNSAddr})
	startTestNginx(t, true)
	names := []string{"a.acme.test", "*.wild.test"}

	c, log := dnsTestClient(t, p, s, false)
	start := time.Now()
	cert, err := c.Obtain(t.Context(), names)
	t.Logf("HTTP-01 and DNS-01 in one order: %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, p, cert, names)
	if got := hookCalls(t, log); slices.ContainsFunc(got, func(c string) bool { return strings.Contains(c, "a.acme.test") }) ||
		!slices.Contains(got, "present _acme-challenge.wild.test.") {
		t.Errorf("hook calls %q, want the wildcard's only", got)
	}

	c, log = dnsTestClient(t, p, s, true)
	if cert, err = c.Obtain(t.Context(), names); err != nil {
		t.Fatal(err)
	}
	checkCert(t, p, cert, names)
	if got := hookCalls(t, log); !slices.Contains(got, "present _acme-challenge.a.acme.test.") {
		t.Errorf("hook calls %q with forAll, want a.acme.test's too", got)
	}
}

// TestObtainDNS01Failures: a hook that fails leaves the order failed with
// the hook's output in the error; a wildcard without a DNS provider is
// ErrNoDNS01 before anything is sent.
func TestObtainDNS01Failures(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{}) {
		return
	}
	s := pebble.StartChallTestSrv(t)
	p := pebble.Start(t, pebble.Options{DNSServer: s.DNSAddr})
	c, err := New(Options{DirectoryURL: pebble.DirectoryURL, HTTPClient: p.Client, DNS: &DNS{
		Provider: "exec", Env: map[string]string{"EXEC_PATH": "/bin/sh", "SECRET_TOKEN": "s3cret"},
		Resolvers: []string{s.DNSAddr}, SequenceInterval: time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// /bin/sh present <fqdn> <value>: sh cannot open the script "present".
	_, err = c.ObtainWith(t.Context(), []string{"*.wild.test"}, ChallengeDNS01)
	var e *Error
	if !errors.As(err, &e) || e.Op != "obtain" || !strings.Contains(err.Error(), "/bin/sh present _acme-challenge.wild.test.") ||
		!strings.Contains(err.Error(), "present") {
		t.Errorf("Obtain with a failing hook: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows a setting's value: %v", err)
	}
	t.Logf("failing hook: %v", err)

	plain := newTestClient(t, p.Client, nil)
	if _, err := plain.Obtain(t.Context(), []string{"*.wild.test"}); !errors.Is(err, ErrNoDNS01) {
		t.Errorf("wildcard without a DNS provider: %v, want ErrNoDNS01", err)
	}
	if _, err := plain.ObtainWith(t.Context(), []string{"a.acme.test"}, ChallengeDNS01); !errors.Is(err, ErrNoDNS01) {
		t.Errorf("DNS-01 without a DNS provider: %v, want ErrNoDNS01", err)
	}
}
