package wcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/identity"
	"github.com/wcp360/wcp360/internal/auth/pam"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/host/domain"
	"github.com/wcp360/wcp360/internal/host/isolation"
	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	tenanthost "github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/version"
)

func newServeCmd(g *globalFlags, env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: REST API on the unix socket, controllers, LISTEN/NOTIFY",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(env)
			if err != nil {
				return err
			}
			d := &daemonState{g: g, env: env, cfg: cfg}
			return d.serve(cmd.Context())
		},
	}
}

type daemonState struct {
	g     *globalFlags
	env   Env
	mu    sync.Mutex
	cfg   config.Config
	level slog.LevelVar
	log   *slog.Logger
	mgr   *reconcile.Manager
	fpm   *phpfpm.Manager // closed at exit; its masters keep running
	// cgroups enforces the tenants' limits; pressure watches them.
	cgroups  cgroup.Driver
	pressure *isolation.Pressure
	// metrics is what GET /metrics reports.
	metrics *daemonMetrics
	// pam checks passwords; its transactions finish before wcpd exits.
	pam *pam.Authenticator
}

// sweepSessions deletes expired refresh tokens every hour: a session left
// unused ends by itself, and its row goes here.
func (d *daemonState) sweepSessions(ctx context.Context, st *store.Store) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := st.DeleteExpiredRefreshTokens(ctx); err != nil {
			d.log.Warn("cannot delete expired sessions", "err", err)
		} else if n > 0 {
			d.log.Info("deleted expired sessions", "count", n)
		}
	}
}

// identity makes first boot, logins and tokens: PAM (service wcp360: root,
// auth.adminGroup's members, and the panel's principals), signing keys in
// paths.configDir/keys.
func (d *daemonState) identity(st *store.Store) (*identity.Service, error) {
	a, err := pam.New(pam.Config{Logger: d.log, Clock: time.Now, AdminGroup: d.cfg.Auth.AdminGroup,
		// Besides root and the admin group: the panel's principals, with
		// the password of the Linux user of their name (a tenant's login).
		AllowUser: identity.PrincipalsMayLogIn(st)})
	if err != nil {
		return nil, fmt.Errorf("PAM: %w", err)
	}
	d.pam = a
	return identity.New(identity.Options{Store: st, PAM: a, KeyDir: filepath.Join(d.cfg.Paths.ConfigDir, "keys"),
		Token: token.Config{Clock: time.Now}, Logger: d.log})
}

func (d *daemonState) newLogger() *slog.Logger {
	d.level.Set(d.cfg.LogLevel())
	opts := &slog.HandlerOptions{Level: &d.level}
	var h slog.Handler = slog.NewTextHandler(d.env.Stderr, opts)
	if d.cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(d.env.Stderr, opts)
	}
	return slog.New(h).With("node", d.cfg.Node)
}

