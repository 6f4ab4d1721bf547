package v1alpha1

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// decodeErrors decodes in and returns its DecodeErrors (failing when there are none).
func decodeErrors(t *testing.T, in string) DecodeErrors {
	t.Helper()
	objs, err := Decode([]byte(in), "test.yaml")
	if err == nil {
		t.Fatalf("Decode succeeded with %d objects, want an error", len(objs))
	}
	if objs != nil {
		t.Errorf("Decode returned objects with an error")
	}
	var errs DecodeErrors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T is not DecodeErrors: %v", err, err)
	}
	return errs
}

// where is the part of a DecodeError tests compare: document, line, path.
func where(e *DecodeError) string { return fmt.Sprintf("%d:%d %s", e.Document, e.Line, e.Path) }

func TestDecodeValidFile(t *testing.T) {
	objs, err := Decode([]byte(readTestdata(t, "valid.yaml")), "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, string(o.GetKind())+"/"+o.GetMeta().Name)
		if errs := o.Validate(); len(errs) > 0 {
			t.Errorf("%s: %v", got[len(got)-1], errs)
		}
	}
	want := []string{"Tenant/shop", "Domain/shop.example.com", "Domain/wild.example.net", "Database/shop-main", "Database/analytics"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	tn := objs[0].(*Tenant)
	if tn.Spec.PHP.Version != "8.3" || tn.Spec.PHP.INI["opcache.enable"] != "1" || tn.Spec.PHP.INI["display_errors"] != "Off" {
		t.Errorf("scalars are not kept as written: %+v", tn.Spec.PHP)
	}
	if db := objs[3].(*Database); db.Spec.DatabaseName != "shop_shop_main" || db.Spec.User != "shop_shop_main" {
		t.Errorf("database defaults: %+v", db.Spec)
	}
	if objs[4].GetMeta().ResourceVersion != 7 {
		t.Errorf("resourceVersion not decoded")
	}
	var out strings.Builder
	for _, o := range objs {
		y, err := ToYAML(o)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(y)
	}
	golden(t, "valid.golden.yaml", out.String())
}

func TestDecodeErrorsFile(t *testing.T) {
	errs := decodeErrors(t, readTestdata(t, "errors.yaml"))
	var got []string
	for _, e := range errs {
		got = append(got, where(e))
		if e.Source != "test.yaml" {
			t.Errorf("source %q", e.Source)
		}
	}
	want := []string{
		"1:5 metadata.name",
		"1:6 metadata.labels[bad key!]",
		"1:8 spec.uid",
		"1:10 spec.limits.memoryHigh",
		"1:12 spec.limits.cpu",
		"1:13 spec.limits.disk.bytes",
		"1:15 spec.php.version",
		"1:17 spec.php.ini[disable_functions]",
		"1:18 spec.php.ini[date.timezone]",
		"2:29 spec.aliases[1]",
		"2:30 spec.aliases[2]",
		"2:31 spec.aliases[3]",
		"2:32 spec.documentRoot",
		"2:35 spec.redirects[0].to",
		"2:36 spec.redirects[0].code",
		"2:39 spec.tls.provided",
		"2:40 spec.tls.extra",
		"3:44 metadata.name",
		"3:44 metadata.uid",
		"3:47 spec.engine",
		"3:48 spec.maxConnections",
		"3:49 spec.tenant",
		"3:50 status",
		"4:52 apiVersion",
		"5:56 kind",
		"5:56 apiVersion",
		"6:61 metadata.name",
		"6:62 spec.serverName",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("document:line path (-want +got):\n%s", diff)
	}
	golden(t, "errors.golden", errs.Error()+"\n")

	var fe *FieldError
	if !errors.As(error(errs), &fe) || fe.Path != "metadata.name" || fe.Type != ErrorTypeInvalid {
		t.Errorf("errors.As(*FieldError) = %+v", fe)
	}
}

func TestDecodeErrorFormat(t *testing.T) {
	e := &DecodeError{Source: "file.yaml", Document: 2, Line: 14, Path: "spec.aliases[1]",
		Msg: Invalid(NewPath("spec", "aliases").Index(1), "a;b", "must be a valid hostname").ErrorBody()}
	want := `file.yaml: document 2, line 14: spec.aliases[1]: Invalid value "a;b": must be a valid hostname`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	if got := (&DecodeError{Line: 3, Msg: "x"}).Error(); got != "line 3: x" {
		t.Errorf("without source and document: %q", got)
	}
}

const tenantHead = "apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: shop\n"

func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // "document:line path"
		msg  string   // a substring of the first error
	}{
		{"unknown field deep in spec", tenantHead + "spec:\n  limits:\n    io:\n      readBPs: 1M\n",
			[]string{"1:8 spec.limits.io.readBPs"}, `unknown field "readBPs" (did you mean "readBPS"?)`},
		{"unknown field in metadata", tenantHead + "  namespace: x\n",
			[]string{"1:5 metadata.namespace"}, "known fields: name, labels, annotations, resourceVersion"},
		{"unknown top-level field", tenantHead + "spce: {}\n", []string{"1:5 spce"}, `did you mean "spec"?`},
		{"field names are case-sensitive", tenantHead + "spec: {DisplayName: x}\n",
			[]string{"1:5 spec.DisplayName"}, `did you mean "displayName"?`},
		{"string for a list", "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: example.com}\nspec:\n  tenant: shop\n  aliases: www.example.com\n",
			[]string{"1:6 spec.aliases"}, `wrong type: want a list, got string "www.example.com"`},
		{"string for an integer", tenantHead + "spec:\n  php: {maxChildren: \"5\"}\n",
			[]string{"1:6 spec.php.maxChildren"}, "want an integer"},
		{"float for an integer", tenantHead + "spec:\n  uid: 1000.5\n", []string{"1:6 spec.uid"}, "want an integer"},
		{"string for a boolean", tenantHead + "spec:\n  suspended: yes\n", []string{"1:6 spec.suspended"}, "want a boolean"},
		{"list for a struct", tenantHead + "spec: []\n", []string{"1:5 spec"}, "want a mapping, got list"},
		{"mapping for a string", tenantHead + "spec: {displayName: {a: b}}\n", []string{"1:5 spec.displayName"}, "want a string, got mapping"},
		{"integer overflow", tenantHead + "spec:\n  uid: 99999999999999999999999\n", []string{"1:6 spec.uid"}, "want an integer"},
		{"int64 overflow of an int field", tenantHead + "spec:\n  uid: 9223372036854775807\n", []string{"1:6 spec.uid"}, "Out of range"},
		{"duplicate key", tenantHead + "spec:\n  uid: 1000\n  uid: 1001\n", []string{"1:7 spec.uid"}, `duplicate key "uid" (first at line 6)`},
		{"duplicate top-level key", tenantHead + "kind: Tenant\n", []string{"1:5 kind"}, "duplicate key"},
		{"duplicate label", tenantHead + "  labels: {a: x, a: y}\n", []string{"1:5 metadata.labels[a]"}, "duplicate key"},
		{"alias", tenantHead + "  labels: &l {a: x}\n  annotations: *l\n", []string{"1:6 metadata.annotations"}, "YAML aliases"},
		{"alias of a scalar", tenantHead + "spec:\n  displayName: &n x\n  node: *n\n", []string{"1:7 spec.node"}, "YAML aliases"},
		{"merge key", tenantHead + "spec:\n  <<: {uid: 1000}\n", []string{"1:6 "}, "merge keys"},
		{"custom tag", tenantHead + "spec:\n  displayName: !secret x\n", []string{"1:6 spec.displayName"}, "tag !secret"},
		{"null list entry", "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: example.com}\nspec:\n  tenant: shop\n  aliases:\n    -\n",
			[]string{"1:7 spec.aliases[0]"}, "must not be null"},
		{"NUL in a string", tenantHead + "spec: {displayName: \"a\\0b\"}\n", []string{"1:5 spec.displayName"}, "NUL"},
		{"syntax error", tenantHead + "spec: [\n", []string{"1:5 "}, "YAML syntax error"},
		{"tab indentation", tenantHead + "spec:\n\tuid: 1\n", []string{"1:6 "}, "YAML syntax error"},
		{"missing apiVersion and kind", "metadata: {name: shop}\n", []string{"1:1 kind", "1:1 apiVersion"}, "Required value"},
		{"empty kind", "apiVersion: wcp360.io/v1alpha1\nkind:\nmetadata: {name: shop}\n", []string{"1:2 kind"}, "Required value"},
		{"unknown apiVersion", "apiVersion: v1\nkind: Tenant\n", []string{"1:1 apiVersion"}, `unknown apiVersion "v1"`},
		{"lower-case kind", "apiVersion: wcp360.io/v1alpha1\nkind: tenant\n", []string{"1:2 kind"}, `unknown kind "tenant"`},
		{"list document", "- a\n- b\n", []string{"1:1 "}, "must be a mapping"},
		{"scalar document", "hello\n", []string{"1:1 "}, "must be a mapping"},
		{"uid", tenantHead + "  uid: 0b7e\n", []string{"1:5 metadata.uid"}, "set by wcpd"},
		{"generation", tenantHead + "  generation: 3\n", []string{"1:5 metadata.generation"}, "set by wcpd"},
		{"timestamps", tenantHead + "  creationTimestamp: 2025-01-01T00:00:00Z\n  deletionTimestamp: null\n",
			[]string{"1:5 metadata.creationTimestamp", "1:6 metadata.deletionTimestamp"}, "set by wcpd"},
		{"status", tenantHead + "status:\n  observedGeneration: 1\n", []string{"1:5 status"}, "status is written by wcpd"},
		{"missing metadata", "apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nspec: {}\n", []string{"1:1 metadata.name"}, "Required value"},
		{"missing tenant", "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: example.com}\nspec: {}\n",
			[]string{"1:4 spec.tenant"}, "Required value"},
		{"no spec", "apiVersion: wcp360.io/v1alpha1\nkind: Database\nmetadata: {name: db}\n", []string{"1:1 spec.tenant"}, "Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := decodeErrors(t, tt.in)
			var got []string
			for _, e := range errs {
				got = append(got, where(e))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\n%v", diff, errs)
			}
			if !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.msg)
			}
		})
	}
}

