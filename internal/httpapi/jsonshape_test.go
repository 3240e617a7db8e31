package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Helpers that see a Go type as encoding/json does, for the tests that
// hold the API's bodies (package sdk/api), the services' types and
// openapi.json to one another.

// jsonField is a field of a struct as encoding/json sees it.
type jsonField struct {
	Name string // its JSON key
	// Path is how a decode error names it: the JSON keys and the names of
	// the embedded structs on the way ("IdPSettings.link_existing_by_email").
	Path      string
	Type      reflect.Type
	OmitEmpty bool // omitempty or omitzero
}

// jsonFields lists the fields of struct type t in the order encoding/json
// writes them, the fields of embedded structs in their place.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for _, sub := range jsonFields(ft) {
					sub.Path = ft.Name() + "." + sub.Path
					out = append(out, sub)
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		out = append(out, jsonField{Name: name, Path: name, Type: f.Type, OmitEmpty: omit})
	}
	return out
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	timeType        = reflect.TypeFor[time.Time]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// kindOf is what a value of type t is in JSON: string, integer, number,
// boolean, array, object, or any (a json.RawMessage). A type that decodes
// itself is "custom <type>".
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == rawMessageType:
		return "any"
	case t == timeType:
		return "string"
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return "custom " + t.String()
	}
	switch t.Kind() {
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
		if t.Elem().Kind() == reflect.Uint8 {
			return "string" // base64
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.Kind().String()
}

// decodeDiff lists the differences between how encoding/json decodes a
// body into a and into b: field names, the paths a decode error gives,
// JSON kinds and pointers, recursively. Tags' options (omitempty) do not
// matter to a decoder and are not compared. except names fields of a (by
// path, "grant.token") that b may lack.
func decodeDiff(path string, a, b reflect.Type, except map[string]bool) []string {
	var diffs []string
	if (a.Kind() == reflect.Pointer) != (b.Kind() == reflect.Pointer) {
		diffs = append(diffs, fmt.Sprintf("%s: %s and %s differ in pointer-ness", path, a, b))
	}
	for a.Kind() == reflect.Pointer {
		a = a.Elem()
	}
	for b.Kind() == reflect.Pointer {
		b = b.Elem()
	}
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb {
		return append(diffs, fmt.Sprintf("%s: %s (%s) and %s (%s)", path, ka, a, kb, b))
	}
	switch {
	case a == rawMessageType || a == timeType || strings.HasPrefix(ka, "custom"):
		return diffs
	case a.Kind() == reflect.Slice || a.Kind() == reflect.Array || a.Kind() == reflect.Map:
		if ka == "string" { // []byte
			return diffs
		}
		return append(diffs, decodeDiff(path+"[]", a.Elem(), b.Elem(), except)...)
	case a.Kind() != reflect.Struct:
		return diffs
	}
	fa, fb := map[string]jsonField{}, map[string]jsonField{}
	for _, f := range jsonFields(a) {
		fa[f.Name] = f
	}
	for _, f := range jsonFields(b) {
		fb[f.Name] = f
	}
	for name, f := range fa {
		at := strings.TrimPrefix(path+"."+name, ".")
		g, ok := fb[name]
		if !ok {
			if !except[at] {
				diffs = append(diffs, fmt.Sprintf("%s: in %s, not in %s", at, a, b))
			}
			continue
		}
		if f.Path != g.Path {
			diffs = append(diffs, fmt.Sprintf("%s: a decode error names it %q in %s, %q in %s", at, f.Path, a, g.Path, b))
		}
		diffs = append(diffs, decodeDiff(at, f.Type, g.Type, except)...)
	}
	for name := range fb {
		if _, ok := fa[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: in %s, not in %s", strings.TrimPrefix(path+"."+name, "."), b, a))
		}
	}
	return diffs
}

// Modes of fill.
const (
	zeroValue   = iota // every field zero: nil slices, maps and pointers
	emptyValue         // slices and maps empty but not nil, pointers to empty values
	filledValue        // every field set, slices and maps with one element
)

// fill sets v and everything under it as mode says; n makes each filled
// value differ from the others.
func fill(v reflect.Value, mode int, n *int) {
	if mode == zeroValue {
		return
	}
	*n++
	t := v.Type()
	switch {
	case t == rawMessageType:
		if mode == filledValue {
			v.SetBytes([]byte(fmt.Sprintf(`{"k":%d}`, *n)))
		}
		return // an empty RawMessage is not JSON
	case t == timeType:
		if mode == filledValue {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n, time.UTC)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(t.Elem()))
		fill(v.Elem(), mode, n)
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				fill(v.Field(i), mode, n)
			}
		}
	case reflect.Slice:
		if mode == emptyValue {
			v.Set(reflect.MakeSlice(t, 0, 0))
			return
		}
		v.Set(reflect.MakeSlice(t, 1, 1))
		fill(v.Index(0), mode, n)
	case reflect.Map:
		v.Set(reflect.MakeMap(t))
		if mode == filledValue {
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			fill(k, mode, n)
			fill(e, mode, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if mode == filledValue {
			v.SetString(fmt.Sprintf("s%d", *n))
		}
	case reflect.Bool:
		v.SetBool(mode == filledValue)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if mode == filledValue {
			v.SetInt(int64(*n))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if mode == filledValue {
			v.SetUint(uint64(*n))
		}
	case reflect.Float32, reflect.Float64:
		if mode == filledValue {
			v.SetFloat(float64(*n) + 0.5)
		}
	}
}
