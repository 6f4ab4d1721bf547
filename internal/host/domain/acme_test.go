package domain

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{DNSNames: []string{"shop.example", "www.shop.example"},
		NotBefore: now.Add(-60 * 24 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	names := []string{"shop.example", "www.shop.example"}
	tests := []struct {
		name    string
		leaf    *x509.Certificate
		names   []string
		renewAt time.Time
		want    string // the difference's field; "" for none
	}{
		{"placeholder", nil, names, time.Time{}, "certificate"},
		{"issued, before renewal", leaf, names, now.Add(time.Hour), ""},
		{"issued, renewal due", leaf, names, now, "certificate renewal"},
		{"issued, renewal past", leaf, names, now.Add(-time.Hour), "certificate renewal"},
		{"an alias added", leaf, append(names, "shop2.example"), now.Add(time.Hour), "certificate names"},
		{"an alias removed", leaf, names[:1], now.Add(time.Hour), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := due(now, tt.leaf, tt.names, tt.renewAt)
			switch {
			case tt.want == "" && d != nil:
				t.Errorf("due: %v, want nothing", d)
			case tt.want != "" && (d == nil || d.Field != tt.want || !d.Due):
				t.Errorf("due: %+v, want a Due %s", d, tt.want)
			}
		})
	}
}

// The retry backoff doubles from the base to the cap; zero keeps the
// defaults (1 min, 1 h).
func TestRetryWait(t *testing.T) {
	for _, c := range []struct {
		base, maxWait time.Duration
		n             int
		want          time.Duration
	}{
		{0, 0, 1, time.Minute},
		{0, 0, 2, 2 * time.Minute},
		{0, 0, 7, time.Hour},
		{0, 0, 1000, time.Hour},
		{2 * time.Second, 30 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, 30 * time.Second, 3, 8 * time.Second},
		{2 * time.Second, 30 * time.Second, 5, 30 * time.Second},
		{time.Hour, 24 * time.Hour, 40, 24 * time.Hour}, // no overflow
	} {
		if got := retryWait(c.base, c.maxWait, c.n); got != c.want {
			t.Errorf("retryWait(%s, %s, %d) = %s, want %s", c.base, c.maxWait, c.n, got, c.want)
		}
	}
}
