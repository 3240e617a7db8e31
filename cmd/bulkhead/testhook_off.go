//go:build !bulkheadtest

package main

import "github.com/bulkhead-dev/bulkhead/internal/app"

// addTestHooks does nothing: the crash-safety tests' onboarding steps
// (testhook.go) are built only with -tags bulkheadtest, and a production
// binary reads no BULKHEAD_TEST_* variable.
func addTestHooks(*app.App) {}

// testConfig does nothing: the crash-safety tests' provisioning delay
// (testhook.go) is built only with -tags bulkheadtest.
func testConfig(*app.Config) {}