func TestDecodeInjection(t *testing.T) {
	head := "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: example.com}\nspec:\n  tenant: shop\n"
	tests := []struct{ name, spec, path string }{
		{"semicolon and brace", "  serverName: 'a.com;}'\n", "spec.serverName"},
		{"nginx variable", "  aliases: [ok.example.com, $host]\n", "spec.aliases[1]"},
		{"quotes", "  aliases: ['a\"b.com']\n", "spec.aliases[0]"},
		{"escaped newline", "  aliases: [\"a.com\\n  return 200\"]\n", "spec.aliases[0]"},
		{"block scalar newline", "  serverName: |\n    a.com\n    b.com\n", "spec.serverName"},
		{"escaped NUL", "  serverName: \"a.com\\0\"\n", "spec.serverName"},
		{"parent directory", "  documentRoot: ../../etc\n", "spec.documentRoot"},
		{"absolute path", "  documentRoot: /etc\n", "spec.documentRoot"},
		{"redirect target", "  redirects: [{from: /a, to: \"https://x.example.com/ ; return 200 x\"}]\n", "spec.redirects[0].to"},
		{"php version", "  php: {version: \"8.3;\"}\n", "spec.php.version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := decodeErrors(t, head+tt.spec)
			if len(errs) != 1 || errs[0].Path != tt.path || errs[0].Line != 6 {
				t.Fatalf("got %v, want one validation error at line 6, %s", errs, tt.path)
			}
		})
	}
}

