package authz

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

const policyColumns = `id, statement, description, template_id, principal_type, principal_id, resource_type, resource_id, created_at, updated_at`

func scanPolicy(row interface{ Scan(...any) error }) (Policy, error) {
	var p Policy
	var pt, pi, rt, ri string
	var created, updated int64
	if err := row.Scan(&p.ID, &p.Statement, &p.Description, &p.TemplateID, &pt, &pi, &rt, &ri, &created, &updated); err != nil {
		return Policy{}, err
	}
	p.Type, p.Principal, p.Resource = Static, refFromColumns(pt, pi), refFromColumns(rt, ri)
	if p.TemplateID != "" {
		p.Type = Linked
	}
	p.CreatedAt, p.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return p, nil
}

// renderLinks fills in the statements of linked policies from their templates.
func renderLinks(ctx context.Context, tx *storage.Tx, ps []Policy) error {
	tpls := map[string]parsed{}
	for i, p := range ps {
		if p.TemplateID == "" {
			continue
		}
		t, ok := tpls[p.TemplateID]
		if !ok {
			var text string
			if err := tx.QueryRow(ctx, `SELECT statement FROM authz_templates WHERE tenant_id = ? AND id = ?`,
				tx.TenantID(), p.TemplateID).Scan(&text); err != nil {
				return fmt.Errorf("authz: template of %s: %w", p.ID, err)
			}
			var err error
			if t, err = parseStatement("statement", text, true); err != nil {
				return fmt.Errorf("authz: template of %s: %w", p.ID, err)
			}
			tpls[p.TemplateID] = t
		}
		l, err := link(t, p.Principal, p.Resource)
		if err != nil {
			return fmt.Errorf("authz: link %s: %w", p.ID, err)
		}
		ps[i].Statement = render(l)
	}
	return nil
}

// GetPolicy returns policy id of tenant tid's store (a global policy when tid is "").
func (s *Service) GetPolicy(ctx context.Context, tid tenant.ID, id string) (Policy, error) {
	if !ids.Valid(id, policyPrefix) {
		return Policy{}, policyNotFound(id)
	}
	var out Policy
	err := s.view(ctx, tid, func(tx *storage.Tx, _ storeRow) error {
		p, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyColumns+` FROM authz_policies WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return policyNotFound(id)
		}
		if err != nil {
			return fmt.Errorf("authz: get policy: %w", err)
		}
		ps := []Policy{p}
		if err := renderLinks(ctx, tx, ps); err != nil {
			return err
		}
		out = ps[0]
		return nil
	})
	return out, err
}

// ListPolicies pages through tenant tid's policies (the global ones when tid is "").
func (s *Service) ListPolicies(ctx context.Context, tid tenant.ID, opts ListOptions) (PolicyPage, error) {
	limit, after, err := page.Bounds(opts.Limit, opts.Cursor)
	if err != nil {
		return PolicyPage{}, err
	}
	out := PolicyPage{Items: []Policy{}}
	err = s.view(ctx, tid, func(tx *storage.Tx, _ storeRow) error {
		rows, err := tx.Query(ctx, `SELECT `+policyColumns+` FROM authz_policies WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
			tx.TenantID(), after, limit+1)
		if err != nil {
			return fmt.Errorf("authz: list policies: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPolicy(rows)
			if err != nil {
				return fmt.Errorf("authz: list policies: %w", err)
			}
			out.Items = append(out.Items, p)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("authz: list policies: %w", err)
		}
		rows.Close()
		out.Items, out.NextCursor = page.Trim(out.Items, limit, func(p Policy) string { return p.ID })
		return renderLinks(ctx, tx, out.Items)
	})
	return out, err
}

