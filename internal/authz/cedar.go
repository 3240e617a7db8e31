package authz

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	cast "github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// Limits on policy text, checked before the Cedar parser sees it.
const (
	MaxStatementBytes = 32 << 10 // one policy or template
	maxNesting        = 64       // depth of (), [] and {} in one statement
	maxUnaryRun       = 4        // Cedar's grammar allows at most four ! or - in a row
)

// Slot is a template placeholder.
type Slot string

// The two slots Cedar templates may use.
const (
	PrincipalSlot Slot = "?principal"
	ResourceSlot  Slot = "?resource"
)

// slotType is the entity type that stands for a slot while cedar-go, which
// has no templates, parses a template. The replacement text has the length
// of the slot it replaces, so parser positions (line:column) stay true.
// The identifier is reserved: statements that use it are refused.
const slotType = "__S"

var slotText = map[Slot]string{
	// A space first, so that a slot glued to a keyword ("in?principal")
	// stays apart from it; the length is the slot's.
	PrincipalSlot: " " + slotType + `::"p" `, // 10 bytes, as "?principal"
	ResourceSlot:  " " + slotType + `::"r"`,  // 9 bytes, as "?resource"
}

var slotUID = map[Slot]types.EntityUID{
	PrincipalSlot: types.NewEntityUID(slotType, "p"),
	ResourceSlot:  types.NewEntityUID(slotType, "r"),
}

// parsed is one parsed policy or template.
type parsed struct {
	ast   *ast.Policy
	slots []Slot // the slots a template uses, in the order principal, resource
}

// parseStatement parses one Cedar policy (template false) or template
// (template true). It refuses more or fewer than one statement, text over
// the limits, and slots that are missing, unknown or outside their scope.
func parseStatement(field, text string, template bool) (parsed, error) {
	if strings.TrimSpace(text) == "" {
		return parsed{}, errs.Field(field, "invalid_policy", "the statement is empty; send one Cedar policy")
	}
	if len(text) > MaxStatementBytes {
		return parsed{}, &errs.Error{Kind: errs.TooLarge, Code: "policy_too_large", Field: field,
			Detail: fmt.Sprintf("a statement is at most %d bytes", MaxStatementBytes)}
	}
	if !utf8.ValidString(text) {
		return parsed{}, errs.Field(field, "invalid_policy", "the statement is not valid UTF-8")
	}
	src, slots, err := scanStatement(text)
	if err != nil {
		return parsed{}, errs.Field(field, "invalid_policy", "%s", err.Error())
	}
	counts := map[Slot]int{}
	for _, s := range slots {
		counts[s]++
	}
	switch {
	case !template && len(slots) > 0:
		return parsed{}, errs.Field(field, "invalid_policy",
			"%s is a template slot; a static policy has none (put templates in /policy-templates)", slots[0])
	case template && len(slots) == 0:
		return parsed{}, errs.Field(field, "invalid_template",
			"a template uses ?principal or ?resource in its scope (principal == ?principal, resource in ?resource, …)")
	}
	list, err := cedar.NewPolicyListFromBytes("", []byte(src))
	if err != nil {
		return parsed{}, errs.Field(field, "invalid_policy", "%s", cedarMessage(err))
	}
	if len(list) != 1 {
		return parsed{}, errs.Field(field, "invalid_policy", "the statement holds %d policies; send exactly one", len(list))
	}
	p := (*ast.Policy)(list[0].AST())
	out := parsed{ast: p}
	for _, s := range []Slot{PrincipalSlot, ResourceSlot} {
		if counts[s] == 0 {
			continue
		}
		var scoped bool
		if s == PrincipalSlot {
			scoped = scopeEntity(p.Principal) == slotUID[s]
		} else {
			scoped = scopeEntity(p.Resource) == slotUID[s]
		}
		if !scoped || counts[s] > 1 {
			scope := strings.TrimPrefix(string(s), "?")
			return parsed{}, errs.Field(field, "invalid_template",
				"%s may appear once, in the %s scope only (%s == %s, %s in %s or %s is T in %s)",
				s, scope, scope, s, scope, s, scope, s)
		}
		out.slots = append(out.slots, s)
	}
	return out, nil
}

