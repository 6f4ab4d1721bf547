// Package version holds the build version, set with -ldflags at build time.
package version

// Version is the build's version ("dev" when not built by the Makefile).
var Version = "dev" //nolint:gochecknoglobals // set by the linker
