package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/pgdump"
	"github.com/pghaul/pghaul/internal/words"
)

// A schema too large for one transaction is restored in chunks of archive
// entries, each in its own transaction, on up to parallel.tables target
// sessions: a chunk starts once the chunks holding the entries it depends
// on (the archive's dependencies, which pg_restore --verbose writes in each
// entry's header) have committed. On one session, creating 10,000 tables
// kept one core busy for 5.5 s while the other idled.

// chunkProgress is which archive entries of a chunked pre-data restore
// have committed, kept in the state (pre_data_next and pre_data_done) so a
// rerun restores only the others.
type chunkProgress struct {
	d    *dbRun
	done []bool
}

func (d *dbRun) chunkProgress(n int) *chunkProgress {
	ds := d.m.dbState(d.name)
	p := &chunkProgress{d: d, done: make([]bool, n)}
	for i := range min(max(ds.PreDataNext-1, 0), n) {
		p.done[i] = true
	}
	for _, r := range ds.PreDataDone {
		for i := max(r[0], 0); i < min(r[1], n); i++ {
			p.done[i] = true
		}
	}
	return p
}

// todo is up to n entries not restored, in archive order.
func (p *chunkProgress) todo(n int) []int {
	var out []int
	for i, done := range p.done {
		if len(out) == n {
			break
		}
		if !done {
			out = append(out, i)
		}
	}
	return out
}

// commit records entries as restored and saves the state.
func (p *chunkProgress) commit(entries []int) error {
	for _, i := range entries {
		p.done[i] = true
	}
	next, ranges := doneRanges(p.done)
	ds := p.d.m.dbState(p.d.name)
	return p.d.m.saveDBChange(p.d.name, func() { ds.PreDataNext, ds.PreDataDone = next+1, ranges })
}

// doneRanges is how many entries are done from the first on, and the
// ranges [from, to) of those done after.
func doneRanges(done []bool) (next int, ranges [][2]int) {
	next = slices.Index(done, false)
	if next < 0 {
		return len(done), nil
	}
	for i := next; i < len(done); i++ {
		if !done[i] {
			continue
		}
		j := i
		for j < len(done) && done[j] {
			j++
		}
		ranges = append(ranges, [2]int{i, j})
		i = j
	}
	return next, ranges
}

// chunkStats is what a chunked restore did: its step's result.
type chunkStats struct {
	chunks, sessions, retried int
}

func (s chunkStats) String() string {
	out := "restored in " + words.Count(s.chunks, "chunk")
	if s.sessions > 1 {
		out += " on " + words.Count(s.sessions, "session")
	}
	if s.retried > 0 {
		out += ", " + words.Count(s.retried, "chunk") + " run again alone"
	}
	return out + " (lock limits)"
}

// chunkRestore runs the pieces of a rendered pre-data script in chunks.
type chunkRestore struct {
	d        *dbRun
	progress *chunkProgress
	// pieces, deps and settings are by entry: its text ("" for an entry
	// of another section), the earlier entries it depends on, and the SET
	// lines in force before it (default_tablespace and
	// default_table_access_method, which pg_restore writes only when they
	// change: a chunk on another session needs them).
	pieces   []string
	deps     [][]int
	settings []string
	// setup makes a new session ready: the script's encoding and string
	// syntax, then its preamble.
	setup    []string
	capacity int
}

func newChunkRestore(d *dbRun, entries []pgdump.Entry, byID map[string]string, progress *chunkProgress, setup []string, capacity int) *chunkRestore {
	r := &chunkRestore{d: d, progress: progress, setup: setup, capacity: capacity,
		pieces: make([]string, len(entries)), deps: make([][]int, len(entries)), settings: make([]string, len(entries))}
	index := make(map[string]int, len(entries))
	for i, e := range entries {
		index[e.ID()] = i
		r.pieces[i] = byID[e.ID()]
	}
	var tablespace, method string
	for i, piece := range r.pieces {
		for _, id := range pgdump.Dependencies(piece) {
			if j, ok := index[id]; ok && j < i {
				r.deps[i] = append(r.deps[i], j)
			}
		}
		r.settings[i] = tablespace + method
		for _, l := range pgdump.Settings(piece) {
			if strings.HasPrefix(l, "SET default_tablespace") {
				tablespace = l + "\n"
			} else {
				method = l + "\n"
			}
		}
	}
	return r
}

type chunkJob struct {
	entries []int
	// alone is a chunk that ran while no other did: its failure is the
	// script's, not the order's.
	alone bool
}

type chunkResult struct {
	chunkJob
	locks int
	err   error
}

// firstChunk is the most entries of the chunk that runs alone first, to
// measure the locks an entry takes: small, since the other sessions wait
// for it.
const firstChunk = 128

const (
	entryToDo = iota
	entryRunning
	entryDone
)

