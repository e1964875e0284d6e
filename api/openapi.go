package api

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

var paramRE = regexp.MustCompile(`:([a-zA-Z_]+)`)

// OpenAPI builds the OpenAPI 3 description from the route table, so it cannot drift from
// what the server serves.
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range s.Routes() {
		p := "/api/v1" + paramRE.ReplaceAllString(rt.Path, "{$1}")
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		op := map[string]any{
			"summary": rt.Summary,
			"responses": map[string]any{
				"default": map[string]any{"description": "an RFC 9457 problem", "content": map[string]any{
					"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
				"200": map[string]any{"description": "success"},
			},
		}
		if rt.Method != "GET" {
			// A write that did not commit never answers success; say which statuses mean that.
			resp := op["responses"].(map[string]any)
			resp["507"] = map[string]any{"description": "nothing was saved: Slate's data directory is full (problem+json)"}
			resp["503"] = map[string]any{"description": "nothing was saved: Slate's data directory refused the write (read-only or failing; problem+json)"}
		}
		if rt.Public() {
			op["security"] = []any{}
		} else {
			op["x-roles"] = rt.Roles
		}
		var params []any
		for _, m := range paramRE.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Body))}}}
		}
		item[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "Slate API", "version": "1",
			"description": "Bare-metal lifecycle appliance. Authenticate with POST /api/v1/auth/token, then send Authorization: Bearer <token>. x-roles lists the roles allowed on each operation."},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         map[string]any{"Problem": schemaOf(reflect.TypeOf(Problem{}))},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(time.Time{}) {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
		}
		return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	}
	return map[string]any{}
}

func (s *Server) openapi(c echo.Context) error {
	return c.JSON(http.StatusOK, s.OpenAPI())
}