func (d *daemonState) serve(ctx context.Context) error {
	d.log = d.newLogger()
	cfg := d.cfg
	d.log.Info("wcpd starting", "version", version.Version, "socket", cfg.API.Socket)

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.MigrateUp(ctx); err != nil {
		return failureErr(fmt.Errorf("migrations: %w", err))
	}
	ident, err := d.identity(st)
	if err != nil {
		return failureErr(err)
	}
	defer d.pam.Wait()
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSweep()
	go d.sweepSessions(sweepCtx, st)

	ln, err := listenSocket(cfg.API.Socket, cfg.API.SocketMode)
	if err != nil {
		return failureErr(err)
	}
	lns := []net.Listener{ln}
	if cfg.API.Listen != "" {
		tl, err := listenTLS(cfg, d.log)
		if err != nil {
			_ = ln.Close()
			return failureErr(err)
		}
		lns = append(lns, tl)
	}

	// The controllers before the API: its drift and reconcile requests go
	// to their observer and queues, which must be whole by the first request.
	d.metrics = newDaemonMetrics()
	hooks, err := d.startControllers(st)
	if err != nil {
		for _, l := range lns {
			_ = l.Close()
		}
		return failureErr(err)
	}

	srv := &http.Server{
		Handler: api.NewServer(api.Options{
			Store: st, Logger: d.log, Node: cfg.Node, Version: version.Version, Clock: time.Now,
			Observer: hooks.observer, Enqueue: hooks.enqueue, Metrics: d.metrics.write,
			Auth: ident, Identity: ident,
			Checks: map[string]func(context.Context) error{"listener": func(context.Context) error {
				if !d.mgr.Ready() {
					return errors.New("LISTEN connection is down; resync will catch up when it is back")
				}
				return nil
			}},
		}).Handler(),
		// Who is on the other end of the socket (SO_PEERCRED): root only.
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return d.run(ctx, srv, lns)
}

// controllerHooks is what the API reaches the controllers through.
type controllerHooks struct {
	// observer looks at the host as the controllers' steps do (GET .../drift).
	observer api.Observer
	// enqueue asks a kind's controller to reconcile a resource now.
	enqueue func(kind v1alpha1.Kind, name string)
}

// startControllers builds the manager and one controller per kind, and the
// hooks the API reaches them through; the hooks are usable once it returns.
func (d *daemonState) startControllers(st *store.Store) (controllerHooks, error) {
	cfg := d.cfg
	d.mgr = reconcile.NewManager(reconcile.ManagerOptions{
		Logger:          d.log,
		ConnString:      cfg.Database.URL,
		ApplicationName: "wcpd-listener-" + cfg.Node,
		ResyncInterval:  cfg.Controllers.ResyncInterval,
	})
	// enqueue is handed to the controllers (a Ready tenant wakes its
	// domains) before byKind is filled, but neither they nor the API call it
	// before this function has returned; nothing writes byKind after that,
	// so its reads need no lock.
	byKind := map[v1alpha1.Kind]*reconcile.Controller{}
	enqueue := func(k v1alpha1.Kind, name string) {
		if c := byKind[k]; c != nil {
			c.Enqueue(name)
		}
	}
	steps, err := d.hostSteps(st)
	if err != nil {
		return controllerHooks{}, err
	}
	opts := controllers.Options{
		Store: st, Node: cfg.Node, Logger: d.log, Clock: time.Now, Enqueue: enqueue, Steps: steps,
	}
	for _, c := range controllers.New(opts) {
		rc, err := reconcile.New(d.controllerOptions(c))
		if err != nil {
			return controllerHooks{}, fmt.Errorf("controller %s: %w", c.Name, err)
		}
		byKind[c.Kind] = rc
		d.metrics.addController(rc)
		if err := d.mgr.Add(rc); err != nil {
			return controllerHooks{}, fmt.Errorf("controller %s: %w", c.Name, err)
		}
	}
	return controllerHooks{
		observer: hostObserver{obs: controllers.NewObserver(opts), steps: steps},
		enqueue:  enqueue,
	}, nil
}

// hostObserver is the controllers' observer for the kinds this build has
// host steps for; of the others it says they are not observed, rather than
// that they are in sync.
type hostObserver struct {
	obs   *controllers.Observer
	steps map[v1alpha1.Kind][]controllers.Step
}

func (h hostObserver) Observe(ctx context.Context, kind v1alpha1.Kind, name string) ([]host.Difference, error) {
	if len(h.steps[kind]) == 0 {
		return nil, fmt.Errorf("%w: this build of wcpd has no host steps for %s resources", api.ErrNotObserved, kind)
	}
	return h.obs.Observe(ctx, kind, name)
}

// hostSteps builds the host drivers each kind converges through.
func (d *daemonState) hostSteps(st *store.Store) (map[v1alpha1.Kind][]controllers.Step, error) {
	cfg := d.cfg
	snaps, err := snapshot.New(snapshot.Options{Dir: filepath.Join(cfg.Paths.StateDir, "snapshots")})
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	account, err := tenanthost.New(tenanthost.Options{
		WWWRoot:    cfg.Paths.WWWRoot,
		Users:      &users.DB{Root: "/", Now: time.Now},
		Snapshots:  snaps,
		UIDMin:     cfg.UIDs.Min,
		UIDMax:     cfg.UIDs.Max,
		ArchiveDir: filepath.Join(cfg.Paths.StateDir, "archives"),
		WebUser:    cfg.Web.WebUser,
		Clock:      time.Now,
		Logger:     d.log,
	})
	if err != nil {
		return nil, err
	}
	limits, quota, err := d.isolationSteps(st)
	if err != nil {
		return nil, err
	}
	fpm, err := phpfpm.New(phpfpm.Options{
		RunDir: filepath.Join(cfg.Paths.RunDir, "php"), ConfDir: filepath.Join(cfg.Paths.ConfigDir, "php-fpm"),
		BinDir: cfg.Web.PHPBinDir, Snapshots: snaps, WebGroup: cfg.Web.WebUser, Clock: time.Now, Logger: d.log,
		IdleStop: cfg.Web.PHPIdleStop, Runner: phpRunner(d.cgroups), StartIn: d.cgroups.StartIn,
	})
	if err != nil {
		return nil, fmt.Errorf("php-fpm: %w", err)
	}
	d.fpm = fpm
	// The masters a previous wcpd started keep serving: take them over.
	if err := fpm.Adopt(context.Background()); err != nil {
		d.log.Warn("cannot adopt running PHP-FPM masters; they are restarted as domains converge", "err", err)
	}
	web, err := nginx.New(nginx.Options{
		NginxBin: cfg.Web.Nginx, MainConf: cfg.Web.NginxConfig, Dir: cfg.Web.NginxDir,
		CustomDir: filepath.Join(cfg.Paths.ConfigDir, "nginx", "custom"),
		ACMEDir:   filepath.Join(cfg.Paths.StateDir, "acme", "challenges"),
		Snapshots: snaps, Clock: time.Now, Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	d.metrics.setHost(web, fpm, account)
	d.metrics.setIsolation(limits, quota, d.pressure)
	// A host whose nginx cannot start still serves the API; its domains
	// say why they are not served.
	if err := web.EnsureRunning(context.Background()); err != nil {
		d.log.Error("nginx is not running; domains will retry", "err", err)
	}
	tls := &domain.TLS{Store: st, Dir: filepath.Join(cfg.Paths.StateDir, "certs"), Clock: time.Now}
	php := &domain.PHP{Store: st, FPM: fpm}
	vhost := &domain.Vhost{Store: st, Nginx: web, TLS: tls, PHP: php, Clock: time.Now}
	issuer, err := d.acmeIssuer(filepath.Join(cfg.Paths.StateDir, "acme", "challenges"))
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	return map[v1alpha1.Kind][]controllers.Step{
		// The limits before the quota: both report into status.resources.
		v1alpha1.KindTenant: {account, limits, quota},
		v1alpha1.KindDomain: {
			&domain.DocRoot{Store: st}, tls, php, vhost,
			// After the vhost: HTTP-01 goes through the domain's site.
			&domain.ACME{Store: st, TLS: tls, Vhost: vhost, Client: issuer, Clock: time.Now,
				RetryBase: cfg.ACME.RetryBase, RetryMax: cfg.ACME.RetryMax},
		},
	}, nil
}

// Workers per controllers.workers. Two controllers spend most of a
// reconcile waiting for a batch that it shares with every reconcile that
// arrives meanwhile, and the more wait together, the fewer batches:
//
//   - a domain reconcile waits for its nginx batch (one nginx -t and one
//     reload for all): with 4 workers a burst of 1,000 domains made 250
//     batches of 4, with 64 some 20 batches of 64 (a batch of 1,000
//     sites takes 1.5 s here); 1,024 let a burst join a few;
//   - a tenant reconcile waits for its account batch (one write of the
//     passwd, shadow, group and gshadow files for all) and for the
//     database: with 64, a burst of 1,000 tenants converges as fast as
//     the API takes them (3.6 s here), in some 240 writes.
//
// Workers are goroutines started as keys arrive (reconcile.Controller):
// a waiting reconcile is a parked goroutine, an idle controller has none.
const (
	domainWorkersPerWorker = 256
	tenantWorkersPerWorker = 16
)

func (d *daemonState) controllerOptions(c controllers.Controller) reconcile.Options {
	cc := d.cfg.Controllers
	workers := cc.Workers
	switch c.Kind {
	case v1alpha1.KindDomain:
		workers *= domainWorkersPerWorker
	case v1alpha1.KindTenant:
		workers *= tenantWorkersPerWorker
	case v1alpha1.KindDatabase:
	}
	return reconcile.Options{
		Name: c.Name, Kind: c.Kind, Reconciler: c.Reconciler, Lister: c.Lister,
		Workers: workers, BackoffBase: cc.BackoffBase, BackoffMax: cc.BackoffMax,
		RateLimit: float64(cc.RateLimit), RateBurst: cc.RateBurst, ResyncInterval: cc.ResyncInterval,
		ShutdownTimeout: cc.ShutdownTimeout, Logger: d.log, OnResult: d.metrics.onResult(c.Name),
	}
}

// run serves until a termination signal, then shuts down in order: stop
// intake (API), drain controllers by their deadline, close the store.
func (d *daemonState) run(ctx context.Context, srv *http.Server, lns []net.Listener) error {
	sigs := d.env.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(ch)
		sigs = ch
	}
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMgr()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- d.mgr.Start(mgrCtx) }()
	srvDone := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { srvDone <- srv.Serve(ln) }()
	}

	notify(daemon.SdNotifyReady)
	d.log.Info("wcpd ready")
	stopWatchdog := d.watchdog()
	defer stopWatchdog()

	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.log.Info("shutting down", "signal", sig.String())
			break loop
		case <-ctx.Done():
			d.log.Info("shutting down", "reason", context.Cause(ctx))
			break loop
		case err := <-srvDone:
			runErr = failureErr(fmt.Errorf("API server: %w", err))
			break loop
		case err := <-mgrDone:
			runErr = failureErr(fmt.Errorf("controllers stopped: %w", err))
			break loop
		}
	}
	notify(daemon.SdNotifyStopping)
	return errors.Join(runErr, d.shutdown(srv, stopMgr, mgrDone))
}

