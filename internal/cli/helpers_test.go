package cli

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
)

func TestHumanAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{45 * time.Second, "45s"},
		{119 * time.Second, "119s"},
		{5 * time.Minute, "5m"},
		{179 * time.Minute, "179m"},
		{3 * time.Hour, "3h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{400 * 24 * time.Hour, "400d"},
		{3 * 365 * 24 * time.Hour, "3y"},
	} {
		if got := humanAge(tc.d); got != tc.want {
			t.Errorf("humanAge(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestFormatChange(t *testing.T) {
	for _, tc := range []struct {
		c    api.Change
		want string
	}{
		{api.Change{Path: "spec.php.version", Old: raw(`"8.1"`), New: raw(`"8.2"`)}, `~ spec.php.version: "8.1" -> "8.2"`},
		{api.Change{Path: "spec.aliases[2]", New: raw(`"x"`)}, `+ spec.aliases[2]: "x"`},
		{api.Change{Path: "metadata.labels.plan", Old: raw(`"gold"`)}, `- metadata.labels.plan: "gold"`},
		{api.Change{Path: "spec.limits", New: raw("{ \"pids\": 10 }")}, `+ spec.limits: {"pids":10}`},
	} {
		if got := formatChange(tc.c); got != tc.want {
			t.Errorf("formatChange(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestManifestFiles(t *testing.T) {
	dir := filepath.Join("testdata", "nested")
	for _, tc := range []struct {
		recursive bool
		want      []string
	}{
		{false, []string{"a.yml", "c.yaml"}},
		{true, []string{"a.yml", "c.yaml", filepath.Join("sub", "b.json")}},
	} {
		got, err := manifestFiles(dir, tc.recursive)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(tc.want))
		for i, w := range tc.want {
			want[i] = filepath.Join(dir, w)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("manifestFiles(recursive=%v) (-want +got):\n%s", tc.recursive, diff)
		}
	}
}

func TestDependencyOrder(t *testing.T) {
	a := newApp(Env{})
	ms, problems := a.loadManifests(fileFlags{files: []string{"testdata/site", "testdata/nested/a.yml"}})
	if problems != nil {
		t.Fatal(problems)
	}
	var got []string
	for _, m := range dependencyOrder(ms) {
		got = append(got, objRef(m.obj))
	}
	want := []string{"tenant/acme", "tenant/alpha", "domain/www.acme.test", "database/shop"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apply order (-want +got):\n%s", diff)
	}
	got = got[:0]
	for _, m := range deletionOrder(ms) {
		got = append(got, objRef(m.obj))
	}
	want = []string{"database/shop", "domain/www.acme.test", "tenant/acme", "tenant/alpha"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delete order (-want +got):\n%s", diff)
	}
}

func TestAssessReady(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cond := func(typ string, st v1alpha1.ConditionStatus, reason, msg string, gen int64) v1alpha1.Condition {
		return v1alpha1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, LastTransitionTime: now, ObservedGeneration: gen}
	}
	head := func(gen, observed int64, conds ...v1alpha1.Condition) resourceHead {
		return resourceHead{
			Metadata: v1alpha1.ObjectMeta{Name: "x", Generation: gen},
			Status:   v1alpha1.Status{ObservedGeneration: observed, Conditions: conds},
		}
	}
	terminating := head(1, 1)
	terminating.Metadata.DeletionTimestamp = &now
	for _, tc := range []struct {
		name string
		h    resourceHead
		gen  int64
		want observation
	}{
		{"no status yet", head(1, 0), 1, observation{phasePending, "Pending (not reconciled yet)"}},
		{"waiting for tenant", head(1, 0,
			cond("Ready", "False", "WaitingForTenant", "tenant acme is not Ready", 1),
			cond("Reconciling", "True", "WaitingForTenant", "tenant acme is not Ready", 1)),
			1, observation{phasePending, "Reconciling (WaitingForTenant: tenant acme is not Ready)"}},
		{"ready", head(2, 2, cond("Ready", "True", "Succeeded", "", 2)), 2, observation{phaseDone, "Ready"}},
		{"ready at an older generation", head(3, 2, cond("Ready", "True", "Succeeded", "", 2)), 3,
			observation{phasePending, "Reconciling (generation 3 not observed yet, observed 2)"}},
		{"ready, generation from status", head(2, 2, cond("Ready", "True", "Succeeded", "", 0)), 2, observation{phaseDone, "Ready"}},
		{"stalled", head(1, 1, cond("Ready", "False", "InvalidPath", "no", 1), cond("Stalled", "True", "InvalidPath", "documentRoot is a file", 1)),
			1, observation{phaseFailed, "Stalled (InvalidPath: documentRoot is a file)"}},
		{"stalled at an older generation", head(2, 1, cond("Stalled", "True", "InvalidPath", "old", 1)), 2,
			observation{phasePending, "Reconciling (generation 2 not observed yet, observed 1)"}},
		{"terminating", terminating, 1, observation{phaseFailed, "Terminating (the resource is being deleted)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := assessReady(tc.h, tc.gen); got != tc.want {
				t.Errorf("assessReady = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNextInterval(t *testing.T) {
	lo, hi := 250*time.Millisecond, time.Second
	d := lo
	var got []time.Duration
	for range 4 {
		d = nextInterval(d, false, lo, hi)
		got = append(got, d)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, time.Second, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if d := nextInterval(hi, true, lo, hi); d != lo {
		t.Errorf("after a change the interval is %v, want %v", d, lo)
	}
}
