package config

// ReloadChanges compares the running configuration c with a freshly loaded
// (and therefore valid) next one and lists the keys whose value differs:
//
//   - applied: keys that take effect without a restart: log.level,
//     controllers.resyncInterval, controllers.rateLimit and
//     controllers.rateBurst;
//   - refused: every other changed key (node, database.*, paths.*, api.*,
//     log.format, controllers.workers, controllers.shutdownTimeout,
//     controllers.backoffBase, controllers.backoffMax, uids.*). The daemon keeps the old value and should
//     report that a restart is needed to use the new one.
//
// A reload is not all-or-nothing: the applied keys take effect even when some
// keys are refused. Build the configuration to run with [Config.WithReloadable].
// Both lists are in schema order and empty when nothing changed.
func (c Config) ReloadChanges(next Config) (applied, refused []string) {
	for _, f := range schema() {
		if f.equal(&c, &next) {
			continue
		}
		if f.reloadable {
			applied = append(applied, f.key)
		} else {
			refused = append(refused, f.key)
		}
	}
	return applied, refused
}

// WithReloadable returns c with the reloadable keys (see
// [Config.ReloadChanges]) taken from next. Keys that are checked against each
// other (backoffBase ≤ backoffMax, uids.min ≤ uids.max) are always both
// reloadable or both not, so the result of two valid configurations is valid.
func (c Config) WithReloadable(next Config) Config {
	out := c
	for _, f := range schema() {
		if f.reloadable {
			f.set(&out, f.get(&next))
		}
	}
	return out
}
