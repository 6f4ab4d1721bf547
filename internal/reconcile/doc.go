// Package reconcile is the WCP360 controller runtime, modelled on
// controller-runtime: a Reconciler gets only a key (Request) and works from
// the current state of the world; a Controller feeds it from a workqueue that
// dedupes keys, never runs one key twice at once, retries errors with a
// per-key exponential backoff under a global rate limit, and turns panics into
// errors; a Manager wakes controllers from PostgreSQL LISTEN/NOTIFY and
// re-lists everything after a reconnect and on a periodic resync.
//
// What happens after a Reconcile is said by its return values, and only by
// them:
//
//   - (Result{}, nil): done; the key's backoff is reset.
//   - (Result{RequeueAfter: d}, nil): run again after d.
//   - Waiting(err, d): not ready yet (a Domain waiting for its Tenant); run
//     again after d, without alarm and without growing the backoff.
//   - Terminal(err): stalled; a human must act. No retry until the key is
//     enqueued again (a spec change, a resync).
//   - any other error, or a panic: retry with exponential backoff.
package reconcile
