package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateValidDirectory(t *testing.T) {
	r := invocation{socket: "/nonexistent/wcpd.sock"}.run(t, "validate", "-f", "testdata/site")
	if r.code != 0 || r.stdout != "3 documents valid\n" || r.stderr != "" {
		t.Fatalf("validate = %d %q %q, want 0 and \"3 documents valid\"", r.code, r.stdout, r.stderr)
	}
}

func TestValidateStdin(t *testing.T) {
	data, err := os.ReadFile("testdata/nested/a.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := invocation{stdin: string(data)}.run(t, "validate", "-f", "-")
	if r.code != 0 || r.stdout != "1 document valid\n" {
		t.Fatalf("validate -f - = %d %q, want 0 and \"1 document valid\"", r.code, r.stdout)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	r := invocation{}.run(t, "validate", "-f", "testdata/bad")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("validate = %d, stdout %q; want 1 and nothing on stdout", r.code, r.stdout)
	}
	file := filepath.Join("testdata", "bad", "a-bad.yaml")
	want := []struct{ doc, field string }{
		{"document 2", "metadata.name"},
		{"document 2", "spec.colour"},
		{"document 3", "spec.serverName"},
	}
	got := lines(r.stderr)
	for _, w := range want {
		if !containsLine(got, file+": "+w.doc+", line ", w.field) {
			t.Errorf("no problem line for %s %s %s in:\n%s", file, w.doc, w.field, r.stderr)
		}
	}
	for _, l := range got {
		if !strings.HasPrefix(l, file+": document ") {
			t.Errorf("problem line %q does not start with the file and document", l)
		}
	}
}

func containsLine(ls []string, prefix, substr string) bool {
	for _, l := range ls {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func TestValidateNoInput(t *testing.T) {
	r := invocation{}.run(t, "validate")
	if r.code != 1 || !strings.Contains(r.stderr, "-f") {
		t.Fatalf("validate without -f = %d %q, want 1 and a hint about -f", r.code, r.stderr)
	}
	r = invocation{}.run(t, "validate", "-f", "testdata/no-such-file.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "no-such-file.yaml") {
		t.Fatalf("validate of a missing file = %d %q, want 1 naming the file", r.code, r.stderr)
	}
}

func TestValidateDuplicate(t *testing.T) {
	r := invocation{}.run(t, "validate", "-f", "testdata/site/acme.yaml", "-f", "testdata/site")
	if r.code != 1 || !strings.Contains(r.stderr, "tenant/acme is defined more than once") {
		t.Fatalf("validate of a resource given twice = %d %q, want 1 naming tenant/acme", r.code, r.stderr)
	}
}

// Commands that change things decode everything first: one bad document and
// nothing is sent, not even the good ones.
func TestNothingSentOnDecodeError(t *testing.T) {
	for _, args := range [][]string{
		{"apply", "-f", "testdata/site", "-f", "testdata/bad"},
		{"apply", "-f", "testdata/bad", "--wait"},
		{"diff", "-f", "testdata/bad"},
		{"delete", "-f", "testdata/bad"},
	} {
		t.Run(args[0], func(t *testing.T) {
			sock, requests := countingSocket(t)
			r := invocation{socket: sock}.run(t, args...)
			wantCode := 1
			if args[0] == "diff" {
				wantCode = diffTrouble
			}
			if r.code != wantCode {
				t.Errorf("exit %d, want %d", r.code, wantCode)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("%d requests reached wcpd, want none", n)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if len(lines(r.stderr)) < 3 || !strings.Contains(r.stderr, "spec.serverName") {
				t.Errorf("stderr does not list every problem:\n%s", r.stderr)
			}
		})
	}
}

func TestUnreachableDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	for _, args := range [][]string{
		{"get", "tenants"},
		{"apply", "-f", "testdata/site"},
		{"describe", "tenant", "acme"},
		{"version"},
	} {
		r := invocation{socket: sock}.run(t, args...)
		want := "wcpd is not running or not reachable at " + sock + ": "
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("wcp %v = %d %q, want 1 and %q", args, r.code, r.stderr, want)
		}
		if n := strings.Count(r.stderr, "not reachable"); n != 1 {
			t.Errorf("wcp %v reported the unreachable daemon %d times, want once", args, n)
		}
	}
}

func TestSocketFlagOverridesEnvironment(t *testing.T) {
	flagSock := filepath.Join(t.TempDir(), "flag.sock")
	r := invocation{socket: "/env/wcpd.sock"}.run(t, "--socket", flagSock, "get", "tenants")
	if !strings.Contains(r.stderr, flagSock) || strings.Contains(r.stderr, "/env/wcpd.sock") {
		t.Fatalf("--socket did not win over %s: %q", EnvSocket, r.stderr)
	}
	r = invocation{}.run(t, "get", "tenants")
	if !strings.Contains(r.stderr, "/run/wcp360/wcpd.sock") && r.code != 0 {
		t.Fatalf("without --socket and %s, wcp did not use the default socket: %q", EnvSocket, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	sock, requests := countingSocket(t)
	for _, args := range [][]string{
		{"get", "widgets"},
		{"get", "tenants", "-o", "xml"},
		{"get"},
		{"describe", "tenant"},
		{"delete", "tenant"},
		{"reconcile", "tenant"},
		{"reconcile", "widget", "acme"},
		{"delete", "tenant", "acme", "-f", "testdata/site"},
		{"apply", "extra-arg", "-f", "testdata/site"},
		{"no-such-command"},
	} {
		r := invocation{socket: sock}.run(t, args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "error: ") {
			t.Errorf("wcp %v = %d %q, want an error", args, r.code, r.stderr)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("usage errors sent %d requests, want none", n)
	}
}

func TestCompletionAndVersion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := invocation{}.run(t, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "wcp") {
			t.Errorf("completion %s = %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
	r := invocation{}.run(t, "version", "--client")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Client Version: ") {
		t.Errorf("version --client = %d %q", r.code, r.stdout)
	}
}
