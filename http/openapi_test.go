package http

import (
	"encoding"
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// statuses lists, per operation, every status its handler can answer. TestOpenAPI checks that the
// document says exactly this; TestStatusCodes provokes every one of them and nothing else.
var statuses = map[string][]int{
	"GET /healthz":     {200},
	"GET /readyz":      {200, 503},
	"GET /metrics":     {200, 503},
	"POST /v1/parties": {201, 400, 401, 403, 409, 413, 500, 503},
	"PUT /v1/parties/{kind}/{id}/settlement-bank": {200, 400, 401, 403, 404, 413, 500, 503},
	"POST /v1/cards":                {200, 201, 400, 401, 403, 409, 413, 500, 503},
	"GET /v1/cards/{token}":         {200, 400, 401, 403, 404, 500, 503},
	"POST /v1/cards/{token}/status": {200, 400, 401, 403, 404, 409, 413, 500, 503},
}

// Go types whose JSON fields the document's schemas must list exactly.
var (
	requestTypes = map[string]any{
		"POST /v1/parties": partyRequest{},
		"PUT /v1/parties/{kind}/{id}/settlement-bank": partyBankRequest{},
		"POST /v1/cards":                registerCardRequest{},
		"POST /v1/cards/{token}/status": cardStatusRequest{},
	}
	responseTypes = map[string]any{
		"POST /v1/parties": partyView{},
		"PUT /v1/parties/{kind}/{id}/settlement-bank": partyBankView{},
		"POST /v1/cards":                cardView{},
		"GET /v1/cards/{token}":         cardView{},
		"POST /v1/cards/{token}/status": cardView{},
		"GET /healthz":                  map[string]string{"status": ""},
		"GET /readyz":                   readyView{},
	}
	idempotent = map[string]bool{"POST /v1/cards": true, "POST /v1/cards/{token}/status": true}
	// rawRequestBodies are the operations whose body is not JSON, with the media types the
	// document must list for it.
	rawRequestBodies = map[string][]string{}
)

type openAPIDoc struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Schemas         map[string]openAPISchema   `json:"schemas"`
		Responses       map[string]openAPIResponse `json:"responses"`
		Parameters      map[string]openAPIParam    `json:"parameters"`
		SecuritySchemes map[string]map[string]any  `json:"securitySchemes"`
	} `json:"components"`
}

type openAPIOp struct {
	Parameters  []openAPIParam `json:"parameters"`
	RequestBody *struct {
		Required bool                                      `json:"required"`
		Content  map[string]struct{ Schema openAPISchema } `json:"content"`
	} `json:"requestBody"`
	Responses map[string]openAPIResponse `json:"responses"`
	Security  *[]map[string][]string     `json:"security"`
}

type openAPIParam struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
}

type openAPIResponse struct {
	Ref     string                                    `json:"$ref"`
	Content map[string]struct{ Schema openAPISchema } `json:"content"`
}

type openAPISchema struct {
	Ref                  string                   `json:"$ref"`
	Type                 string                   `json:"type"`
	Properties           map[string]openAPISchema `json:"properties"`
	Required             []string                 `json:"required"`
	AdditionalProperties *bool                    `json:"additionalProperties"`
	Items                *openAPISchema           `json:"items"`
	Nullable             bool                     `json:"nullable"`
}

func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("docs/openapi.json is OpenAPI %q, want 3.0.x", doc.OpenAPI)
	}
	return &doc
}

// openAPIPath converts a net/http pattern path to an OpenAPI path: "{rest...}" is "{rest}", and
// "{$}" (an exact-match marker) disappears.
func openAPIPath(pattern string) string {
	p := strings.ReplaceAll(pattern, "...}", "}")
	return strings.TrimSuffix(p, "{$}")
}

func TestOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)

	served := map[string]Route{}
	for _, rt := range e.srv.Routes() {
		served[rt.Method+" "+openAPIPath(rt.Pattern)] = rt
	}
	documented := map[string]openAPIOp{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}
	if got, want := slices.Sorted(maps.Keys(documented)), slices.Sorted(maps.Keys(served)); !slices.Equal(got, want) {
		t.Fatalf("documented operations %q, server routes %q", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(statuses)), slices.Sorted(maps.Keys(served)); !slices.Equal(got, want) {
		t.Fatalf("the statuses table covers %q, server routes %q", got, want)
	}

	for name, op := range documented {
		var docStatuses []int
		for code := range op.Responses {
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", name, code)
				continue
			}
			docStatuses = append(docStatuses, n)
		}
		slices.Sort(docStatuses)
		if want := slices.Sorted(slices.Values(routeStatuses(name, map[string]bool{name: served[name].Admin}))); !slices.Equal(docStatuses, want) {
			t.Errorf("%s: documented statuses %v, the handler answers %v", name, docStatuses, want)
		}

		rt := served[name]
		switch {
		case op.Security == nil:
			t.Errorf("%s: no security requirement (write [] for a public operation)", name)
		case rt.Admin && !slices.ContainsFunc(*op.Security, func(m map[string][]string) bool { _, ok := m["adminBearer"]; return ok }):
			t.Errorf("%s: an admin route without the adminBearer requirement", name)
		case !rt.Admin && slices.ContainsFunc(*op.Security, func(m map[string][]string) bool { _, ok := m["adminBearer"]; return ok }):
			// Routes without the admin check are public, or check a feature's own credential
			// (a merchant's API key), documented as a scheme of its own.
			t.Errorf("%s: a route without the admin check requires adminBearer", name)
		}
		if op.Security != nil {
			for _, req := range *op.Security {
				for scheme := range req {
					if _, ok := doc.Components.SecuritySchemes[scheme]; !ok {
						t.Errorf("%s: security scheme %q is not defined", name, scheme)
					}
				}
			}
		}

		hasKey := false
		for _, p := range op.Parameters {
			p = resolveParam(t, doc, p)
			if p.In == "header" && p.Name == idempotencyHeader {
				hasKey = p.Required
			}
			if p.In == "path" && !strings.Contains(rt.Pattern, "{"+p.Name+"}") {
				t.Errorf("%s: path parameter %q not in the pattern", name, p.Name)
			}
		}
		if hasKey != idempotent[name] {
			t.Errorf("%s: documents a required Idempotency-Key: %v, want %v", name, hasKey, idempotent[name])
		}

		if typ, ok := requestTypes[name]; ok {
			if op.RequestBody == nil || !op.RequestBody.Required {
				t.Errorf("%s: no required request body", name)
			} else {
				checkSchema(t, doc, name+" request", op.RequestBody.Content["application/json"].Schema, typ, true)
			}
		} else if types, ok := rawRequestBodies[name]; ok {
			if op.RequestBody == nil || !op.RequestBody.Required {
				t.Errorf("%s: no required request body", name)
			} else if got := slices.Sorted(maps.Keys(op.RequestBody.Content)); !slices.Equal(got, slices.Sorted(slices.Values(types))) {
				t.Errorf("%s: request body documented as %q, the handler reads %q", name, got, types)
			}
		} else if op.RequestBody != nil {
			t.Errorf("%s: documents a request body the handler does not read", name)
		}
		if typ, ok := responseTypes[name]; ok {
			ok2xx := false
			for code, resp := range op.Responses {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				ok2xx = true
				checkSchema(t, doc, name+" "+code, resolveResponse(t, doc, resp).Content["application/json"].Schema, typ, false)
			}
			if !ok2xx {
				t.Errorf("%s: no success response", name)
			}
		}
		for code, resp := range op.Responses {
			if n, _ := strconv.Atoi(code); n >= 400 && name != "GET /metrics" {
				if s := resolveResponse(t, doc, resp).Content["application/json"].Schema; s.Ref != "#/components/schemas/Error" {
					t.Errorf("%s %s: error response schema %q, want the Error schema", name, code, s.Ref)
				}
			}
		}
	}
	if _, ok := doc.Components.SecuritySchemes["adminBearer"]; !ok {
		t.Error("no adminBearer security scheme")
	}
	checkSchema(t, doc, "Error", openAPISchema{Ref: "#/components/schemas/Error"}, errorBody{}, false)
}

func resolveParam(t *testing.T, doc *openAPIDoc, p openAPIParam) openAPIParam {
	t.Helper()
	if p.Ref == "" {
		return p
	}
	q, ok := doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
	if !ok {
		t.Fatalf("unresolved parameter %q", p.Ref)
	}
	return q
}

func resolveResponse(t *testing.T, doc *openAPIDoc, r openAPIResponse) openAPIResponse {
	t.Helper()
	if r.Ref == "" {
		return r
	}
	q, ok := doc.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
	if !ok {
		t.Fatalf("unresolved response %q", r.Ref)
	}
	return q
}

func resolveSchema(t *testing.T, doc *openAPIDoc, s openAPISchema) openAPISchema {
	t.Helper()
	if s.Ref == "" {
		return s
	}
	q, ok := doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	if !ok {
		t.Fatalf("unresolved schema %q", s.Ref)
	}
	return q
}

