package sync

import (
	"net/http"

	"github.com/kaylee-gitops/kaylee/store"
)

// hookHandler is the agent's webhook handler over these sources, triggering
// through etcd as the agent does.
func hookHandler(secret []byte, repoURL string, sources []hookSource, st *store.Store, count func(source, event, result string)) http.Handler {
	h := &Webhooks{Secret: secret, Trigger: st.Trigger, Count: count}
	for _, s := range sources {
		h.Sources = append(h.Sources, WebhookSource{Name: s.name, URL: repoURL, Ref: s.ref})
	}
	return h
}
