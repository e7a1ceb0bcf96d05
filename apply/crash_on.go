//go:build crashpoints

package apply

import (
	"os"
	"os/signal"
	"syscall"
)

// crashPoint lets a test build (-tags crashpoints) stop the process at a
// named point: PGFERRY_CRASH_AT=<point> kills it with SIGKILL, as a crash
// would; PGFERRY_PAUSE_AT=<point> holds it there until it gets SIGINT or
// SIGTERM (then it goes on, and finds its context cancelled).
func crashPoint(name string) {
	if os.Getenv("PGFERRY_CRASH_AT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if os.Getenv("PGFERRY_PAUSE_AT") == name {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		os.WriteFile(os.Getenv("PGFERRY_PAUSE_FILE"), []byte(name), 0o600)
		<-sig
		signal.Stop(sig)
	}
}
