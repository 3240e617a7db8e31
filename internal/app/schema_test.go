package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.*.txt from the schema the migrations build")

// TestSchema pins down, on each database, the schema that the migrations of
// app.Components build (storagetest.Schema: tables, columns, constraints,
// indexes, row-level security and its policies, and the migrations
// schema_migrations records). A migration that changes it changes
// testdata/schema.*.txt, so the change is seen in review; one that should
// not (a refactoring of how migrations are written) is shown not to.
// `go test ./internal/app -run TestSchema -update` rewrites the files.
func TestSchema(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, app.Components()...)
		got := storagetest.Schema(t, db)
		file := filepath.Join("testdata", "schema."+string(db.Dialect())+".txt")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (go test ./internal/app -run TestSchema -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("the migrations build a schema other than %s:\n%s", file, lineDiff(string(want), got))
		}
	})
}

// lineDiff lists the lines of want that got lacks ("-") and those got has
// beyond want ("+"); the schema's lines are sorted, so that is its diff.
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	var extra []string
	for _, l := range strings.Split(got, "\n") {
		if count[l] > 0 {
			count[l]--
			continue
		}
		extra = append(extra, "+ "+l)
	}
	var missing []string
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			count[l]--
			missing = append(missing, "- "+l)
		}
	}
	return strings.Join(append(missing, extra...), "\n")
}
