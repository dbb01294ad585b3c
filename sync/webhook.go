package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"time"
)

// maxHookBody bounds a webhook payload.
const maxHookBody = 5 << 20

var commitHex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// WebhookSource is a source a webhook may trigger.
type WebhookSource struct {
	Name string
	URL  string // its repository
	Ref  string // a branch, a tag, a full ref (refs/...), a commit hash, or "" for the remote's HEAD
}

// Webhooks takes git webhooks: GitHub's and Gitea's (X-Hub-Signature-256,
// an HMAC of the body with the secret) and GitLab's (X-Gitlab-Token, the
// secret) are verified; anything else gets 401. Bodies are JSON or, as
// GitHub sends by default, form-encoded (payload=<json>).
//
// A push (X-GitHub-Event/X-Gitea-Event push, X-Gitlab-Event Push Hook or
// Tag Push Hook; a webhook without an event header is read as a push)
// triggers the sources that follow the pushed repository and ref: 202
// {"triggered":[...]}. A push to a ref no source follows is 200
// {"ignored":...}, and so is every other event: GitHub shows the delivery
// as good, and nothing runs. A ping answers pong when a source follows the
// repository and 404 when none does, as does a push for such a
// repository, so that a hook set up on the wrong repository shows red.
type Webhooks struct {
	Secret  []byte
	Sources []WebhookSource
	// Trigger asks source's sync for a pass; after is the commit the ref
	// should point at ("" when unknown, e.g. a tag push, whose "after" is
	// the tag object, not the commit).
	Trigger func(ctx context.Context, source, after string) error
	// Recent, when set, drops a repeated trigger (source, commit) within
	// its window: a storm of webhooks for one push writes one trigger.
	Recent *Recent
	// Count, when set, is told each webhook's answer: the source ("" when
	// none), the event (push, tag_push, ping, pull_request, release,
	// create, delete, merge_request, other) and the result (triggered,
	// ignored, pong, unfollowed, unauthorized, bad_request, error).
	Count func(source, event, result string)
	Log   *slog.Logger
}

// Webhook results (the result label of Webhooks.Count).
const (
	HookTriggered    = "triggered"
	HookIgnored      = "ignored"
	HookPong         = "pong"
	HookUnfollowed   = "unfollowed"
	HookUnauthorized = "unauthorized"
	HookBadRequest   = "bad_request"
	HookError        = "error"
)

// hookEvents are the event names counted as themselves; others are "other".
var hookEvents = map[string]bool{"push": true, "tag_push": true, "ping": true, "pull_request": true, "release": true,
	"create": true, "delete": true, "merge_request": true}

// hookEvent is a verified webhook, read.
type hookEvent struct {
	from  string // github (and Gitea), gitlab
	name  string // push, tag_push, ping, pull_request, ..., as sent (GitLab's names mapped)
	ref   string // the pushed ref: refs/heads/x, refs/tags/v1; "" when the payload names none
	after string // the pushed commit; "" when absent, deleted, or not a commit (tag push)
	// deleted: the push deleted ref.
	deleted bool
	// defaultBranch is the repository's default branch, when the payload says.
	defaultBranch string
	repos         []string // the repository's URLs the payload names (clone, SSH, web)
}

// eventName maps the event header to the names counted: GitHub's (and
// Gitea's) as they are, GitLab's "Push Hook" as push, "Tag Push Hook" as
// tag_push, "Merge Request Hook" as merge_request. No header is a push.
func eventName(h http.Header) string {
	if e := h.Get("X-GitHub-Event"); e != "" {
		return e
	}
	if e := h.Get("X-Gitea-Event"); e != "" {
		return e
	}
	if e := h.Get("X-Gitlab-Event"); e != "" {
		switch e {
		case "Push Hook":
			return "push"
		case "Tag Push Hook":
			return "tag_push"
		case "Merge Request Hook":
			return "merge_request"
		}
		return strings.ToLower(strings.ReplaceAll(strings.TrimSuffix(e, " Hook"), " ", "_"))
	}
	return "push"
}

func countedEvent(name string) string {
	if hookEvents[name] {
		return name
	}
	return "other"
}

func (wh *Webhooks) log() *slog.Logger {
	if wh.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return wh.Log
}

func (wh *Webhooks) count(source, event, result string) {
	if wh.Count != nil {
		wh.Count(source, countedEvent(event), result)
	}
}

func answerJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (wh *Webhooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a GitHub or GitLab push webhook here", http.StatusMethodNotAllowed)
		return
	}
	ev, ok := wh.receive(w, r)
	if !ok {
		return
	}
	log, event := wh.log(), ev.name
	delivery := r.Header.Get("X-GitHub-Delivery")
	followers := wh.followers(ev.repos)
	if len(ev.repos) > 0 && len(followers) == 0 {
		wh.count("", event, HookUnfollowed)
		log.Warn("webhook: no source follows the repository", "from", ev.from, "event", event, "repos", ev.repos, "delivery", delivery)
		http.Error(w, "no source of this agent follows "+strings.Join(ev.repos, " or ")+": is the webhook set up on the right repository?", http.StatusNotFound)
		return
	}
	switch event {
	case "ping":
		wh.count("", event, HookPong)
		fmt.Fprintln(w, "pong")
	case "push", "tag_push":
		wh.push(w, r, ev, followers, delivery)
	default:
		wh.count("", event, HookIgnored)
		log.Debug("webhook ignored", "from", ev.from, "event", event, "delivery", delivery)
		answerJSON(w, http.StatusOK, map[string]string{"ignored": event + " events do not trigger a sync; only pushes do"})
	}
}

// receive reads a webhook's payload and verifies it. When it cannot, it
// answers the request and returns false.
func (wh *Webhooks) receive(w http.ResponseWriter, r *http.Request) (*hookEvent, bool) {
	event := eventName(r.Header)
	if len(wh.Secret) == 0 {
		wh.count("", event, HookUnauthorized)
		http.Error(w, "webhooks are off: this agent was started without a webhook secret", http.StatusUnauthorized)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		wh.count("", event, HookBadRequest)
		http.Error(w, "payload over 5 MiB", http.StatusRequestEntityTooLarge)
		return nil, false
	case err != nil:
		wh.count("", event, HookBadRequest)
		http.Error(w, "cannot read the payload: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	from, ok := verify(r.Header, body, wh.Secret)
	if !ok {
		wh.count("", event, HookUnauthorized)
		wh.log().Warn("webhook refused: bad or missing signature", "remote", r.RemoteAddr)
		http.Error(w, "signature or token missing or wrong", http.StatusUnauthorized)
		return nil, false
	}
	ev, err := readEvent(r.Header.Get("Content-Type"), body)
	if err != nil {
		wh.count("", event, HookBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	ev.from, ev.name = from, event
	return ev, true
}

// push answers a push (or tag push) to a repository that followers follow:
// it triggers those whose ref it matches, and tells which ones it did.
func (wh *Webhooks) push(w http.ResponseWriter, r *http.Request, ev *hookEvent, followers []WebhookSource, delivery string) {
	log, event := wh.log(), ev.name
	triggered, follow, after, ok := wh.trigger(w, r, ev, followers)
	if !ok {
		return
	}
	for _, s := range followers {
		if !slices.Contains(triggered, s.Name) {
			wh.count(s.Name, event, HookIgnored)
		}
	}
	if len(triggered) == 0 {
		reason := "push to " + ev.ref + ": " + strings.Join(follow, ", ")
		log.Info("webhook: push to a ref no source follows", "from", ev.from, "ref", ev.ref, "delivery", delivery)
		answerJSON(w, http.StatusOK, map[string]string{"ignored": reason})
		return
	}
	for _, name := range triggered {
		wh.count(name, event, HookTriggered)
	}
	log.Info("webhook: sync triggered", "from", ev.from, "event", event, "ref", ev.ref, "after", after, "sources", triggered, "delivery", delivery)
	out := map[string]any{"triggered": triggered}
	if after != "" {
		out["after"] = after
	}
	answerJSON(w, http.StatusAccepted, out)
}

// trigger asks a pass of each follower whose ref the push matches (once
// within Recent's window). It returns the sources matched, a "follows"
// line for each other one, and the pushed commit when known. When a
// trigger fails, it answers the request and returns false.
func (wh *Webhooks) trigger(w http.ResponseWriter, r *http.Request, ev *hookEvent, followers []WebhookSource) (triggered, follow []string, after string, ok bool) {
	for _, s := range followers {
		a, match := ev.matches(s)
		if !match {
			follow = append(follow, s.Name+" follows "+refShown(s.Ref))
			continue
		}
		triggered = append(triggered, s.Name)
		if a != "" {
			after = a
		}
		if wh.Recent != nil && !wh.Recent.Fresh(s.Name, a, time.Now()) {
			continue
		}
		if err := wh.Trigger(r.Context(), s.Name, a); err != nil {
			wh.count(s.Name, ev.name, HookError)
			wh.log().Error("webhook: could not trigger a sync", "source", s.Name, "err", err)
			http.Error(w, "could not trigger a sync: "+err.Error(), http.StatusServiceUnavailable)
			return nil, nil, "", false
		}
	}
	return triggered, follow, after, true
}

// followers are the sources following one of repos; a payload naming no
// repository goes to every source.
func (wh *Webhooks) followers(repos []string) []WebhookSource {
	if len(repos) == 0 {
		return wh.Sources
	}
	var out []WebhookSource
	for _, s := range wh.Sources {
		for _, r := range repos {
			if SameRepo(s.URL, r) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func refShown(ref string) string {
	if ref == "" {
		return "the default branch"
	}
	return ref
}

// matches reports whether the push moved the ref s follows, and the
// commit to wait for: the pushed one for a branch, none for a tag (its
// "after" is the tag object of an annotated tag; the fetch peels it) or a
// deletion, or when the payload names no ref.
func (ev *hookEvent) matches(s WebhookSource) (after string, ok bool) {
	if ev.ref == "" {
		return ev.after, true // a payload without a ref (Gitea's test deliveries, scripts): sync
	}
	tag := strings.HasPrefix(ev.ref, "refs/tags/")
	commit := ev.after
	if tag {
		commit = ""
	}
	switch {
	case commitHex.MatchString(s.Ref):
		return "", false // a fixed commit: no push moves it
	case s.Ref == "":
		if tag || !strings.HasPrefix(ev.ref, "refs/heads/") {
			return "", false
		}
		if ev.defaultBranch == "" {
			return "", true // the remote's HEAD, unknown here: sync, waiting for no commit
		}
		return commit, ev.ref == "refs/heads/"+ev.defaultBranch
	case strings.HasPrefix(s.Ref, "refs/"):
		return commit, ev.ref == s.Ref
	default:
		return commit, ev.ref == "refs/heads/"+s.Ref || ev.ref == "refs/tags/"+s.Ref
	}
}

// Recent tells repeated triggers apart from new ones, so that a storm of
// webhooks for one push writes one trigger: Fresh is false for a (source,
// commit) seen within Window. A trigger naming no commit is always fresh:
// it may announce a push the last one did not see. It is safe for concurrent use and keeps at
// most a few thousand entries.
type Recent struct {
	Window time.Duration
	mu     gosync.Mutex
	seen   map[string]time.Time
}

// Fresh reports whether source's trigger for commit after was not seen
// within the window, and records it.
func (r *Recent) Fresh(source, after string, now time.Time) bool {
	if after == "" {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	key := source + "\x00" + after
	if at, ok := r.seen[key]; ok && now.Sub(at) < r.Window {
		return false
	}
	if len(r.seen) >= 4096 {
		for k, at := range r.seen {
			if now.Sub(at) >= r.Window {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= 4096 {
			clear(r.seen)
		}
	}
	r.seen[key] = now
	return true
}

// readEvent reads a GitHub, GitLab or Gitea payload, JSON or
// form-encoded (payload=<json>).
func readEvent(contentType string, body []byte) (*hookEvent, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return nil, errors.New("a form-encoded webhook must carry payload=<json>")
		}
		body = []byte(form.Get("payload"))
	}
	var payload struct {
		Ref        string         `json:"ref"`
		After      string         `json:"after"`
		Deleted    bool           `json:"deleted"`
		Repository map[string]any `json:"repository"`
		Project    map[string]any `json:"project"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		return nil, fmt.Errorf("the payload is not JSON: %w", err)
	}
	ev := &hookEvent{ref: payload.Ref, after: strings.ToLower(payload.After), deleted: payload.Deleted}
	if ev.after == strings.Repeat("0", 40) {
		ev.deleted = true
	}
	if !commitHex.MatchString(ev.after) || ev.deleted {
		ev.after = "" // no commit, or a deleted ref: just sync
	}
	seen := map[string]bool{}
	for _, m := range []map[string]any{payload.Repository, payload.Project} {
		if b, ok := m["default_branch"].(string); ok && ev.defaultBranch == "" {
			ev.defaultBranch = b
		}
		for _, k := range []string{"clone_url", "ssh_url", "git_url", "html_url", "url", "git_http_url", "git_ssh_url", "web_url", "homepage"} {
			if u, ok := m[k].(string); ok && u != "" && !seen[u] {
				seen[u] = true
				ev.repos = append(ev.repos, u)
			}
		}
	}
	return ev, nil
}

// SameRepo reports whether a source's repository URL and a URL from a
// webhook name the same repository: host and path compared, without
// scheme, user, port, ".git" or trailing slash, so that
// git@github.com:org/units.git matches https://github.com/org/units.
func SameRepo(a, b string) bool {
	ka, kb := repoKey(a), repoKey(b)
	return ka != "" && ka == kb
}

func repoKey(u string) string {
	u = strings.TrimSpace(u)
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		host, path, _ := strings.Cut(u, "/")
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		if h, _, ok := strings.Cut(host, ":"); ok {
			host = h
		}
		u = host + "/" + path
	} else if m := scpURL.FindStringSubmatch(u); m != nil {
		u = m[1] + "/" + m[2]
	}
	host, path, _ := strings.Cut(u, "/")
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if path == "" {
		return strings.ToLower(host)
	}
	return strings.ToLower(host) + "/" + path
}

var scpURL = regexp.MustCompile(`^(?:[^@/]+@)?([^/:]+):/?(.*)$`)

func verify(h http.Header, body, secret []byte) (string, bool) {
	if sig := h.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return "github", false
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		return "github", hmac.Equal(got, m.Sum(nil))
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		return "gitlab", subtle.ConstantTimeCompare([]byte(tok), secret) == 1
	}
	return "", false
}