// run restores every entry not yet restored, counting in stats. The
// first chunk (at most firstChunk entries) runs alone and measures the
// locks an entry takes (pg_locks before its COMMIT); the next ones are
// sized so that all running together hold a third of the lock table, and
// run on up to parallel.tables sessions, shared first. After a chunk fails (a
// dependency the archive does not declare, the lock table), the rest go
// one at a time; a chunk that fails alone ends the run with its error, for
// the caller to go on with pg_restore, which names the entry.
func (r *chunkRestore) run(ctx context.Context, shared *pgx.Conn, size int, stats *chunkStats) (err error) {
	n := len(r.pieces)
	state := make([]int8, n)
	for i := range n {
		if strings.TrimSpace(r.pieces[i]) == "" {
			r.progress.done[i] = true // of another section: nothing to run
		}
		if r.progress.done[i] {
			state[i] = entryDone
		}
	}
	want := max(1, r.d.m.Config.Parallel.Tables)
	jobs, results := make(chan chunkJob), make(chan chunkResult, want)
	var wg sync.WaitGroup
	var extra []*pgx.Conn
	defer func() {
		close(jobs)
		wg.Wait()
		for _, c := range extra {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	workers, running, lo := 0, 0, 0
	measured, serial := false, false
	var failure error
	for {
		limit := 1
		if measured && !serial {
			limit = want
		}
		if failure == nil && running < limit {
			for lo < n && state[lo] != entryToDo {
				lo++
			}
			take := size
			if !measured {
				take = min(size, firstChunk)
			}
			job := r.next(state, lo, take)
			if len(job.entries) > 0 && (running == 0 || r.ready(state, job.entries)) {
				if running == workers {
					conn := shared
					if workers > 0 {
						if conn, err = r.session(ctx); err != nil {
							// A server out of connections gets fewer sessions.
							r.d.m.Log.Debug("a pre-data session could not start", "database", r.d.name, "error", err)
							want, err = workers, nil
							continue
						}
						extra = append(extra, conn)
					}
					workers++
					stats.sessions = max(stats.sessions, workers)
					wg.Go(func() { r.worker(ctx, conn, jobs, results) })
				}
				job.alone = running == 0 && (serial || !measured)
				for _, i := range job.entries {
					state[i] = entryRunning
				}
				jobs <- job
				running++
				continue
			}
		}
		if running == 0 {
			break
		}
		res := <-results
		running--
		if res.err != nil {
			for _, i := range res.entries {
				state[i] = entryToDo
			}
			lo = min(lo, res.entries[0])
			switch {
			case ctx.Err() != nil:
				failure = ctx.Err()
			case failure != nil:
			case isLockExhaustion(res.err) && len(res.entries) > 1:
				size, serial = max(1, len(res.entries)/2), true
			case !res.alone:
				serial = true
				stats.retried++
				r.d.m.Log.Debug("a pre-data chunk failed beside others; it runs again alone", "database", r.d.name, "error", res.err)
			default:
				failure = res.err
			}
			continue
		}
		if err := r.progress.commit(res.entries); err != nil {
			failure = err
			continue
		}
		stats.chunks++
		if res.locks > 0 {
			sessions := want
			if serial {
				sessions = 1
			}
			size = max(16, (r.capacity/(3*sessions))*len(res.entries)/res.locks)
		}
		measured = true
		crashPoint("chunk:" + r.d.name)
		crashPoint(fmt.Sprintf("chunk:%s/%d", r.d.name, stats.chunks))
	}
	return failure
}

// next is up to size entries to restore from lo on, in archive order,
// passing over restored ones and stopping at one that is running.
func (r *chunkRestore) next(state []int8, lo, size int) chunkJob {
	var job chunkJob
	for i := lo; i < len(state) && len(job.entries) < size && state[i] != entryRunning; i++ {
		if state[i] == entryToDo {
			job.entries = append(job.entries, i)
		}
	}
	return job
}

// ready reports whether every entry the chunk's entries depend on has
// committed or is in the chunk.
func (r *chunkRestore) ready(state []int8, entries []int) bool {
	first := entries[0]
	for _, i := range entries {
		for _, dep := range r.deps[i] {
			if state[dep] != entryDone && !(dep >= first && state[dep] == entryToDo) {
				return false
			}
		}
	}
	return true
}

// session opens another target session, set up as the shared one is.
func (r *chunkRestore) session(ctx context.Context) (*pgx.Conn, error) {
	conn, err := r.d.m.Target.Connect(ctx, r.d.name, pg.Options{Settings: map[string]string{"statement_timeout": "0"}})
	if err != nil {
		return nil, err
	}
	for _, s := range r.setup {
		if _, err := conn.PgConn().Exec(ctx, s).ReadAll(); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return conn, nil
}

// worker runs chunks on one session, each in its own transaction.
func (r *chunkRestore) worker(ctx context.Context, conn *pgx.Conn, jobs <-chan chunkJob, results chan<- chunkResult) {
	for job := range jobs {
		var b strings.Builder
		b.WriteString("BEGIN;\n")
		b.WriteString(r.settings[job.entries[0]])
		for _, i := range job.entries {
			b.WriteString(r.pieces[i])
			b.WriteString("\n")
		}
		b.WriteString(";" + chunkLocksSQL + ";\nCOMMIT;")
		out, err := conn.PgConn().Exec(ctx, b.String()).ReadAll()
		if err != nil {
			conn.PgConn().Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
		}
		results <- chunkResult{chunkJob: job, locks: chunkLocks(out), err: err}
	}
}
