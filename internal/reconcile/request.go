package reconcile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// ErrInvalidKey is returned (wrapped) by ParseKey for a key that is not "Kind/name".
var ErrInvalidKey = errors.New("invalid key")

// Request names the resource to reconcile. It carries no event and no
// object: the reconciler reads the current state itself.
type Request struct {
	Kind v1alpha1.Kind
	Name string
}

// Key returns "Kind/name", the NOTIFY payload and log key of the resource.
func (r Request) Key() string { return string(r.Kind) + "/" + r.Name }

// String returns Key().
func (r Request) String() string { return r.Key() }

// ParseKey parses "Kind/name". Both parts must be non-empty and the name may
// not contain another slash. The kind is not checked against known kinds.
func ParseKey(key string) (Request, error) {
	kind, name, ok := strings.Cut(key, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return Request{}, fmt.Errorf("%w %q: want Kind/name", ErrInvalidKey, key)
	}
	return Request{Kind: v1alpha1.Kind(kind), Name: name}, nil
}
