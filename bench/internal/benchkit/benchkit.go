// Package benchkit holds what the benchmark commands share: a pgbench
// source cluster, the pgferry binary, command helpers and medians.
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/pgferry/pgferry/internal/cluster"
)

// Setup builds pgferry into a work directory and starts a source cluster
// holding database bench at the given pgbench scale. cleanup removes both.
func Setup(ctx context.Context, scale int) (work, bin string, src *cluster.Cluster, cleanup func(), err error) {
	work, err = os.MkdirTemp("", "pgferry-bench-")
	if err != nil {
		return "", "", nil, nil, err
	}
	bin = filepath.Join(work, "pgferry")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pgferry").CombinedOutput(); err != nil {
		os.RemoveAll(work)
		return "", "", nil, nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	src, err = cluster.Start(ctx, cluster.Options{})
	if err != nil {
		os.RemoveAll(work)
		return "", "", nil, nil, err
	}
	cleanup = func() { src.Stop(ctx); os.RemoveAll(work) }
	script := fmt.Sprintf("%s -h 127.0.0.1 -p %d -U postgres bench && %s -i -q -s %d %q",
		src.Program("createdb"), src.Port, src.Program("pgbench"), scale, src.URI("bench"))
	if err := Sh(src, "sh", "-c", script); err != nil {
		cleanup()
		return "", "", nil, nil, err
	}
	return work, bin, src, cleanup, nil
}

// Sh runs a program with the cluster's environment.
func Sh(c *cluster.Cluster, program string, args ...string) error {
	cmd := exec.Command(program, args...)
	cmd.Env = c.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", program, err, out)
	}
	return nil
}

// Median is the middle duration.
func Median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
