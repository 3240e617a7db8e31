package authz

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// The fuzz targets below check the parsers of untrusted input: whatever the
// input, they return a result or an *errs.Error (Kind Invalid or TooLarge,
// with a Code), never panic and never hang.
//
//	go test ./internal/authz/ -run '^$' -fuzz '^FuzzParseStatement$' -fuzztime 20s

// statementSeeds are static policies and templates, good and bad.
var statementSeeds = []string{
	allowAll,
	`forbid(principal, action, resource);`,
	`permit(principal == User::"alice", action == Action::"view", resource in Folder::"f")
when { context.mfa == true && resource.owner == principal }
unless { principal.suspended };`,
	`@id("p1")
@advice("uses ?principal")
forbid(principal is User, action in [Action::"edit", Action::"delete"], resource is Doc in Folder::"f")
when { context has ip && ip(context.ip).isInRange(ip("10.0.0.0/8")) };`,
	"// principal == ?principal\npermit(principal, action, resource);",
	"// __S::\"p\"\npermit(principal, action, resource); // ?resource",
	`permit(principal, action, resource) when { context.s == "?principal" && context.t == "__S::\"p\"" };`,
	`permit(principal, action, resource) when { context.s like "*?resource*\\" };`,
	`permit(principal, action, resource) when { if context.a then [1, 2].contains(1) else {a: 1, "b c": [true]}.a == 1 };`,
	`permit(principal, action, resource) when { resource.name like "*.txt" && principal has dept && resource.hasTag("x") && resource.getTag("x") == "y" };`,
	`permit(principal, action, resource) when { decimal("1.5").lessThan(decimal("2.0")) && datetime("2024-01-01").offset(duration("1h")) > datetime("2023-01-01") };`,
	`permit(principal, action, resource) unless { context.x < 9223372036854775807 && -9223372036854775808 < 0 && 99999999999999999999 > 0 };`,
	`permit(principal == User::"ålice", action, resource) when { context.s == "grüß \u{1F600} \n\t\"" };`,
	"permit(\r\n principal,\r\n action,\r\n resource\r\n);",
	`/* a block comment */ permit(principal, action, resource);`,
	`permit(principal, action, resource) when { context.a__S == context.__Sa };`,

	// Templates.
	`permit(principal == ?principal, action, resource);`,
	`permit(principal, action, resource in ?resource);`,
	`permit(principal in ?principal, action == Action::"view", resource == ?resource) when { context.mfa };`,
	`forbid(principal is User in ?principal, action, resource is Doc in ?resource) unless { context.ok };`,
	`permit(principal==?principal,action,resource==?resource);`,
	"// ?resource\npermit(principal == ?principal, action, resource) when { context.s == \"?resource\" };",

	// Slots in the wrong place.
	`permit(principal == ?resource, action, resource);`,
	`permit(principal, action, resource == ?principal);`,
	`permit(principal, action == ?principal, resource);`,
	`permit(principal, action, resource) when { principal in ?principal };`,
	`permit(principal == ?principal, action, resource) when { resource.owner == ?principal };`,
	`permit(principal == ?principal, action, resource in ?principal);`,
	`permit(principal == ?principal, action, resource) unless { resource == ?resource };`,
	`permit(principal == App::?principal, action, resource);`,
	`permit(principal == ?user, action, resource);`,
	`permit(principal, action, resource) when { ? };`,
	`permit(principal == __S::"p"  , action, resource);`,
	`permit(principal == ?principal, action, resource) when { principal == __S::"p" };`,

	// Limits and broken text.
	`permit(principal, action, resource) when { ` + strings.Repeat("(", 10000) + "true" + strings.Repeat(")", 10000) + ` };`,
	`permit(principal, action, resource) when { ` + strings.Repeat("(", maxNesting-1) + "true" + strings.Repeat(")", maxNesting-1) + ` };`,
	`permit(principal, action, resource) when { ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + ` };`,
	`permit(principal, action, resource) when { ` + strings.Repeat("!", 1000) + `true };`,
	`permit(principal, action, resource) when { ` + strings.Repeat("-", 1000) + `1 == 1 };`,
	`permit(principal, action, resource) when { !!!!true && - - - -1 == 1 && 1 != 2 };`,
	`permit(principal, action, resource) when { context` + strings.Repeat(".a", 1000) + ` };`,
	`permit(principal, action, resource) when { ` + strings.Repeat("if true then ", 500) + "true" + strings.Repeat(" else false", 500) + ` };`,
	`permit(principal, action, resource) when { "abc };`,
	`permit(principal, action, resource) when { "abc\" };`,
	`permit(principal, action, resource) when { "\q" };`,
	"permit(principal, action, resource) when { \x00 };",
	"permit(principal, action, resource) when { \"\xff\xfe\" };",
	"permit(principal, action, resource) when { context.\xc3 };",
	`permit(principal, action, resource)`,
	allowAll + allowAll,
	"// only a comment",
	"",
	" \n\t",
	`permit(principal == ?principal, action, resource) when { 1 + };`,
	"permit(\n principal is User in ?principal, action,\n resource == ?resource) when { context.ok } unless { resource.x ==== 1 };",
}

