package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// policyKeys may change between runs of one migration without starting it
// over: the lag policy and runtime knobs (DESIGN.md section 5), and the
// address the target's subscriptions dial the source at, which says how
// to reach it, not what moves (a wrong one is found at the publication
// step, before the copy, and fixed in place).
var policyKeys = map[string]bool{
	"replication.max_lag_bytes": true, "replication.wait_timeout": true, "replication.stop": true,
	"replication.sync_sequences": true, "parallel": true, "pg_bin": true, "state": true,
	"source.uri_from_target": true, "replication.write_freeze": true, "replication.freeze_timeout": true,
	"replication.verify": true, "replication.hooks": true,
}

// earlierPolicyKeys are the policy keys before source.uri_from_target
// joined them: EarlierStateKey finds the states pghaul wrote then.
var earlierPolicyKeys = func() map[string]bool {
	keys := maps.Clone(policyKeys)
	for _, k := range []string{"source.uri_from_target", "replication.write_freeze", "replication.freeze_timeout", "replication.verify", "replication.hooks"} {
		delete(keys, k)
	}
	return keys
}()

// StateKey identifies a migration for its state directory: the hash of the
// file as written (unexpanded, so no secret) without the policy and runtime
// keys, plus both servers' system identifiers. Comments and key order do
// not change it.
func (c *Config) StateKey(sourceSystemID, targetSystemID string) string {
	return c.stateKey(policyKeys, sourceSystemID, targetSystemID)
}

// EarlierStateKey is the key pghaul gave this migration before
// source.uri_from_target became a policy key: a state written then is
// still this migration's (apply resumes it and stores the new key).
func (c *Config) EarlierStateKey(sourceSystemID, targetSystemID string) string {
	return c.stateKey(earlierPolicyKeys, sourceSystemID, targetSystemID)
}

func (c *Config) stateKey(policy map[string]bool, sourceSystemID, targetSystemID string) string {
	var root yaml.Node
	body := []byte{}
	if err := yaml.Unmarshal(c.File.Raw, &root); err == nil && len(root.Content) > 0 {
		stripPolicy(root.Content[0], "", policy)
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		_ = enc.Encode(canonical(root.Content[0]))
		body = b.Bytes()
	}
	sum := sha256.Sum256(append(body, []byte("\x00"+sourceSystemID+"\x00"+targetSystemID)...))
	return hex.EncodeToString(sum[:])
}

func stripPolicy(n *yaml.Node, path string, policy map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := join(path, n.Content[i].Value)
		if policy[key] {
			continue
		}
		v := n.Content[i+1]
		stripPolicy(v, key, policy)
		if v.Kind == yaml.MappingNode && len(v.Content) == 0 {
			continue // a section emptied of policy keys says nothing
		}
		kept = append(kept, n.Content[i], v)
	}
	n.Content = kept
}

// canonical drops comments and sorts mapping keys, so that formatting does
// not change the key.
func canonical(n *yaml.Node) *yaml.Node {
	c := &yaml.Node{Kind: n.Kind, Tag: n.Tag, Value: n.Value}
	if n.Kind == yaml.MappingNode {
		type kv struct{ k, v *yaml.Node }
		var pairs []kv
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, kv{canonical(n.Content[i]), canonical(n.Content[i+1])})
		}
		slices.SortStableFunc(pairs, func(a, b kv) int { return strings.Compare(a.k.Value, b.k.Value) })
		for _, p := range pairs {
			c.Content = append(c.Content, p.k, p.v)
		}
		return c
	}
	for _, ch := range n.Content {
		c.Content = append(c.Content, canonical(ch))
	}
	return c
}

// PolicyKeys are the keys (or whole sections) that may change between
// runs of one migration without starting it over, sorted.
func PolicyKeys() []string {
	return slices.Sorted(maps.Keys(policyKeys))
}
