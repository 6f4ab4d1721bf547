package acme

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWebrootPresentCleanUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "challenges")
	w := &webroot{dir: dir}
	if err := w.Present(t.Context(), "a.test", "tok-EN_1", "tok-EN_1.thumb"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tok-EN_1")
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "tok-EN_1.thumb" {
		t.Fatalf("token file: %q, %v", b, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("token file mode: %v, %v; want 0644", st.Mode(), err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("challenge dir: %v, %v; want 0755", st.Mode(), err)
	}
	if err := w.CleanUp(t.Context(), "a.test", "tok-EN_1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("token file left: %v", err)
	}
	// Twice is fine.
	if err := w.CleanUp(t.Context(), "a.test", "tok-EN_1", ""); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("challenge dir not empty: %v", entries)
	}
}

func TestWebrootRejectsPathTokens(t *testing.T) {
	dir := t.TempDir()
	w := &webroot{dir: dir}
	for _, tok := range []string{"", "../x", "a/b", ".", "..", "a.b", "a b"} {
		if err := w.Present(t.Context(), "a.test", tok, "k"); err == nil {
			t.Errorf("Present(%q) accepted", tok)
		}
		if err := w.CleanUp(t.Context(), "a.test", tok, "k"); err == nil {
			t.Errorf("CleanUp(%q) accepted", tok)
		}
	}
}
