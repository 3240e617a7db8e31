package authz

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Schema is a store's schema, in the format it was put in.
type Schema struct {
	// Format is "cedar" (Cedar schema text) or "json" (Cedar's JSON schema format).
	Format string `json:"format"`
	// Schema is the Cedar schema text (a JSON string) or the JSON schema (an object).
	Schema    json.RawMessage `json:"schema"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
}

// Schema formats.
const (
	FormatCedar = "cedar"
	FormatJSON  = "json"
)

// MaxSchemaBytes bounds a schema.
const MaxSchemaBytes = 256 << 10

// schemaText turns the input into the text stored for it.
func (in Schema) text() (string, error) {
	switch in.Format {
	case FormatCedar:
		s, ok := jsonString(in.Schema)
		if !ok {
			return "", errs.Field("schema", "invalid_schema", "a schema in format \"cedar\" is a JSON string of Cedar schema text")
		}
		return s, nil
	case FormatJSON:
		if s, ok := jsonString(in.Schema); ok {
			return s, nil
		}
		var b bytes.Buffer
		if len(in.Schema) == 0 || in.Schema[0] != '{' || json.Compact(&b, in.Schema) != nil {
			return "", errs.Field("schema", "invalid_schema", "a schema in format \"json\" is a JSON object (or a string holding one)")
		}
		return b.String(), nil
	}
	return "", errs.Field("format", "invalid_schema_format", "format must be \"cedar\" or \"json\"")
}

// newValidator parses and resolves a schema.
func newValidator(format, text string) (*validate.Validator, error) {
	if len(text) > MaxSchemaBytes {
		return nil, &errs.Error{Kind: errs.TooLarge, Code: "schema_too_large", Field: "schema",
			Detail: fmt.Sprintf("a schema is at most %d bytes", MaxSchemaBytes)}
	}
	if strings.TrimSpace(text) == "" {
		return nil, errs.Field("schema", "invalid_schema", "the schema is empty")
	}
	var sc schema.Schema
	var err error
	if format == FormatCedar {
		err = sc.UnmarshalCedar([]byte(text))
	} else {
		err = sc.UnmarshalJSON([]byte(text))
	}
	if err != nil {
		return nil, errs.Field("schema", "invalid_schema", "%s", cedarMessage(err))
	}
	res, err := sc.Resolve()
	if err != nil {
		return nil, errs.Field("schema", "invalid_schema", "%s", cedarMessage(err))
	}
	return validate.New(res), nil
}

// validatePolicy checks p against the schema, refusing it with the
// validator's messages prefixed by the statement's position.
func validatePolicy(v *validate.Validator, field, what string, p *ast.Policy) error {
	if v == nil {
		return nil
	}
	err := v.Policy("", p)
	if err == nil {
		return nil
	}
	var msgs []string
	for _, e := range flatten(err) {
		msgs = append(msgs, e.Error())
	}
	return errs.Field(field, "schema_violation", "%s does not conform to the store's schema: line %d, column %d: %s",
		what, max(p.Position.Line, 1), max(p.Position.Column, 1), strings.Join(msgs, "; "))
}

func flatten(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// contents is everything a store holds, parsed.
type contents struct {
	validator *validate.Validator
	templates map[string]parsed
	statics   []namedAST
	links     []storedLink
}

type namedAST struct {
	id  string
	ast *ast.Policy
}

type storedLink struct {
	id, templateID      string
	principal, resource *EntityRef
}

// load reads and parses what tx's scope holds: a tenant's store, or the
// global policies in the platform scope. Without full it skips the static
// policies (a write of one policy needs the templates, links and schema).
func load(ctx context.Context, tx *storage.Tx, st storeRow, full bool) (*contents, error) {
	c := &contents{templates: map[string]parsed{}}
	if st.schemaText != "" {
		v, err := newValidator(st.schemaFormat, st.schemaText)
		if err != nil {
			return nil, unreadable(fmt.Sprintf("schema of %s", tx.TenantID()), err)
		}
		c.validator = v
	}
	if tx.TenantID() != "" {
		rows, err := tx.Query(ctx, `SELECT id, statement FROM authz_templates WHERE tenant_id = ?`, tx.TenantID())
		if err != nil {
			return nil, fmt.Errorf("authz: load templates: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, text string
			if err := rows.Scan(&id, &text); err != nil {
				return nil, fmt.Errorf("authz: load templates: %w", err)
			}
			p, err := parseStatement("statement", text, true)
			if err != nil {
				return nil, unreadable("template "+id, err)
			}
			c.templates[id] = p
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("authz: load templates: %w", err)
		}
		rows.Close()
	}
	q := `SELECT id, statement, template_id, principal_type, principal_id, resource_type, resource_id
		FROM authz_policies WHERE tenant_id = ?`
	if !full {
		q += ` AND template_id <> ''`
	}
	rows, err := tx.Query(ctx, q, tx.TenantID())
	if err != nil {
		return nil, fmt.Errorf("authz: load policies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, text, tpl, pt, pi, rt, ri string
		if err := rows.Scan(&id, &text, &tpl, &pt, &pi, &rt, &ri); err != nil {
			return nil, fmt.Errorf("authz: load policies: %w", err)
		}
		if tpl != "" {
			c.links = append(c.links, storedLink{id: id, templateID: tpl, principal: refFromColumns(pt, pi), resource: refFromColumns(rt, ri)})
			continue
		}
		p, err := parseStatement("statement", text, false)
		if err != nil {
			return nil, unreadable("policy "+id, err)
		}
		c.statics = append(c.statics, namedAST{id, p.ast})
	}
	return c, rows.Err()
}

// unreadable is a stored object that no longer parses: a fault of the
// server (500), not of the request.
func unreadable(what string, err error) error {
	return &errs.Error{Kind: errs.Internal, Code: "stored_policy_unreadable", Detail: "a stored " + what + " cannot be read", Err: err}
}

// linked builds a link's policy from its template.
func (c *contents) linked(l storedLink) (*ast.Policy, error) {
	t, ok := c.templates[l.templateID]
	if !ok {
		return nil, templateNotFound(l.templateID)
	}
	return link(t, l.principal, l.resource)
}

// checkAll validates everything in c against v, for a schema change.
func (c *contents) checkAll(v *validate.Validator) error {
	for _, p := range c.statics {
		if err := validatePolicy(v, "schema", "policy "+p.id, p.ast); err != nil {
			return err
		}
	}
	for id, t := range c.templates {
		if err := validatePolicy(v, "schema", "template "+id, t.unslotted()); err != nil {
			return err
		}
	}
	for _, l := range c.links {
		p, err := c.linked(l)
		if err != nil {
			return err
		}
		if err := validatePolicy(v, "schema", "linked policy "+l.id, p); err != nil {
			return err
		}
	}
	return nil
}

// GetSchema returns tenant tid's schema (404 schema_not_found without one).
func (s *Service) GetSchema(ctx context.Context, tid tenant.ID) (Schema, error) {
	var out Schema
	err := s.view(ctx, tid, func(_ *storage.Tx, st storeRow) error {
		if st.schemaText == "" {
			return errs.E(errs.NotFound, "schema_not_found", "the policy store of %q has no schema", tid)
		}
		out = Schema{Format: st.schemaFormat, UpdatedAt: st.schemaAt}
		if st.schemaFormat == FormatJSON {
			out.Schema = json.RawMessage(st.schemaText)
		} else {
			out.Schema, _ = json.Marshal(st.schemaText)
		}
		return nil
	})
	return out, err
}

// PutSchema sets tenant tid's schema. Every policy, template and link in
// the store must conform to it, or nothing changes.
func (s *Service) PutSchema(ctx context.Context, tid tenant.ID, in Schema, actor tenant.Actor) (Schema, error) {
	text, err := in.text()
	if err != nil {
		return Schema{}, err
	}
	v, err := newValidator(in.Format, text)
	if err != nil {
		return Schema{}, err
	}
	out := Schema{Format: in.Format}
	err = s.update(ctx, tid, actor, func(tx *storage.Tx, st storeRow) (inval.Change, error) {
		st.schemaText = "" // the contents are checked against the new schema below
		c, err := load(ctx, tx, st, true)
		if err != nil {
			return inval.Change{}, err
		}
		if err := c.checkAll(v); err != nil {
			return inval.Change{}, err
		}
		out.UpdatedAt = s.now()
		if _, err := tx.Exec(ctx, `UPDATE authz_stores SET schema_text = ?, schema_format = ?, schema_at = ?, updated_at = ? WHERE tenant_id = ?`,
			text, in.Format, out.UpdatedAt.UnixMicro(), out.UpdatedAt.UnixMicro(), tx.TenantID()); err != nil {
			return inval.Change{}, fmt.Errorf("authz: put schema: %w", err)
		}
		return inval.Change{Action: "authz.schema_put", Target: string(tid)}, nil
	})
	if err != nil {
		return Schema{}, err
	}
	if in.Format == FormatJSON {
		out.Schema = json.RawMessage(text)
	} else {
		out.Schema, _ = json.Marshal(text)
	}
	return out, nil
}

// resolve checks a policy input against the store's contents and returns
// the AST to validate and the statement to store ("" for a link).
func (in PolicyInput) resolve(c *contents) (*ast.Policy, string, error) {
	if err := checkDescription(in.Description); err != nil {
		return nil, "", err
	}
	if in.TemplateID == "" {
		if in.Principal != nil || in.Resource != nil {
			return nil, "", errs.Field("template_id", "missing_template", "principal and resource are slot values: name the template_id they fill")
		}
		p, err := parseStatement("statement", in.Statement, false)
		if err != nil {
			return nil, "", err
		}
		return p.ast, in.Statement, nil
	}
	if in.Statement != "" {
		return nil, "", errs.Field("statement", "invalid_policy", "a linked policy takes its statement from the template: send template_id, principal, resource")
	}
	if err := in.Principal.check("principal", true); err != nil {
		return nil, "", err
	}
	if err := in.Resource.check("resource", true); err != nil {
		return nil, "", err
	}
	t, ok := c.templates[in.TemplateID]
	if !ok {
		return nil, "", templateNotFound(in.TemplateID)
	}
	p, err := link(t, in.Principal, in.Resource)
	return p, "", err
}

// scopeLabel names a store in audit targets: the tenant, or "global".
func scopeLabel(tid tenant.ID) string {
	if tid == "" {
		return "global"
	}
	return string(tid)
}

// CreatePolicy adds a static or linked policy to tenant tid's store, or a
// global policy when tid is "" (static only).
func (s *Service) CreatePolicy(ctx context.Context, tid tenant.ID, in PolicyInput, actor tenant.Actor) (Policy, error) {
	return s.putPolicy(ctx, tid, "", in, actor)
}

// ValidatePolicy checks in against tenant tid's store (its schema and
// templates; tid "" for the global policies) as CreatePolicy would, and
// stores nothing: the console's editor asks while the admin types. A
// policy that would be refused gives the error CreatePolicy would.
func (s *Service) ValidatePolicy(ctx context.Context, tid tenant.ID, in PolicyInput) error {
	return s.view(ctx, tid, func(tx *storage.Tx, st storeRow) error {
		c, err := load(ctx, tx, st, false)
		if err != nil {
			return err
		}
		p, _, err := in.resolve(c)
		if err != nil {
			return err
		}
		what := "the policy"
		if in.TemplateID != "" {
			what = "the linked policy"
		}
		return validatePolicy(c.validator, "statement", what, p)
	})
}

// ReplacePolicy replaces policy id of tenant tid's store (or a global policy when tid is "").
func (s *Service) ReplacePolicy(ctx context.Context, tid tenant.ID, id string, in PolicyInput, actor tenant.Actor) (Policy, error) {
	if !ids.Valid(id, policyPrefix) {
		return Policy{}, policyNotFound(id)
	}
	return s.putPolicy(ctx, tid, id, in, actor)
}

func (s *Service) putPolicy(ctx context.Context, tid tenant.ID, id string, in PolicyInput, actor tenant.Actor) (Policy, error) {
	if tid == "" && in.TemplateID != "" {
		return Policy{}, errs.Field("template_id", "invalid_policy", "global policies are static; templates belong to tenants' stores")
	}
	var out Policy
	err := s.update(ctx, tid, actor, func(tx *storage.Tx, st storeRow) (inval.Change, error) {
		c, err := load(ctx, tx, st, false)
		if err != nil {
			return inval.Change{}, err
		}
		p, statement, err := in.resolve(c)
		if err != nil {
			return inval.Change{}, err
		}
		what := "the policy"
		if in.TemplateID != "" {
			what = "the linked policy"
		}
		if err := validatePolicy(c.validator, "statement", what, p); err != nil {
			return inval.Change{}, err
		}
		now := s.now()
		pt, pi := refColumns(in.Principal)
		rt, ri := refColumns(in.Resource)
		action, objects := "authz.policy_updated", 0
		if id == "" {
			objects = 1
		}
		if err := checkQuota(ctx, tx, objects, len(in.Statement)); err != nil {
			return inval.Change{}, err
		}
		if id == "" {
			id, action = ids.New(policyPrefix), "authz.policy_created"
			_, err = tx.Exec(ctx, `INSERT INTO authz_policies (tenant_id, id, statement, description, template_id,
				principal_type, principal_id, resource_type, resource_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				tx.TenantID(), id, statement, in.Description, in.TemplateID, pt, pi, rt, ri, now.UnixMicro(), now.UnixMicro())
			out.CreatedAt = now
		} else {
			var res sql.Result
			var created int64
			res, err = tx.Exec(ctx, `UPDATE authz_policies SET statement = ?, description = ?, template_id = ?,
				principal_type = ?, principal_id = ?, resource_type = ?, resource_id = ?, updated_at = ?
				WHERE tenant_id = ? AND id = ?`,
				statement, in.Description, in.TemplateID, pt, pi, rt, ri, now.UnixMicro(), tx.TenantID(), id)
			if err == nil {
				if n, _ := res.RowsAffected(); n == 0 {
					return inval.Change{}, policyNotFound(id)
				}
				err = tx.QueryRow(ctx, `SELECT created_at FROM authz_policies WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id).Scan(&created)
				out.CreatedAt = time.UnixMicro(created).UTC()
			}
		}
		if err != nil {
			return inval.Change{}, fmt.Errorf("authz: write policy: %w", err)
		}
		out = Policy{ID: id, Type: Static, Statement: statement, Description: in.Description, TemplateID: in.TemplateID,
			Principal: in.Principal, Resource: in.Resource, CreatedAt: out.CreatedAt, UpdatedAt: now}
		if in.TemplateID != "" {
			out.Type, out.Statement = Linked, render(p)
		}
		return inval.Change{Action: action, Target: scopeLabel(tid) + "/" + id}, nil
	})
	return out, err
}
