package phpfpm_test

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// onDemand is a Manager whose masters start on the first request and stop
// after a second without a worker; the pool lets its workers go after a
// second too.
func onDemand(t *testing.T, name string, uid int) (*phpfpm.Manager, phpfpm.Pool) {
	t.Helper()
	m := newManager(t, func(o *phpfpm.Options) { o.IdleStop = time.Second })
	p := newTenant(t, name, uid)
	p.IdleTimeout = time.Second
	return m, p
}

func running(m *phpfpm.Manager) int { return m.Stats().Running }

func TestOnDemandStartsOnFirstRequestAndStopsWhenIdle(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m, p := onDemand(t, "acme", 20000)
	mustApply(t, m, p)
	mustConverged(t, m, p) // a master that does not run is not a difference
	if n := running(m); n != 0 {
		t.Fatalf("%d masters run after Apply, want none until a request", n)
	}
	if _, err := os.Stat(runDir + "/acme-8.2.pid"); err == nil {
		t.Fatal("a pid file exists before the first request")
	}

	t0 := time.Now()
	info := probe(t, m, p)
	t.Logf("first request, master started for it: %s", time.Since(t0))
	if info.EUID != p.UID {
		t.Errorf("PHP ran as uid %d, want the tenant's %d", info.EUID, p.UID)
	}
	pid, _ := master(t, m, p)
	waitFor(t, "the start to be counted", 5*time.Second, func() bool { return m.Stats().Starts == 1 })
	if st := m.Stats(); st.Starts != 1 || st.Running != 1 {
		t.Fatalf("stats %+v after the first request, want 1 start, 1 running", st)
	}
	mustApply(t, m, p) // unchanged: the running master is left alone
	mustConverged(t, m, p)
	if pid2, _ := master(t, m, p); pid2 != pid {
		t.Fatalf("Apply of the same pool replaced master %d by %d", pid, pid2)
	}

	// The worker goes after pm.process_idle_timeout, the master IdleStop later.
	waitFor(t, "the idle master to stop", 15*time.Second, func() bool { return running(m) == 0 })
	if alive(pid) {
		t.Fatalf("master %d still runs after the idle stop", pid)
	}
	if st := m.Stats(); st.IdleStops != 1 {
		t.Errorf("stats %+v, want 1 idle stop", st)
	}
	mustConverged(t, m, p) // the socket is still there, still held

	if info := probe(t, m, p); info.EUID != p.UID {
		t.Errorf("second start: PHP ran as uid %d", info.EUID)
	}
	// The request can be answered before start() has seen the pid file.
	waitFor(t, "the second start to be counted", 5*time.Second, func() bool { return m.Stats().Starts == 2 })
}

// Many requests at once on a tenant whose master is stopped: one master
// starts and every request is answered.
func TestOnDemandBurstStartsOneMaster(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m, p := onDemand(t, "acme", 20000)
	mustApply(t, m, p)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			if _, err := tryProbe(m, p); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	time.Sleep(100 * time.Millisecond) // a second start, if any, is counted by now
	for err := range errs {
		t.Error(err)
	}
	if st := m.Stats(); st.Starts != 1 {
		t.Errorf("stats %+v after a burst, want exactly 1 start", st)
	}
}

// A master killed while it serves: the next request starts a new one.
func TestOnDemandMasterKilled(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m, p := onDemand(t, "acme", 20000)
	mustApply(t, m, p)
	worker := probe(t, m, p).PID
	pid, _ := master(t, m, p)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead master's worker to be killed", 10*time.Second, func() bool { return !alive(worker) })
	info := probe(t, m, p)
	if info.PID == worker {
		t.Fatal("the dead master's worker answered")
	}
	if pid2, _ := master(t, m, p); pid2 == pid {
		t.Fatal("same master")
	}
}

// wcpd restarts while a master runs: the new Manager takes the socket over
// from the master (pidfd_getfd), stops the master when idle, and starts it
// again for the next request through that socket.
func TestOnDemandAdoptTakesTheSocket(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m1, p := onDemand(t, "acme", 20000)
	mustApply(t, m1, p)
	probe(t, m1, p)
	pid, _ := master(t, m1, p)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}

	m2 := newManager(t, func(o *phpfpm.Options) { o.IdleStop = time.Second })
	if err := m2.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustConverged(t, m2, p) // includes: the socket is held
	waitFor(t, "the adopted master to stop when idle", 15*time.Second, func() bool { return !alive(pid) })
	if info := probe(t, m2, p); info.EUID != p.UID {
		t.Errorf("PHP ran as uid %d", info.EUID)
	}
	waitFor(t, "the start to be counted", 5*time.Second, func() bool { return m2.Stats().Starts == 1 })
	if st := m2.Stats(); st.Starts != 1 || st.IdleStops != 1 {
		t.Errorf("stats %+v, want the adopted master stopped and one started", st)
	}
}

// The socket file removed by hand: Observe says so, Apply makes a new
// socket (and replaces the master, which holds the old one).
func TestOnDemandSocketRemovedByHand(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m, p := onDemand(t, "acme", 20000)
	mustApply(t, m, p)
	probe(t, m, p)
	if err := os.Remove(m.Socket(p.Tenant, p.Version)); err != nil {
		t.Fatal(err)
	}
	ds, err := m.Observe(t.Context(), p)
	if err != nil || len(ds) != 1 || ds[0].Field != "socket" {
		t.Fatalf("Observe: %v, %v; want the socket missing", ds, err)
	}
	mustApply(t, m, p)
	mustConverged(t, m, p)
	probe(t, m, p)
}
