package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

// Output formats of get.
const (
	outTable = "table"
	outYAML  = "yaml"
	outJSON  = "json"
	outName  = "name"
)

type getOptions struct {
	output   string
	tenant   string
	selector string
}

func (a *app) getCommand() *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List resources of a kind, or show one",
		Example: `  wcp get tenants
  wcp get domains --tenant acme -l env=prod
  wcp get domain www.acme.test -o yaml`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeKindName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runGet(cmd.Context(), args, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", outTable, "output format: table, yaml, json or name")
	cmd.Flags().StringVar(&o.tenant, "tenant", "", "only resources of this tenant")
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "only resources with these labels (k=v,k2=v2)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{outTable, outYAML, outJSON, outName}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) runGet(ctx context.Context, args []string, o getOptions) error {
	kind, err := v1alpha1.ParseKind(args[0])
	if err != nil {
		return err
	}
	switch o.output {
	case outTable, outYAML, outJSON, outName:
	default:
		return fmt.Errorf("unknown output format %q: use table, yaml, json or name", o.output)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if len(args) == 2 {
		raw, err := c.Get(ctx, kind, args[1])
		if err != nil {
			return err
		}
		return a.printOne(kind, raw, o.output)
	}
	list, err := c.List(ctx, kind, client.ListOptions{Tenant: o.tenant, LabelSelector: o.selector})
	if err != nil {
		return err
	}
	return a.printList(kind, list, o.output)
}

func (a *app) printOne(kind v1alpha1.Kind, raw json.RawMessage, output string) error {
	switch output {
	case outYAML:
		obj, err := client.DecodeObject(kind, raw)
		if err != nil {
			return err
		}
		y, err := v1alpha1.ToYAML(obj)
		if err != nil {
			return err
		}
		_, err = a.env.Stdout.Write(y)
		return err
	case outJSON:
		return writeJSON(a.env.Stdout, canonicalJSON(kind, raw))
	}
	return a.printList(kind, api.List{Items: []json.RawMessage{raw}}, output)
}

// canonicalJSON re-encodes a resource through its Go type, so that fields
// come in declaration order rather than the order PostgreSQL's jsonb keeps
// them in. A resource that does not decode is left as it came.
func canonicalJSON(kind v1alpha1.Kind, raw json.RawMessage) json.RawMessage {
	obj, err := client.DecodeObject(kind, raw)
	if err != nil {
		return raw
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return data
}

// listJSON writes a list as indented JSON, its items in declaration order.
func listJSON(w io.Writer, list api.List, objs []v1alpha1.Object) error {
	list.Items = make([]json.RawMessage, 0, len(objs))
	for _, obj := range objs {
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		list.Items = append(list.Items, data)
	}
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeJSON(w, data)
}

// listYAML writes a list as one YAML document whose items are written by
// v1alpha1.ToYAML, like single objects.
func listYAML(w io.Writer, list api.List, objs []v1alpha1.Object) error {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\n", list.APIVersion, list.Kind)
	if len(objs) == 0 {
		b.WriteString("items: []\n")
	} else {
		b.WriteString("items:\n")
	}
	for _, obj := range objs {
		y, err := v1alpha1.ToYAML(obj)
		if err != nil {
			return err
		}
		b.WriteString(indentItem(string(y)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// indentItem makes a YAML mapping an item of a sequence indented by two.
func indentItem(doc string) string {
	ls := strings.Split(strings.TrimRight(doc, "\n"), "\n")
	for i, l := range ls {
		if i == 0 {
			ls[i] = "  - " + l
		} else if l != "" {
			ls[i] = "    " + l
		}
	}
	return strings.Join(ls, "\n") + "\n"
}

func (a *app) printList(kind v1alpha1.Kind, list api.List, output string) error {
	if list.APIVersion == "" {
		list.APIVersion = v1alpha1.APIVersion
	}
	if list.Kind == "" {
		list.Kind = string(kind) + "List"
	}
	if list.Items == nil {
		list.Items = []json.RawMessage{}
	}
	objs, err := decodeItems(kind, list.Items)
	if err != nil {
		return err
	}
	switch output {
	case outYAML:
		return listYAML(a.env.Stdout, list, objs)
	case outJSON:
		return listJSON(a.env.Stdout, list, objs)
	case outName:
		for _, obj := range objs {
			fmt.Fprintln(a.env.Stdout, objRef(obj))
		}
		return nil
	}
	if len(objs) == 0 {
		fmt.Fprintln(a.env.Stderr, "No resources found.")
		return nil
	}
	return a.printTable(kind, objs)
}

func decodeItems(kind v1alpha1.Kind, items []json.RawMessage) ([]v1alpha1.Object, error) {
	objs := make([]v1alpha1.Object, 0, len(items))
	for _, it := range items {
		obj, err := client.DecodeObject(kind, it)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// printTable writes the kind's columns, one row per object.
func (a *app) printTable(kind v1alpha1.Kind, objs []v1alpha1.Object) error {
	tw := newTable(a.env.Stdout)
	row(tw, tableHeader(kind)...)
	for _, obj := range objs {
		row(tw, a.tableRow(obj)...)
	}
	return tw.Flush()
}

func tableHeader(kind v1alpha1.Kind) []string {
	switch kind {
	case v1alpha1.KindTenant:
		return []string{"NAME", "READY", "GENERATION/OBSERVED", "AGE"}
	case v1alpha1.KindDomain:
		return []string{"NAME", "TENANT", "SERVER NAMES", "TLS", "READY", "AGE"}
	case v1alpha1.KindDatabase:
		return []string{"NAME", "TENANT", "ENGINE", "DATABASE", "READY", "AGE"}
	}
	return []string{"NAME", "READY", "AGE"}
}

func (a *app) tableRow(obj v1alpha1.Object) []string {
	m := obj.GetMeta()
	age := a.age(m.CreationTimestamp)
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		gens := strconv.FormatInt(m.Generation, 10) + "/" + strconv.FormatInt(o.Status.ObservedGeneration, 10)
		return []string{m.Name, readyColumn(o), gens, age}
	case *v1alpha1.Domain:
		return []string{m.Name, o.Spec.Tenant, orDash(strings.Join(o.Hostnames(), ",")), orDash(string(o.Spec.TLS.Mode)), readyColumn(o), age}
	case *v1alpha1.Database:
		return []string{m.Name, o.Spec.Tenant, orDash(string(o.Spec.Engine)), orDash(o.Spec.DatabaseName), readyColumn(o), age}
	}
	return []string{m.Name, readyColumn(obj), age}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, data []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(w)
	return err
}

// completeKindName completes a kind as the first argument and, when wcpd
// answers, resource names after it.
func (a *app) completeKindName(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		kinds := make([]string, 0, len(v1alpha1.Kinds))
		for _, k := range v1alpha1.Kinds {
			kinds = append(kinds, strings.ToLower(string(k)))
		}
		return kinds, cobra.ShellCompDirectiveNoFileComp
	default:
		return a.completeNames(cmd.Context(), args[0]), cobra.ShellCompDirectiveNoFileComp
	}
}

func (a *app) completeNames(ctx context.Context, kindArg string) []string {
	kind, err := v1alpha1.ParseKind(kindArg)
	if err != nil {
		return nil
	}
	c, err := a.client()
	if err != nil {
		return nil
	}
	list, err := c.List(ctx, kind, client.ListOptions{})
	if err != nil {
		return nil
	}
	var names []string
	for _, it := range list.Items {
		var head resourceHead
		if json.Unmarshal(it, &head) == nil {
			names = append(names, head.Metadata.Name)
		}
	}
	return names
}
