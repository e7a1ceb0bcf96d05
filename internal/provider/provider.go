// Package provider holds what pghaul knows of managed PostgreSQL services:
// how to recognise each from what its servers show, its own roles (never
// migrated), and how to fix a replication prerequisite there. It is the
// one table of these facts (docs/providers.md shows it); each entry names
// the provider documentation it comes from. Pure data: no I/O.
package provider

import (
	"fmt"
	"slices"
	"strings"
)

// Provider is one managed PostgreSQL service.
type Provider struct {
	Name string
	// Marker is a role only this provider's servers have.
	Marker string
	// InternalRoles are the provider's own roles, never migrated; a name
	// ending in * is a prefix.
	InternalRoles []string
	// LogicalWAL says how to get wal_level = logical there ("" where it
	// is logical already).
	LogicalWAL string
	// Replication says how to give role %s the REPLICATION privilege.
	Replication string
	// Subscription says how a target there lets its admin create
	// subscriptions before PostgreSQL 16, where vanilla servers let only
	// superusers.
	Subscription string
	// Source is the provider documentation these facts come from.
	Source string
}

// Providers are the managed services pghaul recognises.
var Providers = []Provider{
	{
		Name:          "Amazon RDS or Aurora",
		Marker:        "rds_superuser",
		InternalRoles: []string{"rdsadmin", "rds_*", "rdsrepladmin", "rdstopmgr", "rdsproxyadmin"},
		LogicalWAL:    "set rds.logical_replication = 1 in the instance's custom DB parameter group (Aurora: the cluster's) and reboot; wal_level then becomes logical",
		Replication:   "GRANT rds_replication TO %s",
		Subscription:  "connect to the target as the master user, or another member of rds_superuser with rds_replication: RDS lets them create subscriptions",
		Source:        "Amazon RDS User Guide: Performing logical replication for Amazon RDS for PostgreSQL",
	},
	{
		Name:          "Google Cloud SQL",
		Marker:        "cloudsqlsuperuser",
		InternalRoles: []string{"cloudsql*"},
		LogicalWAL:    "set the instance's database flag cloudsql.logical_decoding = on (the instance restarts)",
		Replication:   "ALTER ROLE %s WITH REPLICATION, as a member of cloudsqlsuperuser",
		Subscription:  "connect to the target as a member of cloudsqlsuperuser that has REPLICATION: Cloud SQL lets it create subscriptions",
		Source:        "Cloud SQL for PostgreSQL documentation: Set up logical replication and decoding",
	},
	{
		Name:          "Azure Database for PostgreSQL",
		Marker:        "azure_pg_admin",
		InternalRoles: []string{"azure_*", "azuresu"},
		LogicalWAL:    "set the server parameter wal_level = logical (portal: Server parameters) and restart the server",
		Replication:   "ALTER ROLE %s WITH REPLICATION, as the server's admin user (a member of azure_pg_admin)",
		Subscription:  "connect to the target as the server's admin user (a member of azure_pg_admin) with REPLICATION: Azure lets it create subscriptions",
		Source:        "Azure Database for PostgreSQL flexible server documentation: Logical replication and logical decoding",
	},
	{
		Name:   "Supabase",
		Marker: "supabase_admin",
		InternalRoles: []string{"supabase*", "authenticator", "anon", "authenticated", "service_role", "dashboard_user",
			"pgbouncer", "pgsodium_key*"},
		LogicalWAL:   "Supabase projects run with wal_level = logical: ask Supabase support why this one does not",
		Replication:  "ALTER ROLE %s WITH REPLICATION, as the postgres role",
		Subscription: "connect to the target as the postgres role, which Supabase lets create subscriptions",
		Source:       "Supabase documentation: Postgres Roles, and Replication",
	},
	{
		// Aiven has no internal role a user sees; avnadmin is the user's
		// own admin, which moves like any role.
		Name:         "Aiven for PostgreSQL",
		Marker:       "avnadmin",
		LogicalWAL:   "Aiven for PostgreSQL services run with wal_level = logical: ask Aiven support why this one does not",
		Replication:  "ALTER ROLE %s WITH REPLICATION, as avnadmin",
		Subscription: "CREATE EXTENSION aiven_extras as avnadmin in each target database (for one pghaul creates: in the source database, whose schema carries it over, or create the target database first): pghaul then creates the subscriptions through it",
		Source:       "Aiven documentation: Perform DBA-type tasks in Aiven for PostgreSQL; the aiven-extras README",
	},
}

// Detect returns the provider whose marker role is among roles, or nil.
func Detect(roles []string) *Provider {
	for i, p := range Providers {
		if slices.Contains(roles, p.Marker) {
			return &Providers[i]
		}
	}
	return nil
}

// Internal reports whether role is one of p's own (false for a nil p).
func (p *Provider) Internal(role string) bool {
	if p == nil {
		return false
	}
	for _, r := range p.InternalRoles {
		if prefix, ok := strings.CutSuffix(r, "*"); ok && strings.HasPrefix(role, prefix) || r == role {
			return true
		}
	}
	return false
}

// ReplicationFix says how to give role REPLICATION on p ("" for a nil p).
func (p *Provider) ReplicationFix(role string) string {
	if p == nil || p.Replication == "" {
		return ""
	}
	return fmt.Sprintf(p.Replication, role) + " (" + p.Name + ")"
}

// SubscriptionFix says how to create subscriptions on a target of p before
// PostgreSQL 16 ("" for a nil p).
func (p *Provider) SubscriptionFix() string {
	if p == nil || p.Subscription == "" {
		return ""
	}
	return p.Subscription + " (" + p.Name + ")"
}

// LogicalWALFix says how to get wal_level = logical on p ("" for a nil p,
// or one where it is logical already).
func (p *Provider) LogicalWALFix() string {
	if p == nil || p.LogicalWAL == "" {
		return ""
	}
	return p.LogicalWAL + " (" + p.Name + ")"
}
