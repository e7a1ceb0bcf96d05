package benchkit

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// TestServerCPUCountsEndedBackends: the CPU of backends that have ended is
// in the server's figure (the postmaster reaped them), so a run's sessions
// are counted even when none is left when it is read.
func TestServerCPUCountsEndedBackends(t *testing.T) {
	c := pgtest.Start(t, pgtest.Source)
	ctx := context.Background()
	// A server just started may have used less than one clock tick (10 ms)
	// of CPU: a session's work first makes its figure non-zero for sure.
	pgtest.Exec(t, c, "postgres", "SELECT sum(g) FROM generate_series(1, 3000000) g")
	before := ServerCPU(c)
	if before <= 0 {
		t.Fatalf("ServerCPU of a running server = %v", before)
	}
	for range 5 {
		conn, err := pgx.Connect(ctx, c.URI("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		if err := conn.QueryRow(ctx, "SELECT sum(g) FROM generate_series(1, 3000000) g").Scan(&sum); err != nil || sum != 4500001500000 {
			t.Fatalf("sum = %d, %v", sum, err)
		}
		conn.Close(ctx)
	}
	time.Sleep(500 * time.Millisecond) // the last backend ends
	// Five sums of three million rows take well over 100 ms of CPU.
	if got := ServerCPU(c) - before; got < 100*time.Millisecond {
		t.Fatalf("the server's CPU grew by %v after five ended sessions summing 3M rows each", got)
	}
}
