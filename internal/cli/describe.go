package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

func (a *app) describeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show a resource in detail: spec, conditions, drift, the host now, revisions and events",
		Long: `Describe shows a resource as wcpd stores it (spec, conditions, the drift its
controller recorded, revisions, events) and, under "Host (live)", how the host
differs from the spec right now: wcpd looks at the host for this command and
changes nothing. When the host cannot be looked at, that section says why and
describe still succeeds.`,
		Example:           "  wcp describe domain www.acme.test",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeKindName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDescribe(cmd.Context(), args[0], args[1])
		},
	}
}

// description is everything describe shows about one resource.
type description struct {
	obj       v1alpha1.Object
	spec      json.RawMessage
	revisions []api.RevisionItem
	revErr    error
	events    []api.EventItem
	eventErr  error
	live      api.DriftReport
	liveErr   error
}

func (a *app) runDescribe(ctx context.Context, kindArg, name string) error {
	kind, err := v1alpha1.ParseKind(kindArg)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	raw, err := c.Get(ctx, kind, name)
	if err != nil {
		return err
	}
	d := description{}
	if d.obj, err = client.DecodeObject(kind, raw); err != nil {
		return err
	}
	// The spec through its Go type: fields in declaration order.
	if d.spec, err = json.Marshal(d.obj.SpecValue()); err != nil {
		return err
	}
	d.live, d.liveErr = c.Drift(ctx, kind, name)
	d.revisions, d.revErr = c.Revisions(ctx, kind, name)
	d.events, d.eventErr = c.Events(ctx, kind, name)
	return a.writeDescription(a.env.Stdout, d)
}

func (a *app) writeDescription(w io.Writer, d description) error {
	if err := a.writeHeader(w, d.obj); err != nil {
		return err
	}
	fmt.Fprintln(w, "Spec:")
	if err := writeSpec(w, d.spec); err != nil {
		return err
	}
	for _, section := range []func(io.Writer) error{
		func(w io.Writer) error { return a.writeConditions(w, d.obj.GetStatus()) },
		func(w io.Writer) error { return a.writeKindStatus(w, d.obj) },
		func(w io.Writer) error { return a.writeDrift(w, d.obj.GetStatus().Drift) },
		func(w io.Writer) error { return writeLive(w, d.live, d.liveErr) },
		func(w io.Writer) error { return a.writeRevisions(w, d.revisions, d.revErr) },
		func(w io.Writer) error { return a.writeEvents(w, d.events, d.eventErr) },
	} {
		if err := section(w); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) writeHeader(w io.Writer, obj v1alpha1.Object) error {
	m := obj.GetMeta()
	tw := newTable(w)
	row(tw, "Name:", m.Name)
	row(tw, "Kind:", string(obj.GetKind()))
	row(tw, "Tenant:", orNone(obj.TenantName()))
	writeLabels(tw, m.Labels)
	row(tw, "UID:", orNone(m.UID))
	row(tw, "Generation:", strconv.FormatInt(m.Generation, 10))
	row(tw, "Observed Generation:", strconv.FormatInt(obj.GetStatus().ObservedGeneration, 10))
	row(tw, "Resource Version:", strconv.FormatInt(m.ResourceVersion, 10))
	row(tw, "Created:", a.timestamp(m.CreationTimestamp))
	row(tw, "Deletion:", a.timestamp(m.DeletionTimestamp))
	return tw.Flush()
}

// writeLabels writes "Labels:" with one k=v per line, sorted.
func writeLabels(w io.Writer, labels map[string]string) {
	if len(labels) == 0 {
		row(w, "Labels:", "<none>")
		return
	}
	label := "Labels:"
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		row(w, label, k+"="+labels[k])
		label = ""
	}
}

// timestamp is "2025-01-02T15:04:05Z (5m ago)", or <none>.
func (a *app) timestamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	return t.UTC().Format(time.RFC3339) + " (" + a.age(t) + " ago)"
}

