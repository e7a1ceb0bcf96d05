package apply

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pgferry/pgferry/config"
)

// A wait checks every pollQuick at first, but reports (a sample, a drift
// check) only once per LagPoll: with LagPoll an hour, the fourth check
// still comes within the test's deadline, and only the first reports.
func TestPollChecksQuicklyReportsPerLagPoll(t *testing.T) {
	cfg := config.Default()
	cfg.Replication.WaitTimeout = config.Duration(time.Hour)
	d := &dbRun{m: &Migration{Config: &cfg, LagPoll: time.Hour}, name: "db"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reports []bool
	err := d.poll(ctx, "waiting", func(report bool) (bool, error) {
		reports = append(reports, report)
		return len(reports) == 4, nil
	})
	if err != nil {
		t.Fatalf("poll: %v (checks so far: %v)", err, reports)
	}
	if want := []bool{true, false, false, false}; !slices.Equal(reports, want) {
		t.Fatalf("reports = %v, want %v", reports, want)
	}
}

// A short LagPoll (the tests' knob) is kept: it is shorter than pollQuick.
func TestPollKeepsShorterLagPoll(t *testing.T) {
	cfg := config.Default()
	cfg.Replication.WaitTimeout = config.Duration(time.Hour)
	d := &dbRun{m: &Migration{Config: &cfg, LagPoll: time.Millisecond}, name: "db"}
	// At pollQuick the 50 checks would take 12 s and miss the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reports []bool
	err := d.poll(ctx, "waiting", func(report bool) (bool, error) {
		reports = append(reports, report)
		return len(reports) == 50, nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
