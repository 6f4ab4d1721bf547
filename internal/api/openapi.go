package api

import (
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/metrics"
)

// OpenAPI builds the OpenAPI 3.1 document of the API. Schemas are derived
// from the Go types by reflection, so the document cannot drift from the code.
func OpenAPI(version string) map[string]any {
	schemas := map[string]any{}
	g := schemaGen{defs: schemas}
	g.named("Tenant", reflect.TypeFor[v1alpha1.Tenant]())
	g.named("Domain", reflect.TypeFor[v1alpha1.Domain]())
	g.named("Database", reflect.TypeFor[v1alpha1.Database]())
	g.named("ApplyResponse", reflect.TypeFor[ApplyResponse]())
	g.named("Problem", reflect.TypeFor[Problem]())
	g.named("EventItem", reflect.TypeFor[EventItem]())
	g.named("RevisionItem", reflect.TypeFor[RevisionItem]())
	g.named("RollbackRequest", reflect.TypeFor[RollbackRequest]())
	g.named("Health", reflect.TypeFor[Health]())
	g.named("DriftReport", reflect.TypeFor[DriftReport]())
	g.named("ReconcileResponse", reflect.TypeFor[ReconcileResponse]())
	paths := map[string]any{
		"/healthz": map[string]any{"get": public(op("Health of wcpd and its database", "Health", nil))},
		"/metrics": map[string]any{"get": textOp("Counters and durations of the controllers and host drivers "+
			"(nginx tests, reloads and starts; reconciles per controller), in the Prometheus text format", metrics.ContentType)},
	}
	for _, k := range v1alpha1.Kinds {
		addKindPaths(paths, k)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "WCP360 API", "version": version,
			"description": "Desired state of tenants, domains and databases. Errors are application/problem+json. " +
				"Over HTTPS every operation but the public ones needs a bearer token: a short-lived access token " +
				"(EdDSA-signed JWT, from login) or an API token; root on wcpd's local unix socket needs none. " +
				"What a principal may do is decided by its role (admin, tenant, reseller) and the token's scopes; " +
				"another tenant's object answers 404."},
		"paths":    paths,
		"security": []any{map[string]any{"bearerAuth": []any{}}},
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{
			"bearerAuth": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT or wcp_ API token", //nolint:gosec // G101: a scheme's description, no credential
				"description": "Authorization: Bearer <access token or API token>"},
		}},
	}
}

// public marks an operation that needs no credentials.
func public(o map[string]any) map[string]any {
	o["security"] = []any{}
	return o
}

