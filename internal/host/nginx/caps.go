package nginx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Caps is what the installed nginx can do, from `nginx -V`.
type Caps struct {
	// Version is "1.22.1".
	Version string
	// SSL, HTTP2 and HTTP3: built with http_ssl, http_v2, http_v3.
	SSL, HTTP2, HTTP3 bool
	// HTTP2Directive: nginx ≥ 1.25.1 turns HTTP/2 on with `http2 on;` per
	// server; older ones with the `http2` parameter of `listen`.
	HTTP2Directive bool
	// IPv6: the kernel has IPv6, so sites also listen on [::].
	IPv6 bool
	// PidPath and ConfPath are the compiled-in defaults (--pid-path,
	// --conf-path); the pid directive of nginx.conf wins over PidPath.
	PidPath, ConfPath string
}

var versionRE = regexp.MustCompile(`nginx version: [^/\s]+/(\d+)\.(\d+)\.(\d+)`)

// ParseCaps reads the output of `nginx -V`. ipv6 is whether the kernel has
// IPv6 (nginx -V cannot say).
func ParseCaps(out string, ipv6 bool) (Caps, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return Caps{}, fmt.Errorf("nginx -V: no version in %q", firstLine(out))
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	c := Caps{Version: fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]), IPv6: ipv6}
	_, args, _ := strings.Cut(out, "configure arguments:")
	for _, f := range strings.Fields(args) {
		k, val, _ := strings.Cut(f, "=")
		switch k {
		case "--with-http_ssl_module":
			c.SSL = true
		case "--with-http_v2_module":
			c.HTTP2 = true
		case "--with-http_v3_module":
			c.HTTP3 = true
		case "--pid-path":
			c.PidPath = val
		case "--conf-path":
			c.ConfPath = val
		}
	}
	c.HTTP2Directive = v[0] > 1 || v[0] == 1 && (v[1] > 25 || v[1] == 25 && v[2] >= 1)
	return c, nil
}

// Unsupported lists, worded for a condition message, what the site asks
// for that this nginx cannot do; Render leaves those parts out.
func (c Caps) Unsupported(s Site) []string {
	var out []string
	if s.HTTP3 && !c.HTTP3 {
		out = append(out, fmt.Sprintf("HTTP/3 requested, but nginx %s was built without --with-http_v3_module: served over HTTP/1.1 and HTTP/2 only", c.Version))
	}
	if s.TLS != nil && !c.SSL {
		out = append(out, fmt.Sprintf("TLS requested, but nginx %s was built without --with-http_ssl_module: served over HTTP only", c.Version))
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// Capabilities runs `nginx -V` once and remembers the answer (a failure is
// not remembered).
func (m *Manager) Capabilities(ctx context.Context) (Caps, error) {
	m.capsMu.Lock()
	defer m.capsMu.Unlock()
	if m.caps != nil {
		return *m.caps, nil
	}
	out, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: m.opts.NginxBin, Args: []string{"-V"}, Timeout: m.opts.CommandTimeout})
	if err != nil {
		return Caps{}, fmt.Errorf("nginx capabilities: %w", err)
	}
	_, statErr := os.Stat("/proc/net/if_inet6")
	c, err := ParseCaps(string(out), statErr == nil)
	if err != nil {
		return Caps{}, err
	}
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		m.opts.Logger.Warn("cannot tell whether the kernel has IPv6; listening on IPv4 only", "err", statErr)
	}
	m.caps = &c
	return c, nil
}
