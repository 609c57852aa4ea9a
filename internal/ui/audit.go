package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"kiln/internal/store"
	"kiln/internal/web"
)

// auditPageSize is how many rows the Audit page shows at once.
const auditPageSize = 100

// auditData is what the Audit page reads.
type auditData struct {
	// The filters as typed.
	Project, Actor, Action, Since string
	Error                         string
	Rows                          []store.AuditEntry
	// Older is the query of the next, older page; "" when there is none.
	Older string
}

// auditPage shows the audit log, newest first, filtered by the query's
// project, actor, action and since (as GET /api/audit reads them).
func (b *bakeryPages) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	d := auditData{Project: v.Get("project"), Actor: v.Get("actor"), Action: v.Get("action"), Since: v.Get("since")}
	if v.Get("limit") == "" {
		v.Set("limit", strconv.Itoa(auditPageSize))
	}
	q, err := web.AuditQueryFrom(v, time.Now())
	if err != nil {
		d.Error = err.Error()
		b.show(w, r, s, http.StatusBadRequest, "audit", "audit", d)
		return
	}
	want := q.Limit
	q.Limit++
	if d.Rows, err = b.cfg.Records.Audit(r.Context(), q); err != nil {
		b.fail(w, r, err)
		return
	}
	if len(d.Rows) > want {
		d.Rows = d.Rows[:want]
		next := url.Values{}
		for k, vs := range v {
			next[k] = vs
		}
		next.Set("before", strconv.FormatInt(d.Rows[want-1].ID, 10))
		d.Older = next.Encode()
	}
	b.show(w, r, s, http.StatusOK, "audit", "audit", d)
}
