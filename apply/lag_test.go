package apply

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pghaul/pghaul/config"
)

// pollReports runs d.poll with LagPoll every until check has been called n
// times or the deadline passes, and returns each check's report flag.
func pollReports(t *testing.T, every, deadline time.Duration, n int) []bool {
	t.Helper()
	cfg := config.Default()
	cfg.Replication.WaitTimeout = config.Duration(time.Hour)
	d := &dbRun{m: &Migration{Config: &cfg, LagPoll: every}, name: "db"}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var reports []bool
	err := d.poll(ctx, "waiting", func(report bool) (bool, error) {
		reports = append(reports, report)
		return len(reports) == n, nil
	})
	if err != nil {
		t.Fatalf("poll: %v (checks so far: %v)", err, reports)
	}
	return reports
}

// A wait checks every pollQuick at first, but reports (a sample, a drift
// check) only once per LagPoll: with LagPoll an hour, the fourth check
// still comes within the test's deadline, and only the first reports.
func TestPollChecksQuicklyReportsPerLagPoll(t *testing.T) {
	reports := pollReports(t, time.Hour, 10*time.Second, 4)
	if want := []bool{true, false, false, false}; !slices.Equal(reports, want) {
		t.Fatalf("reports = %v, want %v", reports, want)
	}
}

// A short LagPoll (the tests' knob) is kept: it is shorter than pollQuick.
// At pollQuick the 50 checks would take 12 s and miss the deadline.
func TestPollKeepsShorterLagPoll(t *testing.T) {
	reports := pollReports(t, time.Millisecond, 5*time.Second, 50)
	// Every check a LagPoll after the last report reports again.
	n := 0
	for _, r := range reports {
		if r {
			n++
		}
	}
	if n < 2 {
		t.Fatalf("%d of 50 checks reported with LagPoll 1ms, want most", n)
	}
}
