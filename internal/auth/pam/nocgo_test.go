//go:build !cgo

package pam

import (
	"errors"
	"strings"
	"testing"
)

// Built without cgo, the package builds and says why it cannot work.
func TestNoCgo(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	a.geteuid = func() int { return 0 }
	_, err = a.Authenticate(t.Context(), "root", "x", "unix")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}
