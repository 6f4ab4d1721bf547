package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// wait is how long a test waits for something that should happen promptly.
const wait = 10 * time.Second

// step is one operation on a queue and, for get, the key it must return.
type step struct {
	op      string // add, get, done, len
	key     string
	wantLen int
}

func TestQueueSteps(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"dedupe", []step{
			{op: "add", key: "a"}, {op: "add", key: "a"}, {op: "add", key: "b"}, {op: "add", key: "a"},
			{op: "len", wantLen: 2}, {op: "get", key: "a"}, {op: "get", key: "b"}, {op: "len", wantLen: 0},
		}},
		{"fifo", []step{
			{op: "add", key: "c"}, {op: "add", key: "a"}, {op: "add", key: "b"},
			{op: "get", key: "c"}, {op: "get", key: "a"}, {op: "get", key: "b"},
		}},
		{"dirty re-add runs after Done", []step{
			{op: "add", key: "a"}, {op: "get", key: "a"}, {op: "add", key: "a"}, {op: "add", key: "a"},
			{op: "len", wantLen: 0}, {op: "done", key: "a"}, {op: "len", wantLen: 1},
			{op: "get", key: "a"}, {op: "done", key: "a"}, {op: "len", wantLen: 0},
		}},
		{"processing key is not handed to a second getter", []step{
			{op: "add", key: "a"}, {op: "get", key: "a"}, {op: "add", key: "a"}, {op: "add", key: "b"},
			{op: "get", key: "b"}, {op: "len", wantLen: 0}, {op: "done", key: "b"}, {op: "done", key: "a"},
			{op: "get", key: "a"},
		}},
		{"done without re-add forgets the key", []step{
			{op: "add", key: "a"}, {op: "get", key: "a"}, {op: "done", key: "a"}, {op: "len", wantLen: 0},
			{op: "add", key: "a"}, {op: "get", key: "a"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(QueueOptions{Clock: newFakeClock()})
			defer q.ShutDown()
			for i, s := range tt.steps {
				runStep(t, q, i, s)
			}
		})
	}
}

func runStep(t *testing.T, q *Queue, i int, s step) {
	t.Helper()
	switch s.op {
	case "add":
		q.Add(s.key)
	case "done":
		q.Done(s.key)
	case "len":
		if got := q.Len(); got != s.wantLen {
			t.Fatalf("step %d: Len = %d, want %d", i, got, s.wantLen)
		}
	case "get":
		if got, shutdown := q.Get(); got != s.key || shutdown {
			t.Fatalf("step %d: Get = %q, %v; want %q", i, got, shutdown, s.key)
		}
	default:
		t.Fatalf("bad op %q", s.op)
	}
}

// waitArmed waits until the delay loop has a timer due at at, so that a fake
// clock advanced afterwards fires it.
func waitArmed(t *testing.T, q *Queue, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !q.armedFor().Equal(at) {
		if time.Now().After(deadline) {
			t.Fatalf("delay loop armed for %v, want %v", q.armedFor(), at)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// getWithin calls Get and fails if it does not return within wait.
func getWithin(t *testing.T, q *Queue) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		k, _ := q.Get()
		ch <- k
	}()
	select {
	case k := <-ch:
		return k
	case <-time.After(wait):
		t.Fatal("Get did not return")
		return ""
	}
}

func TestQueueGetBlocksUntilAdd(t *testing.T) {
	q := NewQueue(QueueOptions{})
	defer q.ShutDown()
	ch := make(chan string, 1)
	go func() {
		k, _ := q.Get()
		ch <- k
	}()
	q.Add("a")
	select {
	case k := <-ch:
		if k != "a" {
			t.Errorf("Get = %q", k)
		}
	case <-time.After(wait):
		t.Fatal("Get did not return")
	}
}

func TestQueueAddAfter(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Clock: clock})
	defer q.ShutDown()
	t0 := clock.Now()
	tests := []struct {
		name string
		d    time.Duration
		want time.Duration // pending delay of "a" after the call
	}{
		{"first delay", time.Second, time.Second},
		{"a later delay does not postpone", 2 * time.Second, time.Second},
		{"an earlier delay wins", 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		q.AddAfter("a", tt.d)
		at, ok := q.waitingFor("a")
		if !ok || at.Sub(t0) != tt.want {
			t.Fatalf("%s: waitingFor = %v, %v; want +%s", tt.name, at, ok, tt.want)
		}
	}
	waitArmed(t, q, t0.Add(500*time.Millisecond))
	clock.Advance(499 * time.Millisecond)
	if q.Len() != 0 {
		t.Fatal("key ready before its delay")
	}
	clock.Advance(time.Millisecond)
	if k := getWithin(t, q); k != "a" {
		t.Fatalf("Get = %q", k)
	}
	if _, ok := q.waitingFor("a"); ok {
		t.Error("still waiting after it was handed out")
	}
	q.Done("a")

	q.AddAfter("b", 0)
	if q.Len() != 1 {
		t.Error("AddAfter(0) did not add now")
	}
}

