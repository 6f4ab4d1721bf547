package http3test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/domain"
	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// The domain of testdata/site.yaml; the sandbox's /etc/hosts maps it to
// 127.0.0.1.
const siteName = "acme.test"

// siteYAML is the tenant and the domain (the test's files are not in the
// rootfs, so it carries them).
//
//go:embed testdata/site.yaml
var siteYAML []byte

// phpPage shows who runs PHP and over which protocol the request came.
const phpPage = `<?php echo "uid=", posix_geteuid(), " ", $_SERVER["SERVER_PROTOCOL"];`

// In Debian 13, a tenant and its domain with PHP, a self-signed
// certificate and HTTP/3 converge through the host drivers wcpd uses.
// Then nginx says it has HTTP/3, the domain's HTTP3 condition is True, the
// HTTPS response over TCP (HTTP/2) advertises h3 with Alt-Svc, and an
// HTTP/3 client that trusts the domain's certificate gets the PHP page,
// run as the tenant, over QUIC on UDP 443.
func TestHTTP3(t *testing.T) {
	if runInTrixie(t, map[string]string{siteName: "127.0.0.1"}) {
		return
	}
	ctx := t.Context()
	h := newHost(t)

	caps, err := h.nginx.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.SSL || !caps.HTTP2 || !caps.HTTP3 {
		t.Fatalf("nginx %s: %+v, want TLS, HTTP/2 and HTTP/3", caps.Version, caps)
	}
	t.Logf("nginx %s, PHP-FPM %v", caps.Version, h.fpm.Versions())
	if err := h.nginx.EnsureRunning(ctx); err != nil {
		t.Fatal(err)
	}

	objs, err := v1alpha1.Decode(siteYAML, "testdata/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tenantRow := h.store(objs[0])
	h.converge(tenantRow, h.account)
	account := h.recordAccount(tenantRow)
	domainRow := h.store(objs[1])
	h.converge(domainRow, h.docRoot, h.tls, h.php, h.vhost)

	var st v1alpha1.Status
	if err := h.vhost.ReportStatus(ctx, domainRow, &st); err != nil {
		t.Fatal(err)
	}
	if c := findCondition(st, "HTTP3"); c == nil || c.Status != v1alpha1.ConditionTrue {
		t.Fatalf("HTTP3 condition %+v, want True; conditions: %+v", c, st.Conditions)
	}

	d, err := domain.Resolve(ctx, h.st, domainRow)
	if err != nil {
		t.Fatal(err)
	}
	writeAs(t, filepath.Join(d.DocumentRootPath(), "index.php"), phpPage, account.UID, account.GID)
	certPEM, err := os.ReadFile(h.tls.FilesFor(d).CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("no certificate in %s", h.tls.FilesFor(d).CertFile)
	}
	page := "https://" + siteName + "/"

	// HTTPS over TCP: HTTP/2, advertising HTTP/3.
	tcp := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	defer tcp.CloseIdleConnections()
	r := get(t, tcp, page)
	if want := fmt.Sprintf("uid=%d HTTP/2.0", account.UID); r.proto != "HTTP/2.0" || r.body != want {
		t.Errorf("over TCP: %s %q, want HTTP/2.0 %q", r.proto, r.body, want)
	}
	if alt := r.header.Get("Alt-Svc"); !strings.Contains(alt, `h3=":443"`) {
		t.Errorf("Alt-Svc %q, want h3 on :443", alt)
	}
	t.Logf("over TCP: %s %q, Alt-Svc: %s", r.proto, r.body, r.header.Get("Alt-Svc"))

	// HTTP/3 over QUIC, UDP 443.
	quic := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}}
	defer quic.Close()
	r = get(t, quic, page)
	if want := fmt.Sprintf("uid=%d HTTP/3.0", account.UID); r.proto != "HTTP/3.0" || r.body != want {
		t.Errorf("over QUIC: %s %q, want HTTP/3.0 %q", r.proto, r.body, want)
	}
	t.Logf("over QUIC: %s %q", r.proto, r.body)
}

// testHost is the host drivers wcpd builds (internal/wcpd/serve.go), on
// the sandbox's /etc, /srv/www and /run.
type testHost struct {
	t       *testing.T
	st      *store.Store
	account *tenant.Step
	fpm     *phpfpm.Manager
	nginx   *nginx.Manager
	docRoot *domain.DocRoot
	tls     *domain.TLS
	php     *domain.PHP
	vhost   *domain.Vhost
}

