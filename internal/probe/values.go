package probe

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// marker is a string no application would make up: the probe puts one in
// every free-text field of the objects it creates, so that finding it in
// another tenant's answer proves a leak even when ids are not listed.
func marker(label string) string {
	b := make([]byte, markerHex/2)
	rand.Read(b)
	return markerPrefix(label) + hex.EncodeToString(b)
}

// markerHex is how many hexadecimal digits follow a marker's prefix.
const markerHex = 12

// minMarkerHex is how many of a marker's hexadecimal digits must be left
// in one cut to a field's maxLength for the probe to still look for it.
const minMarkerHex = 4

// markerPrefix is what each of label's markers starts with.
func markerPrefix(label string) string { return "probe-" + label + "-" }

// maxGenerated bounds what the generator does for one request: each
// schema it visits costs one (the separator before its value) and each
// byte of JSON it makes one more, so that no body it makes is larger
// than the bound. Depth alone does not bound a hostile document's
// schemas: a oneOf of eight references to itself is tried 8^12 times
// within maxSchemaDepth, arrays of arrays of eight items make 8^12
// values, a minLength of 1e12 asks for a terabyte and an example of a
// megabyte can be used many times over. Past the bound the operation is
// skipped with a reason (a recipe can supply the body).
const maxGenerated = 32 << 10

// generator makes request bodies and parameter values from schemas.
type generator struct {
	label string
	mark  func(string) // takes each marker it makes
	left  *int         // what is left of maxGenerated
	// marked puts a marker in every plain string, its example's place
	// included, and in optional plain strings too: an object made with
	// an example's text ("Buy milk") could not be told from any other in
	// another tenant's answer.
	marked bool
}

func newGenerator(label string, mark func(string), marked bool) generator {
	left := maxGenerated
	return generator{label: label, mark: mark, left: &left, marked: marked}
}

// spend takes n from what is left of the generator's bound, and reports
// whether there was that much.
func (g generator) spend(n int) bool {
	*g.left -= n
	return *g.left >= 0
}

// given is a value the document gives (an example, a default), paid for
// by its size.
func (g generator) given(v any) (any, bool) {
	b, err := json.Marshal(v)
	if err != nil || !g.spend(len(b)) {
		return nil, false
	}
	return v, true
}

// value makes a value that satisfies s as far as the probe can tell:
// examples, defaults and enums first, then the type's shape. Optional
// properties are left out, recursion stops at maxSchemaDepth, work and
// size at maxGenerated, and a schema it cannot satisfy yields ok=false so
// that the operation is skipped with a reason (a recipe can supply the
// body).
func (g generator) value(s *openapi3.SchemaRef, depth int) (v any, ok bool) {
	if depth > maxSchemaDepth || !g.spend(1) {
		return nil, false
	}
	if s == nil || s.Value == nil {
		return g.given(map[string]any{})
	}
	sc := s.Value
	if g.marked && plainString(sc) {
		return g.str(sc)
	}
	switch {
	case sc.Example != nil:
		return g.given(sc.Example)
	case len(sc.Examples) > 0:
		return g.given(sc.Examples[0])
	case sc.Default != nil:
		return g.given(sc.Default)
	case len(sc.Enum) > 0:
		return g.given(sc.Enum[0])
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
		if n > 8 || !g.spend(len("[]")) {
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
			return g.given(int64(n))
		}
		return g.given(n)
	case "boolean":
		return g.given(false)
	case "null":
		return g.given(nil)
	default:
		return g.str(sc)
	}
}

// object fills out with the required properties of sc.
func (g generator) object(sc *openapi3.Schema, out map[string]any, depth int) (any, bool) {
	if !g.spend(len("{}")) {
		return nil, false
	}
	for _, name := range sc.Required {
		if _, done := out[name]; done {
			continue
		}
		if !g.spend(len(name) + len(`"":,`)) {
			return nil, false
		}
		v, ok := g.value(sc.Properties[name], depth+1)
		if !ok {
			return nil, false
		}
		out[name] = v
	}
	if g.marked {
		for _, name := range slices.Sorted(maps.Keys(sc.Properties)) {
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

// newMarker makes a marker and hands it to g.mark.
func (g generator) newMarker() string {
	m := marker(g.label)
	if g.mark != nil {
		g.mark(m)
	}
	return m
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
		s = g.newMarker() + "@example.com"
	case "uri", "url":
		s = "https://example.com/" + g.newMarker()
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
		if sc.MinLength > maxGenerated {
			return nil, false
		}
		m := s
		if uint64(len(s)) < sc.MinLength {
			s += strings.Repeat("x", int(sc.MinLength)-len(s))
		}
		// A marker cut short is still looked for while it is too long
		// for any application to make up (its prefix and four digits);
		// one padded out is looked for as the marker it starts with.
		if len(m) >= len(markerPrefix(g.label))+minMarkerHex && g.mark != nil {
			g.mark(m)
		}
		return g.given(s)
	}
	if sc.MaxLength != nil && uint64(len(s)) > *sc.MaxLength {
		return nil, false
	}
	if uint64(len(s)) < sc.MinLength {
		if sc.MinLength > maxGenerated {
			return nil, false
		}
		s += strings.Repeat("x", int(sc.MinLength)-len(s))
	}
	return g.given(s)
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
	// Bytes, not runes: only ASCII letters and digits change, and every
	// other byte stays as it is, even one that is not UTF-8.
	r := []byte(id)
	alphabet := map[string][]byte{}
	for _, c := range r {
		k := class(rune(c))
		if k != "" && bytes.IndexByte(alphabet[k], c) < 0 {
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
		pool := alphabet[class(rune(r[i]))]
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
	// Too few characters to draw from ("a", "zz-zz"): the last letter or
	// digit becomes another of its class, and the length stays (an
	// application may answer an id of another length as malformed).
	full := map[string]string{"digit": "0123456789", "lower": "abcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
	for i := len(r) - 1; i >= 0; i-- {
		if k := class(rune(r[i])); k != "" {
			pool := strings.ReplaceAll(full[k], string(r[i]), "")
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(pool))))
			r[i] = pool[n.Int64()]
			return string(r)
		}
	}
	return id + "0" // no ASCII letter or digit to change
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
