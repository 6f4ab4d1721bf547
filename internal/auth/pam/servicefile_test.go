package pam

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallServiceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wcp360")

	changed, err := InstallServiceFile(dir, ServiceFileOptions{})
	if err != nil || !changed {
		t.Fatalf("first install: changed %v, err %v", changed, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{serviceMarker, "auth\tinclude\tcommon-auth", "account\tinclude\tcommon-account"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("service file lacks %q:\n%s", line, b)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}

	// Idempotent: nothing written again.
	before, _ := os.Stat(path)
	if changed, err := InstallServiceFile(dir, ServiceFileOptions{}); err != nil || changed {
		t.Fatalf("second install: changed %v, err %v", changed, err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("the identical file was replaced")
	}

	// Ours (marker kept) but changed, or of another mode: rewritten.
	if err := os.WriteFile(path, append(b, "auth required pam_permit.so\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := InstallServiceFile(dir, ServiceFileOptions{}); err != nil || !changed {
		t.Fatalf("install over our edited file: changed %v, err %v", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(ServiceFile()) {
		t.Errorf("content not restored:\n%s", got)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if changed, err := InstallServiceFile(dir, ServiceFileOptions{}); err != nil || !changed {
		t.Fatalf("install over a 0666 file: changed %v, err %v", changed, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}

	// An admin's file (no marker): refused, unless Overwrite.
	admins := "auth required pam_unix.so\naccount required pam_unix.so\n"
	if err := os.WriteFile(path, []byte(admins), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err = InstallServiceFile(dir, ServiceFileOptions{})
	if !errors.Is(err, ErrServiceFileNotOurs) || changed {
		t.Fatalf("install over an admin's file: changed %v, err %v", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != admins {
		t.Errorf("the admin's file was changed:\n%s", got)
	}
	if changed, err := InstallServiceFile(dir, ServiceFileOptions{Overwrite: true}); err != nil || !changed {
		t.Fatalf("install with Overwrite: changed %v, err %v", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(ServiceFile()) {
		t.Errorf("not overwritten:\n%s", got)
	}

	// Other service names; no temporary file left anywhere.
	if _, err := InstallServiceFile(dir, ServiceFileOptions{Service: "wcp360-test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallServiceFile(dir, ServiceFileOptions{Service: "../passwd"}); err == nil {
		t.Error("a service name with a slash was accepted")
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "wcp360 wcp360-test" {
		t.Errorf("files in the directory: %v", names)
	}
	if _, err := InstallServiceFile(filepath.Join(dir, "missing"), ServiceFileOptions{}); err == nil {
		t.Error("installing into a missing directory succeeded")
	}
}