func (d *daemonState) shutdown(srv *http.Server, stopMgr context.CancelFunc, mgrDone <-chan error) error {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.API.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("API shutdown: %w", err))
	}
	stopMgr()
	select {
	case err := <-mgrDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	case <-time.After(cfg.Controllers.ShutdownTimeout + 5*time.Second):
		errs = append(errs, errors.New("controllers did not stop by their shutdown deadline"))
	}
	if d.pressure != nil {
		d.pressure.Close()
	}
	if d.fpm != nil {
		if err := d.fpm.Close(); err != nil {
			errs = append(errs, fmt.Errorf("php-fpm supervision: %w", err))
		}
	}
	_ = os.Remove(cfg.API.Socket)
	d.log.Info("wcpd stopped")
	return errors.Join(errs...)
}

// reload re-reads the configuration on SIGHUP. An invalid one is rejected and
// the old kept; keys that need a restart are reported and not applied.
func (d *daemonState) reload() {
	notify(daemon.SdNotifyReloading)
	defer notify(daemon.SdNotifyReady)
	next, err := d.g.loadConfig(d.env)
	if err != nil {
		d.log.Error("configuration reload rejected; keeping the running configuration", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	applied, refused := d.cfg.ReloadChanges(next)
	if len(refused) > 0 {
		d.log.Warn("configuration keys changed that need a restart; not applied", "keys", refused)
	}
	live := d.cfg.WithReloadable(next)
	d.cfg = live
	d.level.Set(live.LogLevel())
	cc := live.Controllers
	d.mgr.SetResync(cc.ResyncInterval)
	d.mgr.SetRateLimit(float64(cc.RateLimit), cc.RateBurst)
	d.log.Info("configuration reloaded", "applied", applied)
}

func (d *daemonState) watchdog() func() {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	t := time.NewTicker(interval / 2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				if d.mgr.Ready() {
					notify(daemon.SdNotifyWatchdog)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

func notify(state string) {
	_, _ = daemon.SdNotify(false, state) // a no-op without $NOTIFY_SOCKET
}

// listenSocket listens on the unix socket, refusing to take over one that a
// running wcpd still answers on, and replacing a stale one.
func listenSocket(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // the run dir is world-readable, the socket is not
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("socket %s: another wcpd is running", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return ln, nil
}
