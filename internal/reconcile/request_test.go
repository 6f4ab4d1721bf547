package reconcile

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		key  string
		want Request
		ok   bool
	}{
		{"Tenant/acme", Request{Kind: v1alpha1.KindTenant, Name: "acme"}, true},
		{"Domain/www.example.com", Request{Kind: v1alpha1.KindDomain, Name: "www.example.com"}, true},
		{"Unknown/x", Request{Kind: "Unknown", Name: "x"}, true},
		{"", Request{}, false},
		{"Tenant", Request{}, false},
		{"Tenant/", Request{}, false},
		{"/acme", Request{}, false},
		{"Tenant/a/b", Request{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := ParseKey(tt.key)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseKey(%q) = %+v, %v", tt.key, got, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("error %v does not wrap ErrInvalidKey", err)
			}
			if tt.ok && got.Key() != tt.key {
				t.Errorf("Key() = %q, want %q", got.Key(), tt.key)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"Tenant/acme", "Domain/a.b", "/", "a//b", "x/y/z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		req, err := ParseKey(key)
		if err != nil {
			return
		}
		if req.Key() != key {
			t.Fatalf("ParseKey(%q).Key() = %q", key, req.Key())
		}
		if again, err := ParseKey(req.Key()); err != nil || again != req {
			t.Fatalf("round trip of %q: %+v, %v", key, again, err)
		}
	})
}

func TestErrorKinds(t *testing.T) {
	base := errors.New("base")
	tests := []struct {
		name              string
		err               error
		terminal, waiting bool
		wantBase          bool
	}{
		{"nil", nil, false, false, false},
		{"generic", base, false, false, true},
		{"terminal", Terminal(base), true, false, true},
		{"terminal nil", Terminal(nil), true, false, false},
		{"wrapped terminal", fmt.Errorf("ctx: %w", Terminal(base)), true, false, true},
		{"waiting", Waiting(base, time.Second), false, true, true},
		{"waiting nil", Waiting(nil, time.Second), false, true, false},
		{"wrapped waiting", fmt.Errorf("ctx: %w", Waiting(base, time.Second)), false, true, true},
		{"panic of an error", &PanicError{Value: base}, false, false, true},
		{"panic of a string", &PanicError{Value: "x"}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if IsTerminal(tt.err) != tt.terminal || IsWaiting(tt.err) != tt.waiting || errors.Is(tt.err, base) != tt.wantBase {
				t.Errorf("IsTerminal=%v IsWaiting=%v Is(base)=%v", IsTerminal(tt.err), IsWaiting(tt.err), errors.Is(tt.err, base))
			}
			if tt.err != nil && tt.err.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestResultIsZero(t *testing.T) {
	if !(Result{}).IsZero() || (Result{RequeueAfter: time.Second}).IsZero() {
		t.Error("IsZero")
	}
}