func addKindPaths(paths map[string]any, k v1alpha1.Kind) {
	p := "/api/v1/" + Plural(k)
	kind := string(k)
	nameParam := []any{map[string]any{"name": "name", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}}
	dry := map[string]any{"name": "dryRun", "in": "query", "schema": map[string]any{"type": "boolean"},
		"description": "validate and compute the result, write nothing"}
	paths[p] = map[string]any{"get": withParams(op("List "+Plural(k), kind+"List", nil), []any{
		map[string]any{"name": "tenant", "in": "query", "schema": map[string]any{"type": "string"}},
		map[string]any{"name": "labelSelector", "in": "query", "schema": map[string]any{"type": "string"}, "description": "k=v,k2=v2"},
	})}
	paths[p+"/{name}"] = map[string]any{
		"parameters": nameParam,
		"get":        op("Get a "+kind, kind, nil),
		"put": withParams(op("Apply (create or update) a "+kind+"; an identical spec changes nothing",
			"ApplyResponse", map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": ref(kind)}}}), []any{dry}),
		"delete": withParams(accepted(op("Mark a "+kind+" for deletion; its controller removes it", kind, nil)), []any{dry}),
	}
	paths[p+"/{name}/status"] = map[string]any{"parameters": nameParam, "get": op("Observed status", "Status", nil)}
	paths[p+"/{name}/events"] = map[string]any{"parameters": nameParam, "get": op("Events, newest first", "EventItem[]", nil)}
	paths[p+"/{name}/revisions"] = map[string]any{"parameters": nameParam, "get": op("Spec revisions", "RevisionItem[]", nil)}
	paths[p+"/{name}/rollback"] = map[string]any{"parameters": nameParam,
		"post": withParams(op("Apply the spec of an earlier revision again, as a new generation and revision; "+
			"rolling back to the current spec changes nothing", "ApplyResponse", map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": ref("RollbackRequest")}}}), []any{dry})}
	paths[p+"/{name}/drift"] = map[string]any{"parameters": nameParam,
		"get": op("How the host differs from the spec, observed now without changing anything "+
			"(501 when this daemon does not observe the host for "+Plural(k)+")", "DriftReport", nil)}
	paths[p+"/{name}/reconcile"] = map[string]any{"parameters": nameParam,
		"post": accepted(op("Ask the controller to reconcile the "+kind+" now, ahead of its resync and backoff; "+
			"answers before the reconcile runs", "ReconcileResponse", nil))}
}

// accepted makes the success answer of o a 202: the work is queued.
func accepted(o map[string]any) map[string]any {
	rs := o["responses"].(map[string]any)
	ok := rs["200"].(map[string]any)
	ok["description"] = "Accepted"
	rs["202"] = ok
	delete(rs, "200")
	return o
}

func op(summary, result string, body map[string]any) map[string]any {
	var schema any
	switch {
	case strings.HasSuffix(result, "[]"):
		schema = map[string]any{"type": "array", "items": ref(strings.TrimSuffix(result, "[]"))}
	case strings.HasSuffix(result, "List"):
		schema = map[string]any{"type": "object", "properties": map[string]any{
			"apiVersion": map[string]any{"type": "string"}, "kind": map[string]any{"type": "string"},
			"items": map[string]any{"type": "array", "items": ref(strings.TrimSuffix(result, "List"))}}}
	default:
		schema = ref(result)
	}
	problem := map[string]any{"description": "error", "content": map[string]any{
		"application/problem+json": map[string]any{"schema": ref("Problem")}}}
	o := map[string]any{
		"summary": summary,
		"responses": map[string]any{
			"200":     map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{"schema": schema}}},
			"default": problem,
		},
	}
	if body != nil {
		o["requestBody"] = body
	}
	return o
}

// textOp is an operation that answers text of the media type.
func textOp(summary, mediaType string) map[string]any {
	o := op(summary, "", nil)
	o["responses"].(map[string]any)["200"] = map[string]any{"description": "OK", "content": map[string]any{
		mediaType: map[string]any{"schema": map[string]any{"type": "string"}}}}
	return o
}

func withParams(o map[string]any, params []any) map[string]any {
	o["parameters"] = params
	return o
}

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

type schemaGen struct{ defs map[string]any }

func (g schemaGen) named(name string, t reflect.Type) {
	if _, ok := g.defs[name]; ok {
		return
	}
	g.defs[name] = map[string]any{} // placeholder against recursion
	g.defs[name] = g.schema(t)
}

var timeType = reflect.TypeFor[time.Time]() //nolint:gochecknoglobals // constant

func (g schemaGen) schema(t reflect.Type) map[string]any {
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // json.RawMessage
			return map[string]any{}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		return g.structSchema(t)
	default:
		return map[string]any{}
	}
}

func (g schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	if t.PkgPath() == reflect.TypeFor[v1alpha1.Status]().PkgPath() && t.Name() == "Status" {
		g.defs["Status"] = map[string]any{"type": "object", "properties": props}
	}
	return s
}

func (g schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			g.fields(f.Type, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	s.openapiOnce.Do(func() { s.openapiDoc = OpenAPI(s.opts.Version) })
	writeJSON(w, http.StatusOK, s.openapiDoc)
}