func TestQueueGetDropsPendingDelay(t *testing.T) {
	q := NewQueue(QueueOptions{Clock: newFakeClock()})
	defer q.ShutDown()
	q.AddAfter("a", time.Hour)
	q.Add("a")
	if k := getWithin(t, q); k != "a" {
		t.Fatalf("Get = %q", k)
	}
	if _, ok := q.waitingFor("a"); ok {
		t.Error("the run that started did not supersede the pending delay")
	}
}

func TestBackoff(t *testing.T) {
	const base, maxDelay = 10 * time.Millisecond, 100 * time.Millisecond
	clock := newFakeClock()
	r := newRateLimiter(clock, base, maxDelay, -1, 1)
	want := []time.Duration{10, 20, 40, 80, 100, 100, 100}
	for i, w := range want {
		if got := r.When("a"); got != w*time.Millisecond {
			t.Errorf("failure %d: When = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
	if r.NumRequeues("a") != len(want) {
		t.Errorf("NumRequeues = %d", r.NumRequeues("a"))
	}
	if got := r.When("b"); got != base {
		t.Errorf("another key: When = %s, want %s", got, base)
	}
	r.Forget("a")
	if got := r.When("a"); got != base || r.NumRequeues("a") != 1 {
		t.Errorf("after Forget: When = %s NumRequeues = %d", got, r.NumRequeues("a"))
	}
	if got := backoff(time.Second, time.Hour, 1<<20); got != time.Hour {
		t.Errorf("huge failure count: backoff = %s", got)
	}
}

func TestGlobalRateLimit(t *testing.T) {
	tests := []struct {
		name  string
		qps   float64
		burst int
		want  []time.Duration // delays of distinct keys' first failures at one instant
	}{
		{"burst then qps", 10, 2, []time.Duration{
			time.Millisecond, time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}},
		{"per-key backoff dominates under the limit", 1000, 100, []time.Duration{
			time.Millisecond, time.Millisecond, time.Millisecond}},
		{"no global limit", -1, 1, []time.Duration{
			time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRateLimiter(newFakeClock(), time.Millisecond, time.Minute, tt.qps, tt.burst)
			for i, w := range tt.want {
				if got := r.When(fmt.Sprint("k", i)); got != w {
					t.Errorf("key %d: When = %s, want %s", i, got, w)
				}
			}
		})
	}
}

func TestSetRateLimit(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{BackoffBase: time.Millisecond, RateLimit: 1, RateBurst: 1, Clock: clock})
	defer q.ShutDown()
	if d := q.AddRateLimited("a"); d != time.Millisecond {
		t.Fatalf("first = %s", d)
	}
	if d := q.AddRateLimited("b"); d != time.Second {
		t.Fatalf("second at 1 qps = %s", d)
	}
	q.SetRateLimit(-1, 0)
	if d := q.AddRateLimited("c"); d != time.Millisecond {
		t.Fatalf("after lifting the limit = %s", d)
	}
}

func TestQueueShutDown(t *testing.T) {
	q := NewQueue(QueueOptions{Clock: newFakeClock()})
	q.Add("a")
	q.AddAfter("b", time.Second)
	q.ShutDown()
	q.ShutDown() // twice is fine
	if k, shutdown := q.Get(); !shutdown || k != "" {
		t.Errorf("Get after ShutDown = %q, %v; want shutdown with nothing", k, shutdown)
	}
	q.Add("c")
	q.AddAfter("d", time.Second)
	q.AddRateLimited("e")
	if q.Len() != 0 || !q.ShuttingDown() {
		t.Errorf("Len = %d ShuttingDown = %v", q.Len(), q.ShuttingDown())
	}
	select {
	case <-q.loopDone:
	case <-time.After(wait):
		t.Error("delay loop still running")
	}
}

func TestQueueShutDownWakesGetters(t *testing.T) {
	q := NewQueue(QueueOptions{})
	done := make(chan bool, 3)
	for range 3 {
		go func() {
			_, shutdown := q.Get()
			done <- shutdown
		}()
	}
	q.ShutDown()
	for range 3 {
		select {
		case s := <-done:
			if !s {
				t.Error("Get returned a key")
			}
		case <-time.After(wait):
			t.Fatal("Get not woken by ShutDown")
		}
	}
}

func TestShutDownWithDrain(t *testing.T) {
	tests := []struct {
		name    string
		done    bool // mark the in-flight key Done while draining
		timeout time.Duration
		wantErr error
	}{
		{"waits for in-flight key", true, wait, nil},
		{"gives up at the deadline", false, 50 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(QueueOptions{})
			q.Add("a")
			q.Add("b")
			if k := getWithin(t, q); k != "a" {
				t.Fatalf("Get = %q", k)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- q.ShutDownWithDrain(ctx) }()
			for !q.ShuttingDown() {
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-res:
				t.Fatalf("drained while a key was in flight: %v", err)
			default:
			}
			if _, shutdown := q.Get(); !shutdown {
				t.Fatal("queued key handed out during drain")
			}
			if tt.done {
				q.Done("a")
			}
			select {
			case err := <-res:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("ShutDownWithDrain = %v, want %v", err, tt.wantErr)
				}
			case <-time.After(wait):
				t.Fatal("ShutDownWithDrain did not return")
			}
		})
	}
}

