//go:build wasip1

// Command escape is a hostile function: it tries every way a guest could
// leave its /tmp (symbolic and hard links, "..", absolute paths, renames,
// a changed working directory) and reports what each attempt got, and it
// fills its /tmp on demand. The event is JSON:
//
//	{"op":"battery"}                      every escape attempt → {"name": "ok: …" | "error: …"}
//	{"op":"write","path":P,"bytes":N}     write N bytes to P in 64 KiB chunks → {"written":N,"error":…,"enospc":bool}
//	{"op":"put","path":P,"data":D}        write D to P
//	{"op":"list"}                         every name under /tmp
//	{"op":"files","count":N}              create N empty files → {"created":N,"error":…,"enospc":bool}
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bulkhead-dev/bulkhead/examples/functions/guest"
)

type request struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
	Data  string `json:"data"`
	Count int    `json:"count"`
}

func main() {}

func init() {
	guest.Serve(func(_ guest.Context, event []byte) ([]byte, error) {
		var req request
		if err := json.Unmarshal(event, &req); err != nil {
			return nil, err
		}
		switch req.Op {
		case "battery":
			return json.Marshal(battery())
		case "write":
			return json.Marshal(fill(req.Path, req.Bytes))
		case "put":
			return json.Marshal(result(os.WriteFile(req.Path, []byte(req.Data), 0o600), ""))
		case "list":
			var names []string
			filepath.WalkDir("/tmp", func(p string, d fs.DirEntry, err error) error {
				names = append(names, p)
				return nil
			})
			return json.Marshal(names)
		case "files":
			return json.Marshal(files(req.Count))
		}
		return nil, fmt.Errorf("unknown op %q", req.Op)
	})
}

func result(err error, got string) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok: " + got
}

func read(p string) string {
	b, err := os.ReadFile(p)
	return result(err, string(b))
}

func list(p string) string {
	entries, err := os.ReadDir(p)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return result(err, strings.Join(names, ","))
}

// battery is every escape attempt the tests know of.
func battery() map[string]string {
	out := map[string]string{}
	os.WriteFile("/tmp/own", []byte("mine"), 0o600)

	// Symbolic links, relative and absolute, then read through them.
	out["symlink-relative"] = result(os.Symlink("../../../root.key", "/tmp/l"), "")
	out["read-symlink-relative"] = read("/tmp/l")
	out["symlink-deep"] = result(os.Symlink("../../../../../../../../etc/passwd", "/tmp/p"), "")
	out["read-symlink-deep"] = read("/tmp/p")
	out["symlink-absolute"] = result(os.Symlink("/etc/passwd", "/tmp/abs"), "")
	out["read-symlink-absolute"] = read("/tmp/abs")
	out["symlink-dir"] = result(os.Symlink("..", "/tmp/up"), "")
	out["list-symlink-dir"] = list("/tmp/up")
	out["readlink"] = result(func() error { _, err := os.Readlink("/tmp/own"); return err }(), "")

	// Hard links out and in.
	out["link-out"] = result(os.Link("/tmp/own", "/tmp/../own"), "")
	out["link-in"] = result(os.Link("/tmp/../root.key", "/tmp/rk"), "")
	out["read-link-in"] = read("/tmp/rk")
	out["link-within"] = result(os.Link("/tmp/own", "/tmp/own2"), "")

	// "..", absolute paths and the root.
	for _, p := range []string{"/tmp/../root.key", "/tmp/../../root.key", "/tmp/../../../root.key", "../root.key",
		"/root.key", "/etc/passwd", "/proc/self/environ", "/tmp/../bulkhead.db", "/tmp/./../../etc/passwd",
		"/tmp/own/../../etc/passwd", "/../../etc/passwd", "//etc/passwd", "/tmp//../etc/passwd"} {
		out["read "+p] = read(p)
	}
	for _, p := range []string{"/", "/tmp/..", "/tmp/../..", "..", "/etc"} {
		out["list "+p] = list(p)
	}

	// Renames out of /tmp, and of /tmp itself.
	out["rename-out"] = result(os.Rename("/tmp/own", "/tmp/../stolen"), "")
	out["rename-in"] = result(os.Rename("/tmp/../root.key", "/tmp/rk2"), "")
	out["rename-tmp"] = result(os.Rename("/tmp", "/tmp2"), "")
	out["remove-tmp"] = result(os.Remove("/tmp"), "")
	out["mkdir-out"] = result(os.Mkdir("/tmp/../evil", 0o700), "")
	out["write-out"] = result(os.WriteFile("/tmp/../evil", []byte("x"), 0o600), "")
	out["write-abs"] = result(os.WriteFile("/evil", []byte("x"), 0o600), "")

	// A directory moved under itself.
	os.MkdirAll("/tmp/a/b", 0o700)
	out["rename-into-self"] = result(os.Rename("/tmp/a", "/tmp/a/b/c"), "")

	// A working directory inside /tmp, then "..".
	if err := os.Chdir("/tmp/a/b"); err == nil {
		out["chdir-read"] = read("../../../root.key")
		out["chdir-list"] = list("../../..")
		os.Chdir("/")
	} else {
		out["chdir"] = result(err, "")
	}
	out["own"] = read("/tmp/own")
	return out
}

type fillResult struct {
	Written int    `json:"written"`
	Created int    `json:"created"`
	Error   string `json:"error,omitempty"`
	ENOSPC  bool   `json:"enospc"`
}

func fill(p string, n int) fillResult {
	f, err := os.Create(p)
	if err != nil {
		return fillResult{Error: err.Error(), ENOSPC: errors.Is(err, syscall.ENOSPC)}
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var r fillResult
	for r.Written < n {
		k, err := f.Write(chunk[:min(len(chunk), n-r.Written)])
		r.Written += k
		if err != nil {
			r.Error, r.ENOSPC = err.Error(), errors.Is(err, syscall.ENOSPC)
			break
		}
	}
	return r
}

func files(n int) fillResult {
	var r fillResult
	os.MkdirAll("/tmp/many", 0o700)
	for r.Created < n {
		f, err := os.Create(fmt.Sprintf("/tmp/many/%08d", r.Created))
		if err != nil {
			r.Error, r.ENOSPC = err.Error(), errors.Is(err, syscall.ENOSPC)
			break
		}
		f.Close()
		r.Created++
	}
	return r
}
