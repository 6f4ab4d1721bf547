package selfsigned

import (
	"crypto/tls"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	c, k, err := New(now, 90*24*time.Hour, "acme.test", "acme.test", "www.acme.test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if leaf.VerifyHostname("www.acme.test") != nil || leaf.VerifyHostname("other.test") == nil {
		t.Errorf("names %v", leaf.DNSNames)
	}
	if !leaf.NotAfter.Equal(now.Add(90*24*time.Hour)) || !leaf.NotBefore.Equal(now.Add(-time.Hour)) {
		t.Errorf("validity %v – %v", leaf.NotBefore, leaf.NotAfter)
	}
	if _, _, err := New(now, 0, "x"); err == nil {
		t.Error("a zero lifetime was accepted")
	}
}
