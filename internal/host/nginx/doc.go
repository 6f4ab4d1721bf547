// Package nginx is the nginx configuration engine: it renders one site
// file per domain from the templates in templates/nginx, writes it
// atomically with a snapshot, tests and reloads nginx for many domains at
// once, and reports drift.
//
//	m, err := nginx.New(nginx.Options{Snapshots: snaps, Clock: time.Now})
//	err = m.EnsureRunning(ctx)           // include line, default server, a running master
//	err = m.Apply(ctx, site)             // returns once nginx serves site (or a *ConfigError)
//	diffs, err := m.Observe(ctx, site)   // drift of the site file
//	err = m.Remove(ctx, "example.com")
//
// # Files
//
//	/etc/nginx/nginx.conf               the distribution's; we add one include line in http {}
//	/etc/nginx/wcp360/wcp360.conf       http level: what all sites share; includes the rest
//	/etc/nginx/wcp360/default.conf      the default server (404 on HTTP, 421 on HTTPS)
//	/etc/nginx/wcp360/default.{crt,key} its self-signed certificate, 0600
//	/etc/nginx/wcp360/sites/<d>.conf    one file per domain
//	/etc/wcp360/nginx/custom/<d>/*.conf admin-only additions inside <d>'s server block
//
// # Safe apply and coalesced reloads
//
// Changes are group-committed (batch.go): every Apply or Remove that
// arrives within Options.Window shares one `nginx -t` and one reload; a
// batch that is running lets the next fill up. If nginx -t fails, the
// domains its message names (by site file, admin include file,
// certificate or log path) get their previous file back and a
// *ConfigError; the rest are tested again and reloaded. When the message
// names none of them, the whole batch is undone (*TestError). nginx never
// loads a configuration that failed nginx -t, and nothing that failed
// stays on disk.
//
// # Ready means serving
//
// Apply returns once the new configuration answers every new connection:
// after SIGHUP the old workers keep accepting with the old configuration
// for ~100 ms, so we wait until every worker that existed before the
// signal is gone or "shutting down" and a new one runs (process.go).
//
// # Scale
//
// Measured on Debian 12's nginx 1.22 (2 cores) over 10,000 generated sites:
// a bare server block costs ~14 KB and ~0.025 ms of nginx -t; each
// location ~7 KB and ~0.01 ms (regex or not). Three things cost far more,
// because nginx keeps them in lists it searches linearly at every load
// (O(sites²)), and are avoided:
//
//   - `fastcgi_pass unix:/path` adds an upstream per site: +1.9 s of
//     nginx -t at 10,000 sites. Through a variable (`set $wcp360_php ...;
//     fastcgi_pass $wcp360_php;`) nginx resolves the socket per request and
//     it costs nothing at load.
//   - every log file with a fixed path is opened by the master: +0.45 s per
//     10,000 files, one descriptor each in every nginx process, twice during
//     a reload. The access log's path holds an empty variable, so the
//     worker opens it when it writes (open_log_file_cache keeps it open).
//     The error log cannot do that: Options.SharedErrorLog trades the
//     per-domain error log for one file. We raise the open files limit of
//     nginx -t and of the master as far as needed (limits.go); a host whose
//     hard limit is too low fails the reload with EMFILE, reported at once.
//   - `include fastcgi_params` in a location copies 17 parameters into it
//     (~12 KB per site): they are set once at the http level instead.
//
// Hidden files are refused without a `location ~ /\.` per site (see
// http.conf.tmpl). A PHP site has three locations (ACME challenges, "/"
// with the front controller, "\.php$"), a static site two.
//
// BenchmarkSites (bench_test.go) compares this template with a
// conventional one (testdata/classic-site.conf.tmpl). At 10,000 PHP sites
// with one error log for all: nginx -t 0.84 s against 6.0 s, a reload
// until the new workers serve 1.0 s against 6.7 s, master RSS 401 MB
// against 588 MB (770 MB against 1.1 GB after a second reload). With a
// fixed-path access and error log per site, as panels commonly write
// them, nginx -t cannot even open them under a 20,000 descriptor limit.
package nginx
