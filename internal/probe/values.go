package probe

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// marker is a string no application would make up: the probe puts one in
// every free-text field of the objects it creates, so that finding it in
// another tenant's answer proves a leak even when ids are not listed.
func marker(label string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "probe-" + label + "-" + hex.EncodeToString(b)
}

// generator makes request bodies and parameter values from schemas.
type generator struct {
	label   string
	markers *[]string // where the markers it makes are collected
	// marked puts a marker in every plain string, its example's place
	// included, and in optional plain strings too: an object made with
	// an example's text ("Buy milk") could not be told from any other in
	// another tenant's answer.
	marked bool
}

// value makes a value that satisfies s as far as the probe can tell:
// examples, defaults and enums first, then the type's shape. Optional
// properties are left out, recursion stops at maxSchemaDepth, and a
// schema it cannot satisfy yields ok=false so that the operation is
// skipped with a reason (a recipe can supply the body).
func (g generator) value(s *openapi3.SchemaRef, depth int) (v any, ok bool) {
	if s == nil || s.Value == nil {
		return map[string]any{}, true
	}
	if depth > maxSchemaDepth {
		return nil, false
	}
	sc := s.Value
	if g.marked && plainString(sc) {
		return g.str(sc)
	}
	switch {
	case sc.Example != nil:
		return sc.Example, true
	case len(sc.Examples) > 0:
		return sc.Examples[0], true
	case sc.Default != nil:
		return sc.Default, true
	case len(sc.Enum) > 0:
		return sc.Enum[0], true
	}
	if len(sc.AllOf) > 0 {
		out := map[string]any{}
		for _, part := range sc.AllOf {
			v, ok := g.value(part, depth+1)
			if !ok {
				return nil, false
			}
			m, isObj := v.(map[string]any)
			if !isObj {
				return v, true
			}
			for k, x := range m {
				out[k] = x
			}
		}
		return g.object(sc, out, depth)
	}
	for _, alts := range []openapi3.SchemaRefs{sc.OneOf, sc.AnyOf} {
		for _, alt := range alts {
			if v, ok := g.value(alt, depth+1); ok {
				return v, true
			}
		}
		if len(alts) > 0 {
			return nil, false
		}
	}
	switch typeOf(sc) {
	case "object":
		return g.object(sc, map[string]any{}, depth)
	case "array":
		n := max(int(sc.MinItems), 1)
		if n > 8 {
			return nil, false
		}
		out := make([]any, 0, n)
		for range n {
			v, ok := g.value(sc.Items, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	case "integer", "number":
		n := 1.0
		if sc.Min != nil && *sc.Min > n {
			n = *sc.Min
			if sc.ExclusiveMin.Bool != nil && *sc.ExclusiveMin.Bool {
				n++
			}
		}
		if sc.ExclusiveMin.Value != nil && *sc.ExclusiveMin.Value >= n {
			n = *sc.ExclusiveMin.Value + 1
		}
		if sc.Max != nil && n > *sc.Max {
			n = *sc.Max
		}
		if typeOf(sc) == "integer" {
			return int64(n), true
		}
		return n, true
	case "boolean":
		return false, true
	case "null":
		return nil, true
	default:
		return g.str(sc)
	}
}

// object fills out with the required properties of sc.
func (g generator) object(sc *openapi3.Schema, out map[string]any, depth int) (any, bool) {
	for _, name := range sc.Required {
		if _, done := out[name]; done {
			continue
		}
		v, ok := g.value(sc.Properties[name], depth+1)
		if !ok {
			return nil, false
		}
		out[name] = v
	}
	if g.marked {
		for _, name := range sortedKeys(sc.Properties) {
			p := sc.Properties[name]
			if _, done := out[name]; done || p == nil || p.Value == nil || !plainString(p.Value) || p.Value.ReadOnly {
				continue
			}
			if v, ok := g.str(p.Value); ok {
				out[name] = v
			}
		}
	}
	return out, true
}

// plainString is a string schema any text satisfies, as far as the
// document says: no format, pattern or enumeration.
func plainString(sc *openapi3.Schema) bool {
	return typeOf(sc) == "string" && sc.Format == "" && sc.Pattern == "" && len(sc.Enum) == 0
}

// typeOf is the schema's one type, or "" when it names none or several.
func typeOf(sc *openapi3.Schema) string {
	if sc.Type == nil {
		if len(sc.Properties) > 0 {
			return "object"
		}
		return ""
	}
	types := sc.Type.Slice()
	for _, t := range types {
		if t != "null" {
			return t
		}
	}
	if len(types) > 0 {
		return types[0]
	}
	return ""
}

// str makes a string for sc: a marker where any text will do, a value of
// the format where one is named, and nothing (ok=false) for a pattern the
// probe cannot know how to satisfy.
func (g generator) str(sc *openapi3.Schema) (any, bool) {
	var s string
	switch sc.Format {
	case "date-time":
		s = "2026-01-02T03:04:05Z"
	case "date":
		s = "2026-01-02"
	case "email":
		s = g.mark(marker(g.label)) + "@example.com"
	case "uri", "url":
		s = "https://example.com/" + g.mark(marker(g.label))
	case "uuid":
		b := make([]byte, 16)
		rand.Read(b)
		b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
		h := hex.EncodeToString(b)
		s = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	case "byte":
		s = "cHJvYmU="
	case "ipv4":
		s = "192.0.2.1"
	case "ipv6":
		s = "2001:db8::1"
	default:
		if sc.Pattern != "" {
			return nil, false
		}
		s = marker(g.label)
		if sc.MaxLength != nil && uint64(len(s)) > *sc.MaxLength {
			if *sc.MaxLength < 8 {
				return nil, false
			}
			s = s[:*sc.MaxLength]
		}
		for uint64(len(s)) < sc.MinLength {
			s += "x"
		}
		// A marker cut short is still looked for while it is too long
		// for any application to make up ("probe-a-" and four more).
		if len(s) >= 12 {
			g.mark(s)
		}
		return s, true
	}
	if sc.MaxLength != nil && uint64(len(s)) > *sc.MaxLength {
		return nil, false
	}
	for uint64(len(s)) < sc.MinLength {
		s += "x"
	}
	return s, true
}

// mark collects a marker the generator put into a value.
func (g generator) mark(m string) string {
	if g.markers != nil {
		*g.markers = append(*g.markers, m)
	}
	return m
}

// absentID makes an id of the same shape as id that names no object: the
// same length, prefix and separators, with its last characters changed
// within the kinds of character id already uses. Comparing the answer for
// it with the answer for another tenant's id is how an existence oracle
// shows: a careful application cannot tell them apart.
func absentID(id string) string {
	if id == "" {
		return "probe-absent"
	}
	if isDigits(id) {
		return absentNumber(id)
	}
	r := []rune(id)
	alphabet := map[string][]rune{}
	for _, c := range r {
		k := class(c)
		if k != "" && !strings.ContainsRune(string(alphabet[k]), c) {
			alphabet[k] = append(alphabet[k], c)
		}
	}
	// Each changed character is drawn from the characters of its class
	// the id itself uses, never from outside them: an id alphabet such as
	// base32's leaves out 0, 1, 8 and 9, and an id with a character it
	// never uses would be refused as malformed before it is looked up,
	// which is an answer of its own and no evidence of an oracle.
	changed := 0
	for i := len(r) - 1; i >= 0 && changed < min(6, max(1, len(r)/2)); i-- {
		pool := alphabet[class(r[i])]
		if len(pool) < 2 {
			continue
		}
		for {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(pool))))
			if c := pool[n.Int64()]; c != r[i] {
				r[i] = c
				break
			}
		}
		changed++
	}
	if changed > 0 {
		return string(r)
	}
	// Too few characters to draw from ("a", "x-1"): the last letter or
	// digit becomes another of its class.
	full := map[string]string{"digit": "0123456789", "lower": "abcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
	for i := len(r) - 1; i >= 0; i-- {
		if k := class(r[i]); k != "" {
			pool := strings.ReplaceAll(full[k], string(r[i]), "")
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(pool))))
			r[i] = rune(pool[n.Int64()])
			return string(r)
		}
	}
	return id + "0"
}

// absentNumber is absentID for an id of digits. Sequential ids are
// small, and a column for them is often 32 bits wide, so that a larger
// number is refused as malformed (a 400, not the 404 a missing object
// gets): an id that fits in 32 bits is taken, from a range no sequence
// of a test deployment reaches (2,000,000,000 to 2,147,483,647). An id
// longer than that (a snowflake id) or zero-padded keeps its length, led
// by a 9.
func absentNumber(id string) string {
	if len(id) <= 10 && (id[0] != '0' || len(id) == 1) {
		n, _ := rand.Int(rand.Reader, big.NewInt(147_483_647))
		return fmt.Sprint(2_000_000_000 + n.Int64())
	}
	b := []byte(id)
	b[0] = '9'
	for i := 1; i < len(b); i++ {
		n, _ := rand.Int(rand.Reader, big.NewInt(10))
		b[i] = byte('0' + n.Int64())
	}
	return string(b)
}

func class(c rune) string {
	switch {
	case c >= '0' && c <= '9':
		return "digit"
	case c >= 'a' && c <= 'z':
		return "lower"
	case c >= 'A' && c <= 'Z':
		return "upper"
	}
	return ""
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) > 0 && len(s) < 19
}
