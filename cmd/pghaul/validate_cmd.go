package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/pghaul/pghaul/config"
	"github.com/pghaul/pghaul/internal/dsn"
	"github.com/pghaul/pghaul/internal/words"
)

// ValidateCmd checks a migration file without connecting anywhere.
type ValidateCmd struct {
	Config          string `short:"c" required:"" type:"path" placeholder:"FILE" help:"Migration file."`
	AllowMissingEnv bool   `help:"Do not require the $${VAR}s the file uses (lint a file in a pipeline without secrets)."`
}

// Run loads the file and prints a summary, or every problem (exit 1).
func (v *ValidateCmd) Run(stdout io.Writer, env Env) error {
	c, err := config.Load(v.Config, config.Options{AllowMissingEnv: v.AllowMissingEnv, LookupEnv: env})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, summary(c))
	return err
}

// summary is one line saying what the file asks for, with secrets redacted.
func summary(c *config.Config) string {
	parts := []string{"method " + string(c.Method)}
	parts = appendList(parts, "database", "included", c.Databases.Include.Strings())
	parts = appendList(parts, "database", "excluded", c.Databases.Exclude.Strings())
	parts = appendList(parts, "table pattern", "skipped", c.Tables.Skip.Strings())
	parts = appendList(parts, "table pattern", "only", c.Tables.Only.Strings())
	parts = appendList(parts, "role", "excluded", c.Roles.Exclude.Strings())
	parts = appendList(parts, "extension", "excluded", c.Extensions.Exclude.Strings())
	if c.Method != config.MethodDump {
		parts = append(parts, replicationPolicy(c.Replication))
	}
	return fmt.Sprintf("config OK: %s; source %s; target %s; state %s",
		strings.Join(parts, ", "), dsn.Redact(c.Source.URI), dsn.Redact(c.Target.URI), c.State)
}

func appendList(parts []string, noun, verb string, names []string) []string {
	if len(names) == 0 {
		return parts
	}
	return append(parts, fmt.Sprintf("%s %s (%s)", words.Count(len(names), noun), verb, strings.Join(names, ", ")))
}

func replicationPolicy(r config.Replication) string {
	if r.MaxLagBytes == nil {
		return "replication (where used) left running without a lag wait"
	}
	s := fmt.Sprintf("wait for lag <= %d bytes (timeout %s)", *r.MaxLagBytes, r.WaitTimeout)
	if r.Stop {
		s += " then stop replication"
	}
	return s
}
