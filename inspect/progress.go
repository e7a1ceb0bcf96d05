package inspect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/plan"
	"github.com/pghaul/pghaul/state"
)

// Progress is what status shows of one database.
type Progress struct {
	Database string `json:"database"`
	Method   string `json:"method"`
	Status   string `json:"status"`
	// Step is the last step done, the one failed or waiting, or "cut over
	// at <time>".
	Step string `json:"step,omitempty"`
	// Message says why a step failed or waits, or how far the database got.
	Message string `json:"message,omitempty"`
	// Subscription is "enabled", "disabled" or "missing" (replication only).
	Subscription string `json:"subscription,omitempty"`
	Worker       bool   `json:"apply_worker,omitempty"`
	// TablesReady/TablesTotal count pg_subscription_rel states (subscription copy).
	TablesReady int `json:"tables_ready,omitempty"`
	TablesTotal int `json:"tables_total,omitempty"`
	// LagBytes is unconfirmed WAL; ETA its time to zero at the recent rate.
	LagBytes    *int64 `json:"lag_bytes,omitempty"`
	ETA         string `json:"eta,omitempty"`
	WALRetained *int64 `json:"wal_retained_bytes,omitempty"`
	WALStatus   string `json:"wal_status,omitempty"`
	// Copy says which tables an interrupted copy keeps and which the
	// subscription copies again (state.CopyNote).
	Copy string `json:"copy,omitempty"`
	// Frozen says that a cut-over froze writes on the source database:
	// since when, and whether it switched or was interrupted.
	Frozen string `json:"frozen,omitempty"`
}

// slotStatusSQL has %s for wal_status (13+).
const slotStatusSQL = `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
	pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, %s FROM pg_replication_slots WHERE slot_name = $1`

const subscriptionStatusSQL = `SELECT s.subenabled,
	EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.pid IS NOT NULL AND w.relid IS NULL),
	(SELECT count(*) FILTER (WHERE r.srsubstate = 'r') FROM pg_subscription_rel r WHERE r.srsubid = s.oid),
	(SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid)
FROM pg_subscription s WHERE s.subname = $1`

// ReadProgress reads each database's progress from the state and, for the
// replication method, the slot and subscription on the servers, sampling
// the lag twice (every apart) for the rate.
func ReadProgress(ctx context.Context, src, dst *pg.Endpoint, st *state.State, every time.Duration) ([]Progress, error) {
	var out []Progress
	for _, d := range st.Plan.Databases {
		status, msg := st.DatabaseStatus(d.Name)
		p := Progress{Database: d.Name, Method: string(d.Method), Status: string(status)}
		p.Step, p.Message = stepOf(st, d.Name)
		if p.Message == "" && status != state.StatusDone {
			p.Message = msg
		}
		if !st.CutOver(d.Name) {
			p.Copy = st.CopyNote(d.Name)
		}
		if fr := st.Freezes[d.Name]; fr != nil {
			p.Frozen = fr.Describe()
			if fr.Switched() {
				// The switch is recorded in the freeze before its step is
				// marked done: a crash in between has cut over too.
				p.Step = "cut over at " + fr.SwitchedAt.UTC().Format(time.RFC3339)
			}
			out = append(out, p)
			continue // the frozen database lets no session in
		}
		if d.Names.Slot != "" && !st.CutOver(d.Name) {
			if err := replicationStatus(ctx, src, dst, d, &p, every); err != nil {
				return nil, err
			}
			if p.Subscription == "missing" {
				// Without a subscriber the slot's lag says nothing of the
				// target.
				p.LagBytes, p.ETA = nil, ""
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// stepOf is where a database is: the step that failed or waits (with its
// message), else "cut over at <time>" once its cut-over switched, else the
// last step done.
func stepOf(st *state.State, db string) (step, message string) {
	last := ""
	for _, s := range st.Plan.Steps {
		if s.Params.Database != db {
			continue
		}
		switch ss := st.Steps[s.ID]; ss.Status {
		case state.StatusFailed, state.StatusWaiting:
			return s.ID, ss.Message
		case state.StatusDone:
			last = s.ID
			if s.Kind == plan.StepStopReplication {
				return "cut over at " + ss.Finished.UTC().Format(time.RFC3339), ""
			}
		}
	}
	return last, ""
}

func replicationStatus(ctx context.Context, src, dst *pg.Endpoint, d plan.DatabasePlan, p *Progress, every time.Duration) error {
	sc, err := src.Connect(ctx, d.Name, pg.Options{ReadOnly: true})
	if err != nil {
		if pg.HasCode(err, pg.InvalidCatalogName) {
			return nil
		}
		return err
	}
	defer sc.Close(context.WithoutCancel(ctx))
	walStatus := "''"
	if pg.ServerMajor(sc) >= 13 {
		walStatus = "COALESCE(wal_status, '')"
	}
	q := fmt.Sprintf(slotStatusSQL, walStatus)
	var lag1 *int64
	err = sc.QueryRow(ctx, q, d.Names.Slot).Scan(&lag1, &p.WALRetained, &p.WALStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		p.WALStatus = "no slot"
	} else if err != nil {
		return fmt.Errorf("read slot %s: %w", d.Names.Slot, err)
	} else {
		start := time.Now()
		time.Sleep(every)
		if err := sc.QueryRow(ctx, q, d.Names.Slot).Scan(&p.LagBytes, &p.WALRetained, &p.WALStatus); err != nil {
			return err
		}
		p.ETA = eta(lag1, p.LagBytes, time.Since(start))
	}
	dc, err := dst.Connect(ctx, d.Name, pg.Options{ReadOnly: true})
	if err != nil {
		if pg.HasCode(err, pg.InvalidCatalogName) {
			p.Subscription = "missing"
			return nil
		}
		return err
	}
	defer dc.Close(context.WithoutCancel(ctx))
	var enabled bool
	err = dc.QueryRow(ctx, subscriptionStatusSQL, d.Names.Subscription).Scan(&enabled, &p.Worker, &p.TablesReady, &p.TablesTotal)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		p.Subscription = "missing"
	case err != nil:
		return fmt.Errorf("read subscription %s: %w", d.Names.Subscription, err)
	case enabled:
		p.Subscription = "enabled"
	default:
		p.Subscription = "disabled"
	}
	return nil
}

// eta estimates when the lag reaches zero from two samples.
func eta(before, after *int64, took time.Duration) string {
	switch {
	case before == nil || after == nil:
		return ""
	case *after == 0:
		return "caught up"
	case *after >= *before:
		return "not shrinking"
	}
	rate := float64(*before-*after) / took.Seconds()
	return (time.Duration(float64(*after) / rate * float64(time.Second))).Round(time.Second).String()
}