// entitySeeds are request entity lists, good and bad.
var entitySeeds = []string{
	``,
	`null`,
	`[]`,
	`{}`,
	`"x"`,
	`[{"uid":{"type":"User","id":"alice"},"parents":[{"type":"Group","id":"g"}],"attrs":{"age":42}}]`,
	`[{"uid":{"type":"App::User","id":"alice"},"parents":[{"__entity":{"type":"App::Group","id":"g"}}],
		"attrs":{"name":"Alice","tags":["a","b"],"mgr":{"__entity":{"type":"App::User","id":"bob"}},"ip":{"__extn":{"fn":"ip","arg":"10.0.0.1"}}},
		"tags":{"dept":"eng"}},
	  {"uid":{"__entity":{"type":"App::Group","id":"g"}},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{},"extra":1,"more":{"x":[1]}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[{"type":"User","id":"a"}],"attrs":{}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[{"type":"User","id":"b"}],"attrs":{}},
	  {"uid":{"type":"User","id":"b"},"parents":[{"type":"User","id":"a"}],"attrs":{}}]`,
	`[{"uid":{"type":"G","id":"a"},"parents":[{"type":"G","id":"b"}],"attrs":{}},
	  {"uid":{"type":"G","id":"b"},"parents":[{"type":"G","id":"c"}],"attrs":{}},
	  {"uid":{"type":"G","id":"c"},"parents":[{"type":"G","id":"a"}],"attrs":{}}]`,
	`[{"uid":{"type":"G","id":"a"},"parents":[{"type":"G","id":"b"},{"type":"G","id":"c"}],"attrs":{}},
	  {"uid":{"type":"G","id":"b"},"parents":[{"type":"G","id":"d"}],"attrs":{}},
	  {"uid":{"type":"G","id":"c"},"parents":[{"type":"G","id":"d"}],"attrs":{}},
	  {"uid":{"type":"G","id":"d"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{}},{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"__S","id":"p"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"if","id":"p"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"1User","id":"p"},"parents":[],"attrs":{}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[]}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{},"tags":null}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}]`,
	`[{"uid":{"type":"User","id":"a"},"parents":[],"attrs":{"x":` + strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200) + `}}]`,
	"[{\"uid\":{\"type\":\"User\",\"id\":\"\xff\x00\"},\"parents\":[],\"attrs\":{}}]",
	`[{"uid":`,
	`[] []`,
}

// contextSeeds are request contexts, good and bad.
var contextSeeds = []string{
	``,
	`null`,
	`{}`,
	`[]`,
	`"x"`,
	`1`,
	`{"mfa":true,"n":1,"s":"x","set":[1,2],"rec":{"a":{"b":[{}]}}}`,
	`{"u":{"__entity":{"type":"User","id":"a"}},"ip":{"__extn":{"fn":"ip","arg":"10.0.0.1"}},"d":{"__extn":{"fn":"decimal","arg":"1.5"}}}`,
	`{"s":"` + strings.Repeat("[{", 100) + `"}`,
	`{"s":"\"[[[[\\"}`,
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	strings.Repeat(`{"a":`, maxContextNesting) + "1" + strings.Repeat("}", maxContextNesting),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	`{"a":}`,
	`{"a":"b`,
	`{"a":null}`,
	`{"a":1,"a":2}`,
	"{\"a\":\"\xff\x00\"}",
	`{"a":1} {}`,
}

