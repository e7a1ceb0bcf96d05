package provider

import "testing"

func TestDetectAndInternal(t *testing.T) {
	tests := []struct {
		roles          []string
		want           string
		internal, user string
	}{
		{[]string{"postgres", "rds_superuser", "rdsadmin"}, "Amazon RDS or Aurora", "rdstopmgr", "app"},
		{[]string{"cloudsqlsuperuser"}, "Google Cloud SQL", "cloudsqladmin", "app"},
		{[]string{"azure_pg_admin", "azuresu"}, "Azure Database for PostgreSQL", "azuresu", "azure"},
		{[]string{"supabase_admin", "anon"}, "Supabase", "anon", "anonymous"},
	}
	for _, tt := range tests {
		p := Detect(tt.roles)
		if p == nil || p.Name != tt.want {
			t.Fatalf("Detect(%v) = %v, want %s", tt.roles, p, tt.want)
		}
		if !p.Internal(tt.internal) || p.Internal(tt.user) {
			t.Errorf("%s: Internal(%q) = %v, Internal(%q) = %v; want true, false", p.Name, tt.internal, p.Internal(tt.internal), tt.user, p.Internal(tt.user))
		}
	}
	var none *Provider = Detect([]string{"postgres", "anon"})
	if none != nil || none.Internal("anon") || none.ReplicationFix("app") != "" {
		t.Errorf("a self-hosted server (with a PostgREST anon role) is %v", none)
	}
}
