package reconcile

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter decides how long a failed key waits: the larger of its own
// exponential backoff (base * 2^failures, capped at max) and the delay of a
// token bucket shared by every key (client-go's MaxOf(ItemExponential, Bucket)).
type rateLimiter struct {
	clock     Clock
	base, max time.Duration

	mu       sync.Mutex
	failures map[string]int
	bucket   *rate.Limiter
}

func newRateLimiter(clock Clock, base, maxDelay time.Duration, qps float64, burst int) *rateLimiter {
	return &rateLimiter{
		clock:    clock,
		base:     base,
		max:      maxDelay,
		failures: make(map[string]int),
		bucket:   rate.NewLimiter(limitOf(qps), burst),
	}
}

// limitOf maps a qps option to a rate.Limit: negative means no global limit.
func limitOf(qps float64) rate.Limit {
	if qps < 0 {
		return rate.Inf
	}
	return rate.Limit(qps)
}

// When records one more failure of key and returns how long it must wait.
func (r *rateLimiter) When(key string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.failures[key]
	r.failures[key] = n + 1
	now := r.clock.Now()
	return max(backoff(r.base, r.max, n), r.bucket.ReserveN(now, 1).DelayFrom(now))
}

// Forget clears the failures of key.
func (r *rateLimiter) Forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, key)
}

// NumRequeues returns the failures recorded for key since it was last forgotten.
func (r *rateLimiter) NumRequeues(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures[key]
}

// SetRate changes the global token bucket.
func (r *rateLimiter) SetRate(qps float64, burst int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	r.bucket.SetLimitAt(now, limitOf(qps))
	r.bucket.SetBurstAt(now, burst)
}

// backoff returns base * 2^n, capped at maxDelay, without overflowing.
func backoff(base, maxDelay time.Duration, n int) time.Duration {
	d := float64(base) * math.Pow(2, float64(n))
	if d >= float64(maxDelay) {
		return maxDelay
	}
	return time.Duration(d)
}
