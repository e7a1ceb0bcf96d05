//go:build crashpoints

package apply

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// crashPoint lets a test build (-tags crashpoints) stop the process at a
// named point: PGHAUL_CRASH_AT=<point> kills it with SIGKILL, as a crash
// would; PGHAUL_PAUSE_AT=<point> holds it there until it gets SIGINT or
// SIGTERM (then it goes on, and finds its context cancelled).
func crashPoint(name string) {
	if os.Getenv("PGHAUL_CRASH_AT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if os.Getenv("PGHAUL_PAUSE_AT") == name {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		os.WriteFile(os.Getenv("PGHAUL_PAUSE_FILE"), []byte(name), 0o600)
		<-sig
		signal.Stop(sig)
	}
}

// crashWanted reports that PGHAUL_CRASH_AT names point: the caller saves
// what the crash must find first.
func crashWanted(point string) bool { return os.Getenv("PGHAUL_CRASH_AT") == point }

// failPoint lets a test build make a step fail: PGHAUL_FAIL_AT=<point>
// returns an error there, as a server refusing the step would.
func failPoint(name string) error {
	if os.Getenv("PGHAUL_FAIL_AT") == name {
		return errors.New("injected failure at " + name)
	}
	return nil
}
