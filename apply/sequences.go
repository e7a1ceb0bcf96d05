package apply

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/internal/pg"
	"github.com/pghaul/pghaul/internal/words"
	"github.com/pghaul/pghaul/plan"
)

// sequenceValuesSQL reads every sequence's value now: sequences are not
// transactional, so the snapshot's view of them means nothing. A NULL
// last_value means nextval was never called (or cannot be read).
const sequenceValuesSQL = `SELECT schemaname, sequencename, last_value, start_value FROM pg_sequences ORDER BY 1, 2`

const targetSequencesSQL = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S'`

// setSequences copies sequence values read after the copy (dump method).
func (d *dbRun) setSequences(ctx context.Context, _ plan.Step) (string, error) {
	n, err := d.m.syncSequences(ctx, d.name)
	if err != nil {
		return "", err
	}
	return words.Count(n, "sequence") + " set", nil
}

// syncSequences sets every target sequence that also exists on the source
// to the source's value, in one batch.
func (m *Migration) syncSequences(ctx context.Context, db string) (int, error) {
	src, err := m.Source.Connect(ctx, db, pg.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := m.Target.Connect(ctx, db, pg.Options{})
	if err != nil {
		return 0, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	return syncSequencesOn(ctx, src, dst)
}

// syncSequencesOn sets the sequences on dst from src, sessions in the
// database on either side.
func syncSequencesOn(ctx context.Context, src, dst *pgx.Conn) (int, error) {
	rows, err := dst.Query(ctx, targetSequencesSQL)
	if err != nil {
		return 0, err
	}
	onTarget := map[plan.TableRef]bool{}
	var r plan.TableRef
	if _, err := pgx.ForEachRow(rows, []any{&r.Schema, &r.Name}, func() error { onTarget[r] = true; return nil }); err != nil {
		return 0, err
	}
	rows, err = src.Query(ctx, sequenceValuesSQL)
	if err != nil {
		return 0, fmt.Errorf("read sequence values: %w", err)
	}
	b := &pgx.Batch{}
	var last *int64
	var start int64
	if _, err := pgx.ForEachRow(rows, []any{&r.Schema, &r.Name, &last, &start}, func() error {
		if !onTarget[r] {
			return nil
		}
		if last != nil {
			b.Queue("SELECT setval($1::regclass, $2, true)", ident(r.Schema, r.Name), *last)
		} else {
			b.Queue("SELECT setval($1::regclass, $2, false)", ident(r.Schema, r.Name), start)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read sequence values: %w", err)
	}
	if b.Len() == 0 {
		return 0, nil
	}
	if err := dst.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("set sequences: %w", err)
	}
	return b.Len(), nil
}