// schemaSeeds are schemas, as Cedar text (json false) or JSON.
var schemaSeeds = []struct {
	text string
	json bool
}{
	{`namespace App {
  entity User in [Group] { name: String, age?: Long, tags: Set<String> };
  entity Group;
  entity Doc in [Folder] { owner: User, private: Bool };
  entity Folder;
  type Addr = { street: String, zip?: String };
  action view, edit appliesTo { principal: [User], resource: [Doc, Folder], context: { mfa: Bool, addr?: Addr } };
  action "delete" in [edit];
}`, false},
	{`entity User; action view appliesTo { principal: User, resource: User };`, false},
	{`entity E tags String; entity F enum ["a", "b"];`, false},
	{`type A = B; type B = A; entity E { a: A };`, false},
	{`type A = A;`, false},
	{`entity A in [A]; entity B in [C]; entity C in [B];`, false},
	{`action a in [b]; action b in [a];`, false},
	{`action a in [a];`, false},
	{`entity E { x: ` + strings.Repeat("Set<", 1000) + "Long" + strings.Repeat(">", 1000) + ` };`, false},
	{`entity E { x: ` + strings.Repeat("{ a: ", 1000) + "Long" + strings.Repeat(" }", 1000) + ` };`, false},
	{`namespace __cedar { entity E; }`, false},
	{`entity User { name: Strin };`, false},
	{`entity User {`, false},
	{"entity \x00User;", false},
	{"entity User { \"\xff\": Long };", false},
	{`// comment only`, false},
	{``, false},
	{`{"App":{"entityTypes":{"User":{"memberOfTypes":["Group"],"shape":{"type":"Record","attributes":{"name":{"type":"String"},"age":{"type":"Long","required":false}}}},"Group":{}},
	  "actions":{"view":{"appliesTo":{"principalTypes":["User"],"resourceTypes":["User"],"context":{"type":"Record","attributes":{"mfa":{"type":"Boolean"}}}}}},
	  "commonTypes":{"Addr":{"type":"Record","attributes":{"street":{"type":"String"}}}}}}`, true},
	{`{"":{"entityTypes":{},"actions":{}}}`, true},
	{`{"":{"commonTypes":{"A":{"type":"B"},"B":{"type":"A"}},"entityTypes":{},"actions":{}}}`, true},
	{`{"":{"entityTypes":{"E":{"shape":{"type":"Record","attributes":{"x":` + strings.Repeat(`{"type":"Set","element":`, 1000) + `{"type":"Long"}` + strings.Repeat("}", 1000) + `}}}},"actions":{}}}`, true},
	{`{"":{"entityTypes":{"E":{"memberOfTypes":["E"]}},"actions":{"a":{"memberOf":[{"id":"a"}]}}}}`, true},
	{`{"":{"entityTypes":null,"actions":null}}`, true},
	{`{"":{"entityTypes":{"E":{"unknown":1}},"actions":{}}}`, true},
	{`[]`, true},
	{`{`, true},
	{`null`, true},
}

// FuzzParseStatement checks parseStatement and scanStatement: errors are
// *errs.Error; a template has each of its slots once, in its own scope; a
// static policy has none; the lexer agrees with cedar-go on strings and
// comments; no accepted statement names the reserved slot
// type outside a slot scope; a static policy renders to text that parses
// back to the same policy, and a template does once its slots are restored.
func FuzzParseStatement(f *testing.F) {
	for _, s := range statementSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, text string, template bool) {
		if src, slots, err := scanStatement(text); err == nil {
			checkScan(t, text, src, slots)
		} else if msg := err.Error(); strings.Contains(msg, "unterminated string") || strings.Contains(msg, "unknown slot") {
			// The lexer must see strings and comments as cedar-go does:
			// text cedar-go parses has every string closed and no '?'
			// outside strings and comments.
			if _, cerr := cedar.NewPolicyListFromBytes("", []byte(text)); cerr == nil {
				t.Fatalf("scanStatement(%q): %v, but cedar-go parses it", text, err)
			}
		}
		p, err := parseStatement("statement", text, template)
		if err != nil {
			if e := requireErr(t, err); e.Field != "statement" {
				t.Fatalf("error %v names field %q", err, e.Field)
			}
			return
		}
		if p.ast == nil {
			t.Fatal("no AST")
		}
		checkSlots(t, p, template)
		if template {
			if r := reservedNames(p.unslotted(), false); len(r) > 0 {
				t.Fatalf("template %q names %v outside its slot scopes", text, r)
			}
		} else if r := reservedNames(p.ast, false); len(r) > 0 {
			t.Fatalf("policy %q names %v", text, r)
		}

		out := render(p.ast)
		if template {
			// Put the slots back where the sentinels are (a sentinel
			// cannot occur in a rendered string literal: its quotes
			// would be escaped).
			out = strings.NewReplacer(`__S::"p"`, string(PrincipalSlot), `__S::"r"`, string(ResourceSlot)).Replace(out)
		}
		q, err := parseStatement("statement", out, template)
		if err != nil {
			if e, ok := errs.As(err); ok && e.Code == "policy_too_large" && len(out) > MaxStatementBytes {
				return // rendering can add spaces
			}
			t.Fatalf("%q parsed, but its rendering %q does not: %v", text, out, err)
		}
		if !reflect.DeepEqual(q.slots, p.slots) {
			t.Fatalf("%q has slots %v, its rendering %q has %v", text, p.slots, out, q.slots)
		}
		if again := render(q.ast); again != render(p.ast) {
			t.Fatalf("rendering is not stable:\n%s\n%s", render(p.ast), again)
		}
	})
}