// scopeEntity returns the entity a principal or resource scope names, if any.
func scopeEntity(n ast.IsScopeNode) types.EntityUID {
	switch sc := n.(type) {
	case ast.ScopeTypeEq:
		return sc.Entity
	case ast.ScopeTypeIn:
		return sc.Entity
	case ast.ScopeTypeIsIn:
		return sc.Entity
	}
	return types.EntityUID{}
}

// withScopeEntity returns the scope n with its entity replaced by uid.
func withScopeEntity[T ast.IsScopeNode](n T, uid types.EntityUID) ast.IsScopeNode {
	switch sc := any(n).(type) {
	case ast.ScopeTypeEq:
		sc.Entity = uid
		return sc
	case ast.ScopeTypeIn:
		sc.Entity = uid
		return sc
	case ast.ScopeTypeIsIn:
		sc.Entity = uid
		return sc
	}
	return n
}

// link fills a template's slots, returning the policy to evaluate.
func link(t parsed, principal, resource *EntityRef) (*ast.Policy, error) {
	p := *t.ast // the scopes are values; conditions are shared, read-only
	for _, s := range t.slots {
		switch s {
		case PrincipalSlot:
			if principal == nil {
				return nil, errs.Field("principal", "missing_slot_value", "the template has ?principal: name the principal to link")
			}
			p.Principal = withScopeEntity(p.Principal, principal.UID()).(ast.IsPrincipalScopeNode)
		case ResourceSlot:
			if resource == nil {
				return nil, errs.Field("resource", "missing_slot_value", "the template has ?resource: name the resource to link")
			}
			p.Resource = withScopeEntity(p.Resource, resource.UID()).(ast.IsResourceScopeNode)
		}
	}
	if !t.has(PrincipalSlot) && principal != nil {
		return nil, errs.Field("principal", "unexpected_slot_value", "the template has no ?principal slot")
	}
	if !t.has(ResourceSlot) && resource != nil {
		return nil, errs.Field("resource", "unexpected_slot_value", "the template has no ?resource slot")
	}
	return &p, nil
}

func (t parsed) has(s Slot) bool {
	for _, x := range t.slots {
		if x == s {
			return true
		}
	}
	return false
}

// unslotted returns the template with each slot's scope widened to what the
// slot allows any value of (principal == ?principal becomes principal;
// principal is T in ?principal becomes principal is T), for validating a
// template against a schema before it is linked. Links are validated whole.
func (t parsed) unslotted() *ast.Policy {
	p := *t.ast
	widen := func(n ast.IsScopeNode) ast.IsScopeNode {
		if sc, ok := n.(ast.ScopeTypeIsIn); ok {
			return ast.ScopeTypeIs{Type: sc.Type}
		}
		return ast.ScopeTypeAll{}
	}
	if t.has(PrincipalSlot) {
		p.Principal = widen(p.Principal).(ast.IsPrincipalScopeNode)
	}
	if t.has(ResourceSlot) {
		p.Resource = widen(p.Resource).(ast.IsResourceScopeNode)
	}
	return &p
}

// compile turns an AST into a policy cedar-go evaluates.
func compile(p *ast.Policy) *cedar.Policy {
	return cedar.NewPolicyFromAST((*cast.Policy)(p))
}

// render prints a policy as Cedar text.
func render(p *ast.Policy) string {
	return string(compile(p).MarshalCedar())
}

// cedarMessage strips cedar-go's generic prefixes from a parse error,
// keeping its position and message ("<input>:3:14 …" becomes "line 3, column 14: …").
func cedarMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "parser error: ")
	msg = strings.TrimPrefix(msg, "parse error at ")
	if m := positionPrefix.FindStringSubmatch(msg); m != nil {
		msg = "line " + m[1] + ", column " + m[2] + ": " + strings.TrimSpace(msg[len(m[0]):])
	}
	// Name slots as the author wrote them, not as the parser saw them.
	for slot, text := range slotText {
		msg = strings.ReplaceAll(msg, strings.TrimSpace(text), string(slot))
	}
	return msg
}

