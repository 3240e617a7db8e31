package kms

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRootKey(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadRootKey(dir, "")
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	k2, created, err := LoadRootKey(dir, "")
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if k1.key != k2.key || k1.key == [RootKeySize]byte{} {
		t.Fatal("the key file did not round-trip, or the key is zero")
	}
	if s := fmt.Sprint(k2) + fmt.Sprintf("%v %+v", k2, k2); strings.Contains(s, base64.StdEncoding.EncodeToString(k2.key[:])) {
		t.Errorf("formatting the key shows its material: %s", s)
	}
	k2.Zero()
	if k2.key != [RootKeySize]byte{} {
		t.Fatal("Zero left key material")
	}
	env := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	k3, _, err := LoadRootKey(t.TempDir(), env)
	if err != nil || k3.Source != "env" || string(k3.key[:]) != strings.Repeat("k", 32) {
		t.Fatalf("env key: %v %v", k3, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		_, _, err := LoadRootKey(t.TempDir(), bad)
		if err == nil {
			t.Errorf("accepted root key %q", bad)
		} else if strings.Contains(err.Error(), bad) {
			t.Errorf("error echoes the key material: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, RootKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadRootKey(dir, ""); err == nil {
		t.Error("accepted a corrupt key file")
	}
}
