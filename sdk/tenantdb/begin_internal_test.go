package tenantdb

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestBeginSQL: the scoping BEGIN carries pgx's modes and the settings,
// quoted; a mode that is not one of pgx's and a tenant id that is not one
// never reach the SQL text.
func TestBeginSQL(t *testing.T) {
	got, err := beginSQL(pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable},
		"acme", `t_acme"x`, `"t_acme", pg_temp`)
	want := `BEGIN ISOLATION LEVEL serializable read only deferrable; SET LOCAL app.tenant_id = 'acme'; ` +
		`SET LOCAL ROLE "t_acme""x"; SET LOCAL search_path = "t_acme", pg_temp`
	if err != nil || got != want {
		t.Fatalf("beginSQL:\n got %s (%v)\nwant %s", got, err, want)
	}
	if got, _ := beginSQL(pgx.TxOptions{}, "acme", "none", "public, pg_temp"); got !=
		"BEGIN; SET LOCAL app.tenant_id = 'acme'; SET LOCAL search_path = public, pg_temp" {
		t.Fatalf("pool: %s", got)
	}
	if _, err := beginSQL(pgx.TxOptions{IsoLevel: "serializable; DROP TABLE notes"}, "acme", "none", "public"); err == nil {
		t.Fatal("a mode that is not pgx's reached the SQL")
	}
	if _, err := beginSQL(pgx.TxOptions{}, "acme'; DROP TABLE notes; --", "none", "public"); !errors.Is(err, ErrInvalidTenant) {
		t.Fatalf("a tenant id with a quote: %v", err)
	}
}