func TestDecodeAcceptedForms(t *testing.T) {
	const dom = "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: example.com}\nspec: {tenant: shop}\n"
	tests := []struct {
		name  string
		in    string
		count int
	}{
		{"empty input", "", 0},
		{"only comments and separators", "# nothing\n---\n---\n# more\n...\n", 0},
		{"leading separator", "---\n" + dom, 1},
		{"separator with comment", "--- # first\n" + dom + "--- # second\n" + strings.Replace(dom, "example.com", "example.org", 1), 2},
		{"end markers", dom + "...\n---\n" + strings.Replace(dom, "example.com", "example.org", 1) + "...\n", 2},
		{"directive", "%YAML 1.2\n---\n" + dom, 1},
		{"byte order mark", "\ufeff" + dom, 1},
		{"CRLF", strings.ReplaceAll(dom, "\n", "\r\n"), 1},
		{"anchor without alias", strings.Replace(dom, "{tenant: shop}", "&s {tenant: shop}", 1), 1},
		{"str tag", strings.Replace(dom, "{tenant: shop}", "{tenant: !!str shop, php: {version: !!str 8.3}}", 1), 1},
		{"JSON", `{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "shop"}, "spec": {"uid": 1000}}`, 1},
		{"JSON documents", `{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "a"}}` + "\n---\n" +
			`{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "b"}}`, 2},
		{"resourceVersion", strings.Replace(dom, "{name: example.com}", "{name: example.com, resourceVersion: 12}", 1), 1},
		{"null sections", "apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: shop, labels: null}\nspec:\n", 1},
		{"same name, other kinds", "apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: shop}\n---\n" +
			"apiVersion: wcp360.io/v1alpha1\nkind: Database\nmetadata: {name: shop}\nspec: {tenant: shop}\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.in), "in")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tt.count {
				t.Fatalf("%d objects, want %d", len(objs), tt.count)
			}
		})
	}
}

