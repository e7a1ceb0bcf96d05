package pgbin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in    string
		major int
		full  string
	}{
		{"pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n", 15, "15.14"},
		{"initdb (PostgreSQL) 18.0\n", 18, "18.0"},
		{"postgres (PostgreSQL) 12.22\n", 12, "12.22"},
		{"pg_ctl (PostgreSQL) 17beta1\n", 17, "17"},
	}
	for _, tt := range tests {
		major, full, err := ParseVersion(tt.in)
		if err != nil || major != tt.major || full != tt.full {
			t.Errorf("ParseVersion(%q) = %d, %q, %v, want %d, %q", tt.in, major, full, err, tt.major, tt.full)
		}
	}
	if _, _, err := ParseVersion("mysqldump  Ver 8.0"); err == nil {
		t.Error("ParseVersion accepted a non-PostgreSQL version")
	}
}

func TestNewest(t *testing.T) {
	tools := []Tool{{Path: "/a/18", Major: 18}, {Path: "/b/15", Major: 15}, {Path: "/c/13", Major: 13}}
	tests := []struct {
		lo, hi int
		want   string
		ok     bool
	}{
		{0, 0, "/a/18", true}, {13, 16, "/b/15", true}, {12, 13, "/c/13", true}, {16, 17, "", false},
	}
	for _, tt := range tests {
		got, ok := Newest(tools, tt.lo, tt.hi)
		if got.Path != tt.want || ok != tt.ok {
			t.Errorf("Newest(%d, %d) = %q, %v, want %q, %v", tt.lo, tt.hi, got.Path, ok, tt.want, tt.ok)
		}
	}
}

func TestWrapperSkipped(t *testing.T) {
	dir := t.TempDir()
	common := filepath.Join(dir, "share", "postgresql-common")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{common, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 15.18'\n"
	if err := os.WriteFile(filepath.Join(common, "pg_wrapper"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(common, "pg_wrapper"), filepath.Join(bin, "pg_dump")); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "lib", "15", "bin")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tools := Find(context.Background(), "pg_dump", []string{bin, real}, nil)
	if len(tools) != 1 || tools[0].Path != filepath.Join(real, "pg_dump") || tools[0].Major != 15 {
		t.Fatalf("want only the binary behind the wrapper, got %+v", tools)
	}
}
