package reconcile

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

type reconcileIDKey struct{}

// WithLogger returns a context that carries l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// LoggerFrom returns the logger in ctx. In a Reconcile it carries
// reconcileID, kind and name. Without one it returns slog.Default().
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

// IDFrom returns the id of the reconcile running with ctx, or "".
func IDFrom(ctx context.Context) string {
	id, _ := ctx.Value(reconcileIDKey{}).(string)
	return id
}

func withReconcileID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, reconcileIDKey{}, id)
}