func TestDecodeDocumentNumbers(t *testing.T) {
	in := "# header\n---\n---\napiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: a}\n" +
		"---\n# empty\n---\napiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: B}\n"
	errs := decodeErrors(t, in)
	if len(errs) != 1 || where(errs[0]) != "2:12 metadata.name" {
		t.Fatalf("got %v", errs)
	}
}

func TestDecodeCrossDocument(t *testing.T) {
	doc := func(kind, name, spec string) string {
		return fmt.Sprintf("---\napiVersion: wcp360.io/v1alpha1\nkind: %s\nmetadata:\n  name: %s\nspec: %s\n", kind, name, spec)
	}
	tests := []struct {
		name string
		in   string
		want []string
		msg  string
	}{
		{"same tenant twice", doc("Tenant", "shop", "{}") + doc("Tenant", "shop", "{}"),
			[]string{"2:11 metadata.name"}, `Tenant "shop" is also defined in document 1`},
		{"hostname in two domains", doc("Domain", "a.example.com", "{tenant: t}") +
			doc("Domain", "b.example.com", "\n  tenant: t\n  aliases: [www.b.example.com, a.example.com]"),
			[]string{"2:14 spec.aliases[1]"}, "hostname also served by the domain in document 1"},
		{"database name twice", doc("Database", "x", "{tenant: shop, databaseName: shop_x}") + doc("Database", "y", "{tenant: shop, databaseName: shop_x}"),
			[]string{"2:12 spec.databaseName"}, "database name also used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := decodeErrors(t, tt.in)
			var got []string
			for _, e := range errs {
				got = append(got, where(e))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s\n%v", diff, errs)
			}
			if !strings.Contains(errs[0].Msg, tt.msg) || !strings.HasPrefix(errs[0].Msg, "Duplicate value") {
				t.Errorf("message %q", errs[0].Msg)
			}
		})
	}
	// a database name may repeat on another engine
	ok := doc("Database", "x", "{tenant: shop, databaseName: shop_x}") + doc("Database", "y", "{tenant: shop, databaseName: shop_x, engine: postgresql}")
	if _, err := Decode([]byte(ok), "in"); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeLimits(t *testing.T) {
	big := tenantHead + "  annotations:\n    a: \"" + strings.Repeat("x", MaxDocumentBytes) + "\"\n"
	if errs := decodeErrors(t, big); len(errs) != 1 || !strings.Contains(errs[0].Msg, "larger than") || errs[0].Document != 1 {
		t.Errorf("large document: %v", errs)
	}
	huge := strings.Repeat("# padding\n", MaxManifestBytes/10+1)
	if errs := decodeErrors(t, huge); len(errs) != 1 || !strings.Contains(errs[0].Msg, "larger than") {
		t.Errorf("large input: %v", errs)
	}
	many := strings.Repeat("---\na: 1\n", MaxDocuments+1)
	if errs := decodeErrors(t, many); len(errs) != 1 || !strings.Contains(errs[0].Msg, "more than 5000 documents") {
		t.Errorf("many documents: %v", errs)
	}
	deep := tenantHead + "spec: " + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + "\n"
	if errs := decodeErrors(t, deep); len(errs) != 1 || !strings.Contains(errs[0].Msg, "nests") {
		t.Errorf("deep flow nesting: %v", errs)
	}
	deeper := tenantHead + "spec:\n  displayName: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n"
	if errs := decodeErrors(t, deeper); len(errs) != 1 || errs[0].Path != "spec.displayName" {
		t.Errorf("nesting: %v", errs) // the type is wrong long before the depth limit matters
	}
	blockSeq := tenantHead + "spec: " + strings.Repeat("- ", 5000) + "x\n"
	if errs := decodeErrors(t, blockSeq); len(errs) == 0 {
		t.Errorf("deep block nesting accepted")
	}
	bad := strings.Repeat("---\nkind: Nope\n", MaxDecodeErrors+10)
	if errs := decodeErrors(t, bad); len(errs) != MaxDecodeErrors+1 || !strings.Contains(errs[len(errs)-1].Msg, "stopped") {
		t.Errorf("too many problems: %d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func TestDecodeObjectJSON(t *testing.T) {
	obj, err := DecodeObjectJSON(KindDomain, []byte(`{"metadata": {"name": "example.com"}, "spec": {"tenant": "shop", "aliases": ["www.example.com"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := obj.(*Domain)
	if d.Kind != KindDomain || d.Spec.ServerName != "example.com" || d.Spec.TLS.Mode != TLSACME {
		t.Fatalf("not defaulted: %+v", d)
	}
	tests := []struct {
		name string
		body string
		want []string // "line:column path"
		msg  string
	}{
		{"unknown field", "{\n  \"metadata\": {\"name\": \"example.com\"},\n  \"spec\": {\"tenant\": \"shop\",\n    \"tls\": {\"mod\": \"acme\"}}\n}",
			[]string{"4:13 spec.tls.mod"}, `did you mean "mode"?`},
		{"wrong kind", `{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "x"}}`,
			[]string{"1:38 kind"}, "does not match"},
		{"wrong type", "{\"metadata\": {\"name\": \"example.com\"},\n \"spec\": {\"tenant\": \"shop\", \"http2\": \"yes\"}}",
			[]string{"2:38 spec.http2"}, "want a boolean"},
		{"invalid hostname", "{\"metadata\": {\"name\": \"example.com\"},\n \"spec\": {\"tenant\": \"shop\", \"aliases\": [\"ok.example.com\", \"a;b\"]}}",
			[]string{"2:59 spec.aliases[1]"}, "Invalid value \"a;b\""},
		{"duplicate key", `{"metadata": {"name": "example.com", "name": "example.org"}, "spec": {"tenant": "shop"}}`,
			[]string{"1:38 metadata.name"}, "duplicate key"},
		{"syntax error", "{\n  \"metadata\": {\"name\": \"example.com\",}\n}", []string{"2:38 "}, "JSON syntax error"},
		{"truncated", `{"metadata": {"name": "example.com"`, []string{"1:36 "}, "JSON syntax error"},
		{"trailing data", `{"metadata": {"name": "example.com"}, "spec": {"tenant": "shop"}} {}`, []string{"1:67 "}, "after the JSON value"},
		{"array", `[{"metadata": {"name": "example.com"}}]`, []string{"1:1 "}, "must be a mapping"},
		{"status", `{"metadata": {"name": "example.com"}, "spec": {"tenant": "shop"}, "status": {}}`, []string{"1:67 status"}, "written by wcpd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeObjectJSON(KindDomain, []byte(tt.body))
			var errs DecodeErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not DecodeErrors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d:%d %s", e.Line, e.Column, e.Path))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\n%v", diff, errs)
			}
			if !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.msg)
			}
		})
	}
	if _, err := DecodeObjectJSON("Widget", []byte(`{}`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestParseKindAndNew(t *testing.T) {
	for in, want := range map[string]Kind{
		"tenant": KindTenant, "tenants": KindTenant, "Tenant": KindTenant, "TENANT": KindTenant,
		"domain": KindDomain, "domains": KindDomain, "Domain": KindDomain,
		"database": KindDatabase, "databases": KindDatabase, "db": KindDatabase, "Database": KindDatabase,
	} {
		got, err := ParseKind(in)
		if err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tenantz", "widget", "node"} {
		if _, err := ParseKind(in); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v, want ErrUnknownKind", in, err)
		}
	}
	for _, k := range Kinds {
		obj, err := New(k)
		if err != nil || obj.GetKind() != k || obj.GetTypeMeta().Kind != k {
			t.Errorf("New(%q) = %v, %v", k, obj, err)
		}
	}
	if _, err := New("tenant"); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("New(tenant) error = %v", err)
	}
}

func TestToYAMLRoundTrip(t *testing.T) {
	objs, err := Decode([]byte(readTestdata(t, "valid.yaml")), "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	odd := &Tenant{Metadata: ObjectMeta{Name: "odd", Annotations: map[string]string{
		"a": "line one\nline two\ttab \"quoted\" \\ back",
		"b": "true", "c": "123", "d": "- list?", "e": "#comment", "f": "x: y", "g": "\u2028\u0085\ufeff",
		"h": "", "i": " lead", "j": "null", "k": "~", "l": "0x1F", "m": "😀", "n": "a\x7fb", "o": "1e3",
		"p": "first line\nsecond: line #x\n", "q": "- item\n- 'item2'\n\"x\" |\n", "r": "a\n\nb\n", "s": "a\nb",
	}}}
	odd.Default()
	objs = append(objs, odd)
	for _, o := range objs {
		y, err := ToYAML(o)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(y, "round-trip")
		if err != nil {
			t.Fatalf("%s\n%v", y, err)
		}
		if diff := cmp.Diff(o, back[0]); diff != "" {
			t.Errorf("round trip of %s/%s (-before +after):\n%s\n%s", o.GetKind(), o.GetMeta().Name, diff, y)
		}
	}
}

// BenchmarkDecode decodes a file of 1000 domains.
func BenchmarkDecode(b *testing.B) {
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "---\napiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: d%d.example.com}\n"+
			"spec:\n  tenant: shop\n  aliases: [www.d%d.example.com]\n  redirects: [{from: /a, to: /b}]\n", i, i)
	}
	data := []byte(in.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