func newHost(t *testing.T) *testHost {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The drivers log to stderr, which the test on the host shows.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	snaps, err := snapshot.New(snapshot.Options{Dir: "/var/lib/wcp360/snapshots"})
	if err != nil {
		t.Fatal(err)
	}
	account, err := tenant.New(tenant.Options{
		WWWRoot: "/srv/www", Users: &users.DB{Root: "/", Now: time.Now}, Snapshots: snaps,
		UIDMin: 20000, UIDMax: 20999, ArchiveDir: "/var/lib/wcp360/archives", Clock: time.Now, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	fpm, err := phpfpm.New(phpfpm.Options{RunDir: "/run/wcp360/php", ConfDir: "/etc/wcp360/php-fpm",
		Snapshots: snaps, Clock: time.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fpm.Close() })
	web, err := nginx.New(nginx.Options{Snapshots: snaps, Clock: time.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tlsPart := &domain.TLS{Store: st, Dir: "/var/lib/wcp360/certs", Clock: time.Now}
	php := &domain.PHP{Store: st, FPM: fpm}
	return &testHost{t: t, st: st, account: account, fpm: fpm, nginx: web,
		docRoot: &domain.DocRoot{Store: st}, tls: tlsPart, php: php,
		vhost: &domain.Vhost{Store: st, Nginx: web, TLS: tlsPart, PHP: php, Clock: time.Now}}
}

// store writes obj as the API does and returns the stored row.
func (h *testHost) store(obj v1alpha1.Object) store.Resource {
	h.t.Helper()
	spec, err := json.Marshal(obj.SpecValue())
	if err != nil {
		h.t.Fatal(err)
	}
	req := store.ApplyRequest{Kind: obj.GetKind(), Name: obj.GetMeta().Name, Tenant: obj.TenantName(), Spec: spec}
	if d, ok := obj.(*v1alpha1.Domain); ok {
		req.Hostnames = d.Hostnames()
	}
	res, err := h.st.Apply(h.t.Context(), req)
	if err != nil {
		h.t.Fatalf("store %s %s: %v", req.Kind, req.Name, err)
	}
	return res.Resource
}

// step is what converge needs of a host driver.
type step interface {
	Name() string
	Observe(ctx context.Context, row store.Resource) ([]host.Difference, error)
	Apply(ctx context.Context, row store.Resource, diffs []host.Difference) (string, error)
}

// converge does what the controllers do with each step in turn: observe,
// apply what differs, and observe again, which must find nothing.
func (h *testHost) converge(row store.Resource, steps ...step) {
	h.t.Helper()
	ctx := h.t.Context()
	for _, s := range steps {
		diffs, err := s.Observe(ctx, row)
		if err != nil {
			h.t.Fatalf("%s %s: observe: %v", row.Name, s.Name(), err)
		}
		if len(diffs) > 0 {
			if _, err := s.Apply(ctx, row, diffs); err != nil {
				h.t.Fatalf("%s %s: apply: %v", row.Name, s.Name(), err)
			}
		}
		if left, err := s.Observe(ctx, row); err != nil || len(left) > 0 {
			h.t.Fatalf("%s %s: after apply: %v, %v", row.Name, s.Name(), left, err)
		}
	}
}

// recordAccount stores the tenant's account in its status, as the tenant
// controller does; the domain's parts read it from there.
func (h *testHost) recordAccount(row store.Resource) *v1alpha1.AccountStatus {
	h.t.Helper()
	var st v1alpha1.Status
	if err := h.account.ReportStatus(h.t.Context(), row, &st); err != nil {
		h.t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.UpdateStatus(h.t.Context(), store.StatusUpdate{Kind: row.Kind, Name: row.Name, UID: row.UID,
		Status: b, ObservedGeneration: row.Generation}); err != nil {
		h.t.Fatal(err)
	}
	return st.Account
}

func findCondition(st v1alpha1.Status, typ string) *v1alpha1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

func writeAs(t *testing.T, path, content string, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// reply is a response that was read.
type reply struct {
	proto  string
	header http.Header
	body   string
}

// get fetches url through rt; anything but 200 OK fails the test.
func get(t *testing.T, rt http.RoundTripper, url string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return reply{proto: resp.Proto, header: resp.Header, body: string(b)}
}
