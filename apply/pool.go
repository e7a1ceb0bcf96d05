package apply

import (
	"context"
	"sync/atomic"
	"time"
)

// spawnGrace is how long an item waits for a busy worker before another
// worker may be started.
const spawnGrace = 50 * time.Millisecond

// dispatch hands the items of src to workers started on demand, up to
// limit, and closes the workers' channel when src is drained or ctx ends.
// The first item starts a worker; another starts only when an item has
// waited spawnGrace while every started worker was busy (busy counts the
// workers holding an item), and worth (nil: always) says the work waiting
// pays for one more. Each worker opens server sessions of its own, and a
// backend costs the server tens of milliseconds of CPU to start: a
// database of one large table and a few small ones needs two workers, not
// parallel.tables of them.
func dispatch[T any](ctx context.Context, src <-chan T, limit int, busy *atomic.Int64, worth func(waited time.Duration, running int) bool, start func(jobs <-chan T)) {
	jobs := make(chan T)
	defer close(jobs)
	running := 0
	for {
		var item T
		select {
		case it, ok := <-src:
			if !ok {
				return
			}
			item = it
		case <-ctx.Done():
			return
		}
		if running == 0 {
			start(jobs)
			running++
		}
		since := time.Now()
		timer := time.NewTimer(spawnGrace)
		for sent := false; !sent; {
			select {
			case jobs <- item:
				sent = true
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				if running < limit && busy.Load() >= int64(running) && (worth == nil || worth(time.Since(since), running)) {
					start(jobs)
					running++
				}
				timer.Reset(spawnGrace)
			}
		}
		timer.Stop()
	}
}

// Tables waiting for a copy worker pay for another one when they hold at
// least spawnBytes per worker already running, each table counted as
// tableWeight more than its size (a table's statements, catalog lookups
// and commit cost about as much as copying that much), or when the
// waiting one has waited spawnPatience behind tables that take long.
const (
	spawnBytes    = 32 << 20
	tableWeight   = 1 << 20
	spawnPatience = 500 * time.Millisecond
)

// worthByWeight is dispatch's worth for items whose weight, not yet taken
// by a worker, is queued.
func worthByWeight(queued *atomic.Int64) func(time.Duration, int) bool {
	return func(waited time.Duration, running int) bool {
		return waited >= spawnPatience || queued.Load() >= int64(running)*spawnBytes
	}
}

// itemsOf is a closed channel holding items.
func itemsOf[T any](items []T) <-chan T {
	c := make(chan T, len(items))
	for _, it := range items {
		c <- it
	}
	close(c)
	return c
}
