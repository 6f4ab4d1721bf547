package wcpd

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// Somebody changes a tenant's account and home by hand. wcpd shows it live,
// corrects it when asked to reconcile (driftPolicy correct), only reports it
// under driftPolicy report, and on deletion removes the user and archives
// the home. The resync is an hour away: only the reconcile requests make
// the controller look.
func TestTenantDriftCorrectedAndReported(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "resyncInterval: 10s", "resyncInterval: 1h", 1)
	})
	if code, body := d.do("PUT", "/api/v1/tenants/acme", tenant("acme")); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, body)
	}
	d.waitReady("tenants", "acme")
	if line := passwdLine(t, "acme"); line != "acme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin" {
		t.Fatalf("passwd line of acme: %q", line)
	}
	if fi, err := os.Stat("/srv/www/acme"); err != nil || !fi.IsDir() {
		t.Fatalf("home of acme: %v, %v", fi, err)
	}

	// Drift, corrected.
	usermod, err := cmdrun.LookPath("usermod")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: usermod, Args: []string{"-s", "/bin/bash", "acme"}}); err != nil {
		t.Fatal(err)
	}
	const shellDiff = "shell: want /usr/sbin/nologin, have /bin/bash"
	if got := d.liveDrift("acme"); len(got) != 1 || got[0] != shellDiff {
		t.Fatalf("live drift = %q, want [%s]", got, shellDiff)
	}
	d.reconcile("acme")
	eventually(t, d, "the shell corrected and the drift events recorded", func() (bool, string) {
		line := passwdLine(t, "acme")
		evs := d.events("acme")
		ok := strings.HasSuffix(line, ":/usr/sbin/nologin") &&
			hasEvent(evs, "Warning", "DriftDetected", shellDiff) && hasEvent(evs, "Normal", "DriftCorrected", shellDiff)
		return ok, fmt.Sprintf("passwd %q, events %+v", line, evs)
	})
	st := d.status("acme")
	if len(st.Drift) != 1 || st.Drift[0].Field != "shell" || st.Drift[0].Want != "/usr/sbin/nologin" ||
		st.Drift[0].Have != "/bin/bash" || !st.Drift[0].Corrected {
		t.Errorf("status.drift = %+v, want the shell, corrected", st.Drift)
	}
	if got := d.liveDrift("acme"); len(got) != 0 {
		t.Errorf("live drift after the correction = %q, want none", got)
	}

	// Drift, reported only.
	report := tenant("acme")
	report["spec"] = map[string]any{"driftPolicy": "report"}
	if code, body := d.do("PUT", "/api/v1/tenants/acme", report); code != http.StatusOK {
		t.Fatalf("apply with driftPolicy report: %d %s", code, body)
	}
	d.waitReady("tenants", "acme")
	if err := os.Chmod("/srv/www/acme", 0o777); err != nil {
		t.Fatal(err)
	}
	const modeDiff = "home mode: want 0750, have 0777"
	d.reconcile("acme")
	eventually(t, d, "the drift reported in a Drifted condition", func() (bool, string) {
		st := d.status("acme")
		c := condition(st, v1alpha1.ConditionDrifted)
		return c != nil && c.Status == v1alpha1.ConditionTrue && strings.Contains(c.Message, modeDiff),
			fmt.Sprintf("status %+v", st)
	})
	if fi, err := os.Stat("/srv/www/acme"); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("home of acme under driftPolicy report: %v, %v; want it left at 0777", fi, err)
	}
	st = d.status("acme")
	if c := condition(st, v1alpha1.ConditionReady); c == nil || c.Status != v1alpha1.ConditionTrue {
		t.Errorf("Ready under reported drift: %+v, want True", c)
	}
	if got := d.liveDrift("acme"); len(got) != 1 || got[0] != modeDiff {
		t.Errorf("live drift = %q, want [%s]", got, modeDiff)
	}

	// Deletion: the user goes, the home is archived (homeDeletionPolicy archive).
	if code, body := d.do("DELETE", "/api/v1/tenants/acme", nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, body)
	}
	eventually(t, d, "the tenant gone", func() (bool, string) {
		code, body := d.do("GET", "/api/v1/tenants/acme", nil)
		return code == http.StatusNotFound, fmt.Sprintf("%d %s", code, body)
	})
	if line := passwdLine(t, "acme"); line != "" {
		t.Errorf("user acme still in /etc/passwd: %q", line)
	}
	if _, err := os.Lstat("/srv/www/acme"); !os.IsNotExist(err) {
		t.Errorf("home of acme still there: %v", err)
	}
	archives, err := filepath.Glob(filepath.Join(d.dir, "archives", "acme-*.tar.gz"))
	if err != nil || len(archives) != 1 {
		t.Fatalf("archives of acme: %q, %v; want one", archives, err)
	}
	if first := firstTarEntry(t, archives[0]); first != "acme/" {
		t.Errorf("archive %s starts with %q, want the home acme/", archives[0], first)
	}
}

// passwdLine is the /etc/passwd line of user, or "".
func passwdLine(t *testing.T, user string) string {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, user+":") {
			return l
		}
	}
	return ""
}

// liveDrift is what GET .../drift shows for tenant, one difference a string.
func (d *daemonUnderTest) liveDrift(name string) []string {
	d.t.Helper()
	var rep api.DriftReport
	d.getJSON("/api/v1/tenants/"+name+"/drift", &rep)
	if rep.ObservedAt.IsZero() || rep.Differences == nil {
		d.t.Fatalf("drift report %+v lacks observedAt or differences", rep)
	}
	out := make([]string, 0, len(rep.Differences))
	for _, df := range rep.Differences {
		out = append(out, df.String())
	}
	return out
}

func (d *daemonUnderTest) reconcile(name string) {
	d.t.Helper()
	if code, body := d.do("POST", "/api/v1/tenants/"+name+"/reconcile", nil); code != http.StatusAccepted {
		d.t.Fatalf("reconcile: %d %s", code, body)
	}
}

func (d *daemonUnderTest) events(name string) []api.EventItem {
	d.t.Helper()
	var evs []api.EventItem
	d.getJSON("/api/v1/tenants/"+name+"/events", &evs)
	return evs
}

func (d *daemonUnderTest) status(name string) v1alpha1.Status {
	d.t.Helper()
	var st v1alpha1.Status
	d.getJSON("/api/v1/tenants/"+name+"/status", &st)
	return st
}

func (d *daemonUnderTest) getJSON(path string, out any) {
	d.t.Helper()
	code, body := d.do("GET", path, nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		d.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func hasEvent(evs []api.EventItem, typ, reason, msg string) bool {
	for _, e := range evs {
		if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

func condition(st v1alpha1.Status, typ string) *v1alpha1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

// eventually polls check until it holds, for up to 30s.
func eventually(t *testing.T, d *daemonUnderTest, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = check(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not within 30s: %s; last: %s\nlogs:\n%s", what, last, d.logs)
}

func firstTarEntry(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := tar.NewReader(gz).Next()
	if err != nil {
		t.Fatal(err)
	}
	return hdr.Name
}
