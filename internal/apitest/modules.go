package apitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// CounterModule returns the counter example function
// (examples/functions/counter) built for wasip1, the module the tests
// publish. It is built once per test binary: a build takes seconds, and
// far more on a loaded machine.
func CounterModule(t testing.TB) []byte {
	t.Helper()
	b, err := counterModule()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var counterModule = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "bulkhead-fn-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "counter.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "github.com/bulkhead-dev/bulkhead/examples/functions/counter")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, &buildError{string(b)}
	}
	return os.ReadFile(out)
})

type buildError struct{ out string }

func (e *buildError) Error() string { return "build the counter example: " + e.out }
