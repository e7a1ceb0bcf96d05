package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is pghaul built with the crash points, for the tests that run it
// as a user would (and kill it as a crash would).
var binary string

func TestMain(m *testing.M) {
	// Tables are fitted to COLUMNS off a terminal: the tests read them at
	// the default width.
	os.Unsetenv("COLUMNS")
	// Every save checks that what changed in the state was touched
	// (state.TrackChanges): the runs fail where a change would be lost.
	os.Setenv("PGHAUL_CHECK_STATE_TOUCH", "1")
	dir, err := os.MkdirTemp("", "pghaul-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pghaul")
	out, err := exec.Command("go", "build", "-tags", "crashpoints", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build pghaul: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBin runs the built binary with extra environment variables.
func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("run pghaul: %v", err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// startBin starts the binary paused at a point (PGHAUL_PAUSE_AT) and
// waits until it gets there.
func startBin(t *testing.T, pausePoint string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	flag := filepath.Join(t.TempDir(), "paused")
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "PGHAUL_PAUSE_AT="+pausePoint, "PGHAUL_PAUSE_FILE="+flag)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(flag); err == nil {
			return cmd, &out
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("pghaul never reached %s:\n%s", pausePoint, out.String())
	return nil, nil
}

// runWhilePaused starts pghaul with paused's arguments, held at point,
// runs another pghaul command meanwhile, then interrupts the first. It
// returns the second's result and the first's output.
func runWhilePaused(t *testing.T, point string, paused []string, args ...string) (result, string) {
	t.Helper()
	cmd, out := startBin(t, point, paused...)
	r := runBin(t, nil, args...)
	cmd.Process.Signal(syscall.SIGINT)
	exitCode(cmd)
	return r, out.String()
}

func exitCode(cmd *exec.Cmd) int {
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 0
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
