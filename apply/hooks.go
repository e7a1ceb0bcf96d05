package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pghaul/pghaul/config"
)

// HookError is a cut-over hook command that failed.
type HookError struct {
	Point   string // before_freeze, after_freeze, after_cutover, on_abort
	Command int    // 1-based position in the point's list
	Err     error
	Output  string
}

func (e *HookError) Error() string {
	msg := fmt.Sprintf("%s hook %d failed: %v", e.Point, e.Command, e.Err)
	if e.Output != "" {
		msg += " (output: " + e.Output + ")"
	}
	return msg
}

func (e *HookError) Unwrap() error { return e.Err }

// hookOutputMax bounds the output of a hook that is logged and reported.
const hookOutputMax = 2000

// hookEnv is what a hook learns of the cut-over, as PGHAUL_*
// environment variables.
type hookEnv struct {
	Database, Status, FenceLSN, AbortReason string
	// Databases are the migration's replicating databases, one per line.
	Databases []string
}

func (e hookEnv) vars(point string) []string {
	return []string{
		"PGHAUL_HOOK=" + point,
		"PGHAUL_DATABASE=" + e.Database,
		"PGHAUL_DATABASES=" + strings.Join(e.Databases, "\n"),
		"PGHAUL_STATUS=" + e.Status,
		"PGHAUL_FENCE_LSN=" + e.FenceLSN,
		"PGHAUL_ABORT_REASON=" + e.AbortReason,
	}
}

// runHooks runs the commands of one hook point in order, each with
// /bin/sh -c in the migration file's directory (so a script beside it is
// ./script) and in a process group of its own (a command still running
// when ctx ends is killed with its children), logging what it printed.
// The first that fails stops the rest.
func (m *Migration) runHooks(ctx context.Context, point string, cmds config.Commands, env hookEnv) error {
	for i, c := range cmds {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c)
		cmd.Env = append(os.Environ(), env.vars(point)...)
		if m.Config.File.Path != "" {
			cmd.Dir = filepath.Dir(m.Config.File.Path)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		text := strings.TrimSpace(string(out))
		if len(text) > hookOutputMax {
			text = "..." + text[len(text)-hookOutputMax:]
		}
		m.Log.Info("hook ran", "hook", point, "command", i+1, "database", env.Database, "took", time.Since(start).Round(time.Millisecond), "output", text, "error", err)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = errors.Join(err, cause)
			}
			return &HookError{Point: point, Command: i + 1, Err: err, Output: text}
		}
	}
	return nil
}
