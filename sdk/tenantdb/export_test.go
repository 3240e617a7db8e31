package tenantdb

import "time"

// SetNow makes db read the time from now.
func SetNow(db *DB, now func() time.Time) { db.now = now }

// SiloPools is the number of silo pools db keeps open.
func SiloPools(db *DB) int { return db.silos.len() }

// Listening reports whether Run's listeners all listen (the cache is on).
func Listening(db *DB) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.running && db.deaf == 0
}
