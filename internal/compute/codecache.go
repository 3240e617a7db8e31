package compute

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// codeCache guards wazero's on-disk cache of compiled code, which holds
// native code the node maps executable and runs. wazero checks its files
// with a CRC, which catches torn writes but not a deliberate edit, so the
// node keeps a manifest of HMAC-SHA256 tags (under a key derived from the
// root key) of every file it saw wazero write, and before wazero may load
// anything it checks every file: a file whose tag is missing or wrong, and
// anything that is not a regular file (a link, a device), is removed, so
// the module is compiled again rather than a tampered file run.
//
// A file is re-hashed only when its size, inode or change time differ
// from when it was last checked (the change time moves with every write
// and cannot be set back by an unprivileged writer), so a check is one
// walk of stat calls. Guests cannot name the directory at all (their /tmp
// is in memory); the check is for anything else that may have written
// there, such as an earlier version of the node or a restored backup.
type codeCache struct {
	dir string
	key [32]byte

	mu      sync.Mutex
	checked map[string]fileState // by path relative to dir
}

type fileState struct {
	size  int64
	ino   uint64
	ctime int64
}

const manifestName = "manifest.json"

func newCodeCache(dir string, key [32]byte) (*codeCache, error) {
	c := &codeCache{dir: dir, key: key, checked: map[string]fileState{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("compute: compiled code directory: %w", err)
	}
	if err := c.verify(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *codeCache) tag(rel string, r io.Reader) (string, error) {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(rel))
	m.Write([]byte{0})
	if _, err := io.Copy(m, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(m.Sum(nil)), nil
}

func (c *codeCache) readManifest() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(c.dir, manifestName))
	if err == nil {
		_ = json.Unmarshal(b, &out) // an unreadable manifest vouches for nothing
	}
	return out
}

func (c *codeCache) writeManifest(m map[string]string) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, manifestName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(c.dir, manifestName))
}

// verify removes every file of the cache that the manifest does not vouch
// for. Call it before wazero may read the cache.
func (c *codeCache) verify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.walk(false)
	return err
}

// record adds the files wazero wrote since the last walk to the manifest.
// Call it after a compilation.
func (c *codeCache) record() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	added, err := c.walk(true)
	if err != nil || len(added) == 0 {
		return err
	}
	m := c.readManifest()
	for rel, tag := range added {
		m[rel] = tag
	}
	return c.writeManifest(m)
}

// walk checks the cache's files against the manifest. Files it has not
// seen are trusted and returned (with their tags) when trustNew is set
// (wazero has just written them), and removed otherwise unless the
// manifest vouches for them. Called with c.mu held.
func (c *codeCache) walk(trustNew bool) (map[string]string, error) {
	var manifest map[string]string
	added := map[string]string{}
	seen := map[string]bool{}
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(c.dir, p)
		switch {
		case p == c.dir:
			return nil
		case d.IsDir():
			return nil
		case rel == manifestName:
			return nil
		case strings.HasSuffix(rel, ".tmp") && d.Type().IsRegular():
			return nil // being written; wazero never loads these
		case !d.Type().IsRegular():
			return os.RemoveAll(p) // links and the like have no business here
		}
		seen[rel] = true
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		st := stateOf(info)
		if prev, ok := c.checked[rel]; ok && prev == st {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		tag, err := c.tag(rel, f)
		f.Close()
		if err != nil {
			return err
		}
		if trustNew {
			if _, ok := c.checked[rel]; !ok {
				added[rel] = tag
				c.checked[rel] = st
				return nil
			}
		}
		if manifest == nil {
			manifest = c.readManifest()
		}
		if want, ok := manifest[rel]; ok && hmac.Equal([]byte(want), []byte(tag)) {
			c.checked[rel] = st
			return nil
		}
		delete(c.checked, rel)
		return os.Remove(p)
	})
	for rel := range c.checked {
		if !seen[rel] {
			delete(c.checked, rel)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("compute: check compiled code: %w", err)
	}
	return added, nil
}
