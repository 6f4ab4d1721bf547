package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newStore opens a store on a fresh, migrated database.
func newStore(t *testing.T, opts ...store.Options) (*store.Store, string) {
	t.Helper()
	s, url := openStore(t, opts...)
	if err := s.MigrateUp(context.Background()); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	return s, url
}

// openStore opens a store on a fresh, empty database.
func openStore(t *testing.T, opts ...store.Options) (*store.Store, string) {
	t.Helper()
	url := pgtest.New(t)
	var o store.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := store.Open(context.Background(), url, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, url
}

func tenantReq(name string, spec string) store.ApplyRequest {
	return store.ApplyRequest{Kind: v1alpha1.KindTenant, Name: name, Node: "node1", Spec: json.RawMessage(spec), Actor: "test"}
}

func domainReq(name, tenant string, hosts ...string) store.ApplyRequest {
	spec, _ := json.Marshal(map[string]any{"tenant": tenant, "serverName": hosts[0], "aliases": hosts[1:]})
	return store.ApplyRequest{Kind: v1alpha1.KindDomain, Name: name, Tenant: tenant, Node: "node1",
		Spec: spec, Hostnames: hosts, Actor: "test"}
}

func databaseReq(name, tenant, dbName string) store.ApplyRequest {
	spec, _ := json.Marshal(map[string]any{"tenant": tenant, "engine": "mariadb", "databaseName": dbName})
	return store.ApplyRequest{Kind: v1alpha1.KindDatabase, Name: name, Tenant: tenant, Node: "node1",
		Spec: spec, Engine: "mariadb", DatabaseName: dbName, Actor: "test"}
}

func apply(t *testing.T, s *store.Store, req store.ApplyRequest) store.ApplyResult {
	t.Helper()
	res, err := s.Apply(context.Background(), req)
	if err != nil {
		t.Fatalf("Apply %s/%s: %v", req.Kind, req.Name, err)
	}
	return res
}

func get(t *testing.T, s *store.Store, kind v1alpha1.Kind, name string) store.Resource {
	t.Helper()
	r, err := s.Get(context.Background(), kind, name)
	if err != nil {
		t.Fatalf("Get %s/%s: %v", kind, name, err)
	}
	return r
}

// wantFieldError checks err is a *FieldError about field that matches sentinel.
func wantFieldError(t *testing.T, err, sentinel error, field string) *store.FieldError {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	var fe *store.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *store.FieldError", err, err)
	}
	if fe.Field != field {
		t.Fatalf("field = %q, want %q (err: %v)", fe.Field, field, err)
	}
	return fe
}

// count returns the number of rows of a table (or a query's single number).
func count(t *testing.T, s *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// listener is a LISTEN connection of its own, as a controller has.
type listener struct {
	conn *pgx.Conn
}

func listen(t *testing.T, url string) *listener {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
		t.Fatalf("LISTEN: %v", err)
	}
	return &listener{conn: conn}
}

// next waits for the next notification payload.
func (l *listener) next(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if n.Channel != store.NotifyChannel {
		t.Fatalf("channel = %q", n.Channel)
	}
	return n.Payload
}

// expect reads the next notifications and checks they are want, in order.
func (l *listener) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := l.next(t); got != w {
			t.Fatalf("notification = %q, want %q", got, w)
		}
	}
}

// nothingBefore proves no notification was sent since the last one read: it
// commits a marker write and checks the marker's notification comes first
// (notifications arrive in commit order).
func (l *listener) nothingBefore(t *testing.T, s *store.Store, marker int) {
	t.Helper()
	name := fmt.Sprintf("marker%d", marker)
	apply(t, s, tenantReq(name, `{}`))
	l.expect(t, "Tenant/"+name)
}
