// Command pghaul moves whole PostgreSQL clusters from one server to another:
// validate a migration file, plan, apply. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := profile(os.Getenv("PGHAUL_CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stopProfile()
	stop()
	os.Exit(code)
}

// profile writes a CPU profile of the whole command to path, when set (a
// tool for finding where pghaul's own time goes; see README "Speed").
func profile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pghaul: PGHAUL_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