// checkSchema checks that schema lists exactly the JSON fields of v (a struct, or a map whose
// keys are the fields), closed to others, with the fields the Go code always writes (or, for a
// request, requires) marked required; nested structs are checked the same way.
func checkSchema(t *testing.T, doc *openAPIDoc, what string, schema openAPISchema, v any, request bool) {
	t.Helper()
	s := resolveSchema(t, doc, schema)
	if s.Type != "object" || s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Errorf("%s: schema is not a closed object (type object, additionalProperties false)", what)
	}
	type field struct {
		optional bool
		nested   any
		array    bool // nested is the type of the array's items
		nullable bool // a pointer always written: null or the struct
		goType   reflect.Type
	}
	fields := map[string]field{}
	if m, ok := v.(map[string]string); ok {
		for k := range m {
			fields[k] = field{}
		}
	} else {
		// A struct's fields as encoding/json writes them: an embedded struct without a name of
		// its own lends its fields; a pointer to a struct (null or the struct) is checked as the
		// struct, which the document marks nullable.
		var collect func(rt reflect.Type)
		collect = func(rt reflect.Type) {
			for i := 0; i < rt.NumField(); i++ {
				sf := rt.Field(i)
				name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
				if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
					collect(sf.Type)
					continue
				}
				f := field{optional: strings.Contains(opts, "omitempty"), goType: sf.Type}
				switch ft := sf.Type; {
				case ft.Kind() == reflect.Struct:
					f.nested = reflect.Zero(ft).Interface()
				case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
					f.nested, f.nullable = reflect.Zero(ft.Elem()).Interface(), !f.optional
				case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
					f.nested, f.array = reflect.Zero(ft.Elem()).Interface(), true
				}
				fields[name] = f
			}
		}
		collect(reflect.TypeOf(v))
	}
	if got, want := slices.Sorted(maps.Keys(s.Properties)), slices.Sorted(maps.Keys(fields)); !slices.Equal(got, want) {
		t.Errorf("%s: documented properties %q, the Go type has %q", what, got, want)
		return
	}
	var wantRequired []string
	for name, f := range fields {
		if !f.optional {
			wantRequired = append(wantRequired, name)
		}
		if want := jsonType(f.goType); want != "" {
			if got := resolveSchema(t, doc, s.Properties[name]).Type; got != want {
				t.Errorf("%s.%s: documented type %q, the Go field is written as %q", what, name, got, want)
			}
		}
		switch {
		case f.nested != nil && f.array:
			items := resolveSchema(t, doc, s.Properties[name])
			if items.Type != "array" || items.Items == nil {
				t.Errorf("%s.%s: schema is not an array with items", what, name)
				continue
			}
			checkSchema(t, doc, what+"."+name+"[]", *items.Items, f.nested, request)
		case f.nested != nil:
			if f.nullable && !resolveSchema(t, doc, s.Properties[name]).Nullable {
				t.Errorf("%s.%s: written as null or an object, the schema is not nullable", what, name)
			}
			checkSchema(t, doc, what+"."+name, s.Properties[name], f.nested, request)
		}
	}
	if got, want := slices.Sorted(slices.Values(s.Required)), slices.Sorted(slices.Values(wantRequired)); !slices.Equal(got, want) {
		t.Errorf("%s: documented required %q, want %q", what, got, want)
	}
}

// jsonType is the JSON type encoding/json writes a value of the Go type rt as: "" when it
// cannot tell (an interface, or a type that marshals itself).
func jsonType(rt reflect.Type) string {
	if rt == nil {
		return ""
	}
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt == reflect.TypeFor[json.Number]() {
		return "" // a number, integer or not, as the schema says
	}
	if rt.Implements(reflect.TypeFor[json.Marshaler]()) || reflect.PointerTo(rt).Implements(reflect.TypeFor[json.Marshaler]()) {
		return ""
	}
	if rt.Implements(reflect.TypeFor[encoding.TextMarshaler]()) || reflect.PointerTo(rt).Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
		return "string"
	}
	switch rt.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if rt.Elem().Kind() == reflect.Uint8 {
			return "string"
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return ""
}

// TestListFieldsAreTheDocumentedOnes checks the field tables that decodeList reads a batch's
// items by against the Go types TestOpenAPI checks the document with: a field the document
// lists is one the handler reads, of the same JSON type, and no other.
func TestListFieldsAreTheDocumentedOnes(t *testing.T) {
	kinds := map[reflect.Kind]jsonKind{
		reflect.String: jsonString, reflect.Uint16: jsonInteger, reflect.Uint32: jsonInteger,
		reflect.Uint64: jsonInteger, reflect.Slice: jsonStrings,
	}
	for name, c := range map[string]struct {
		item   any
		fields map[string]jsonKind
	}{
		"POST /v1/accounts":  {openAccountRequest{}, openAccountFields},
		"POST /v1/transfers": {transferRequest{}, transferFields},
	} {
		rt := reflect.TypeOf(c.item)
		want := map[string]jsonKind{}
		for i := 0; i < rt.NumField(); i++ {
			sf := rt.Field(i)
			field, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			kind, ok := kinds[sf.Type.Kind()]
			if !ok || (sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() != reflect.String) {
				t.Fatalf("%s: field %s of a type decodeList does not read", name, field)
			}
			want[field] = kind
		}
		if !maps.Equal(want, c.fields) {
			t.Errorf("%s: the handler reads %v, the documented type has %v", name, c.fields, want)
		}
	}
}
