//go:build !cgo

package pam

// defaultPAM is nil: libpam is a C library, and this binary was built
// without cgo. Authenticate then fails with ErrUnavailable.
func defaultPAM() pamFunc { return nil }
