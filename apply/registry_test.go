package apply

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/pghaul/pghaul/plan"
)

// TestEveryStepKindHasAnExecutor: every step kind plan can emit has an
// entry in the registry, of the right family: cluster steps run for the
// cluster, cut-over steps inside a switching cut-over, the others in a
// database. plan.StepKinds must list every StepKind constant.
func TestEveryStepKindHasAnExecutor(t *testing.T) {
	declared := stepKindConstants(t)
	if len(declared) != len(plan.StepKinds) {
		t.Errorf("plan declares %d step kinds, plan.StepKinds lists %d", len(declared), len(plan.StepKinds))
	}
	for _, k := range plan.StepKinds {
		e, ok := kinds[k]
		switch {
		case !ok:
			t.Errorf("%s: no entry in the registry", k)
		case (e.cluster != nil) == (e.database != nil || e.cutover != nil):
			t.Errorf("%s: a kind is a cluster step or a database step, not both or neither", k)
		case plan.IsCutover(k) && e.cutover == nil:
			t.Errorf("%s: a cut-over step without a cut-over executor", k)
		case !plan.IsCutover(k) && e.cutover != nil:
			t.Errorf("%s: not a cut-over step, yet it has a cut-over executor", k)
		}
	}
	if len(kinds) != len(plan.StepKinds) {
		t.Errorf("the registry has %d entries for %d kinds", len(kinds), len(plan.StepKinds))
	}
}

// stepKindConstants reads plan/plan.go for the StepKind constants.
func stepKindConstants(t *testing.T) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "../plan/plan.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "StepKind" {
				for _, name := range vs.Names {
					if strings.HasPrefix(name.Name, "Step") {
						out = append(out, name.Name)
					}
				}
			}
		}
		return true
	})
	return out
}
