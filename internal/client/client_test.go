package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// The tests of StartAuth set passwords and create users for the real PAM:
// each runs in a sandbox of its own (sandbox.Run).
func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	refused := filepath.Join(dir, "refused.sock")
	l, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close() // the socket file stays, nobody listens: ECONNREFUSED
	for _, addr := range []string{filepath.Join(dir, "missing.sock"), refused, "http://127.0.0.1:1"} {
		_, err := client.New(addr).Health(testContext(t))
		if !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("%s: err = %v, want ErrUnreachable", addr, err)
			continue
		}
		want := "wcpd is not running or not reachable at " + addr + ": "
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: err = %q, want it to start with %q", addr, err, want)
		}
	}
}

func tenant(name string, labels map[string]string) *v1alpha1.Tenant {
	t := &v1alpha1.Tenant{Metadata: v1alpha1.ObjectMeta{Name: name, Labels: labels}}
	t.Spec.DisplayName = "Tenant " + name
	t.Default()
	return t
}

func domain(name, tenant string) *v1alpha1.Domain {
	d := &v1alpha1.Domain{Metadata: v1alpha1.ObjectMeta{Name: name}}
	d.Spec.Tenant = tenant
	d.Default()
	return d
}

func TestRoundTrip(t *testing.T) {
	d := clienttest.Start(t)
	roundTrip(t, client.New(d.Socket), "rt-unix")
	// Over TCP nobody is root: without a token, only the public routes answer.
	tcp := client.New(d.URL)
	if h, err := tcp.Health(testContext(t)); err != nil || h.Status != "ok" {
		t.Errorf("Health over TCP without a token = %+v, %v", h, err)
	}
	if _, err := tcp.Apply(testContext(t), tenant("rt-tcp", nil), false); !client.IsUnauthorized(err) {
		t.Errorf("Apply over TCP without a token: %v, want 401", err)
	}
}

