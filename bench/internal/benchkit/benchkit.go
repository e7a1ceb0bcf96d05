// Package benchkit holds what the benchmark commands share: a pgbench
// source cluster, the pghaul binary, command helpers and medians.
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pghaul/pghaul/internal/cluster"
)

// Setup builds pghaul into a work directory and starts a source cluster
// holding database bench at the given pgbench scale. cleanup removes both.
func Setup(ctx context.Context, scale int) (work, bin string, src *cluster.Cluster, cleanup func(), err error) {
	work, err = os.MkdirTemp("", "pghaul-bench-")
	if err != nil {
		return "", "", nil, nil, err
	}
	// Target clusters may live here too: the postgres OS user must get in.
	if err := os.Chmod(work, 0o755); err != nil {
		os.RemoveAll(work)
		return "", "", nil, nil, err
	}
	bin = filepath.Join(work, "pghaul")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pghaul").CombinedOutput(); err != nil {
		os.RemoveAll(work)
		return "", "", nil, nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	src, err = cluster.Start(ctx, cluster.Options{})
	if err != nil {
		os.RemoveAll(work)
		return "", "", nil, nil, err
	}
	cleanup = func() { src.Stop(context.WithoutCancel(ctx)); os.RemoveAll(work) }
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

// BusyCPU is the machine's busy CPU time so far (user, nice, system, irq,
// softirq over every core, from /proc/stat); 0 where /proc is missing.
// Differences of it measure what a run cost all processes together.
func BusyCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// ChildrenCPU is the user and system CPU time of this process's children
// that have ended and been waited for, with theirs (getrusage
// RUSAGE_CHILDREN). Zero where it cannot tell.
func ChildrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ServerCPU is the CPU time the server of c has used since it started: its
// postmaster's own, that of the children it has reaped (every backend and
// worker that ended: cutime, cstime) and that of its live children. Zero
// when /proc cannot tell (not Linux).
func ServerCPU(c *cluster.Cluster) time.Duration {
	data, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _, _ := strings.Cut(string(data), "\n")
	_, own, ok := procCPU(pid)
	if !ok {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if ppid, cpu, ok := procCPU(e.Name()); ok && ppid == pid {
			own += cpu
		}
	}
	return own
}

// procCPU reads a process's parent and its own and reaped children's CPU
// time from /proc/<pid>/stat.
func procCPU(pid string) (string, time.Duration, bool) {
	if _, err := strconv.Atoi(pid); err != nil {
		return "", 0, false
	}
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	// The command name may hold spaces; the fields follow its last ')'.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data)[i+1:])
	if i < 0 || len(f) < 15 {
		return "", 0, false
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		n, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += n
	}
	return f[1], time.Duration(ticks) * 10 * time.Millisecond, true
}
