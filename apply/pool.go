package apply

import (
	"context"
	"sync/atomic"
	"time"
)

// spawnGrace is how long an item waits for a busy worker before another
// worker is started.
const spawnGrace = 50 * time.Millisecond

// dispatch hands the items of src to workers started on demand, up to
// limit, and closes the workers' channel when src is drained or ctx ends.
// The first item starts a worker; another starts only when an item has
// waited spawnGrace while every started worker was busy (busy counts the
// workers holding an item). Each worker opens server sessions of its own,
// and a backend costs the server tens of milliseconds of CPU to start: a
// database of one large table and a few small ones needs two workers, not
// parallel.tables of them.
func dispatch[T any](ctx context.Context, src <-chan T, limit int, busy *atomic.Int64, start func(jobs <-chan T)) {
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
		timer := time.NewTimer(spawnGrace)
		for sent := false; !sent; {
			select {
			case jobs <- item:
				sent = true
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				if running < limit && busy.Load() >= int64(running) {
					start(jobs)
					running++
				}
				timer.Reset(spawnGrace)
			}
		}
		timer.Stop()
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