// checkScan checks what scanStatement returns for text: the same length,
// newlines and (outside slots) bytes, and one sentinel for each slot.
func checkScan(t *testing.T, text, src string, slots []Slot) {
	t.Helper()
	if len(src) != len(text) {
		t.Fatalf("scanStatement changed the length of %q: %q", text, src)
	}
	var n int
	for i := 0; i < len(text); i++ {
		if text[i] == src[i] {
			continue
		}
		var s Slot
		switch {
		case strings.HasPrefix(text[i:], string(PrincipalSlot)) && strings.HasPrefix(src[i:], slotText[PrincipalSlot]):
			s = PrincipalSlot
		case strings.HasPrefix(text[i:], string(ResourceSlot)) && strings.HasPrefix(src[i:], slotText[ResourceSlot]):
			s = ResourceSlot
		default:
			t.Fatalf("scanStatement changed byte %d of %q: %q", i, text, src)
		}
		if n >= len(slots) || slots[n] != s {
			t.Fatalf("scanStatement of %q: slots %v, but %s at byte %d", text, slots, s, i)
		}
		n++
		i += len(s) - 1
	}
	// Every replacement starts at a changed byte ('?' became '_'), so
	// the loop above saw each one.
	if n != len(slots) {
		t.Fatalf("scanStatement of %q: slots %v, %d replaced", text, slots, n)
	}
}

// checkSlots checks the slots of a parsed statement against its scopes.
func checkSlots(t *testing.T, p parsed, template bool) {
	t.Helper()
	if !template {
		if len(p.slots) != 0 {
			t.Fatalf("static policy with slots %v", p.slots)
		}
		return
	}
	if len(p.slots) == 0 || len(p.slots) > 2 {
		t.Fatalf("template with slots %v", p.slots)
	}
	seen := map[Slot]bool{}
	for _, s := range p.slots {
		if seen[s] || (s != PrincipalSlot && s != ResourceSlot) {
			t.Fatalf("template with slots %v", p.slots)
		}
		seen[s] = true
	}
	if got := scopeEntity(p.ast.Principal) == slotUID[PrincipalSlot]; got != seen[PrincipalSlot] {
		t.Fatalf("slots %v, principal scope %#v", p.slots, p.ast.Principal)
	}
	if got := scopeEntity(p.ast.Resource) == slotUID[ResourceSlot]; got != seen[ResourceSlot] {
		t.Fatalf("slots %v, resource scope %#v", p.slots, p.ast.Resource)
	}
}

