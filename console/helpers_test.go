package console

import (
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
)

func mustSpec(t *testing.T, yaml string) *deploy.Document {
	t.Helper()
	docs, err := deploy.Load("unit.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}
