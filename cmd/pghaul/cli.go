package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/pghaul/pghaul/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// CLI is pghaul's command line.
type CLI struct {
	Debug     bool   `short:"d" help:"Log debug messages."`
	LogFormat string `enum:"text,json" default:"text" help:"Log format on stderr: text or json."`

	Validate ValidateCmd `cmd:"" help:"Check a migration file without connecting anywhere."`
	Plan     PlanCmd     `cmd:"" help:"Inspect both servers read-only and print the plan (exit 2 on blockers)."`
	Apply    ApplyCmd    `cmd:"" help:"Carry out the plan, resumably (exit 130 when interrupted: rerun to resume)."`
	Verify   VerifyCmd   `cmd:"" help:"Compare the copied tables (row counts and an order-independent hash of their rows), materialized views, sequences and large objects on both sides."`
	Status   StatusCmd   `cmd:"" help:"Show the migration's progress and live replication lag per database."`
	Cleanup  CleanupCmd  `cmd:"" help:"Drop this migration's publications, subscriptions and slots on both sides."`
	Demo     DemoCmd     `cmd:"" help:"Migrate sample data live between two throwaway local clusters, then remove them."`
	Init     InitCmd     `cmd:"" help:"Write a migration file from aiven-db-migrate flags to stdout."`
	Version  VersionCmd  `cmd:"" help:"Print the version."`
}

const description = `Moves whole PostgreSQL clusters: roles, databases, schema, data, then live changes.

Exit codes: 0 success, 1 error or invalid input, 2 the plan has blockers,
3 the saved plan is stale, 130 interrupted (rerun apply to resume).`

// Env gives commands the process environment (injected for tests).
type Env func(string) (string, bool)

// exitError carries a process exit code through kong (kong.ExitCoder).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// exitRequest is how kong's own exits (--help) leave Parse.
type exitRequest struct{ code int }

// run parses args, runs the command and returns the exit code. Every error
// is printed as one or more lines "pghaul: <message>" on stderr.
func run(ctx context.Context, args []string, stdout, errOut io.Writer, env Env) (code int) {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("pghaul"),
		kong.Description(description),
		kong.Writers(stdout, errOut),
		kong.Exit(func(code int) { panic(exitRequest{code}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.BindTo(stdout, (*io.Writer)(nil)),
		kong.Bind(env, stderr{errOut}),
	)
	if err != nil {
		return printError(errOut, err)
	}
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = req.code
		}
	}()
	kctx, err := parser.Parse(rewriteShortFlags(args))
	if err != nil {
		return printError(errOut, usageError(err, args))
	}
	log := newLogger(errOut, cli.Debug, cli.LogFormat)
	if cli.LogFormat == "text" && !cli.Debug && isTerminal(errOut) {
		log = slog.New(newTerminalHandler(errOut))
	}
	if err := kctx.Run(log, &cli); err != nil {
		return printError(errOut, err)
	}
	return 0
}

// rewriteShortFlags maps aiven-db-migrate's two-letter short flags, which
// kong cannot declare, to their long forms.
func rewriteShortFlags(args []string) []string {
	long := map[string]string{"-xr": "--excluded-roles", "-xe": "--excluded-extensions"}
	out := make([]string, len(args))
	for i, a := range args {
		name, val, hasVal := strings.Cut(a, "=")
		if l, ok := long[name]; ok {
			a = l
			if hasVal {
				a += "=" + val
			}
		}
		out[i] = a
	}
	return out
}

func usageError(err error, args []string) error {
	hint := "run 'pghaul --help'"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
		hint = fmt.Sprintf("run 'pghaul %s --help'", pe.Context.Selected().Name)
	}
	return &exitError{code: 1, err: fmt.Errorf("%v; %s", err, hint)}
}

func newLogger(w io.Writer, debug bool, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// printError writes err as "pghaul: ..." lines and returns its exit code.
func printError(w io.Writer, err error) int {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, l := range ve.Lines() {
			fmt.Fprintf(w, "pghaul: %s\n", l)
		}
	} else {
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		fmt.Fprintf(w, "pghaul: %s\n", msg)
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	return 1
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints "pghaul <version>".
func (VersionCmd) Run(stdout io.Writer) error {
	_, err := fmt.Fprintf(stdout, "pghaul %s\n", version)
	return err
}