var positionPrefix = regexp.MustCompile(`^<input>:(\d+):(\d+):?`)

// scanStatement is a small Cedar lexer: it skips strings and comments,
// finds slots (replacing them for the parser), refuses the reserved slot
// type, and bounds nesting and runs of unary operators so that no input
// drives the recursive-descent parser or evaluator arbitrarily deep.
func scanStatement(text string) (string, []Slot, error) {
	var b strings.Builder
	b.Grow(len(text))
	var slots []Slot
	depth, unary, line := 0, 0, 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			line++
			b.WriteByte(c)
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			b.WriteByte(c)
			i++
			continue
		case c == '/' && i+1 < len(text) && text[i+1] == '/':
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			b.WriteString(text[i : i+end])
			i += end
			continue
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			// A block comment, which cedar-go's scanner accepts too.
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return "", nil, fmt.Errorf("line %d: unterminated /* comment", line)
			}
			comment := text[i : i+2+end+2]
			line += strings.Count(comment, "\n")
			b.WriteString(comment)
			i += len(comment)
			continue
		case c == '"':
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				if j < len(text) && text[j] == '\n' {
					line++
				}
				j++
			}
			if j >= len(text) {
				return "", nil, fmt.Errorf("line %d: unterminated string", line)
			}
			b.WriteString(text[i : j+1])
			i = j + 1
			unary = 0
			continue
		case c == '?':
			j := i + 1
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			s := Slot(text[i:j])
			if s != PrincipalSlot && s != ResourceSlot {
				return "", nil, fmt.Errorf("line %d: unknown slot %q: templates have ?principal and ?resource", line, errs.Clip(string(s), 40))
			}
			slots = append(slots, s)
			b.WriteString(slotText[s])
			i = j
			unary = 0
			continue
		case isIdentByte(c):
			j := i
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			if text[i:j] == slotType {
				return "", nil, fmt.Errorf("line %d: the identifier %s is reserved", line, slotType)
			}
			b.WriteString(text[i:j])
			i = j
			unary = 0
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
			if depth > maxNesting {
				return "", nil, fmt.Errorf("line %d: expressions nest more than %d deep", line, maxNesting)
			}
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '!' && (i+1 >= len(text) || text[i+1] != '='), c == '-':
			unary++
			if unary > maxUnaryRun {
				return "", nil, fmt.Errorf("line %d: more than %d unary operators in a row", line, maxUnaryRun)
			}
			b.WriteByte(c)
			i++
			continue
		}
		unary = 0
		b.WriteByte(c)
		i++
	}
	return b.String(), slots, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// EntityRef names an entity: {"type":"App::User","id":"alice"}.
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// UID is the Cedar entity UID the reference names.
func (e EntityRef) UID() types.EntityUID {
	return types.NewEntityUID(types.EntityType(e.Type), types.String(e.ID))
}

// validEntityType applies cedar-go's own rules (no reserved words such as
// "if" or "in", no __cedar namespace).
func validEntityType(t string) bool {
	_, err := types.NewEntityType(t)
	return err == nil
}

var entityTypePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$`)

// check validates a reference named by field; nil is allowed when optional.
func (e *EntityRef) check(field string, optional bool) error {
	if e == nil {
		if optional {
			return nil
		}
		return errs.Field(field, "missing_entity", "%s is required: {\"type\":\"…\",\"id\":\"…\"}", field)
	}
	if len(e.Type) > 256 || !entityTypePattern.MatchString(e.Type) || e.Type == slotType || !validEntityType(e.Type) {
		return errs.Field(field+".type", "invalid_entity", "an entity type is a Cedar name such as User or App::User")
	}
	if len(e.ID) > 1024 || !utf8.ValidString(e.ID) {
		return errs.Field(field+".id", "invalid_entity", "an entity id is at most 1024 bytes of UTF-8")
	}
	return nil
}
