package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

// printError writes "error: [ref: ]message" and, for an API problem, one
// indented line per field error.
func (a *app) printError(err error, ref string) {
	writeError(a.env.Stderr, err, ref)
}

func writeError(w io.Writer, err error, ref string) {
	err = explain(err)
	prefix := "error: "
	if ref != "" {
		prefix += ref + ": "
	}
	var ae *client.APIError
	if !errors.As(err, &ae) || len(ae.Problem.Errors) == 0 || ae.Problem.Title == "" {
		fmt.Fprintln(w, prefix+err.Error())
		return
	}
	// The field lines say what the detail says, one field at a time.
	fmt.Fprintln(w, prefix+ae.Problem.Title)
	for _, fe := range ae.Problem.Errors {
		fmt.Fprintln(w, "  "+fieldProblem(fe))
	}
}

// handled marks an error whose message says already what to do: explain
// leaves it as it is.
type handled struct{ err error }

func (h handled) Error() string { return h.err.Error() }
func (h handled) Unwrap() error { return h.err }

// explain adds what to do to the errors about credentials and TLS: 401 (no
// login, or the session ended), 429 (when to try again), a server
// certificate wcp does not trust.
func explain(err error) error {
	var (
		h  handled
		ae *client.APIError
	)
	switch {
	case errors.As(err, &h):
		return err
	case errors.Is(err, client.ErrSessionExpired), client.IsUnauthorized(err):
		return fmt.Errorf("not logged in or session expired: run wcp login (%w)", err)
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		wait := "later"
		if ae.RetryAfter > 0 {
			wait = "in " + humanAge(ae.RetryAfter)
		}
		return fmt.Errorf("too many attempts: try again %s (%w)", wait, err)
	case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && ae.RetryAfter > 0:
		return fmt.Errorf("%w (try again in %s)", err, humanAge(ae.RetryAfter))
	case errors.Is(err, client.ErrUnreachable) && errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w\nthe local socket is root's: as another user, log in to the HTTPS API first "+
			"(wcp login --server https://HOST:PORT)", err)
	case client.IsUntrustedCertificate(err):
		return fmt.Errorf("%w\nthe server's certificate is not trusted: give wcp login the CA with --ca "+
			"(wcpd's self-signed certificate is %s on the server)", err, client.DefaultCAFile)
	}
	return err
}

// fieldProblem is "[line N: ]field: message", without the field twice when
// the message already starts with it.
func fieldProblem(fe api.FieldProblem) string {
	var b strings.Builder
	if fe.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", fe.Line)
	}
	if fe.Field != "" && !strings.HasPrefix(fe.Message, fe.Field+": ") {
		b.WriteString(fe.Field + ": ")
	}
	b.WriteString(fe.Message)
	return b.String()
}

// formatChange renders one field-level change: "~ path: old -> new",
// "+ path: new" or "- path: old".
func formatChange(c api.Change) string {
	hasOld, hasNew := len(c.Old) > 0, len(c.New) > 0
	switch {
	case hasOld && hasNew:
		return fmt.Sprintf("~ %s: %s -> %s", c.Path, compactJSON(c.Old), compactJSON(c.New))
	case hasNew:
		return fmt.Sprintf("+ %s: %s", c.Path, compactJSON(c.New))
	case hasOld:
		return fmt.Sprintf("- %s: %s", c.Path, compactJSON(c.Old))
	default:
		return "~ " + c.Path
	}
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// humanAge is a kubectl-like short duration: 45s, 5m, 3h, 2d, 3y.
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < 3*time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d < 2*365*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	default:
		return strconv.Itoa(int(d/(365*24*time.Hour))) + "y"
	}
}

// age is the humanised time since t, or "<unknown>" without one.
func (a *app) age(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "<unknown>"
	}
	return humanAge(a.env.Now().Sub(*t))
}

// jsonToYAML converts JSON to YAML keeping the key order of the JSON.
func jsonToYAML(data []byte) ([]byte, error) {
	var v any
	if err := yaml.UnmarshalWithOptions(data, &v, yaml.UseOrderedMap()); err != nil {
		return nil, err
	}
	return yaml.MarshalWithOptions(v, yaml.IndentSequence(true), yaml.UseLiteralStyleIfMultiline(true))
}

// indent prefixes every non-empty line of text.
func indent(text, prefix string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// newTable is a tabwriter laid out like kubectl's tables.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// findCondition returns the condition of type t, or nil.
func findCondition(st *v1alpha1.Status, t string) *v1alpha1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// readyColumn is READY of a table: the Ready condition's status, Unknown
// without one, Terminating once deletion was requested.
func readyColumn(obj v1alpha1.Object) string {
	if obj.GetMeta().DeletionTimestamp != nil {
		return "Terminating"
	}
	if c := findCondition(obj.GetStatus(), v1alpha1.ConditionReady); c != nil && c.Status != "" {
		return string(c.Status)
	}
	return string(v1alpha1.ConditionUnknown)
}

// orNone is s, or "<none>" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
