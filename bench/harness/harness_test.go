package main

import (
	"testing"
	"time"
)

func TestPhasesCountOverlapOnce(t *testing.T) {
	log := `time=2026-01-01T00:00:01.000Z level=INFO msg="step done" step=db:a/dump-schema took=500ms result=x
time=2026-01-01T00:00:01.200Z level=INFO msg="step done" step=db:b/dump-schema took=600ms result=x
time=2026-01-01T00:00:05.000Z level=INFO msg="step done" step=db:a/copy-data took=3s result=x
time=2026-01-01T00:00:04.000Z level=INFO msg="step done" step=db:b/copy-data took=2.5s result=x
time=2026-01-01T00:00:05.500Z level=INFO msg="step done" step=db:a/post-data took=500ms result=x
time=2026-01-01T00:00:05.600Z level=INFO msg="step done" step=db:a/sequences took=100ms result=x`
	got := phases(log, 6*time.Second)
	// schema 0.5-1.2, copy 1.5-5.0, post-data 5.0-5.5, steps cover
	// 0.5-1.2 and 1.5-5.6: 4.8 s of 6.
	want := map[string]time.Duration{"schema": 700 * time.Millisecond, "copy": 3500 * time.Millisecond, "post-data": 500 * time.Millisecond, "rest": 1200 * time.Millisecond}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], w, got)
		}
	}
}
