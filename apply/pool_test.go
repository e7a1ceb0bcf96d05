package apply

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// run dispatches n items to workers that hold each item for hold, and
// returns how many workers were started and how many items they handled.
func runPool(n, limit int, hold time.Duration) (started, handled int) {
	var busy atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	items := make([]int, n)
	dispatch(context.Background(), itemsOf(items), limit, &busy, func(jobs <-chan int) {
		mu.Lock()
		started++
		mu.Unlock()
		wg.Go(func() {
			for range jobs {
				busy.Add(1)
				time.Sleep(hold)
				busy.Add(-1)
				mu.Lock()
				handled++
				mu.Unlock()
			}
		})
	})
	wg.Wait()
	return started, handled
}

func TestDispatchStartsWorkersOnDemand(t *testing.T) {
	// Quick items: one worker keeps up, no other is started.
	if started, handled := runPool(20, 4, 0); started != 1 || handled != 20 {
		t.Errorf("quick items: %d workers started, %d items handled; want 1 and 20", started, handled)
	}
	// Items that keep a worker busy well past the grace: up to the limit.
	if started, handled := runPool(8, 4, 4*spawnGrace); started != 4 || handled != 8 {
		t.Errorf("slow items: %d workers started, %d items handled; want 4 and 8", started, handled)
	}
	// No items, no worker (and no sessions).
	if started, _ := runPool(0, 4, 0); started != 0 {
		t.Errorf("no items: %d workers started", started)
	}
}

func TestDispatchStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var busy atomic.Int64
	done := make(chan struct{})
	items := make(chan int) // never closed: only the cancellation ends dispatch
	go func() {
		dispatch(ctx, items, 2, &busy, func(jobs <-chan int) {
			go func() {
				for range jobs {
				}
			}()
		})
		close(done)
	}()
	items <- 1
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("dispatch did not return after the cancellation")
	}
}
