package acme

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme"
)

// Problem types (RFC 8555 section 6.7) callers act on.
const (
	ProblemAccountDoesNotExist = "urn:ietf:params:acme:error:accountDoesNotExist"
	ProblemRateLimited         = "urn:ietf:params:acme:error:rateLimited"
	ProblemUnauthorized        = "urn:ietf:params:acme:error:unauthorized"
	ProblemConnection          = "urn:ietf:params:acme:error:connection"
	ProblemDNS                 = "urn:ietf:params:acme:error:dns"
	ProblemRejectedIdentifier  = "urn:ietf:params:acme:error:rejectedIdentifier"
	ProblemCAA                 = "urn:ietf:params:acme:error:caa"
	ProblemExternalAccount     = "urn:ietf:params:acme:error:externalAccountRequired"
)

// Problem is a CA's problem document (RFC 7807, RFC 8555 section 6.7).
type Problem struct {
	Type        string
	Detail      string
	Status      int
	Subproblems []Subproblem
}

// Subproblem is the problem of one identifier.
type Subproblem struct {
	Type, Detail, Identifier string
}

func (p *Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:"), p.Detail)
	for _, s := range p.Subproblems {
		fmt.Fprintf(&b, "; %s: %s: %s", s.Identifier, strings.TrimPrefix(s.Type, "urn:ietf:params:acme:error:"), s.Detail)
	}
	return b.String()
}

// Error is a failed exchange with the CA.
type Error struct {
	// Op is what failed: "directory", "register", "obtain", "renewal info".
	Op    string
	Names []string
	// Problem is the CA's problem document; nil when the CA sent none (the
	// CA could not be reached, say).
	Problem *Problem
	// RetryAfter is the CA's Retry-After when it rate limits; 0 otherwise.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("acme: " + e.Op)
	if len(e.Names) > 0 {
		b.WriteString(" " + strings.Join(e.Names, ", "))
	}
	if e.Problem != nil {
		b.WriteString(": " + e.Problem.String())
	} else {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// wrap makes err an *Error with the CA's problem, if it sent one.
func wrap(op string, names []string, err error) error {
	e := &Error{Op: op, Names: names, Err: err}
	// Prefer the problem of a failed challenge (it names the identifier)
	// over the order's.
	var pd *acme.ProblemDetails
	if errors.As(err, &pd) {
		e.Problem = &Problem{Type: pd.Type, Detail: pd.Detail, Status: pd.HTTPStatus}
		for _, s := range pd.SubProblems {
			e.Problem.Subproblems = append(e.Problem.Subproblems, Subproblem{Type: s.Type, Detail: s.Detail, Identifier: s.Identifier.Value})
		}
	}
	var rl *acme.RateLimitedError
	if errors.As(err, &rl) {
		e.RetryAfter = rl.RetryAfter
	}
	return e
}
