package apply

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pghaul/pghaul/plan"
)

// stepFunc carries out one step and says what it did.
type stepFunc func(context.Context, plan.Step) (string, error)

// side is the servers a database step touches.
type side int

const (
	bothSides side = iota
	sourceSide
	targetSide
)

// kind is how apply carries out one kind of step. Exactly one of cluster
// and database is set; cutover is set for the steps of a cut-over that
// switches (stop: true), where they run under its freeze.
type kind struct {
	// cluster runs a cluster step with a target session and the source's
	// roles.
	cluster func(m *Migration, ctx context.Context, dst *pgx.Conn, roles []sourceRole, st plan.Step) (string, error)
	// database runs a database step outside a switching cut-over.
	database func(d *dbRun, ctx context.Context, st plan.Step) (string, error)
	// cutover gives the step's function inside a switching cut-over.
	cutover func(c *cutover) stepFunc
	// side: a database's leading steps that touch one server only run side
	// by side with the other server's (splitSides).
	side side
	// snapshot: the step reads the source under the exported snapshot,
	// which must then exist.
	snapshot bool
}

// kinds is the registry of step kinds: every plan.StepKind has an entry
// (TestEveryStepKindHasAnExecutor).
var kinds = map[plan.StepKind]kind{
	plan.StepCreateRoles: {cluster: func(m *Migration, ctx context.Context, dst *pgx.Conn, roles []sourceRole, st plan.Step) (string, error) {
		return m.createRoles(ctx, dst, roles, st.Params.Roles)
	}},
	plan.StepGrantMemberships: {cluster: func(m *Migration, ctx context.Context, dst *pgx.Conn, roles []sourceRole, _ plan.Step) (string, error) {
		return m.grantMemberships(ctx, dst, roles)
	}},
	plan.StepSetRoleSettings: {cluster: func(m *Migration, ctx context.Context, dst *pgx.Conn, roles []sourceRole, _ plan.Step) (string, error) {
		return m.setRoleSettings(ctx, dst, roles)
	}},

	plan.StepCreateDatabase:     {database: (*dbRun).createDatabase, side: targetSide},
	plan.StepConfigureDatabase:  {database: (*dbRun).configureDatabase, side: targetSide},
	plan.StepExportSnapshot:     {database: (*dbRun).exportSnapshot, side: sourceSide},
	plan.StepCreatePublication:  {database: (*dbRun).createPublication, side: sourceSide},
	plan.StepCreateSlot:         {database: (*dbRun).createSlot, side: sourceSide},
	plan.StepDumpSchema:         {database: (*dbRun).dumpSchema, side: sourceSide, snapshot: true},
	plan.StepRestorePreData:     {database: (*dbRun).restorePreData},
	plan.StepCopyData:           {database: (*dbRun).copyData, snapshot: true},
	plan.StepCopyLargeObjects:   {database: (*dbRun).copyLargeObjects, snapshot: true},
	plan.StepRestorePostData:    {database: (*dbRun).restorePostData},
	plan.StepSetSequences:       {database: (*dbRun).setSequences},
	plan.StepCreateSubscription: {database: (*dbRun).createSubscription},
	plan.StepWaitForSync:        {database: (*dbRun).waitForSync},

	plan.StepWaitForLag:       {database: (*dbRun).waitForLag, cutover: func(c *cutover) stepFunc { return c.wait }},
	plan.StepFreezeWrites:     {cutover: func(c *cutover) stepFunc { return c.freeze }},
	plan.StepFence:            {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.awaitFence) }},
	plan.StepSyncSequences:    {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.sequences) }},
	plan.StepCopyUnlogged:     {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.unlogged) }},
	plan.StepSyncLargeObjects: {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.largeObjects) }},
	plan.StepRefreshMatViews:  {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.d.refreshMatViews) }},
	plan.StepVerifyCutover:    {cutover: func(c *cutover) stepFunc { return c.inFreeze(c.verify) }},
	plan.StepStopReplication:  {cutover: func(c *cutover) stepFunc { return c.switchOver }},
}

// errNoExecutor is a step this build cannot carry out: a plan file of a
// newer pghaul.
func errNoExecutor(st plan.Step, where string) error {
	return &StepError{Step: st, Err: fmt.Errorf("this pghaul cannot carry out %s steps %s; plan again with this version", st.Kind, where)}
}
