package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/metrics"
)

func TestMetrics(t *testing.T) {
	d := clienttest.StartWith(t, clienttest.Options{Metrics: func(out io.Writer) error {
		w := metrics.NewWriter(out)
		w.Header("wcp360_nginx_reloads_total", metrics.TypeCounter, "nginx reloads.")
		w.Sample("wcp360_nginx_reloads_total", 3)
		w.Header("wcp360_reconciles_total", metrics.TypeCounter, "Reconciles.")
		w.Sample("wcp360_reconciles_total", 7, "controller", "tenant", "result", "success")
		return w.Flush()
	}})
	wcp := invocation{socket: d.Socket}
	r := wcp.run(t, "metrics")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "\nwcp360_nginx_reloads_total 3\n") || !strings.Contains(r.stdout, `wcp360_reconciles_total{controller="tenant",result="success"} 7`) {
		t.Errorf("wcp metrics:\n%s", r.stdout)
	}
	r = wcp.run(t, "metrics", "nginx_reloads")
	mustSucceed(t, r)
	wantLines(t, "wcp metrics nginx_reloads", r.stdout,
		"# HELP wcp360_nginx_reloads_total nginx reloads.",
		"# TYPE wcp360_nginx_reloads_total counter",
		"wcp360_nginx_reloads_total 3")

	// A daemon that keeps no metrics says so.
	bare := clienttest.Start(t)
	r = invocation{socket: bare.Socket}.run(t, "metrics")
	if r.code != 1 || r.stderr != "error: No metrics: this daemon keeps no metrics\n" {
		t.Errorf("metrics of a daemon without: exit %d, stderr %q", r.code, r.stderr)
	}
}