func writeSpec(w io.Writer, spec json.RawMessage) error {
	if len(spec) == 0 || string(spec) == "null" || string(spec) == "{}" {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	y, err := jsonToYAML(spec)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, indent(string(y), "  "))
	return err
}

func (a *app) writeConditions(w io.Writer, st *v1alpha1.Status) error {
	fmt.Fprintln(w, "Conditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := newTable(w)
	row(tw, "  TYPE", "STATUS", "REASON", "MESSAGE", "AGE")
	for _, c := range st.Conditions {
		row(tw, "  "+c.Type, string(c.Status), orDash(c.Reason), orDash(oneLine(c.Message)), a.age(&c.LastTransitionTime))
	}
	return tw.Flush()
}

func (a *app) writeDrift(w io.Writer, drift []v1alpha1.DriftEntry) error {
	fmt.Fprintln(w, "Drift:")
	if len(drift) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := newTable(w)
	row(tw, "  FIELD", "WANT", "HAVE", "CORRECTED", "AGE")
	for _, d := range drift {
		row(tw, "  "+d.Field, oneLine(d.Want), oneLine(d.Have), strconv.FormatBool(d.Corrected), a.age(&d.ObservedAt))
	}
	return tw.Flush()
}

// writeLive writes how the host differs from the spec now. A failure to
// look is shown, not returned: describe is for finding out what is wrong.
func writeLive(w io.Writer, rep api.DriftReport, err error) error {
	fmt.Fprintln(w, "Host (live):")
	notObserved := client.IsNotImplemented(err)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Problem.Detail != "" {
		err = errors.New(ae.Problem.Detail) // the title is the status; the detail says why
	}
	switch {
	case notObserved:
		fmt.Fprintf(w, "  <not observed: %s>\n", oneLine(err.Error()))
		return nil
	case err != nil:
		fmt.Fprintf(w, "  <unavailable: could not observe the host: %s>\n", oneLine(err.Error()))
		return nil
	case len(rep.Differences) == 0:
		fmt.Fprintln(w, "  in sync")
		return nil
	}
	tw := newTable(w)
	row(tw, "  FIELD", "WANT", "HAVE")
	for _, d := range rep.Differences {
		row(tw, "  "+d.Field, oneLine(d.Want), oneLine(d.Have))
	}
	return tw.Flush()
}

func (a *app) writeRevisions(w io.Writer, revs []api.RevisionItem, err error) error {
	fmt.Fprintln(w, "Revisions:")
	if err != nil {
		fmt.Fprintf(w, "  <unavailable: %v>\n", err)
		return nil
	}
	if len(revs) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := newTable(w)
	row(tw, "  NUMBER", "GENERATION", "ACTOR", "AGE")
	for _, r := range revs {
		row(tw, "  "+strconv.FormatInt(r.Number, 10), strconv.FormatInt(r.Generation, 10), orDash(r.Actor), a.age(&r.CreatedAt))
	}
	return tw.Flush()
}

func (a *app) writeEvents(w io.Writer, events []api.EventItem, err error) error {
	fmt.Fprintln(w, "Events:")
	if err != nil {
		fmt.Fprintf(w, "  <unavailable: %v>\n", err)
		return nil
	}
	if len(events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := newTable(w)
	row(tw, "  TYPE", "REASON", "AGE", "MESSAGE")
	for _, e := range events {
		row(tw, "  "+e.Type, e.Reason, a.eventAge(e), oneLine(e.Message))
	}
	return tw.Flush()
}

// eventAge is "5m", or "5m (x3 over 2h)" for a repeated event.
func (a *app) eventAge(e api.EventItem) string {
	last := a.age(&e.LastSeen)
	if e.Count <= 1 {
		return last
	}
	return fmt.Sprintf("%s (x%d over %s)", last, e.Count, a.age(&e.FirstSeen))
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