func TestShutDownWithDrainIdle(t *testing.T) {
	q := NewQueue(QueueOptions{})
	if err := q.ShutDownWithDrain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkQueue(b *testing.B) {
	b.Run("add-get-done", func(b *testing.B) {
		q := NewQueue(QueueOptions{})
		defer q.ShutDown()
		for i := 0; b.Loop(); i++ {
			k := benchKeys[i%len(benchKeys)]
			q.Add(k)
			got, _ := q.Get()
			q.Done(got)
		}
	})
	b.Run("dedupe", func(b *testing.B) {
		q := NewQueue(QueueOptions{})
		defer q.ShutDown()
		for i := 0; b.Loop(); i++ {
			q.Add(benchKeys[i%len(benchKeys)])
		}
	})
	b.Run("parallel-add-8-consumers", func(b *testing.B) {
		q := NewQueue(QueueOptions{})
		var consumers sync.WaitGroup
		for range 8 {
			consumers.Go(func() {
				for {
					k, shutdown := q.Get()
					if shutdown {
						return
					}
					q.Done(k)
				}
			})
		}
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				q.Add(benchKeys[i%len(benchKeys)])
			}
		})
		q.ShutDown()
		consumers.Wait()
	})
}

var benchKeys = func() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("tenant-", i)
	}
	return keys
}()
