package rlslint

import "testing"

// exprCases are policy expressions as pg_get_expr prints them, and
// whether they restrict rows to the tenant of app.tenant_id by tenant_id.
var exprCases = []struct {
	expr string
	want bool
}{
	{`(tenant_id = current_setting('app.tenant_id'::text, true))`, true},
	{`(current_setting('app.tenant_id'::text) = tenant_id)`, true},
	{`(tenant_id = (current_setting('app.tenant_id'::text, true))::uuid)`, true},
	{`((tenant_id)::text = current_setting('app.tenant_id'::text, true))`, true},
	{`((tenant_id)::character varying(63) = (pg_catalog.current_setting('app.tenant_id'::text, true))::character varying(63))`, true},
	{`((tenant_id = current_setting('APP.TENANT_ID'::text, false)) AND (body IS NOT NULL))`, true},
	{`((body IS NOT NULL) AND (NOT deleted) AND (tenant_id = current_setting('app.tenant_id'::text, true)))`, true},
	{`("tenant_id" = current_setting('app.tenant_id'::text, true))`, true},

	{`(((tenant_id)::character varying)::text = current_setting('app.tenant_id'::text, true))`, true},
	{`((tenant_id)::bpchar = (current_setting('app.tenant_id'::text, true))::bpchar)`, true},
	{`((tenant_id)::character(63) = (current_setting('app.tenant_id'::text, true))::character(63))`, true},

	{`true`, false},
	{``, false},
	{`((tenant_id = current_setting('app.tenant_id'::text, true)) OR true)`, false},
	{`(true OR (tenant_id = current_setting('app.tenant_id'::text, true)))`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, true)) OR true AND true`, false},
	{`(current_setting('app.tenant_id'::text, true) IS NOT NULL)`, false},
	{`(tenant_id = current_setting('app.tenant_idx'::text, true))`, false},
	{`(tenant_id = current_setting('app.tenant_id''x'::text, true))`, false},
	{`(tenant_id = current_setting('app.tenant_ıd'::text, true))`, false}, // dotless i
	{`(tenant_id = current_setting('app.tenant_id'::text, true, 1))`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, body))`, false},
	{`(tenant_id = public.current_setting('app.tenant_id'::text, true))`, false},
	{`(tenant_id = current_setting(lower('app.tenant_id'::text), true))`, false},
	{`(tenant_id <> current_setting('app.tenant_id'::text, true))`, false},
	{`(tenant_id >= current_setting('app.tenant_id'::text, true))`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, true) = true)`, false},
	{`(body = current_setting('app.tenant_id'::text, true))`, false},
	{`(other.tenant_id = current_setting('app.tenant_id'::text, true))`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, true) IS NOT FALSE)`, false},
	{`(NOT (tenant_id = current_setting('app.tenant_id'::text, true)))`, false},
	{`(body <> 'tenant_id = current_setting(''app.tenant_id'')'::text)`, false},
	{`CASE WHEN (body IS NULL) AND tenant_id = current_setting('app.tenant_id'::text, true) AND true THEN true ELSE true END`, false},
	{`x BETWEEN 1 AND tenant_id = current_setting('app.tenant_id'::text, true)`, false},
	{`(tenant_id IN (SELECT current_setting('app.tenant_id'::text, true)))`, false},
	{`(tenant_id = ANY (ARRAY[current_setting('app.tenant_id'::text, true), 'x'::text]))`, false},
	{`((((tenant_id)::character varying(8))::text = ((current_setting('app.tenant_id'::text, true))::character varying(8))::text)`, false},
	{`(tenant_id = (current_setting('app.tenant_id'::text, true))::character varying(8))`, false},
	{`((tenant_id)::"char" = (current_setting('app.tenant_id'::text, true))::"char")`, false},
	{`((tenant_id)::character(1) = (current_setting('app.tenant_id'::text, true))::character(1))`, false},
	{`((tenant_id)::character(62) = (current_setting('app.tenant_id'::text, true))::bpchar)`, false},
	{`((tenant_id)::varchar(8) = current_setting('app.tenant_id'::text, true))`, false},
	{`((tenant_id)::pg_catalog."varchar"(8) = current_setting('app.tenant_id'::text, true))`, false},
	{`((tenant_id)::bit(8) = current_setting('app.tenant_id'::text, true))`, false},
	{`((tenant_id)::character varying(08) = current_setting('app.tenant_id'::text, true))`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, true)`, false}, // unbalanced
	{`(tenant_id = current_setting('app.tenant_id`, false},               // unterminated
	{`((tenant_id = current_setting('app.tenant_id'::text, true)); SELECT 1)`, false},
	{`(tenant_id = current_setting('app.tenant_id'::text, true) COLLATE "C")`, false},
}

func TestRestrictsToTenant(t *testing.T) {
	for _, tc := range exprCases {
		if got := restrictsToTenant(tc.expr, "tenant_id", "app.tenant_id"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.expr, got, tc.want)
		}
	}
	if !restrictsToTenant(`(tenant_id = current_setting('APP.KEY'::text))`, "tenant_id", "app.key") ||
		restrictsToTenant("(tenant_id = current_setting('app.\u212Aey'::text))", "tenant_id", "app.key") {
		t.Error("setting names: ASCII letters fold, a Kelvin sign is not a k to PostgreSQL")
	}
	if restrictsToTenant(`(tenant_id = current_setting('app.tenant_id'::text, true))`, "Tenant_ID", "app.tenant_id") {
		t.Error("a bare (lower-case) name matched a column whose name has capitals")
	}
	if !restrictsToTenant(`("Tenant_ID" = current_setting('app.tenant_id'::text, true))`, "Tenant_ID", "app.tenant_id") {
		t.Error("the quoted column name did not match")
	}
}

// FuzzRestrictsToTenant: the expression reader never panics, and it is
// consistent with SQL's logic: an expression it accepts stays accepted
// with another term ANDed to it, and is refused with a term ORed to it.
func FuzzRestrictsToTenant(f *testing.F) {
	for _, tc := range exprCases {
		f.Add(tc.expr)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if !restrictsToTenant(expr, "tenant_id", "app.tenant_id") {
			return
		}
		if !restrictsToTenant("(("+expr+") AND (body IS NOT NULL))", "tenant_id", "app.tenant_id") {
			t.Errorf("accepted %q, refused it ANDed with a term", expr)
		}
		if restrictsToTenant("(("+expr+") OR (body IS NOT NULL))", "tenant_id", "app.tenant_id") {
			t.Errorf("accepted %q ORed with a term", expr)
		}
		if restrictsToTenant("(("+expr+")", "tenant_id", "app.tenant_id") {
			t.Errorf("accepted %q with an unbalanced parenthesis", expr)
		}
	})
}