// DeletePolicy removes policy id from tenant tid's store (a global policy when tid is "").
func (s *Service) DeletePolicy(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	if !ids.Valid(id, policyPrefix) {
		return policyNotFound(id)
	}
	return s.update(ctx, tid, actor, func(tx *storage.Tx, _ storeRow) (inval.Change, error) {
		res, err := tx.Exec(ctx, `DELETE FROM authz_policies WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id)
		if err != nil {
			return inval.Change{}, fmt.Errorf("authz: delete policy: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return inval.Change{}, policyNotFound(id)
		}
		return inval.Change{Action: "authz.policy_deleted", Target: scopeLabel(tid) + "/" + id}, nil
	})
}

const templateColumns = `id, statement, description, created_at, updated_at`

func scanTemplate(row interface{ Scan(...any) error }) (Template, error) {
	var t Template
	var created, updated int64
	if err := row.Scan(&t.ID, &t.Statement, &t.Description, &created, &updated); err != nil {
		return Template{}, err
	}
	t.CreatedAt, t.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	p, err := parseStatement("statement", t.Statement, true)
	if err != nil {
		return Template{}, fmt.Errorf("authz: stored template %s: %w", t.ID, err)
	}
	t.Slots = p.slots
	return t, nil
}

// CreateTemplate adds a template to tenant tid's store.
func (s *Service) CreateTemplate(ctx context.Context, tid tenant.ID, in TemplateInput, actor tenant.Actor) (Template, error) {
	return s.putTemplate(ctx, tid, "", in, actor)
}

// ReplaceTemplate replaces template id. Its linked policies follow the new
// text; the change is refused if any of them would not link or (with a
// schema) not validate.
func (s *Service) ReplaceTemplate(ctx context.Context, tid tenant.ID, id string, in TemplateInput, actor tenant.Actor) (Template, error) {
	if !ids.Valid(id, templatePrefix) {
		return Template{}, templateNotFound(id)
	}
	return s.putTemplate(ctx, tid, id, in, actor)
}

func (s *Service) putTemplate(ctx context.Context, tid tenant.ID, id string, in TemplateInput, actor tenant.Actor) (Template, error) {
	if err := checkDescription(in.Description); err != nil {
		return Template{}, err
	}
	t, err := parseStatement("statement", in.Statement, true)
	if err != nil {
		return Template{}, err
	}
	out := Template{Statement: in.Statement, Description: in.Description, Slots: t.slots}
	err = s.update(ctx, tid, actor, func(tx *storage.Tx, st storeRow) (inval.Change, error) {
		c, err := load(ctx, tx, st, false)
		if err != nil {
			return inval.Change{}, err
		}
		if err := validatePolicy(c.validator, "statement", "the template", t.unslotted()); err != nil {
			return inval.Change{}, err
		}
		now := s.now()
		out.UpdatedAt = now
		if id == "" {
			if err := checkQuota(ctx, tx, 1, len(in.Statement)); err != nil {
				return inval.Change{}, err
			}
			out.ID, out.CreatedAt = ids.New(templatePrefix), now
			if _, err := tx.Exec(ctx, `INSERT INTO authz_templates (tenant_id, id, statement, description, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`, tx.TenantID(), out.ID, in.Statement, in.Description, now.UnixMicro(), now.UnixMicro()); err != nil {
				return inval.Change{}, fmt.Errorf("authz: create template: %w", err)
			}
			return inval.Change{Action: "authz.template_created", Target: string(tid) + "/" + out.ID}, nil
		}
		if _, ok := c.templates[id]; !ok {
			return inval.Change{}, templateNotFound(id)
		}
		if err := checkQuota(ctx, tx, 0, len(in.Statement)); err != nil {
			return inval.Change{}, err
		}
		out.ID = id
		c.templates[id] = t
		for _, l := range c.links {
			if l.templateID != id {
				continue
			}
			p, err := c.linked(l)
			if err != nil {
				e, _ := errs.As(err)
				return inval.Change{}, errs.E(errs.Conflict, "template_in_use", "linked policy %s would no longer link: %s", l.id, e.Detail)
			}
			if err := validatePolicy(c.validator, "statement", "linked policy "+l.id, p); err != nil {
				return inval.Change{}, err
			}
		}
		var created int64
		if err := tx.QueryRow(ctx, `UPDATE authz_templates SET statement = ?, description = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ? RETURNING created_at`, in.Statement, in.Description, now.UnixMicro(), tx.TenantID(), id).Scan(&created); err != nil {
			return inval.Change{}, fmt.Errorf("authz: update template: %w", err)
		}
		out.CreatedAt = time.UnixMicro(created).UTC()
		return inval.Change{Action: "authz.template_updated", Target: string(tid) + "/" + id}, nil
	})
	return out, err
}

// GetTemplate returns template id of tenant tid's store.
func (s *Service) GetTemplate(ctx context.Context, tid tenant.ID, id string) (Template, error) {
	if !ids.Valid(id, templatePrefix) {
		return Template{}, templateNotFound(id)
	}
	var out Template
	err := s.view(ctx, tid, func(tx *storage.Tx, _ storeRow) error {
		t, err := scanTemplate(tx.QueryRow(ctx, `SELECT `+templateColumns+` FROM authz_templates WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return templateNotFound(id)
		}
		out = t
		return err
	})
	return out, err
}

// ListTemplates pages through tenant tid's templates.
func (s *Service) ListTemplates(ctx context.Context, tid tenant.ID, opts ListOptions) (TemplatePage, error) {
	limit, after, err := page.Bounds(opts.Limit, opts.Cursor)
	if err != nil {
		return TemplatePage{}, err
	}
	out := TemplatePage{Items: []Template{}}
	err = s.view(ctx, tid, func(tx *storage.Tx, _ storeRow) error {
		rows, err := tx.Query(ctx, `SELECT `+templateColumns+` FROM authz_templates WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
			tx.TenantID(), after, limit+1)
		if err != nil {
			return fmt.Errorf("authz: list templates: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTemplate(rows)
			if err != nil {
				return err
			}
			out.Items = append(out.Items, t)
		}
		out.Items, out.NextCursor = page.Trim(out.Items, limit, func(t Template) string { return t.ID })
		return rows.Err()
	})
	return out, err
}

// DeleteTemplate removes template id; a template with linked policies is
// not deleted (409 template_in_use): delete the links first.
func (s *Service) DeleteTemplate(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	if !ids.Valid(id, templatePrefix) {
		return templateNotFound(id)
	}
	return s.update(ctx, tid, actor, func(tx *storage.Tx, _ storeRow) (inval.Change, error) {
		var links int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM authz_policies WHERE tenant_id = ? AND template_id = ?`, tx.TenantID(), id).Scan(&links); err != nil {
			return inval.Change{}, fmt.Errorf("authz: count links: %w", err)
		}
		res, err := tx.Exec(ctx, `DELETE FROM authz_templates WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id)
		if err != nil {
			return inval.Change{}, fmt.Errorf("authz: delete template: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return inval.Change{}, templateNotFound(id)
		}
		if links > 0 {
			return inval.Change{}, errs.E(errs.Conflict, "template_in_use", "template %s has %d linked policies; delete them first", id, links)
		}
		return inval.Change{Action: "authz.template_deleted", Target: string(tid) + "/" + id}, nil
	})
}