// roundTrip runs every call once on a tenant called name.
func roundTrip(t *testing.T, c *client.Client, name string) {
	ctx := testContext(t)
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || h.Node != clienttest.Node {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	ten := tenant(name, map[string]string{"plan": "gold"})
	resp, err := c.Apply(ctx, ten, true)
	if err != nil || resp.Outcome != api.OutcomeCreated || !resp.DryRun {
		t.Fatalf("dry-run Apply = %+v, %v; want created (dry run)", resp, err)
	}
	if _, err := c.Get(ctx, v1alpha1.KindTenant, name); !client.IsNotFound(err) {
		t.Fatalf("Get after a dry run: err = %v, want 404", err)
	}
	if resp, err = c.Apply(ctx, ten, false); err != nil || resp.Outcome != api.OutcomeCreated {
		t.Fatalf("Apply = %+v, %v; want created", resp, err)
	}
	if resp, err = c.Apply(ctx, ten, false); err != nil || resp.Outcome != api.OutcomeUnchanged {
		t.Fatalf("second Apply = %+v, %v; want unchanged", resp, err)
	}
	obj, err := c.GetObject(ctx, v1alpha1.KindTenant, name)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := obj.(*v1alpha1.Tenant)
	if !ok || got.Spec.DisplayName != ten.Spec.DisplayName || got.Metadata.Generation != 1 || got.Metadata.UID == "" {
		t.Fatalf("GetObject = %#v", obj)
	}
	list, err := c.List(ctx, v1alpha1.KindTenant, client.ListOptions{LabelSelector: "plan=gold"})
	if err != nil || list.Kind != "TenantList" || !listHas(list, name) {
		t.Fatalf("List(plan=gold) = %+v, %v; want it to hold %s", list, err, name)
	}
	if list, err = c.List(ctx, v1alpha1.KindTenant, client.ListOptions{LabelSelector: "plan=silver"}); err != nil || listHas(list, name) {
		t.Fatalf("List(plan=silver) = %+v, %v; want it without %s", list, err, name)
	}
	if _, err := c.Status(ctx, v1alpha1.KindTenant, name); err != nil {
		t.Fatalf("Status: %v", err)
	}
	revs, err := c.Revisions(ctx, v1alpha1.KindTenant, name)
	if err != nil || len(revs) != 1 || revs[0].Generation != 1 {
		t.Fatalf("Revisions = %+v, %v; want one, generation 1", revs, err)
	}
	if _, err := c.Events(ctx, v1alpha1.KindTenant, name); err != nil {
		t.Fatalf("Events: %v", err)
	}
	rec, err := c.Reconcile(ctx, v1alpha1.KindTenant, name)
	if err != nil || rec.RequestedAt.IsZero() || !strings.Contains(string(rec.Object), `"name":"`+name+`"`) {
		t.Fatalf("Reconcile = %+v, %v; want the time of the request and the object", rec, err)
	}
	if _, err := c.Drift(ctx, v1alpha1.KindTenant, name); !client.IsNotImplemented(err) {
		t.Fatalf("Drift of a daemon that does not observe the host: err = %v, want 501", err)
	}
	changed := tenant(name, map[string]string{"plan": "gold"})
	changed.Spec.DisplayName = "changed"
	if _, err := c.Apply(ctx, changed, false); err != nil {
		t.Fatal(err)
	}
	if resp, err = c.Rollback(ctx, v1alpha1.KindTenant, name, 1, true); err != nil || !resp.DryRun || resp.Outcome != api.OutcomeConfigured {
		t.Fatalf("dry-run Rollback = %+v, %v; want configured (dry run)", resp, err)
	}
	if resp, err = c.Rollback(ctx, v1alpha1.KindTenant, name, 1, false); err != nil || resp.Outcome != api.OutcomeConfigured ||
		len(resp.Changes) != 1 || resp.Changes[0].Path != "spec.displayName" {
		t.Fatalf("Rollback = %+v, %v; want spec.displayName configured", resp, err)
	}
	if revs, err = c.Revisions(ctx, v1alpha1.KindTenant, name); err != nil || len(revs) != 3 || revs[2].Generation != 3 {
		t.Fatalf("Revisions after a rollback = %+v, %v; want three", revs, err)
	}
	if _, err = c.Rollback(ctx, v1alpha1.KindTenant, name, 7, false); !client.IsNotFound(err) {
		t.Fatalf("Rollback to a missing revision: err = %v, want 404", err)
	}
	raw, err := c.Delete(ctx, v1alpha1.KindTenant, name, false)
	if err != nil || !strings.Contains(string(raw), `"deletionTimestamp"`) {
		t.Fatalf("Delete = %s, %v; want the object marked for deletion", raw, err)
	}
}

// shellObserver sees every tenant's shell changed by hand.
type shellObserver struct{}

func (shellObserver) Observe(context.Context, v1alpha1.Kind, string) ([]host.Difference, error) {
	return []host.Difference{{Field: "shell", Want: "/usr/sbin/nologin", Have: "/bin/bash"}}, nil
}

func TestDrift(t *testing.T) {
	d := clienttest.StartWith(t, clienttest.Options{Observer: shellObserver{}})
	c := client.New(d.Socket)
	ctx := testContext(t)
	if _, err := c.Apply(ctx, tenant("acme", nil), false); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Drift(ctx, v1alpha1.KindTenant, "acme")
	if err != nil || rep.ObservedAt.IsZero() || len(rep.Differences) != 1 ||
		rep.Differences[0].String() != "shell: want /usr/sbin/nologin, have /bin/bash" {
		t.Fatalf("Drift = %+v, %v; want the shell difference", rep, err)
	}
	if _, err := c.Drift(ctx, v1alpha1.KindTenant, "nobody"); !client.IsNotFound(err) {
		t.Errorf("Drift of a missing tenant: err = %v, want 404", err)
	}
	if _, err := c.Reconcile(ctx, v1alpha1.KindTenant, "nobody"); !client.IsNotFound(err) {
		t.Errorf("Reconcile of a missing tenant: err = %v, want 404", err)
	}
}

func listHas(l api.List, name string) bool {
	for _, it := range l.Items {
		var head struct {
			Metadata v1alpha1.ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(it, &head) == nil && head.Metadata.Name == name {
			return true
		}
	}
	return false
}

func TestAPIErrors(t *testing.T) {
	d := clienttest.Start(t)
	c := client.New(d.Socket)
	ctx := testContext(t)

	_, err := c.Get(ctx, v1alpha1.KindTenant, "nobody")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Problem.Status != http.StatusNotFound {
		t.Fatalf("Get of a missing tenant: err = %#v, want an *APIError 404", err)
	}
	if !client.IsNotFound(err) || client.IsConflict(err) {
		t.Errorf("IsNotFound/IsConflict disagree with %v", err)
	}

	_, err = c.Apply(ctx, domain("www.orphan.test", "orphan"), false)
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("Apply of a domain of a missing tenant: err = %v, want 422", err)
	}
	if len(ae.Problem.Errors) == 0 || ae.Problem.Errors[0].Field != "spec.tenant" {
		t.Errorf("problem %+v does not name spec.tenant", ae.Problem)
	}

	ten := tenant("acme", nil)
	if _, err := c.Apply(ctx, ten, false); err != nil {
		t.Fatal(err)
	}
	stale := tenant("acme", nil)
	stale.Spec.DisplayName = "changed"
	stale.Metadata.ResourceVersion = 999
	if _, err = c.Apply(ctx, stale, false); !client.IsConflict(err) {
		t.Fatalf("Apply with a stale resourceVersion: err = %v, want 409", err)
	}
}
