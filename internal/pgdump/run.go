// Package pgdump runs pg_dump and pg_restore for pghaul and reads what they
// write: an archive's table of contents (pg_restore -l) and the SQL script
// pg_restore -f - produces. It knows nothing of migrations.
package pgdump

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pghaul/pghaul/internal/dsn"
	"github.com/pghaul/pghaul/internal/pg"
)

// Run runs pg_dump or pg_restore against database db of ep. The
// password travels in PGPASSWORD, never on the command line. Of the PG*
// variables only those choosing the server and the authentication pass
// (dsn.ConnectionEnv, read by pgx too): the program connects where and as
// pghaul's sessions do, and runs as it would with no environment. On
// failure the error holds the program's first error lines.
func Run(ctx context.Context, program string, ep *pg.Endpoint, db string, args ...string) ([]byte, error) {
	conninfo, password := dsn.ForTool(ep.URI(), db)
	cmd := exec.CommandContext(ctx, program, append(args, "--dbname="+conninfo)...)
	cmd.Env = Env(os.Environ(), password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s %s: %s", ProgramName(program), strings.TrimSpace(err.Error()), firstErrors(stderr.String(), 3))
	}
	return stdout.Bytes(), nil
}

// Env is environ as pg_dump and pg_restore get it: PG* variables
// other than dsn.ConnectionEnv's dropped, PGAPPNAME pghaul, and
// PGPASSWORD the connection string's password when it has one.
func Env(environ []string, password string) []string {
	env := []string{"PGAPPNAME=pghaul"}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PG") || dsn.ConnectionEnv[name] && !(name == "PGPASSWORD" && password != "") {
			env = append(env, kv)
		}
	}
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return env
}

// ProgramName is the file name of a program path.
func ProgramName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// firstErrors keeps the first n lines that say "error" (or the first n lines).
func firstErrors(out string, n int) string {
	var lines, errs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		lines = append(lines, l)
		if strings.Contains(l, "error") || strings.Contains(l, "ERROR") || strings.Contains(l, "FATAL") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		errs = lines
	}
	if len(errs) > n {
		errs = errs[:n]
	}
	return strings.Join(errs, " | ")
}

// execOutput runs a local program and returns its stdout; stderr's first
// error lines become the error.
func execOutput(ctx context.Context, program string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstErrors(stderr.String(), 3))
	}
	return stdout.Bytes(), nil
}

// RunLocal runs a program that reads only local files (pg_restore -l).
func RunLocal(ctx context.Context, program string, args ...string) ([]byte, error) {
	out, err := execOutput(ctx, program, args...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", ProgramName(program), strings.Join(args, " "), err)
	}
	return out, nil
}