// FuzzLink parses a template and links it with fuzzed slot values (which
// pass EntityRef.check, as every caller's do): errors are *errs.Error that
// match the template's slots; a linked policy has the values in its scopes
// and no sentinel left, and the template is unchanged.
func FuzzLink(f *testing.F) {
	for _, s := range statementSeeds {
		f.Add(s, "User", "alice", "Doc", "d1", true, true)
		f.Add(s, "App::Group", `"?principal" __S::"p"`, "Folder", "", true, false)
		f.Add(s, "__S", "p", "__S", "r", false, true)
	}
	f.Fuzz(func(t *testing.T, text, pType, pID, rType, rID string, withP, withR bool) {
		tp, err := parseStatement("statement", text, true)
		if err != nil {
			requireErr(t, err)
			return
		}
		var principal, resource *EntityRef
		if withP {
			principal = &EntityRef{Type: pType, ID: pID}
			if err := principal.check("principal", true); err != nil {
				requireErr(t, err, "invalid_entity")
				return
			}
		}
		if withR {
			resource = &EntityRef{Type: rType, ID: rID}
			if err := resource.check("resource", true); err != nil {
				requireErr(t, err, "invalid_entity")
				return
			}
		}
		before := *tp.ast
		p, err := link(tp, principal, resource)
		if !reflect.DeepEqual(*tp.ast, before) {
			t.Fatalf("link changed the template %q", text)
		}
		missing := (tp.has(PrincipalSlot) && principal == nil) || (tp.has(ResourceSlot) && resource == nil)
		unexpected := (!tp.has(PrincipalSlot) && principal != nil) || (!tp.has(ResourceSlot) && resource != nil)
		if err != nil {
			e := requireErr(t, err, "missing_slot_value", "unexpected_slot_value")
			if e.Kind != errs.Invalid || e.Code == "missing_slot_value" && !missing || e.Code == "unexpected_slot_value" && (missing || !unexpected) {
				t.Fatalf("link with slots %v, principal %v, resource %v: %v", tp.slots, principal, resource, err)
			}
			return
		}
		if missing || unexpected {
			t.Fatalf("link with slots %v, principal %v, resource %v succeeded", tp.slots, principal, resource)
		}
		checkLinkedScope(t, tp.ast.Principal, p.Principal, principal)
		checkLinkedScope(t, tp.ast.Resource, p.Resource, resource)
		if scopeEntity(p.Principal).Type == slotType || scopeEntity(p.Resource).Type == slotType {
			t.Fatalf("linked policy has a sentinel in its scope: %s", render(p))
		}
		if r := reservedNames(p, true); len(r) > 0 {
			t.Fatalf("linked policy names %v: %s", r, render(p))
		}
		if !reflect.DeepEqual(p.Conditions, tp.ast.Conditions) || p.Effect != tp.ast.Effect ||
			!reflect.DeepEqual(p.Action, tp.ast.Action) || !reflect.DeepEqual(p.Annotations, tp.ast.Annotations) {
			t.Fatalf("link changed more than the scopes: %s", render(p))
		}
		if _, err := compile(p).MarshalJSON(); err != nil {
			t.Fatalf("linked policy does not marshal: %v", err)
		}
	})
}

// checkLinkedScope checks a linked scope: the template's, with the slot
// value in place of the sentinel.
func checkLinkedScope[T ast.IsScopeNode](t *testing.T, template, linked T, value *EntityRef) {
	t.Helper()
	if reflect.TypeOf(template) != reflect.TypeOf(linked) {
		t.Fatalf("linked scope %#v, template scope %#v", linked, template)
	}
	if scopeEntity(template).Type != slotType {
		if !reflect.DeepEqual(template, linked) {
			t.Fatalf("linked scope %#v, template scope %#v", linked, template)
		}
		return
	}
	if scopeEntity(linked) != value.UID() {
		t.Fatalf("linked scope %#v, value %v", linked, value)
	}
	if want := withScopeEntity(template, value.UID()); !reflect.DeepEqual(ast.IsScopeNode(linked), want) {
		t.Fatalf("linked scope %#v, want %#v", linked, want)
	}
}

