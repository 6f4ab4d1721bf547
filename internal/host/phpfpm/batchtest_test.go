package phpfpm_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// Many tenants applied at once share php-fpm -t runs; a bad config among
// them fails only its own Apply, with php-fpm's message, and is restored.
func TestConcurrentAppliesShareConfigTests(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, func(o *phpfpm.Options) { o.IdleStop = time.Hour })
	const n = 40
	pools := make([]phpfpm.Pool, n)
	for i := range pools {
		pools[i] = newTenant(t, fmt.Sprintf("t%d", i), 20000+i)
	}
	bad := 17
	pools[bad].INI = map[string]string{"error_reporting": "E_ALL & ("}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range pools {
		wg.Go(func() { errs[i] = m.Apply(t.Context(), pools[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if i == bad {
			var ce *phpfpm.ConfigError
			if !errors.As(err, &ce) || ce.Tenant != "t17" || !strings.Contains(ce.Message, "syntax error") {
				t.Errorf("Apply of the bad config: %v, want a ConfigError of t17 with php-fpm's message", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Apply of t%d: %v", i, err)
		}
	}
	if _, err := os.Stat("/etc/wcp360/php-fpm/t17-8.2.pool.conf"); err == nil {
		t.Error("the rejected config of t17 was left on disk (it had none before)")
	}
	st := m.Stats()
	t.Logf("%d applies: %d php-fpm -t runs for %d pools", n, st.Tests, st.TestedPools)
	if st.Tests >= n {
		t.Errorf("%d php-fpm -t runs for %d concurrent applies: not batched", st.Tests, n)
	}
	for i, p := range pools {
		if i != bad {
			mustConverged(t, m, p)
		}
	}
	entries, _ := os.ReadDir(runDir + "/test")
	if len(entries) > 0 {
		t.Errorf("batch test files left in %s/test: %v", runDir, entries)
	}
	if info := probe(t, m, pools[3]); info.EUID != pools[3].UID {
		t.Errorf("PHP of t3 ran as uid %d", info.EUID)
	}
}
