package deploy

import (
	"strings"
	"testing"
)

// Issue 25: a unit that names no engine is validated and warned about as
// the cluster's default engine runs it.
func TestDefaultEngineValidationAndWarnings(t *testing.T) {
	const pod = "name: web\napps:\n- image: a\n- image: b\n"
	tests := []struct {
		name, file, engine string
		wantErr, wantWarn  string // "" for none
	}{
		{"two apps, default rkt", pod, "", "", "web runs with rkt"},
		{"two apps, rkt given", pod, EngineRkt, "", "web runs with rkt"},
		{"two apps, default docker", pod, EngineDocker, "apps", ""},
		{"one app, default docker", "name: web\napps:\n- image: a\n", EngineDocker, "", ""},
		{"its own engine is kept", "name: web\nengine: rkt\napps:\n- image: a\n- image: b\n", EngineDocker, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load("web.yaml", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			err = docs[0].ValidateWithDefaultEngine(tt.engine)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("validate: %v, want %q", err, tt.wantErr)
			}
			var warns []string
			for _, w := range docs[0].WarningsWithDefaultEngine(tt.engine) {
				warns = append(warns, w.Error())
			}
			if got := strings.Join(warns, "\n"); tt.wantWarn == "" && got != "" || !strings.Contains(got, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", got, tt.wantWarn)
			}
		})
	}
}
