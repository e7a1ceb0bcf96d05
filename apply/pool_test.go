package apply

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pghaul/pghaul/plan"
)

// run dispatches n items to workers that hold each item for hold, and
// returns how many workers were started and how many items they handled.
func runPool(n, limit int, hold time.Duration) (started, handled int) {
	return runPoolWorth(n, limit, hold, nil)
}

func runPoolWorth(n, limit int, hold time.Duration, worth func(time.Duration, int) bool) (started, handled int) {
	var busy atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	items := make([]int, n)
	dispatch(context.Background(), itemsOf(items), limit, &busy, worth, func(jobs <-chan int) {
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

// Copy workers start by the weight of the tables left: little work waits
// for the busy worker unless it waits spawnPatience; much work gets more
// workers at once.
func TestDispatchWorthByWeight(t *testing.T) {
	var queued atomic.Int64
	worth := worthByWeight(&queued)
	// 4 items of 200 ms each and nothing queued: each waits less than the
	// patience for the one worker.
	if started, handled := runPoolWorth(4, 4, 4*spawnGrace, worth); started != 1 || handled != 4 {
		t.Errorf("little work: %d workers started, %d items handled; want 1 and 4", started, handled)
	}
	// An item behind one that takes three patiences gets a worker.
	if started, handled := runPoolWorth(2, 4, 3*spawnPatience, worth); started != 2 || handled != 2 {
		t.Errorf("long item: %d workers started, %d items handled; want 2 and 2", started, handled)
	}
	// Enough weight queued for four workers: four start.
	queued.Store(4 * spawnBytes)
	if started, handled := runPoolWorth(8, 4, 4*spawnGrace, worth); started != 4 || handled != 8 {
		t.Errorf("much work: %d workers started, %d items handled; want 4 and 8", started, handled)
	}
	if !worth(0, 3) || worth(0, 5) {
		t.Errorf("4 spawnBytes queued: worth(0, 3) = %v, worth(0, 5) = %v; want true, false", worth(0, 3), worth(0, 5))
	}
}

func TestDispatchStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var busy atomic.Int64
	done := make(chan struct{})
	items := make(chan int) // never closed: only the cancellation ends dispatch
	go func() {
		dispatch(ctx, items, 2, &busy, nil, func(jobs <-chan int) {
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

func TestLargestFirst(t *testing.T) {
	order := []string{"a", "b", "c", "d"}
	largestFirst(order, []plan.DatabasePlan{{Name: "a", Bytes: 10}, {Name: "b", Bytes: 300}, {Name: "c", Bytes: 10}, {Name: "d", Bytes: 20}})
	if want := []string{"b", "d", "a", "c"}; !slices.Equal(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
}