// FuzzParseEntities checks parseEntities: errors are *errs.Error; entities
// it returns have no parent cycle (by findCycle and by a naive search) and
// valid types; entities in Cedar's format without a cycle are accepted.
func FuzzParseEntities(f *testing.F) {
	for _, s := range entitySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		em, err := parseEntities("entities", raw)
		var ref types.EntityMap
		refErr := json.Unmarshal(raw, &ref)
		if err != nil {
			e := requireErr(t, err, "invalid_entities", "invalid_entity", "entities_cycle")
			if e.Kind != errs.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			if e.Code == "entities_cycle" && (refErr != nil || !naiveCycle(ref)) {
				t.Fatalf("entities_cycle for %q, which has no cycle", raw)
			}
			if len(raw) > 0 && raw[0] == '[' && refErr == nil && len(ref) <= MaxEntities && !naiveCycle(ref) && validTypes(ref) {
				t.Fatalf("good entities %q refused: %v", raw, err)
			}
			return
		}
		if em == nil {
			t.Fatal("nil map")
		}
		if len(em) > MaxEntities {
			t.Fatalf("%d entities", len(em))
		}
		if uid, ok := findCycle(em); ok {
			t.Fatalf("entities with a cycle through %v accepted", uid)
		}
		if naiveCycle(em) {
			t.Fatalf("entities with a cycle accepted, findCycle missed it: %q", raw)
		}
		for k, v := range em {
			if k != v.UID {
				t.Fatalf("entity %v under key %v", v.UID, k)
			}
			if err := (&EntityRef{Type: string(k.Type), ID: string(k.ID)}).check("entities", false); err != nil {
				t.Fatalf("entity %v accepted: %v", k, err)
			}
		}
	})
}

// naiveCycle reports whether some entity is its own ancestor, by a search
// from each entity (quadratic, for small inputs).
func naiveCycle(em types.EntityMap) bool {
	for start := range em {
		seen := map[types.EntityUID]bool{}
		queue := em[start].Parents.Slice()
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			if u == start {
				return true
			}
			if seen[u] {
				continue
			}
			seen[u] = true
			if e, ok := em[u]; ok {
				queue = append(queue, e.Parents.Slice()...)
			}
		}
	}
	return false
}

func validTypes(em types.EntityMap) bool {
	for k := range em {
		if (&EntityRef{Type: string(k.Type), ID: string(k.ID)}).check("entities", false) != nil {
			return false
		}
	}
	return true
}

// FuzzParseContext checks parseContext: errors are *errs.Error; a record
// it returns nests at most maxContextNesting deep; depth agrees with a
// JSON tokenizer on valid JSON.
func FuzzParseContext(f *testing.F) {
	for _, s := range contextSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if json.Valid(raw) {
			if d, want := depth(raw), tokenDepth(raw); d != want {
				t.Fatalf("depth(%q) = %d, want %d", raw, d, want)
			}
		}
		rec, err := parseContext("context", raw)
		if err != nil {
			if e := requireErr(t, err, "invalid_context"); e.Kind != errs.Invalid || e.Field != "context" {
				t.Fatalf("error %v: kind %d, field %q", err, e.Kind, e.Field)
			}
			return
		}
		if d := valueDepth(rec); d > maxContextNesting {
			t.Fatalf("context %q nests %d deep", raw, d)
		}
	})
}

// tokenDepth is the nesting depth of valid JSON, by encoding/json's tokenizer.
func tokenDepth(raw []byte) int {
	dec := json.NewDecoder(bytes.NewReader(raw))
	d, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

// valueDepth is the nesting depth of records and sets in v.
func valueDepth(v types.Value) int {
	var d int
	switch v := v.(type) {
	case types.Record:
		for _, x := range v.All() {
			d = max(d, valueDepth(x))
		}
	case types.Set:
		for x := range v.All() {
			d = max(d, valueDepth(x))
		}
	default:
		return 0
	}
	return d + 1
}

// FuzzSchema checks newValidator with both formats: errors are
// *errs.Error; a schema it accepts validates a policy without panicking.
func FuzzSchema(f *testing.F) {
	for _, s := range schemaSeeds {
		f.Add(s.text, s.json)
		f.Add(s.text, !s.json)
	}
	probe, err := parseStatement("statement", `permit(principal == App::User::"a", action == App::Action::"view", resource)
		when { principal.name == "a" && context.mfa && resource in App::Folder::"f" };`, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, isJSON bool) {
		format := FormatCedar
		if isJSON {
			format = FormatJSON
		}
		v, err := newValidator(format, text)
		if err != nil {
			if e := requireErr(t, err, "invalid_schema", "schema_too_large"); e.Field != "schema" {
				t.Fatalf("error %v names field %q", err, e.Field)
			}
			return
		}
		if v == nil {
			t.Fatal("nil validator")
		}
		if err := validatePolicy(v, "statement", "the policy", probe.ast); err != nil {
			requireErr(t, err, "schema_violation")
		}
	})
}
