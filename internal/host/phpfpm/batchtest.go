package phpfpm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Batched `php-fpm -t`: one run costs ~17 ms, nearly all of it php-fpm's
// start, while one run over 200 pools costs ~30 ms. Applies that test at the
// same time (1,000 tenants applied at once) share runs: the first becomes
// the leader and tests everything that queued for the same binary, in one
// config that includes every queued pool, until the queue is empty. When a
// batch fails it is halved until the bad configs are tested alone, so the
// error names the right tenant and only that tenant's Apply fails.

// tester queues configs to test, by binary.
type tester struct {
	mu      sync.Mutex
	queue   map[string][]*testReq
	leading map[string]bool
	seq     int
}

type testReq struct {
	r    *rendered
	done chan error // buffered: the leader never waits for a reader
}

// testTimeout bounds one php-fpm -t run.
const testTimeout = time.Minute

// testConfig has php-fpm test r's config as written, batched with the other
// configs being tested for the same binary.
func (m *Manager) testConfig(ctx context.Context, r *rendered) error {
	t := &m.tests
	req := &testReq{r: r, done: make(chan error, 1)}
	t.mu.Lock()
	if t.queue == nil {
		t.queue, t.leading = map[string][]*testReq{}, map[string]bool{}
	}
	t.queue[r.binary] = append(t.queue[r.binary], req)
	lead := !t.leading[r.binary]
	t.leading[r.binary] = true
	t.mu.Unlock()
	if lead {
		m.leadTests(r.binary)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leadTests runs batches for binary until nothing is queued.
func (m *Manager) leadTests(binary string) {
	t := &m.tests
	for {
		t.mu.Lock()
		batch := t.queue[binary]
		delete(t.queue, binary)
		if len(batch) == 0 {
			t.leading[binary] = false
			t.mu.Unlock()
			return
		}
		t.seq++
		seq := t.seq
		t.mu.Unlock()
		m.testBatch(binary, batch, seq)
	}
}

func (m *Manager) testBatch(binary string, batch []*testReq, seq int) {
	ctx := context.Background()
	if len(batch) == 1 {
		batch[0].done <- m.testOne(ctx, batch[0].r)
		return
	}
	err := m.testTogether(ctx, binary, batch, seq)
	var ce *ConfigError
	if errors.As(err, &ce) {
		// Somebody's config is bad: halve the batch until it is found
		// (a bad config among n costs about 2·log2(n) more runs).
		half := len(batch) / 2
		m.testBatch(binary, batch[:half], seq)
		m.testBatch(binary, batch[half:], seq)
		return
	}
	for _, q := range batch {
		q.done <- err
	}
}

// testTogether tests every pool of batch in one run: a config of its own
// (root-only, in RunDir/test) whose [global] includes them all. The
// masters' own configs differ only in paths, all of them validated.
func (m *Manager) testTogether(ctx context.Context, binary string, batch []*testReq, seq int) error {
	dir := filepath.Join(m.opts.RunDir, "test")
	if err := ensureDir(dir, 0o700); err != nil {
		return err
	}
	name := filepath.Join(dir, "batch-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(seq))
	var b strings.Builder
	fmt.Fprintf(&b, "; WCP360: a batched php-fpm -t of %d pools; removed after the test.\n[global]\nerror_log = %s.log\n", len(batch), name)
	for _, q := range batch {
		fmt.Fprintf(&b, "include = %s\n", m.poolPath(q.r.key))
	}
	conf := name + ".conf"
	defer func() { _ = removeFile(conf); _ = removeFile(name + ".log") }()
	if err := writeAtomic(conf, []byte(b.String()), confMode); err != nil {
		return err
	}
	return m.runTest(ctx, binary, conf, batch[0].r, len(batch))
}

// testOne tests r's own master config.
func (m *Manager) testOne(ctx context.Context, r *rendered) error {
	return m.runTest(ctx, r.binary, m.confPath(r.key), r, 1)
}

// runTest runs binary -t on conf; a refusal is a *ConfigError of r's
// tenant (for a batch, only a signal to test its members alone).
func (m *Manager) runTest(ctx context.Context, binary, conf string, r *rendered, pools int) error {
	m.count(func(st *Stats) { st.Tests++; st.TestedPools += pools })
	out, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: binary, Args: []string{"-t", "--fpm-config", conf}, Timeout: testTimeout})
	if err == nil {
		return nil
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return &ConfigError{Tenant: r.tenant, Version: r.version, Message: cleanLog(string(out))}
	}
	return fmt.Errorf("test the PHP-FPM config of %s: %w", r.name(), err)
}
