// Package plan is pghaul's pure core: the Snapshot of what a cluster holds,
// the checks that turn two snapshots and a config into Findings, Build
// (config + snapshots + environment -> Plan), the renderers and the plan file.
//
// It does no I/O: it must not import pgx, net (net/url is fine), os/exec or
// database/sql. inspect builds Snapshots; apply executes Plans.
package plan
